"""Exact resume: N steps in one go equal N/2 steps + save + ``fit(ckpt_path=…)`` + N/2 steps.

Every Lightning system trains from ``STEPS // 2`` saved steps to ``STEPS`` and must end with the
bitwise weights, buffers, optimiser states and history of the run that never stopped, with the
checkpoint saved in the middle of a data epoch (3 batches an epoch: the second half finishes
epoch 0 and starts epoch 1) and at an epoch's end (2 batches an epoch). The fresh system of the
resumed run is built under another seed, and the global random state is scrambled before the
resumed ``fit``, so weights, noise and batch order can only come from the checkpoint. The systems
draw noise from the global generator (posterior samples, dropout, VUNet's latents), from their
own generator (the part-based transforms), switch players (style transfer's success rate) and
start a discriminator at ``disc_start`` within the run (VQGAN).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from esser_lab.data.modules import batch_loader
from esser_lab.scale import profile
from esser_lab.training.catalog import SYSTEMS, Built, build
from esser_lab.training.trainer import make_trainer

STEPS = 4
B = 2  # batch size
POSITIONS = {"mid-epoch": 3, "epoch end": 2}  # batches per epoch; the save is after STEPS // 2

pytestmark = pytest.mark.filterwarnings("ignore")  # Lightning's notes on tiny loaders


#: The run's schedules fit into STEPS (the VUNet's decay, RoDi's, the IIN's), the optional noise
#: and state are on (token noise and dropout, caption dropout, EMA), the style-transfer player that
#: steps depends on the running success rate (saved state), the discriminators join at step 1 and
#: RoDi's constraint too, before the save (their Adam states are in the checkpoint).
SWITCHES = dict(steps=STEPS, stochastic=True, success_rate=0.5, disc_start=1, warmup_steps=1)
PER_SYSTEM = {"LitMMDiT": {"warmup_steps": 3}}  # SD3's learning-rate warm-up crosses the save


def _build(name: str, **switches) -> Built:
    return build(name, "tiny", B, **SWITCHES | PER_SYSTEM.get(name, {}) | switches)


def _data(built: Built, n: int) -> dict:
    return built.make(n, torch.Generator().manual_seed(7))


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


def _fit(name: str, batches_per_epoch: int, steps: int, seed: int, ckpt_path=None, **switches):
    torch.manual_seed(seed)
    built = _build(name, **switches)
    system = built.system
    loader = batch_loader(_data(built, batches_per_epoch * B), B, shuffle=True, seed=0)
    trainer = make_trainer(profile("tiny"), steps, progress_every=10_000)
    if ckpt_path is not None:
        torch.manual_seed(12345)  # a global random state the checkpoint must replace
    trainer.fit(system, loader, ckpt_path=ckpt_path, weights_only=True)
    assert trainer.global_step == steps
    return system, trainer


def resumed_and_uninterrupted(name: str, batches_per_epoch: int, tmp_path: Path, **switches):
    """The systems (and trainers) of the resumed run and of the run that never stopped."""
    straight, straight_trainer = _fit(name, batches_per_epoch, STEPS, 0, **switches)
    first, trainer = _fit(name, batches_per_epoch, STEPS // 2, 0, **switches)
    path = tmp_path / "half.ckpt"
    trainer.save_checkpoint(path)
    resumed, resumed_trainer = _fit(name, batches_per_epoch, STEPS, 1, path, **switches)
    return (resumed, resumed_trainer), (straight, straight_trainer)


def assert_same_run(resumed, straight) -> None:
    (system, trainer), (expected, expected_trainer) = resumed, straight
    a, b = _state(system), _state(expected)
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert differ == [], f"{len(differ)} of {len(a)} tensors differ, e.g. {differ[:5]}"
    mine, theirs = _optimizer_tensors(trainer), _optimizer_tensors(expected_trainer)
    assert len(mine) == len(theirs) > 0
    assert all(torch.equal(x, y) for x, y in zip(mine, theirs, strict=True))
    for name in type(system).resume_attributes:
        assert getattr(system, name) == getattr(expected, name), name


@pytest.mark.parametrize("position", list(POSITIONS))
@pytest.mark.parametrize("name", list(SYSTEMS))
def test_resume_is_exact(name, position, tmp_path):
    resumed, straight = resumed_and_uninterrupted(name, POSITIONS[position], tmp_path)
    assert_same_run(resumed, straight)


def test_vqgan_discriminator_starting_after_the_resume(tmp_path):
    resumed, straight = resumed_and_uninterrupted("LitVQGAN", 3, tmp_path, disc_start=3)
    assert_same_run(resumed, straight)
    weights = [h["d_weight"] for h in resumed[0].history]
    assert weights[:3] == [0.0] * 3 and weights[3] > 0  # D joined at step 3, after the resume


def test_a_plain_dataloader_is_not_resumed_exactly(tmp_path, monkeypatch):
    """The control: with a loader that has no position to save (Lightning's own resume), the
    resumed run trains on other batches, so the test above can fail."""
    from torch.utils.data import DataLoader

    from esser_lab.data.modules import BatchIndexSampler, TensorBatches

    def plain_loader(fields, batch_size, *, shuffle, seed=0):
        data = TensorBatches(fields)
        sampler = BatchIndexSampler(len(data), batch_size, shuffle=shuffle, seed=seed)
        return DataLoader(data, sampler=sampler, batch_size=None)

    monkeypatch.setitem(globals(), "batch_loader", plain_loader)
    resumed, straight = resumed_and_uninterrupted("LitDenseAutoencoder", 2, tmp_path)
    a, b = _state(resumed[0]), _state(straight[0])
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_holds_plain_data_only(tmp_path):
    """The saved extra state loads with ``weights_only=True``; unsafe attributes are refused."""
    from esser_lab.training.resume import CHECKPOINT_KEY

    system, trainer = _fit("LitStyleTransfer", 2, 1, seed=0)
    path = tmp_path / "one.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    saved = checkpoint[CHECKPOINT_KEY]["attributes"]
    assert set(saved) == {"success_rate", "generator_steps", "discriminator_steps"}
    assert saved["generator_steps"] + saved["discriminator_steps"] >= 1
    (loader_state,) = checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert (loader_state["epoch"], loader_state["position"]) == (0, 1)
    system.success_rate = object()
    with pytest.raises(TypeError, match="success_rate holds a object"):
        trainer.save_checkpoint(tmp_path / "bad.ckpt")


def test_sampler_state_round_trip_and_errors():
    from esser_lab.data.modules import BatchIndexSampler

    sampler = BatchIndexSampler(10, 4, shuffle=True, seed=3)
    epoch0 = list(sampler)
    iterator = iter(sampler)
    first = next(iterator)
    state = sampler.state_dict()
    assert (state["epoch"], state["position"]) == (1, 1)
    again = BatchIndexSampler(10, 4, shuffle=True, seed=3)
    again.load_state_dict(state)
    again.set_epoch(7)  # Lightning's call after the load does not move the resumed pass
    rest = list(again)
    assert [b.tolist() for b in rest] == [b.tolist() for b in iterator]
    assert not torch.equal(first, epoch0[0])
    assert sampler.state_dict()["position"] == 0 and sampler.state_dict()["epoch"] == 2
    with pytest.raises(ValueError, match="seed 3 vs 4"):
        BatchIndexSampler(10, 4, shuffle=True, seed=4).load_state_dict(state)
    with pytest.raises(ValueError, match="position must be < 3"):
        again.load_state_dict({**state, "position": 3})


def test_chapter_10_branches_are_the_runs_that_never_stopped(tmp_path):
    """Chapter 10's recipe: a shared L1 prefix of ``disc_start`` steps that ends an epoch, saved
    and resumed twice (the discriminator on; never on). Each branch is bitwise the run trained
    in one go with its config, from the same seed, through the same calls as the chapter."""
    from esser_lab.data.modules import SpritesDataModule
    from esser_lab.taming.model import VQGANConfig
    from esser_lab.taming.training import LitVQGAN
    from esser_lab.training import seed_everything

    shared = replace(VQGANConfig.tiny(), batch_size=B, disc_start=2, num_steps=STEPS)
    data = SpritesDataModule(16, B, num_train=2 * B, num_val=2, seed=0)  # the prefix ends epoch 0

    def fit(config: VQGANConfig, steps: int, resume: Path | None = None):
        seed_everything(0)
        system = LitVQGAN(config)
        trainer = make_trainer(profile("tiny"), steps, progress_every=10_000)
        trainer.fit(system, datamodule=data, ckpt_path=resume, weights_only=True)
        return system, trainer

    _, trainer = fit(shared, shared.disc_start)
    path = tmp_path / "prefix.ckpt"
    trainer.save_checkpoint(path)
    for branch in (shared, replace(shared, disc_start=shared.num_steps)):
        resumed = fit(branch, branch.num_steps, resume=path)
        assert_same_run(resumed, fit(branch, branch.num_steps))
        gan = [h["d_weight"] > 0 for h in resumed[0].history]
        assert gan == [False, False] + [branch.disc_start < STEPS] * 2


def test_checkpoints_saved_during_fit_resume_exactly(tmp_path):
    """``ModelCheckpoint`` (``python -m esser_lab … fit``) saves inside the loop, after a batch:
    a resume from any of them, mid-epoch or at an epoch's end, is exact too."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    def fit(steps: int, ckpt_path: Path | None = None, save: bool = False):
        torch.manual_seed(0)
        built = _build("LitDenseAutoencoder")
        callbacks = [ModelCheckpoint(tmp_path, every_n_train_steps=1, save_top_k=-1)] * save
        trainer = L.Trainer(
            accelerator="cpu", max_steps=steps, logger=False, callbacks=callbacks,
            enable_checkpointing=save, enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip
        torch.manual_seed(12345)
        loader = batch_loader(_data(built, 3 * B), B, shuffle=True, seed=0)
        trainer.fit(built.system, loader, ckpt_path=ckpt_path, weights_only=True)
        return _state(built.system)

    expected = fit(5, save=True)
    paths = sorted(tmp_path.glob("*.ckpt"), key=lambda p: int(p.stem.split("step=")[1]))
    assert [int(p.stem.split("step=")[1]) for p in paths] == [1, 2, 3, 4, 5]
    for path in paths[:-1]:  # steps 1, 2 mid-epoch; 3 at the end of epoch 0; 4 mid-epoch 1
        resumed = fit(5, ckpt_path=path)
        assert all(torch.equal(resumed[k], expected[k]) for k in expected), path.name


def test_image_folder_runs_resume_exactly(tmp_path):
    """``ImageFolderDataModule`` (the user's own images at small/full) is resumable too."""
    from PIL import Image

    from esser_lab.data.modules import ImageFolderDataModule

    for i in range(7):
        Image.new("RGB", (20, 16), (30 * i, 255 - 30 * i, 7 * i)).save(tmp_path / f"{i}.png")

    def fit(steps: int, ckpt_path: Path | None = None):
        torch.manual_seed(0)
        system = _build("LitDenseAutoencoder").system
        data = ImageFolderDataModule(tmp_path, 16, batch_size=B, val_fraction=0.1, seed=0)
        trainer = make_trainer(profile("tiny"), steps, progress_every=10_000)
        torch.manual_seed(12345)
        trainer.fit(system, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
        return system, trainer

    straight = fit(5)  # 6 training images: 3 batches an epoch
    for steps in (2, 3):  # mid-epoch, epoch end
        _, trainer = fit(steps)
        trainer.save_checkpoint(tmp_path / f"{steps}.ckpt")
        assert_same_run(fit(5, tmp_path / f"{steps}.ckpt"), straight)


def test_loader_position_counts_batches_handed_out_not_read_ahead():
    from esser_lab.data.modules import BatchIndexSampler, BatchLoader, TensorBatches

    sampler = BatchIndexSampler(12, 2, shuffle=True, seed=0)
    data = TensorBatches({"x": torch.arange(12)})
    loader = BatchLoader(data, sampler, num_workers=2)
    iterator = iter(loader)
    first = next(iterator)
    assert sampler.state_dict()["position"] > 1  # the workers were sent more indices
    state = loader.state_dict()
    assert (state["epoch"], state["position"]) == (0, 1)
    rest = torch.cat([batch["x"] for batch in iterator])
    again = BatchLoader(data, BatchIndexSampler(12, 2, shuffle=True))
    again.load_state_dict(state)
    assert torch.equal(torch.cat([batch["x"] for batch in again]), rest)
    assert sorted([*first["x"].tolist(), *rest.tolist()]) == list(range(12))
