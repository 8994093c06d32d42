"""``LitKeyframe(objective="paper")``: LaMa's losses with a generator and a discriminator step,
the official warm-up + cosine schedule and gradient accumulation; a run through Lightning, a
generator loss that falls. Exact resume and DDP of this mode: tests/training/test_resume.py and
test_ddp.py (``-k keyframe``), whose catalog builds LitKeyframe with this objective."""

import copy
import math

import pytest
import torch
from torch import nn

from esser_lab.data.modules import batch_loader
from esser_lab.data.video import sample_clips
from esser_lab.keyframe.losses import LamaNLayerDiscriminator, lama_generator_loss
from esser_lab.keyframe.method import PAPER_LOSS, KeyframeSamples, keyframe_samples
from esser_lab.keyframe.model import KeyframeConfig, KeyframeGenerator
from esser_lab.keyframe.training import LitKeyframe, WarmUpCosine, fit_keyframe
from esser_lab.scale import profile
from esser_lab.training.trainer import make_trainer

pytestmark = pytest.mark.filterwarnings("ignore")  # Lightning's notes on tiny loaders

TINY = KeyframeConfig.tiny()
B = 2


class _Features(nn.Module):
    """A small frozen stand-in perceptual encoder: two feature maps."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, stride=2, padding=1)

    def forward(self, x):
        a = torch.relu(self.a(x))
        return [a, self.b(a)]


def _samples(n: int) -> dict:
    g = torch.Generator().manual_seed(7)
    return keyframe_samples(sample_clips(n, generator=g), g).as_dict()


def _system(**kwargs) -> LitKeyframe:
    return LitKeyframe(
        KeyframeGenerator(TINY),
        objective="paper",
        perceptual=_Features(),
        discriminator=LamaNLayerDiscriminator(3, 8, 2),
        **kwargs,
    )


def test_paper_objective_settings_and_errors():
    system = _system(learning_rate=1e-3)
    assert not system.automatic_optimization
    assert system.loss_weights["feature_matching_weight"] == PAPER_LOSS["feature_matching_weight"]
    assert system.accumulate_grad_batches == 2  # configs/ours.yaml's trainer
    assert (system.schedule.warm_up_steps, system.schedule.max_decay_steps) == (1000, 10**6)
    (g_opt, d_opt), schedulers = system.configure_optimizers()
    # LambdaLR applies the factor at construction: step 0 of the warm-up, 1e-4 of the rate
    assert g_opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 1e-4)
    assert d_opt.param_groups[0]["lr"] == pytest.approx(1e-4 * 1e-4)  # the paper's D factor 0.1
    assert [s.optimizer for s in schedulers] == [g_opt, d_opt]
    keys = set(system.state_dict())
    assert any(k.startswith("discriminator.model0.") for k in keys)
    assert any(k.startswith("perceptual.") for k in keys)
    default = LitKeyframe(KeyframeGenerator(TINY), objective="paper", perceptual=_Features())
    assert (
        default.discriminator.model0[0].out_channels == 64 and default.discriminator.n_layers == 4
    )
    assert LitKeyframe(KeyframeGenerator(TINY)).automatic_optimization  # "l1": the tiny default
    with pytest.raises(ValueError, match="perceptual encoder"):
        LitKeyframe(KeyframeGenerator(TINY), objective="paper")
    with pytest.raises(ValueError, match="belong to objective='paper'"):
        LitKeyframe(KeyframeGenerator(TINY), perceptual=_Features())
    with pytest.raises(ValueError, match="objective"):
        LitKeyframe(KeyframeGenerator(TINY), objective="gan")
    with pytest.raises(KeyError, match="lacks"):
        _system(loss_weights={"l1_weight_known": 10.0})
    with pytest.raises(ValueError, match="accumulate_grad_batches"):
        _system(accumulate_grad_batches=0)
    with pytest.raises(ValueError, match="belong to objective='paper'"):
        LitKeyframe(KeyframeGenerator(TINY), accumulate_grad_batches=2)


def test_warm_up_cosine_by_hand():
    """The official LambdaWarmUpCosineScheduler's factor: linear from lr_start to lr_max over
    the warm-up, then lr_min + (lr_max − lr_min)(1 + cos πt)/2, t capped at 1."""
    f = WarmUpCosine()  # configs/ours.yaml: 1000, 1e6, 1e-4, 1, 1e-4
    assert f(0) == pytest.approx(1e-4)
    assert f(500) == pytest.approx(1e-4 + (1 - 1e-4) * 0.5)
    assert f(1000) == pytest.approx(1.0)
    t = (250_000 - 1000) / (10**6 - 1000)
    assert f(250_000) == pytest.approx(1e-4 + 0.5 * (1 - 1e-4) * (1 + math.cos(math.pi * t)))
    assert f(10**6) == pytest.approx(1e-4) and f(3 * 10**6) == pytest.approx(1e-4)
    short = WarmUpCosine(2, 6, start=0.1, peak=1.0, floor=0.0)
    assert [round(short(n), 6) for n in range(8)] == [0.1, 0.55, 1.0, 0.853553, 0.5, 0.146447,
                                                       0.0, 0.0]  # fmt: skip
    with pytest.raises(ValueError, match="warm_up_steps"):
        WarmUpCosine(5, 5)


def test_schedule_and_accumulation_through_lightning():
    """Four optimiser steps with accumulation 2 read eight batches; every batch trains at the
    scheduled rate of its step (both players); the first step's generator gradient is the mean
    of its two batches' gradients, computed here without Lightning."""
    torch.manual_seed(0)
    schedule = WarmUpCosine(2, 4, start=0.25, peak=1.0, floor=0.1)
    system = _system(learning_rate=1e-3, schedule=schedule)
    start = copy.deepcopy(system)
    batches = [{k: v[i * B : (i + 1) * B] for k, v in _samples(8 * B).items()} for i in range(8)]

    class Batches:
        def __iter__(self):
            return iter(batches)

        def __len__(self):
            return len(batches)

    grads = []
    step = torch.optim.Adam.step

    def record(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if self is system.trainer.optimizers[0] and not grads:
            grads.append({n: p.grad.clone() for n, p in system.generator.named_parameters()})
        return step(self, *args, **kwargs)

    trainer = make_trainer(profile("tiny"), 4, progress_every=10_000)
    torch.optim.Adam.step = record
    try:
        trainer.fit(system, train_dataloaders=Batches())
    finally:
        torch.optim.Adam.step = step
    assert trainer.global_step == 4 and len(system.history) == 8
    assert [h["step"] for h in system.history] == [0, 0, 1, 1, 2, 2, 3, 3]
    for h in system.history:
        assert h["lr"] == pytest.approx(1e-3 * schedule(h["step"]))
    d_opt = trainer.optimizers[1]
    assert d_opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.1 * schedule(4))
    # the first step's gradient, by hand: the mean of the two batches' generator gradients
    expected = {n: torch.zeros_like(p) for n, p in start.generator.named_parameters()}
    start.train()
    start.discriminator.requires_grad_(False)
    for batch in batches[:2]:
        samples = KeyframeSamples.from_dict(batch)
        start.generator.zero_grad()
        terms = lama_generator_loss(
            start(samples), samples.image, samples.mask, start.discriminator, start.perceptual,
            start.loss_weights,
        )  # fmt: skip
        terms.loss.backward()
        for n, p in start.generator.named_parameters():
            expected[n] += p.grad / 2
    assert all(torch.allclose(grads[0][n], expected[n], atol=1e-6) for n in expected)


