"""The per-token-timestep DiT of Self-Flow (Chefer, Esser et al. 2026, arXiv 2603.06507).

A SiT/DiT backbone (Peebles & Xie 2023; Ma et al. 2024) in which every token carries its own
noise level: the timestep embedding is computed per token, added to the (broadcast) class
embedding, and every adaLN modulation (the six shift/scale/gate chunks of a block, the two of the
final layer) is applied per token (the release's ``PerTokenDiTBlock`` / ``PerTokenFinalLayer``,
``black-forest-labs/Self-Flow`` ``src/model.py``). That is what lets dual-timestep scheduling
(Self-Flow §3, :mod:`esser_lab.selfflow.method`) noise some tokens more than others.

Parameter names are the release's (SiT/REPA naming), so ``selfflow_imagenet256.pt`` loads by name
(:mod:`esser_lab.selfflow.checkpoint`): ``x_embedder.proj`` (a Linear on patchified tokens, the
patch flattened in (c, p, q) order), ``t_embedder.mlp.{0,2}``, ``y_embedder.embedding_table``,
``pos_embed`` (fixed 2-D sin-cos, stored), ``blocks.{i}.{attn.qkv, attn.proj, mlp.fc1, mlp.fc2,
adaLN_modulation.1}``, ``final_layer.{linear, adaLN_modulation.1}`` and ``projector.{linear1,
linear2}`` (the self-distillation head ``SimpleHead``: Linear(D, 2D) → SiLU → Linear(2D, D)).

Conventions. Time is the book's (chapter 17): t = 0 data, t = 1 noise, x_t = (1 − t)x₀ + tε, and
:meth:`SelfFlowDiT.forward` returns the velocity ε − x₀. Our own trained models are this network
as it stands. The release's *inner* network (``_forward``, whose weights we load) speaks SiT's
convention instead: it takes SiT time (1 = data) and returns x₀ − ε; its public ``forward`` maps
book time t to SiT time 1 − t and negates the output. A model loaded from the release therefore
has ``SelfFlowConfig.release_time`` set (by :func:`~esser_lab.selfflow.checkpoint.load_selfflow`):
its blocks then run at 1 − t and the output is negated, so that it too answers in the book's
convention (block features are returned as the blocks computed them). The final layer emits
(p, q, c) per patch with c = 2C when ``learn_sigma``; the release reorders to (c, p, q) and keeps
the first C channels (the sigma half is unused by the flow), as :meth:`SelfFlowDiT.forward` does.

Speed: a per-token adaLN costs a (tokens × D × 6D) matmul per block. Within a batch there are
only a few distinct (time, class) pairs (two per image under dual-timestep scheduling), so the
modulation is computed once per distinct pair and gathered per token: the same numbers, several
times faster at small widths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from einops import rearrange, repeat
from torch import Tensor, nn

from esser_lab.checks import check_tensor
from esser_lab.config import check_fields
from esser_lab.nn.attention import attention
from esser_lab.nn.dit import Mlp, SelfAttention, TimestepEmbedder, sincos_pos_embed_2d

__all__ = ["SelfFlowConfig", "SelfFlowDiT", "SimpleHead", "count_parameters", "patchify"]


@dataclass(frozen=True)
class SelfFlowConfig:
    """Sizes of :class:`SelfFlowDiT`. ``num_classes = 0``: an unconditional model (no
    ``y_embedder``); the release has 1001 rows (1000 ImageNet classes + the null class).

    ``release_time``: the blocks hold the release's weights, which take SiT time (1 = data) and
    predict x₀ − ε; :meth:`SelfFlowDiT.forward` then evaluates them at 1 − t and negates, as the
    release's ``forward`` does (set by the loader; off for the models the book trains)."""

    input_size: int = 32
    patch_size: int = 2
    in_channels: int = 4
    hidden: int = 1152
    depth: int = 28
    heads: int = 16
    mlp_ratio: float = 4.0
    num_classes: int = 1001
    learn_sigma: bool = True
    release_time: bool = False

    def __post_init__(self) -> None:
        check_fields(self)
        sizes = ("input_size", "patch_size", "in_channels", "hidden", "depth", "heads")
        bad = {k: getattr(self, k) for k in sizes if int(getattr(self, k)) < 1}
        if bad or self.num_classes < 0:
            raise ValueError(f"SelfFlowConfig sizes must be ≥ 1 (num_classes ≥ 0), got {bad}")
        if self.input_size % self.patch_size:
            raise ValueError(
                f"input_size {self.input_size} must be a multiple of patch_size {self.patch_size}"
            )
        if self.hidden % self.heads or self.hidden % 4:
            raise ValueError(
                f"hidden {self.hidden} must be divisible by heads {self.heads} and by 4"
            )

    @classmethod
    def paper(cls) -> SelfFlowConfig:
        """SiT-XL/2 on 4×32×32 SD-VAE latents of ImageNet-256, as the release (``sample.py``)."""
        return cls()

    @classmethod
    def tiny(cls) -> SelfFlowConfig:
        """16×16 RGB, 4×4 patches (16 tokens), width 64, depth 6, unconditional."""
        return cls(
            input_size=16, patch_size=4, in_channels=3, hidden=64, depth=6, heads=4,
            mlp_ratio=2.0, num_classes=0, learn_sigma=False,
        )  # fmt: skip

    @property
    def grid(self) -> int:
        return self.input_size // self.patch_size

    @property
    def tokens(self) -> int:
        return self.grid**2

    @property
    def out_channels(self) -> int:
        return 2 * self.in_channels if self.learn_sigma else self.in_channels


