"""Loading the released Self-Flow layout (esser_lab.selfflow.checkpoint) from tiny files.

The references below are the release written out from its equations on the raw state dict
(``src/model.py``, ``src/sampling.py`` of black-forest-labs/Self-Flow):

* ``_inner``: ``SelfFlowPerTokenDiT._forward``, the network whose weights are stored; its time is
  the time it is given (per-token adaLN; output reordered (p q c) -> (c p q), sigma half dropped);
* ``_release_forward``: the public ``forward(x, timesteps)``: the inner network at 1 − timesteps,
  negated;
* ``_sampler_velocity``: ``denoise_loop``'s ``model_fn`` (reverse=True) at the sampler's time s:
  ``forward`` at 1 − s, negated; SiT's ICPlan integrates it from s ≈ 0 (noise) to 1 (data) along
  x_s = s·x₀ + (1 − s)·ε, whose velocity is x₀ − ε.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from safetensors.torch import save_file

from esser_lab.diffusion.flow import euler_solve
from esser_lab.selfflow.checkpoint import load_selfflow, read_state, sit_velocity
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


def _t_embed(s, t):  # noqa: ANN001, ANN202 - the release's TimestepEmbedder, by hand
    half = 128
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None] * freqs[None]
    t_freq = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return _linear(s, "t_embedder.mlp.2", F.silu(_linear(s, "t_embedder.mlp.0", t_freq)))


def _inner(s, tokens, time, y, heads):  # noqa: ANN001, ANN202 - the release's _forward
    c = (_t_embed(s, time) + s["y_embedder.embedding_table.weight"][y])[:, None]
    c = c.expand(-1, tokens.shape[1], -1)
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
    return out.chunk(2, dim=-1)[0]


def _release_forward(s, tokens, timesteps, y, heads):  # noqa: ANN001, ANN202
    return -_inner(s, tokens, 1 - timesteps, y, heads)


def _sampler_velocity(s, tokens, time, y, heads):  # noqa: ANN001, ANN202 - denoise_loop's model_fn
    return -_release_forward(s, tokens, 1 - time, y, heads)


def _tokens(x):  # noqa: ANN001, ANN202
    return rearrange(x, "b c (h p) (w q) -> b (h w) (c p q)", p=2, q=2)


@pytest.mark.parametrize("fmt", ["pt-wrapped", "safetensors"])
def test_loaded_model_is_the_release_forward_in_book_time(tmp_path, fmt) -> None:  # noqa: ANN001
    state = _release_state()
    if fmt == "pt-wrapped":
        path = tmp_path / "selfflow_tiny.pt"
        torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        path = tmp_path / "selfflow_tiny.safetensors"
        save_file(state, str(path))
    model = load_selfflow(path, CONFIG)
    assert model.config.release_time and not CONFIG.release_time
    x = torch.randn(3, 4, 8, 8)
    t_book, y = torch.tensor([0.1, 0.5, 0.93]), torch.tensor([0, 3, 10])
    tokens = _tokens(x)
    # model(x, t) is the release's forward at the same (book) time: 1 = noise, ε − x₀ out
    expected = _release_forward(state, tokens, t_book, y, CONFIG.heads)
    torch.testing.assert_close(_tokens(model(x, t_book, y)), expected, atol=1e-5, rtol=1e-4)
    # −model(x, 1 − s) is what the release's sampler integrates at its time s (1 = data)
    s = t_book
    sampler = _sampler_velocity(state, tokens, s, y, CONFIG.heads)
    torch.testing.assert_close(_tokens(-model(x, 1 - s, y)), sampler, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(_tokens(sit_velocity(model, x, s, y)), sampler, atol=1e-5, rtol=1e-4)
    # ... which is the stored inner network at s itself, not at 1 − s
    inner = _inner(state, tokens, s, y, CONFIG.heads)
    torch.testing.assert_close(sampler, inner, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(inner, _inner(state, tokens, 1 - s, y, CONFIG.heads), atol=1e-3)


def test_one_euler_step_lands_where_the_release_sampler_does() -> None:
    """An exact case: the final layer's scale is −1 (its LayerNorm term vanishes), so the stored
    network's output is a known function of time alone, f(s) = W·shift(s) + b. The release's
    sampler steps x ← x + (s₁ − s₀)·f(s₀); one Euler step of the loaded model in book time, from
    t = 1 − s₀ to 1 − s₁, must land on the same point (a sign or time slip moves it elsewhere)."""
    state = _release_state(seed=1)
    d = CONFIG.hidden
    ada_w, ada_b = (
        state["final_layer.adaLN_modulation.1.weight"],
        state["final_layer.adaLN_modulation.1.bias"],
    )
    ada_w[d:] = 0.0  # scale rows: no dependence on the condition ...
    ada_b[d:] = -1.0  # ... and 1 + scale = 0
    model = load_selfflow(state, CONFIG)
    y = torch.tensor([2, 7])
    x = torch.randn(2, 4, 8, 8)

    def f(time: torch.Tensor) -> torch.Tensor:  # the stored network, by hand (SiT time)
        shift = F.linear(
            F.silu(_t_embed(state, time) + state["y_embedder.embedding_table.weight"][y]),
            ada_w[:d],
            ada_b[:d],
        )
        out = _linear(state, "final_layer.linear", shift)[:, None].expand(-1, CONFIG.tokens, -1)
        out = rearrange(out, "b l (p q c) -> b l (c p q)", p=2, q=2).chunk(2, dim=-1)[0]
        return rearrange(out, "b (h w) (c p q) -> b c (h p) (w q)", h=4, p=2, q=2)

    s0, s1 = 0.2, 0.6
    release_step = x + (s1 - s0) * f(torch.full((2,), s0))
    with torch.no_grad():
        ours = euler_solve(lambda z, t, c: model(z, t, c), x, 1, y, t_from=1 - s0, t_to=1 - s1)
    torch.testing.assert_close(ours, release_step, atol=1e-5, rtol=1e-4)
    # the step is not trivial, and the mirrored time would land elsewhere
    assert (release_step - x).abs().max() > 1e-2
    wrong = x + (s1 - s0) * f(torch.full((2,), 1 - s0))
    assert (wrong - release_step).abs().max() > 1e-3


def test_missing_pos_embed_is_recomputed() -> None:
    state = _release_state()
    full = load_selfflow(state, CONFIG)
    del state["pos_embed"]
    model = load_selfflow(state, CONFIG)
    torch.testing.assert_close(model.pos_embed, full.pos_embed)
    x, t, y = torch.randn(2, 4, 8, 8), torch.rand(2), torch.tensor([1, 4])
    torch.testing.assert_close(model(x, t, y), full(x, t, y))


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