def test_two_steps_through_lightning_with_the_stand_in_encoder():
    """fit_keyframe's paper objective, the chapter's call at small/full, on the tiny profile
    (its pretrained mode is the stand-in: the real architecture, seeded weights)."""
    samples = keyframe_samples(
        sample_clips(4, generator=torch.Generator().manual_seed(0)),
        torch.Generator().manual_seed(1),
    )
    tiny = profile("tiny")
    system = fit_keyframe(TINY, samples, tiny, steps=2, batch_size=B, objective="paper", seed=0)
    assert system.objective == "paper" and len(system.history) == 4  # accumulation 2
    row = system.history[-1]
    # the logged objective is its weighted terms (the l1 term carries its weights already)
    w = PAPER_LOSS
    total = (
        row["l1"]
        + w["adversarial_weight"] * row["adversarial"]
        + w["feature_matching_weight"] * row["feature_matching"]
        + w["resnet_perceptual_weight"] * row["perceptual"]
    )
    assert float(row["loss"]) == pytest.approx(float(total), rel=1e-5)
    assert float(row["perceptual"]) > 0
    assert [h["step"] for h in system.history] == [0, 0, 1, 1]  # only the generator's step counts
    assert type(system.perceptual).__name__ == "ADE20kResNet50Dilated"
    l1 = fit_keyframe(TINY, samples, tiny, steps=1, batch_size=B, seed=0)
    assert l1.objective == "l1"  # tiny's default


def test_generator_objective_falls():
    torch.manual_seed(0)
    # no accumulation and no warm-up: 40 steps at the full rate
    system = _system(learning_rate=2e-3, accumulate_grad_batches=1, schedule=WarmUpCosine(0, 10**6))
    loader = batch_loader(_samples(4 * B), B, shuffle=True, seed=0)
    trainer = make_trainer(profile("tiny"), 40, progress_every=10_000)
    trainer.fit(system, loader)
    loss, l1 = ([float(h[k]) for h in system.history] for k in ("loss", "l1"))
    assert len(l1) == 40
    assert sum(loss[-5:]) < 0.6 * sum(loss[:5])  # the whole generator objective
    assert sum(l1[-5:]) < 0.75 * sum(l1[:5])  # the known-region L1 (weight 10)
    # the discriminator trained too: its loss (non-saturating + R1) falls
    d_loss = [float(h["d_loss"]) for h in system.history]
    assert sum(d_loss[-5:]) < 0.8 * sum(d_loss[:5])


def test_fit_keyframe_takes_problems_drawn_per_batch():
    """small/full's training set: problems drawn when a batch is asked for, nothing held; the
    same seed gives the same batches, hence the same weights."""
    from esser_lab.data.batches import GeneratedBatches

    drawn: list[int] = []

    def problems(n: int, generator: torch.Generator) -> dict:
        drawn.append(n)
        clips = sample_clips(n, generator=generator)
        return keyframe_samples(clips, generator, corrupt=0.5).as_dict()

    tiny = profile("tiny")
    runs = [
        fit_keyframe(TINY, GeneratedBatches(problems, 1000, seed=3), tiny, steps=2, batch_size=B)
        for _ in range(2)
    ]
    assert drawn == [B] * 4  # two batches a run, never the 1,000 problems
    first, second = (dict(r.generator.named_parameters()) for r in runs)
    assert all(torch.equal(first[n], second[n]) for n in first)
