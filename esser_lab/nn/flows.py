"""The invertible network of chapters 5–9: flat flows of ActNorm, double affine couplings, shuffles.

One block family serves four papers: the interpretation network of IIN (Esser, Rombach & Ommer,
CVPR 2020; ``CompVis/iin``, ``iin/models/iin.py``), the conditional INN of Net2Net (Rombach, Esser
& Ommer, NeurIPS 2020; ``CompVis/net2net``, ``net2net/modules/flow/{blocks,flatflow}.py``), the
invariance cINN of "Making Sense of CNNs" (ECCV 2020) and the data-bias note (2020). Each block is

    ActNorm (data-dependent init, log-det) → double affine coupling (both halves updated,
    tanh on the log-scale) → fixed random permutation,

and a flow stacks ``n_flows`` of them on a flat vector. The conditional version feeds an
embedding ``h(c)`` of the condition into every s/t network (``ConditionalFlatCouplingFlow``).

Conventions: inputs are ``(b, dim)``; ``forward(x, cond) -> (z, logdet)`` with ``logdet`` of shape
``(b,)`` = log|det ∂z/∂x|, and ``inverse(z, cond) -> x``. The official blocks carry vectors as
``(b, dim, 1, 1)``; here they stay flat (``(b, dim, 1, 1)`` is accepted and flattened).
The official ``InvLeakyRelu`` (which reports log-det 0 although it is not volume preserving) is
left out: every released config sets ``activation: "none"``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from esser_lab.checks import check_finite, check_tensor
from esser_lab.nn import placement
from esser_lab.nn.distributed import is_distributed, moments_over_ranks

__all__ = [
    "ActNorm",
    "ConditionalFlow",
    "DoubleAffineCoupling",
    "Flow",
    "FlowBlock",
    "Shuffle",
    "fully_connected",
    "nll_loss",
]


def _flat(x: Tensor, dim: int, name: str, like: nn.Module | None = None) -> Tensor:
    """``x`` as ``(b, dim)``; a clear error for anything else (:mod:`esser_lab.checks`)."""
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (batch, {dim}), got {type(x).__name__}"
        )
    if x.dim() == 4 and x.shape[2:] == (1, 1):
        x = x.flatten(1)
    if x.dim() != 2 or x.shape[1] != dim:
        raise ValueError(
            f"{name} must have shape (batch, {dim}) (or (batch, {dim}, 1, 1)), got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    training = None if like is None else like.training
    return check_tensor(x, name, ("batch", dim), like=like, training=training)


def fully_connected(
    dim_in: int,
    dim_out: int,
    hidden_dim: int,
    depth: int,
    *,
    tanh: bool = False,
    batch_norm: bool = False,
) -> nn.Sequential:
    """The s/t networks and the condition embedder (``BasicFullyConnectedNet`` in the code).

    ``Linear(dim_in, hidden) → [BN] → LeakyReLU``, then ``depth`` times
    ``Linear(hidden, hidden) → [BN] → LeakyReLU``, then ``Linear(hidden, dim_out)`` and an optional
    ``tanh`` (used for the log-scale s, which keeps every coupling's scale in [e⁻¹, e]).
    """
    layers: list[nn.Module] = []
    width = dim_in
    for _ in range(depth + 1):
        layers.append(nn.Linear(width, hidden_dim))
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers.append(nn.LeakyReLU())  # slope 0.01, the PyTorch default the code uses
        width = hidden_dim
    layers.append(nn.Linear(width, dim_out))
    if tanh:
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class ActNorm(nn.Module):
    """Per-feature affine map ``h = scale · (x + loc)`` (Glow), initialised from the first batch.

    On the first forward pass in training mode, ``loc`` and ``scale`` are set so that this batch
    comes out with zero mean and unit standard deviation per feature; afterwards both are ordinary
    parameters. Works on ``(b, c)`` and ``(b, c, h, w)``; the log-determinant counts every pixel.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features
        self.loc = nn.Parameter(torch.zeros(num_features))
        self.scale = nn.Parameter(torch.ones(num_features))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))
        # ``initialized`` read once it is 1: reading the buffer in every training forward pass
        # would be a host sync per layer on a GPU (a load resets it, so the buffer is re-read)
        self._known_initialized = False

    def is_initialized(self) -> bool:
        """Whether ``loc`` and ``scale`` hold their data-dependent initialisation."""
        if not self._known_initialized:
            self._known_initialized = bool(self.initialized)
        return self._known_initialized

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._known_initialized = False

    def _shape(self, x: Tensor) -> tuple[int, ...]:
        if x.dim() not in (2, 4) or x.shape[1] != self.num_features:
            raise ValueError(
                f"ActNorm({self.num_features}) expects (batch, {self.num_features}) or "
                f"(batch, {self.num_features}, h, w), got {tuple(x.shape)}"
            )
        return (1, -1) + (1,) * (x.dim() - 2)

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set ``loc`` and ``scale`` from ``x``; under DDP from every rank's batch together, so
        the replicas agree (and match one process on the whole global batch)."""
        flat = x.transpose(0, 1).reshape(self.num_features, -1)
        # runs once, so the checks cost nothing: a bad first batch would fix NaN parameters
        name = f"ActNorm({self.num_features})'s first batch (its data-dependent init)"
        if flat.shape[1] < 2 and not is_distributed():
            raise ValueError(
                f"{name} needs at least 2 values per feature to take a standard deviation, got "
                f"shape {tuple(x.shape)}; initialise with a batch of 2 or more"
            )
        check_finite(flat, name)
        if is_distributed():
            mean, var = moments_over_ranks(flat, unbiased=True)
            self.loc.copy_(-mean)
            self.scale.copy_(1.0 / (var.sqrt() + 1e-6))
        else:
            self.loc.copy_(-flat.mean(1))
            self.scale.copy_(1.0 / (flat.std(1) + 1e-6))
        self.initialized.fill_(1)
        self._known_initialized = True

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        shape = self._shape(x)
        if self.training and not self.is_initialized():
            self.initialize(x)
        h = self.scale.view(shape) * (x + self.loc.view(shape))
        pixels = x[0, 0].numel()
        logdet = pixels * self.scale.abs().log().sum()
        return h, logdet.expand(x.shape[0])

    def inverse(self, h: Tensor) -> Tensor:
        shape = self._shape(h)
        if self.training and not self.is_initialized():
            raise RuntimeError(
                "ActNorm is initialised from data in the forward direction; run a forward pass "
                "(or load a checkpoint) before inverting"
            )
        return h / self.scale.view(shape) - self.loc.view(shape)


class DoubleAffineCoupling(nn.Module):
    """Two affine couplings updating both halves of ``x = [a, b]`` (``DoubleVectorCouplingBlock``).

        b' = b · exp(s₀([a, c])) + t₀([a, c])
        a' = a · exp(s₁([b', c])) + t₁([b', c])

    with ``s = tanh(MLP)``; log|det| = Σ s₀ + Σ s₁. ``cond_dim > 0`` makes it conditional: the
    condition embedding ``c`` is concatenated to every s/t input
    (``ConditionalDoubleVectorCouplingBlock``). Odd ``dim`` is allowed: ``a`` gets the extra entry.
    """

    def __init__(self, dim: int, hidden_dim: int, depth: int = 2, cond_dim: int = 0) -> None:
        super().__init__()
        if dim < 2:
            raise ValueError(f"a coupling needs dim >= 2 to split, got {dim}")
        self.dim, self.cond_dim = dim, cond_dim
        self.split = ((dim + 1) // 2, dim // 2)  # sizes of a and b
        a, b = self.split
        self.s = nn.ModuleList(
            [
                fully_connected(a + cond_dim, b, hidden_dim, depth, tanh=True),
                fully_connected(b + cond_dim, a, hidden_dim, depth, tanh=True),
            ]
        )
        self.t = nn.ModuleList(
            [
                fully_connected(a + cond_dim, b, hidden_dim, depth),
                fully_connected(b + cond_dim, a, hidden_dim, depth),
            ]
        )

    def _input(self, h: Tensor, cond: Tensor | None) -> Tensor:
        return h if cond is None else torch.cat([h, cond], dim=1)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        a, b = x.split(self.split, dim=1)
        h = self._input(a, cond)
        s0 = self.s[0](h)
        b = b * s0.exp() + self.t[0](h)
        h = self._input(b, cond)
        s1 = self.s[1](h)
        a = a * s1.exp() + self.t[1](h)
        return torch.cat([a, b], dim=1), s0.sum(1) + s1.sum(1)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        a, b = y.split(self.split, dim=1)
        h = self._input(b, cond)
        a = (a - self.t[1](h)) * (-self.s[1](h)).exp()
        h = self._input(a, cond)
        b = (b - self.t[0](h)) * (-self.s[0](h)).exp()
        return torch.cat([a, b], dim=1)


class Shuffle(nn.Module):
    """A fixed random permutation of the features (log-det 0), drawn once from ``seed``."""

    def __init__(self, dim: int, seed: int = 0) -> None:
        super().__init__()
        perm = torch.randperm(dim, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("forward_index", perm)
        self.register_buffer("inverse_index", torch.argsort(perm))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[:, self.forward_index], x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        return z[:, self.inverse_index]


class FlowBlock(nn.Module):
    """ActNorm → DoubleAffineCoupling → Shuffle (``[Conditional]FlatDoubleCouplingFlowBlock``)."""

    def __init__(
        self, dim: int, hidden_dim: int, depth: int, cond_dim: int = 0, seed: int = 0
    ) -> None:
        super().__init__()
        self.norm = ActNorm(dim)
        self.coupling = DoubleAffineCoupling(dim, hidden_dim, depth, cond_dim)
        self.shuffle = Shuffle(dim, seed)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h, ld_norm = self.norm(x)
        h, ld_coupling = self.coupling(h, cond)
        h, _ = self.shuffle(h)
        return h, ld_norm + ld_coupling

    def inverse(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.norm.inverse(self.coupling.inverse(self.shuffle.inverse(z), cond))


class Flow(nn.Module):
    """An unconditional flat flow z = T(x) (the code's ``UnconditionalFlatCouplingFlow``).

    Args:
        dim: size of the flowed vector (IIN: the autoencoder's 64-d latent).
        n_flows: number of blocks (IIN 12, Net2Net 20–24).
        hidden_dim, hidden_depth: width and extra hidden layers of every s/t MLP (IIN 512 / 2).
        seed: seeds the blocks' fixed permutations, so two flows built alike are identical.
    """

    def __init__(
        self, dim: int, n_flows: int, hidden_dim: int, hidden_depth: int = 2, *, seed: int = 0
    ) -> None:
        super().__init__()
        self._build(dim, n_flows, hidden_dim, hidden_depth, 0, seed)

    def _build(
        self, dim: int, n_flows: int, hidden_dim: int, hidden_depth: int, cond_dim: int, seed: int
    ) -> None:
        for name, value in (("dim", dim), ("n_flows", n_flows), ("hidden_dim", hidden_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.dim, self.cond_dim = dim, cond_dim
        self.blocks = nn.ModuleList(
            FlowBlock(dim, hidden_dim, hidden_depth, cond_dim, seed=seed * 1000 + i)
            for i in range(n_flows)
        )

    def _embed(self, cond: Tensor | None, batch: int) -> Tensor | None:
        if cond is not None:
            raise ValueError("this Flow is unconditional; use ConditionalFlow to pass a condition")
        return None

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = _flat(x, self.dim, "x", self)
        h = self._embed(cond, x.shape[0])
        logdet = x.new_zeros(x.shape[0])
        for block in self.blocks:
            x, ld = block(x, h)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        z = _flat(z, self.dim, "z", self)
        h = self._embed(cond, z.shape[0])
        for block in reversed(self.blocks):
            z = block.inverse(z, h)
        return z

    @torch.no_grad()
    def sample(
        self, n: int, cond: Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """``T⁻¹(v)`` for ``v ~ N(0, I)``; ``n`` rows (one per condition row when conditional)."""
        param = next(self.parameters())
        shape, device, dtype = (n, self.dim), param.device, param.dtype
        v = placement.randn(shape, generator=generator, device=device, dtype=dtype)
        return self.inverse(v, cond)


class ConditionalFlow(Flow):
    """A conditional flat flow z = τ(x | c) (``ConditionalFlatCouplingFlow`` in Net2Net).

    The condition ``c`` of size ``cond_in`` is embedded once by an MLP ``h``
    (``conditioning_hidden_dim`` wide, ``conditioning_depth`` extra layers, optional BatchNorm as
    the text configs' ``conditioner_use_bn``) into ``embedding_dim`` numbers, which every
    coupling's s and t networks read. The embedder trains with the flow. A paper with another
    embedder (the invariances paper's ``DenseEmbedder``) passes it as ``embedder``: any module
    mapping ``(b, cond_in)`` to ``(b, embedding_dim)``; the ``conditioning_*`` arguments are then
    unused.
    """

    def __init__(
        self,
        dim: int,
        cond_in: int,
        n_flows: int,
        hidden_dim: int,
        hidden_depth: int = 2,
        *,
        embedding_dim: int = 128,
        conditioning_hidden_dim: int = 256,
        conditioning_depth: int = 2,
        conditioner_batch_norm: bool = False,
        embedder: nn.Module | None = None,
        seed: int = 0,
    ) -> None:
        nn.Module.__init__(self)
        self._build(dim, n_flows, hidden_dim, hidden_depth, embedding_dim, seed)
        self.cond_in = cond_in
        if embedder is None:
            embedder = fully_connected(
                cond_in,
                embedding_dim,
                conditioning_hidden_dim,
                conditioning_depth,
                batch_norm=conditioner_batch_norm,
            )
        self.embedder = embedder

    def _embed(self, cond: Tensor | None, batch: int) -> Tensor:
        if cond is None:
            raise ValueError(f"ConditionalFlow needs a condition of shape (batch, {self.cond_in})")
        cond = _flat(cond, self.cond_in, "cond", self)
        if cond.shape[0] != batch:
            raise ValueError(f"cond has {cond.shape[0]} rows but the input has {batch}")
        return self.embedder(cond)

    @torch.no_grad()
    def sample(
        self, n: int, cond: Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        if cond is not None and cond.shape[0] != n:
            raise ValueError(f"sample(n={n}) needs {n} condition rows, got {cond.shape[0]}")
        return super().sample(n, cond, generator=generator)


def nll_loss(z: Tensor, logdet: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Negative log-likelihood under N(0, I), up to the constant (the code's ``NLL``).

        L = E[½‖z‖²] − E[log|det ∂z/∂x|]

    Returns the loss and its parts (``nll``, ``nlogdet``, and ``reference_nll`` = E[½‖ε‖²] for
    ε ~ N(0, I), the value ½‖z‖² takes once z really is standard normal: ``dim / 2``).
    """
    if logdet.dim() != 1 or logdet.shape[0] != z.shape[0]:
        raise ValueError(f"logdet must have shape ({z.shape[0]},), got {tuple(logdet.shape)}")
    nll = 0.5 * z.flatten(1).pow(2).sum(1).mean()
    nlogdet = -logdet.mean()
    reference = z.new_full((), 0.5 * z[0].numel())  # a fill on z's device, no host copy
    return nll + nlogdet, {
        "nll": nll.detach(),
        "nlogdet": nlogdet.detach(),
        "reference_nll": reference,
    }
