"""ImageBART (chapter 13) on the real classes at tiny size."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from esser_lab.imagebart import (
    ImageBART,
    ImageBARTConfig,
    ar_complete,
    ar_loss,
    completion_mask,
    guide_logits,
    imagebart_loss,
    raster_order,
    sample_chain,
    sample_scale,
)
from esser_lab.nn.transformer import GPT

K, L = 12, 16  # 4×4 codes


def _model(seed: int = 0, **changes) -> ImageBART:
    torch.manual_seed(seed)
    config = replace(ImageBARTConfig.tiny(K, L), dim=32, **changes)
    return ImageBART(config).eval()


def _codes(b: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, K, (b, L), generator=torch.Generator().manual_seed(seed))


def test_config_presets_and_errors() -> None:
    paper = ImageBARTConfig.paper()
    assert (paper.dim, paper.enc_depth, paper.dec_depth, paper.heads) == (752, 18, 6, 16)
    assert (paper.num_codes, paper.gpt_n_layer, paper.gpt_n_head, paper.gpt_n_embd) == (
        548,
        26,
        16,
        800,
    )
    assert paper.alphas == (0.0, 0.0, 0.0, 1.0) and paper.n_xtransformers == 3
    assert ImageBARTConfig.tiny().n_xtransformers == 1
    assert ImageBARTConfig.from_dict({"num_codes": 20, "seq_len": 16}).num_codes == 20
    with pytest.raises(ValueError, match="alphas"):
        replace(paper, alphas=(0.0,))
    with pytest.raises(ValueError, match="n_scales < num_codes"):
        ImageBARTConfig.tiny(3, 16)
    with pytest.raises(ValueError, match="last_scale"):
        replace(paper, last_scale="unet")
    with pytest.raises(TypeError, match="ImageBARTConfig"):
        ImageBART({"num_codes": 5})


def test_schedule_buffers_follow_the_geometric_schedule() -> None:
    model = _model()
    torch.testing.assert_close(model.alphacum, torch.tensor([1.0, 2 / 3, 1 / 3, 0.0]))
    assert float(model.alphats[0]) == 1.0 and int(model.sos_token) == 0


def test_logits_shapes_and_routing() -> None:
    x_t, x_prev = _codes(4, 1), _codes(4, 2)
    for model in (_model(), _model(last_scale="gpt", shared=False, gpt_n_layer=1, gpt_n_embd=32)):
        t = torch.tensor([1, 2, 3, 3])
        logits = model(t, x_t, x_prev)
        assert logits.shape == (4, L, K)
        for i in range(4):  # each sample equals its own scale's network
            single = model.scale_logits(int(t[i]), x_t[i : i + 1], x_prev[i : i + 1])
            torch.testing.assert_close(logits[i : i + 1], single, atol=1e-5, rtol=1e-5)
    assert isinstance(model.network(3), GPT) and not isinstance(model.network(2), GPT)
    assert len(model.transitions) == 2


def test_encoder_sees_all_of_x_t_decoder_is_causal() -> None:
    model = _model()
    x_t, x_prev = _codes(1, 1), _codes(1, 2)
    base = model.scale_logits(2, x_t, x_prev)
    later_x_t = x_t.clone()
    later_x_t[0, -1] = (later_x_t[0, -1] + 1) % K  # the last token of the coarser image
    changed = model.scale_logits(2, later_x_t, x_prev)
    assert not torch.allclose(changed[0, 0], base[0, 0])  # the first output already sees it
    later_prev = x_prev.clone()
    later_prev[0, 8] = (later_prev[0, 8] + 1) % K
    causal = model.scale_logits(2, x_t, later_prev)
    torch.testing.assert_close(causal[0, :9], base[0, :9])  # outputs 0..8 never see token 8
    assert not torch.allclose(causal[0, 9:], base[0, 9:])


@pytest.mark.parametrize("alphas, factor", [((0.0, 0.0, 0.0), 0.7), ((1.0, 1.0, 1.0), 0.85)])
def test_loss_falls_on_one_batch(alphas: tuple[float, ...], factor: float) -> None:
    model = _model(alphas=alphas).train()  # hard (cross-entropy) and soft (KL to the posterior)
    x0 = _codes(8, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(30):
        loss = imagebart_loss(model, x0, torch.Generator().manual_seed(step % 3))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < factor * losses[0]


def test_sampler_shapes_and_determinism() -> None:
    model = _model()
    a = sample_chain(model, 2, generator=torch.Generator().manual_seed(0))
    b = sample_chain(model, 2, generator=torch.Generator().manual_seed(0))
    assert a.shape == (4, 2, L) and torch.equal(a, b)
    assert int(a.min()) >= 0 and int(a.max()) < K
    gpt_model = _model(last_scale="gpt", shared=False, gpt_n_layer=1, gpt_n_embd=32)
    one = sample_scale(gpt_model, 3, _codes(2), generator=torch.Generator().manual_seed(0), top_k=3)
    assert one.shape == (2, L)


def test_guide_enforces_kept_tokens_exactly() -> None:
    model = _model()
    x_clean = _codes(3, 4)
    keep = completion_mask("top", 4)
    chain = sample_chain(
        model, x_clean=x_clean, keep=keep, generator=torch.Generator().manual_seed(1)
    )
    for x in chain:  # written into every x_t, x_T included
        assert torch.equal(x[:, keep], x_clean[:, keep])
    # the guide alone: one step without writing the kept tokens back
    guide = guide_logits(x_clean, keep, K)
    out = sample_scale(model, 1, chain[1], guide, generator=torch.Generator().manual_seed(2))
    assert torch.equal(out[:, keep], x_clean[:, keep])
    assert torch.equal(guide[:, ~keep], torch.zeros_like(guide[:, ~keep]))


def test_masks_orders_and_the_autoregressive_baseline() -> None:
    assert completion_mask("top", 4).tolist() == [False] * 8 + [True] * 8
    centre = completion_mask("centre", 4).view(4, 4)
    assert not centre[1:3, 1:3].any() and int(centre.sum()) == 12
    assert raster_order(4, "reverse").tolist() == [3, 2, 1, 0]
    torch.manual_seed(0)
    gpt = GPT(K, L, n_layer=1, n_head=2, n_embd=16)
    x_clean = _codes(3, 5)
    keep = completion_mask("centre", 4)
    for order in ("raster", "reverse"):
        out = ar_complete(gpt, x_clean, keep, order, generator=torch.Generator().manual_seed(0))
        assert out.shape == x_clean.shape and torch.equal(out[:, keep], x_clean[:, keep])
        assert ar_loss(gpt, x_clean, order).dim() == 0
    # reverse order: the last row-major token is predicted first, from the start token alone
    sos = torch.zeros(1, 1, dtype=torch.long)
    first = gpt(sos)[0, -1].softmax(-1)
    logits = gpt(torch.cat((sos, x_clean[:1].flip(1)), 1)[:, :-1])
    torch.testing.assert_close(logits[0, 0].softmax(-1), first)


def test_bad_inputs() -> None:
    model = _model()
    with pytest.raises(ValueError, match=r"\(b, 16\)"):
        model(torch.ones(2, dtype=torch.long), _codes(2)[:, :8], _codes(2)[:, :8])
    with pytest.raises(TypeError, match="integer codes"):
        model.scale_logits(1, _codes(2).float(), _codes(2))
    with pytest.raises(ValueError, match=r"\[1, 3\]"):
        model.network(4)
    with pytest.raises(ValueError, match="both x_clean and keep"):
        sample_chain(model, x_clean=_codes(2))
    with pytest.raises(ValueError, match="num_samples"):
        sample_chain(model)
    with pytest.raises(ValueError, match="mask kind"):
        completion_mask("left", 4)
    with pytest.raises(ValueError, match="order"):
        raster_order(4, "spiral")
    with pytest.raises(ValueError, match=r"tokens must lie in \[0, 12\)"):
        model.scale_logits(1, _codes(2) + K, _codes(2))


@pytest.mark.slow_paper
def test_paper_config_builds_on_meta() -> None:
    with torch.device("meta"):
        model = ImageBART(ImageBARTConfig.paper())
    per_scale = sum(p.numel() for p in model.transitions[0].parameters())
    gpt = sum(p.numel() for p in model.last_scale.parameters())
    assert len(model.transitions) == 3
    assert 150e6 < per_scale < 250e6 and 180e6 < gpt < 230e6


def test_residual_transition_copies_x_t_by_default() -> None:
    """The official ResidualScaledXTransformer: scaled logits + log(α_t onehot(x_t) + (1−α_t)/K)."""
    model = _model()
    x_t, x_prev = _codes(2, 1), _codes(2, 2)
    net = model.transitions[0]
    raw = net(
        torch.cat((torch.full((2, 1), 1), x_t), 1),
        torch.cat((torch.zeros(2, 1, dtype=torch.long), x_prev), 1)[:, :-1],
    )
    alpha = float(model.alphats[1])
    expected = raw + torch.log(alpha * torch.nn.functional.one_hot(x_t, K) + (1 - alpha) / K)
    torch.testing.assert_close(model.scale_logits(1, x_t, x_prev), expected)
    with torch.no_grad():
        net.log_scalors.fill_(-30.0)  # the network silenced: only the residual is left
    out = sample_scale(model, 1, x_t, generator=torch.Generator().manual_seed(0), top_k=1)
    assert torch.equal(out, x_t)
    plain = _model(residual=False)
    assert not hasattr(plain.transitions[0], "log_scalors")


def test_repeated_runs_per_scale() -> None:
    """The official editing script's chain schedule: each scale re-run on its re-noised output."""
    model = _model()
    x_clean, keep = _codes(2, 6), completion_mask("centre", 4)
    a = sample_chain(model, x_clean=x_clean, keep=keep, runs=3,
                     generator=torch.Generator().manual_seed(0))  # fmt: skip
    b = sample_chain(model, x_clean=x_clean, keep=keep, runs=3,
                     generator=torch.Generator().manual_seed(0))  # fmt: skip
    one = sample_chain(
        model, x_clean=x_clean, keep=keep, generator=torch.Generator().manual_seed(0)
    )
    assert a.shape == one.shape == (4, 2, L) and torch.equal(a, b) and not torch.equal(a, one)
    assert torch.equal(a[-1][:, keep], x_clean[:, keep])
    with pytest.raises(ValueError, match="runs"):
        sample_chain(model, 1, runs=0)


