"""``LitKeyframe(objective="paper")``: LaMa's losses with a generator and a discriminator step;
a 2-step run through Lightning, a generator loss that falls, and an exact resume (the pattern of
tests/training/test_resume.py, for this mode only)."""

import pytest
import torch
from torch import nn

from esser_lab.data.modules import batch_loader
from esser_lab.data.video import sample_clips
from esser_lab.keyframe.losses import LamaNLayerDiscriminator
from esser_lab.keyframe.method import PAPER_LOSS, keyframe_samples
from esser_lab.keyframe.model import KeyframeConfig, KeyframeGenerator
from esser_lab.keyframe.training import LitKeyframe, fit_keyframe
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
    g_opt, d_opt = system.configure_optimizers()
    assert g_opt.param_groups[0]["lr"] == 1e-3
    assert d_opt.param_groups[0]["lr"] == pytest.approx(1e-4)  # the paper's D lr factor 0.1
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


def test_two_steps_through_lightning_with_the_stand_in_encoder():
    """fit_keyframe's paper objective, the chapter's call at small/full, on the tiny profile
    (its pretrained mode is the stand-in: the real architecture, seeded weights)."""
    samples = keyframe_samples(
        sample_clips(4, generator=torch.Generator().manual_seed(0)),
        torch.Generator().manual_seed(1),
    )
    tiny = profile("tiny")
    system = fit_keyframe(TINY, samples, tiny, steps=2, batch_size=B, objective="paper", seed=0)
    assert system.objective == "paper" and len(system.history) == 2
    row = system.history[-1]
    for key in ("loss", "l1", "adversarial", "feature_matching", "perceptual", "d_loss", "r1"):
        assert bool(torch.isfinite(torch.as_tensor(row[key]))), key
    assert float(row["perceptual"]) > 0 and float(row["r1"]) >= 0
    assert [h["step"] for h in system.history] == [0, 1]  # only the generator's step counts
    assert type(system.perceptual).__name__ == "ADE20kResNet50Dilated"
    l1 = fit_keyframe(TINY, samples, tiny, steps=1, batch_size=B, seed=0)
    assert l1.objective == "l1"  # tiny's default


def test_generator_objective_falls():
    torch.manual_seed(0)
    system = _system(learning_rate=2e-3)
    loader = batch_loader(_samples(4 * B), B, shuffle=True, seed=0)
    trainer = make_trainer(profile("tiny"), 40, progress_every=10_000)
    trainer.fit(system, loader)
    loss, l1 = ([float(h[k]) for h in system.history] for k in ("loss", "l1"))
    discriminator = [float(h["d_loss"]) for h in system.history]
    assert len(l1) == 40
    assert sum(loss[-5:]) < 0.6 * sum(loss[:5])  # the whole generator objective
    assert sum(l1[-5:]) < 0.75 * sum(l1[:5])  # the known-region L1 (weight 10)
    assert all(d == d and d < 10 for d in discriminator)  # finite: the two players train


def _state(system) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in system.state_dict().items()}


def _optimizer_tensors(trainer) -> list[torch.Tensor]:
    return [
        value
        for optimizer in trainer.optimizers
        for state in optimizer.state_dict()["state"].values()
        for value in state.values()
        if isinstance(value, torch.Tensor)
    ]


def _fit(batches_per_epoch: int, steps: int, seed: int, ckpt_path=None):
    torch.manual_seed(seed)
    system = _system()
    loader = batch_loader(_samples(batches_per_epoch * B), B, shuffle=True, seed=0)
    trainer = make_trainer(profile("tiny"), steps, progress_every=10_000)
    if ckpt_path is not None:
        torch.manual_seed(12345)  # a global random state the checkpoint must replace
    trainer.fit(system, loader, ckpt_path=ckpt_path, weights_only=True)
    assert trainer.global_step == steps
    return system, trainer


@pytest.mark.parametrize("batches_per_epoch", [3, 2], ids=["mid-epoch", "epoch end"])
def test_paper_objective_resumes_exactly(batches_per_epoch, tmp_path):
    steps = 4
    straight, straight_trainer = _fit(batches_per_epoch, steps, seed=0)
    _, trainer = _fit(batches_per_epoch, steps // 2, seed=0)
    path = tmp_path / "half.ckpt"
    trainer.save_checkpoint(path)
    resumed, resumed_trainer = _fit(batches_per_epoch, steps, seed=1, ckpt_path=path)
    a, b = _state(resumed), _state(straight)
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert differ == [], f"{len(differ)} of {len(a)} tensors differ, e.g. {differ[:5]}"
    mine, theirs = _optimizer_tensors(resumed_trainer), _optimizer_tensors(straight_trainer)
    assert len(trainer.optimizers) == 2 and len(mine) == len(theirs) > 0
    assert all(torch.equal(x, y) for x, y in zip(mine, theirs, strict=True))
    assert resumed.history == straight.history
    # the discriminator trained: its weights moved from their initialisation
    torch.manual_seed(0)  # a system built under the runs' seed starts where they started
    start = _system().discriminator.state_dict()
    assert not torch.equal(start["model0.0.weight"], resumed.discriminator.model0[0].weight)
