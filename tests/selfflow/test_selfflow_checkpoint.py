"""Loading the released Self-Flow layout (esser_lab.selfflow.checkpoint) from tiny files.

The reference below is the release's ``SelfFlowPerTokenDiT.forward`` written out from its
equations on the raw state dict (SiT time: 0 noise, 1 data; 1 − t into the network; per-token
adaLN; output reordered (p q c) -> (c p q), sigma half dropped, negated).
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from safetensors.torch import save_file

from esser_lab.selfflow.checkpoint import load_selfflow, read_state, release_forward
from esser_lab.selfflow.model import SelfFlowConfig, SelfFlowDiT

CONFIG = SelfFlowConfig(
    input_size=8, patch_size=2, in_channels=4, hidden=32, depth=2, heads=4, num_classes=11
)


def _release_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = SelfFlowDiT(CONFIG)
    state = {}
    for name, p in model.state_dict().items():
        state[name] = p.clone() if name == "pos_embed" else torch.randn_like(p) * 0.1
    return state


def _linear(s, prefix, x):
    return F.linear(x, s[prefix + ".weight"], s[prefix + ".bias"])


def _reference(s, tokens, t_sit, y, heads):  # noqa: ANN001, ANN202 - the release, by hand
    t = 1 - t_sit
    half = 128
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None] * freqs[None]
    t_freq = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    t_emb = _linear(s, "t_embedder.mlp.2", F.silu(_linear(s, "t_embedder.mlp.0", t_freq)))
    c = (t_emb + s["y_embedder.embedding_table.weight"][y])[:, None].expand(-1, tokens.shape[1], -1)
    x = _linear(s, "x_embedder.proj", tokens) + s["pos_embed"]
    d = x.shape[-1]
    for i in range(CONFIG.depth):
        p = f"blocks.{i}."
        m = _linear(s, p + "adaLN_modulation.1", F.silu(c)).chunk(6, dim=-1)
        h = F.layer_norm(x, (d,), eps=1e-6) * (1 + m[1]) + m[0]
        q, k, v = rearrange(_linear(s, p + "attn.qkv", h), "b l (k n e) -> k b n l e", k=3, n=heads)
        a = rearrange(F.scaled_dot_product_attention(q, k, v), "b n l e -> b l (n e)")
        x = x + m[2] * _linear(s, p + "attn.proj", a)
        h = F.layer_norm(x, (d,), eps=1e-6) * (1 + m[4]) + m[3]
        mlp = _linear(s, p + "mlp.fc2", F.gelu(_linear(s, p + "mlp.fc1", h), approximate="tanh"))
        x = x + m[5] * mlp
    shift, scale = _linear(s, "final_layer.adaLN_modulation.1", F.silu(c)).chunk(2, dim=-1)
    out = _linear(s, "final_layer.linear", F.layer_norm(x, (d,), eps=1e-6) * (1 + scale) + shift)
    out = rearrange(out, "b l (p q c) -> b l (c p q)", p=2, q=2)
    return -out.chunk(2, dim=-1)[0]


@pytest.mark.parametrize("fmt", ["pt-wrapped", "safetensors"])
def test_release_file_loads_and_matches_reference_forward(tmp_path, fmt) -> None:  # noqa: ANN001
    state = _release_state()
    if fmt == "pt-wrapped":
        path = tmp_path / "selfflow_tiny.pt"
        torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        path = tmp_path / "selfflow_tiny.safetensors"
        save_file(state, str(path))
    model = load_selfflow(path, CONFIG)
    x = torch.randn(3, 4, 8, 8)
    t_sit, y = torch.tensor([0.1, 0.5, 0.93]), torch.tensor([0, 3, 10])
    tokens = rearrange(x, "b c (h p) (w q) -> b (h w) (c p q)", p=2, q=2)
    expected = _reference(state, tokens, t_sit, y, CONFIG.heads)
    got = rearrange(
        release_forward(model, x, t_sit, y), "b c (h p) (w q) -> b (h w) (c p q)", p=2, q=2
    )
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    # the book's convention: model(x, t_book) = −release(x, 1 − t_book)
    torch.testing.assert_close(model(x, 1 - t_sit, y), -release_forward(model, x, t_sit, y))


def test_wrong_shape_names_the_key(tmp_path) -> None:  # noqa: ANN001
    state = _release_state()
    with pytest.raises(ValueError, match="blocks.0.mlp.fc1.weight"):
        load_selfflow(state, replace(CONFIG, mlp_ratio=2.0))


def test_missing_and_other_layouts_are_named(tmp_path) -> None:  # noqa: ANN001
    state = _release_state()
    del state["projector.linear1.weight"]
    with pytest.raises(ValueError, match="missing.*projector.linear1.weight"):
        load_selfflow(state, CONFIG)
    conv = _release_state()
    conv["x_embedder.proj.weight"] = torch.zeros(32, 4, 2, 2)
    with pytest.raises(ValueError, match="Self-Flow release layout"):
        load_selfflow(conv, CONFIG)
    with pytest.raises(ValueError, match="another layout"):
        load_selfflow({"transformer_blocks.0.attn.to_q.weight": torch.zeros(2, 2)}, CONFIG)
    with pytest.raises(FileNotFoundError, match="Hila/Self-Flow"):
        read_state(tmp_path / "absent.pt")
