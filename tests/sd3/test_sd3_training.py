"""``LitMMDiT``: the loss falls, caption dropout swaps in the empty caption, bad input is named."""

from __future__ import annotations

import pytest
import torch

from esser_lab.diffusion.formulations import formulation
from esser_lab.sd3.model import MMDiT, MMDiTConfig
from esser_lab.sd3.text import ToyTextEncoder, null_condition
from esser_lab.sd3.training import LitMMDiT


def _system(**options) -> LitMMDiT:
    torch.manual_seed(0)
    encoder = ToyTextEncoder(32, 32)
    return LitMMDiT(MMDiT(MMDiTConfig.tiny()), formulation("rf/lognorm(0.00,1.00)"), encoder,
                    **options)  # fmt: skip


def _batch(n: int = 8) -> dict:
    from esser_lab.sd3.data import captioned_batch

    data = captioned_batch(n, 16, generator=torch.Generator().manual_seed(0))
    pattern = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    latent = pattern.expand(n, -1, -1, -1).clone()  # one data point: learnable exactly
    return {"latent": latent, "tokens": data.tokens}


def test_the_loss_falls_on_one_batch():
    system = _system(learning_rate=1e-2, warmup_steps=0, caption_dropout=0.0)
    optimizer = system.configure_optimizers()
    batch = _batch()
    losses = []
    for _ in range(40):
        loss = system.training_step(batch, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    assert len(system.history) == 40 and system.history[-1]["loss"] == pytest.approx(losses[-1])


def test_optimiser_is_the_papers_adamw_with_warm_up():
    system = _system()
    config = system.configure_optimizers()
    optimizer = config["optimizer"]
    assert isinstance(optimizer, torch.optim.AdamW)
    group = optimizer.param_groups[0]
    assert group["eps"] == 1e-15 and group["initial_lr"] == 1e-4
    assert len(group["params"]) == len(list(system.model.parameters()))  # not the encoder
    scheduler = config["lr_scheduler"]["scheduler"]
    assert group["lr"] == pytest.approx(1e-4 / 1000)  # step 0 of 1,000 warm-up steps
    for _ in range(999):
        optimizer.step()
        scheduler.step()
    assert group["lr"] == pytest.approx(1e-4)


def test_caption_dropout_zeroes_the_encoding_as_the_paper():
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x, t, cond):  # noqa: ANN001, ANN201
            seen.append({k: v.clone() for k, v in cond.items()})
            return x * self.weight

    encoder = ToyTextEncoder(32, 32)
    rf = formulation("rf")
    batch = _batch(6)
    always = LitMMDiT(Probe(), rf, encoder, caption_dropout=1.0)
    always.training_step(batch, 0)
    assert all(float(v.abs().max()) == 0.0 for v in seen[-1].values())
    never = LitMMDiT(Probe(), rf, encoder, caption_dropout=0.0)
    never.training_step(batch, 0)
    expected = encoder.encode(batch["tokens"])
    assert all(torch.equal(seen[-1][k], expected[k]) for k in expected)
    assert torch.equal(never.null_condition(2)["pooled"], null_condition(encoder, 2)["pooled"])


def test_bf16_autocast_step_is_finite_and_ema_follows():
    system = _system(autocast_dtype=torch.bfloat16, use_ema=True, warmup_steps=0)
    optimizer = system.configure_optimizers()
    loss = system.training_step(_batch(), 0)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    system.on_train_batch_end(None, None, 0)
    assert int(system.model_ema.num_updates) == 1
    with system.ema_weights():
        pass


def test_bad_input_is_named():
    encoder = ToyTextEncoder(32, 32)
    model = MMDiT(MMDiTConfig.tiny())
    rf = formulation("rf")
    with pytest.raises(TypeError, match="nn.Module"):
        LitMMDiT(object(), rf, encoder)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"\.loss"):
        LitMMDiT(model, object(), encoder)
    with pytest.raises(ValueError, match="caption_dropout"):
        LitMMDiT(model, rf, encoder, caption_dropout=2.0)
    with pytest.raises(ValueError, match="autocast_dtype"):
        LitMMDiT(model, rf, encoder, autocast_dtype=torch.float64)
    system = LitMMDiT(model, rf, encoder)
    with pytest.raises(KeyError, match="'latent' or 'image'"):
        system.training_step({"tokens": _batch()["tokens"]}, 0)
    with pytest.raises(ValueError, match="first_stage"):
        system.training_step({"image": torch.zeros(2, 3, 16, 16), "tokens": _batch(2)["tokens"]}, 0)