def test_temperature_reaches_only_a_last_scale_gpt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Official sample_single_scale: encoder–decoder scales at temperature 1, the GPT at T."""
    model = _model()  # every scale an encoder–decoder
    plain = sample_chain(model, 3, generator=torch.Generator().manual_seed(0))
    hot = sample_chain(model, 3, temperature=5.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(plain, hot)
    gpt_model = _model(last_scale="gpt", shared=False, gpt_n_layer=1, gpt_n_embd=32)
    plain = sample_chain(gpt_model, 3, generator=torch.Generator().manual_seed(0))
    hot = sample_chain(gpt_model, 3, temperature=5.0, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(plain[1], hot[1])  # x_{T−1}, written by the GPT, differs
    # the temperature each scale is sampled with
    import esser_lab.imagebart.method as method

    seen = []
    original = method.sample_scale

    def recording(model, t, x_t, guide=None, temperature=1.0, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen.append((t, temperature))
        return original(model, t, x_t, guide, temperature, *args, **kwargs)

    monkeypatch.setattr(method, "sample_scale", recording)
    method.sample_chain(gpt_model, 1, temperature=5.0, generator=torch.Generator().manual_seed(0))
    assert seen == [(3, 5.0), (2, 1.0), (1, 1.0)]
    with pytest.raises(ValueError, match="temperature"):
        sample_chain(model, 1, temperature=0.0)


def test_optimizer_decays_encoder_decoders_fully_and_the_gpt_by_mingpt() -> None:
    from esser_lab.imagebart.training import LitImageBART, imagebart_optimizer

    model = _model(last_scale="gpt", shared=False, gpt_n_layer=1, gpt_n_embd=32)
    optimizer = LitImageBART(model).configure_optimizers()
    decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert len(decay) == sum(1 for _ in model.parameters())  # each parameter once
    wd = model.config.weight_decay
    assert all(decay[id(p)] == wd for p in model.transitions.parameters())
    gpt = model.last_scale
    assert decay[id(gpt.pos_emb)] == 0.0 and decay[id(gpt.head.weight)] == wd
    assert any(decay[id(p)] == 0.0 for p in gpt.parameters())
    tiny = _model()  # tiny: shared encoder–decoder only, biases and norms decayed too
    groups = imagebart_optimizer(tiny, 1e-3).param_groups
    assert len(groups) == 1 and groups[0]["weight_decay"] == wd
    with pytest.raises(TypeError, match="ImageBART"):
        imagebart_optimizer(gpt, 1e-3)