def patchify(x: Tensor, patch_size: int) -> Tensor:
    """(b, c, h·p, w·p) -> (b, h·w, c·p·p), each patch flattened in (c, p, q) order (the
    release's ``"b c (h p1) (w p2) -> b (c p1 p2) h w"`` then raster tokens)."""
    return rearrange(x, "b c (h p) (w q) -> b (h w) (c p q)", p=patch_size, q=patch_size)


class LinearPatchEmbed(nn.Module):
    """``proj``: a Linear from a (c, p, q)-flattened patch to the width (``PatchedPatchEmbed``)."""

    def __init__(self, patch_dim: int, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(patch_dim, hidden)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.proj(tokens)


class LabelEmbedder(nn.Module):
    """``embedding_table``: one row per class (the release's last row is the null class)."""

    def __init__(self, num_classes: int, hidden: int) -> None:
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes, hidden)

    def forward(self, labels: Tensor) -> Tensor:
        return self.embedding_table(labels)


class SimpleHead(nn.Module):
    """The self-distillation projector: ``linear1`` (D → 2D) → SiLU → ``linear2`` (2D → D)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(hidden, 2 * hidden)
        self.act = nn.SiLU()
        self.linear2 = nn.Linear(2 * hidden, hidden)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear2(self.act(self.linear1(x)))


def _gather(values: Tensor, index: Tensor) -> Tensor:
    """Rows of ``values`` (u, k) at ``index`` (b, l) -> (b, l, k)."""
    return values[index]


class PerTokenDiTBlock(nn.Module):
    """adaLN-Zero DiT block with per-token modulation (Self-Flow's ``PerTokenDiTBlock``):

    x ← x + g₁ ⊙ Attn(norm1(x) ⊙ (1 + s₁) + b₁);  x ← x + g₂ ⊙ MLP(norm2(x) ⊙ (1 + s₂) + b₂),

    with (b₁, s₁, g₁, b₂, s₂, g₂) = ``adaLN_modulation``(c) per token.
    """

    def __init__(self, hidden: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(hidden, heads)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden, int(hidden * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))

    def forward(self, x: Tensor, c: Tensor, index: Tensor, mask: Tensor | None = None) -> Tensor:
        """x (b, l, d); c (u, d) the distinct conditions, ``index`` (b, l) each token's row;
        ``mask`` an optional boolean attention mask (b, 1, l, l), True = visible."""
        mods = _gather(self.adaLN_modulation(c), index).chunk(6, dim=-1)
        shift1, scale1, gate1, shift2, scale2, gate2 = mods
        h = self.norm1(x) * (1 + scale1) + shift1
        y = attention(*self.attn.pre_attention(h), heads=self.attn.heads, mask=mask)
        x = x + gate1 * self.attn.post_attention(y)
        return x + gate2 * self.mlp(self.norm2(x) * (1 + scale2) + shift2)


class PerTokenFinalLayer(nn.Module):
    """LayerNorm → per-token modulate (shift, scale) → ``linear`` (the release's final layer)."""

    def __init__(self, hidden: int, patch_size: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))

    def forward(self, x: Tensor, c: Tensor, index: Tensor) -> Tensor:
        shift, scale = _gather(self.adaLN_modulation(c), index).chunk(2, dim=-1)
        return self.linear(self.norm_final(x) * (1 + scale) + shift)


class SelfFlowDiT(nn.Module):
    """The per-token-timestep DiT; ``forward(x, t, y)`` returns the velocity ε − x₀ at book
    time t (0 data, 1 noise), also when it holds the release's weights (``release_time``).

    ``return_features``: block numbers (1-based, as the release's ``return_features=8``) whose
    output tokens (b, l, d) are returned too, in a dict; ``projector`` is applied by the caller
    (:meth:`project`), so one forward serves the student (projected) and the probe (raw).
    """

    def __init__(self, config: SelfFlowConfig) -> None:
        super().__init__()
        self.config = c = config
        self.x_embedder = LinearPatchEmbed(c.in_channels * c.patch_size**2, c.hidden)
        self.t_embedder = TimestepEmbedder(c.hidden)
        self.y_embedder = LabelEmbedder(c.num_classes, c.hidden) if c.num_classes else None
        self.register_parameter(
            "pos_embed", nn.Parameter(torch.zeros(1, c.tokens, c.hidden), requires_grad=False)
        )
        self.blocks = nn.ModuleList(
            PerTokenDiTBlock(c.hidden, c.heads, c.mlp_ratio) for _ in range(c.depth)
        )
        self.final_layer = PerTokenFinalLayer(c.hidden, c.patch_size, c.out_channels)
        self.projector = SimpleHead(c.hidden)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """DiT's initialisation (as the release's ``initialize_weights``): Xavier Linears, zero
        biases, N(0, 0.02) label table and timestep MLP, zero adaLN and final linear, the sin-cos
        table in ``pos_embed``."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        self.pos_embed.data.copy_(sincos_pos_embed_2d(self.config.hidden, self.config.grid)[None])
        if self.y_embedder is not None:
            nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        for layer in [*self.blocks, self.final_layer]:
            nn.init.zeros_(layer.adaLN_modulation[-1].weight)
            nn.init.zeros_(layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def _check(self, x: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        c = self.config
        expected = (c.in_channels, c.input_size, c.input_size)
        if not isinstance(x, Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != expected:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be (b, {', '.join(map(str, expected))}), got {got}")
        check_tensor(x, "x", ("b", *expected), like=self, training=self.training)
        b = x.shape[0]
        if not isinstance(t, Tensor):
            t = torch.full((b,), float(t), device=x.device)
        check_tensor(t, "t", (b, *t.shape[1:]), training=self.training)
        if t.shape == (b,):
            t = repeat(t, "b -> b l", l=c.tokens)
        if t.shape != (b, c.tokens):
            raise ValueError(
                f"t must be (b,) = ({b},) or per token (b, l) = ({b}, {c.tokens}), got "
                f"{tuple(t.shape)}"
            )
        if (y is None) != (self.y_embedder is None):
            want = "class labels y (b,)" if self.y_embedder is not None else "no labels (y=None)"
            raise ValueError(f"this model (num_classes={c.num_classes}) takes {want}")
        if y is not None and (y.shape != (b,) or y.dtype not in (torch.int64, torch.int32)):
            raise ValueError(f"y must be integer labels ({b},), got {tuple(y.shape)} {y.dtype}")
        return t

    def conditions(
        self, t: Tensor, y: Tensor | None, distinct: bool | None = None
    ) -> tuple[Tensor, Tensor]:
        """The conditions c = t_emb + y_emb (u, d) and each token's row (b, l).

        ``distinct``: one row per distinct (t, y) (a few per batch: cheaper modulations) or one
        per token (u = b·l). ``None`` picks per device: distinct on the CPU, per token on a GPU,
        where ``torch.unique``'s data-dependent size would be a host sync in every forward.
        The two give the same values up to float rounding."""
        b, length = t.shape
        labels = torch.zeros_like(t) if y is None else repeat(y.to(t.dtype), "b -> b l", l=length)
        keys = torch.stack([t.float(), labels.float()], dim=-1).reshape(-1, 2)
        if distinct is None:
            distinct = keys.device.type == "cpu"
        if distinct:
            rows, index = torch.unique(keys, dim=0, return_inverse=True)
        else:
            rows, index = keys, torch.arange(b * length, device=keys.device)
        c = self.t_embedder(rows[:, 0])
        if self.y_embedder is not None:
            c = c + self.y_embedder(rows[:, 1].long())
        return c, index.reshape(b, length)

    def forward(
        self,
        x: Tensor,
        t: Tensor | float,
        y: Tensor | None = None,
        *,
        return_features: Sequence[int] = (),
        mask: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, dict[int, Tensor]]:
        """Velocity ε − x₀ (b, C, H, W) of x (b, C, H, W) at book times t: (b,) or per token
        (b, l). With ``release_time`` the blocks see SiT time 1 − t and the output is negated
        (the release's ``forward``: v_book(x, t) = −inner(x, 1 − t)).

        ``mask``: a boolean attention mask (b, 1, l, l) (the Attention-Separation ablation).
        """
        t = self._check(x, t, y)
        config = self.config
        if config.release_time:
            t = 1 - t
        for layer in return_features:
            if not 1 <= layer <= config.depth:
                raise ValueError(f"return_features are blocks 1..{config.depth}, got {layer}")
        h = self.x_embedder(patchify(x, config.patch_size)) + self.pos_embed
        c, index = self.conditions(t, y)
        features = {}
        for i, block in enumerate(self.blocks, start=1):
            h = block(h, c, index, mask)
            if i in return_features:
                features[i] = h
        out = self.final_layer(h, c, index)  # (b, l, p·q·C_out), (p, q, c) order
        g, p = config.grid, config.patch_size
        out = rearrange(out, "b (h w) (p q c) -> b c (h p) (w q)", h=g, w=g, p=p, q=p)
        out = out[:, : config.in_channels]  # learn_sigma: the sigma half is discarded
        if config.release_time:
            out = -out  # the inner network's x₀ − ε, turned into the book's ε − x₀
        return (out, features) if return_features else out

    def project(self, h: Tensor) -> Tensor:
        """The projector applied to a student layer's tokens (b, l, d)."""
        return self.projector(h)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (``pos_embed`` included unless ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
