"""Scale profiles, seeding and the Trainer factory."""

import dataclasses

import pytest
import torch

from esser_lab import scale as scales
from esser_lab.training import seed_everything


def test_profiles(monkeypatch):
    monkeypatch.delenv(scales.THREADS_ENV_VAR, raising=False)
    tiny = scales.profile("tiny")
    assert (tiny.accelerator, tiny.precision, tiny.num_threads, tiny.progress) == (
        "cpu",
        "32-true",
        1,
        "text",
    )
    small = scales.profile("small")
    assert (small.accelerator, small.precision) == ("gpu", "bf16-mixed")
    assert tiny.pick(tiny=1, small=2, full=3) == 1 and small.pick(tiny=1, small=2, full=3) == 2
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        scales.profile("huge")


def test_current_reads_the_environment(monkeypatch):
    monkeypatch.setenv(scales.ENV_VAR, "TINY")
    assert scales.current().name == "tiny"
    monkeypatch.delenv(scales.ENV_VAR)
    expected = "small" if torch.cuda.is_available() else "tiny"
    assert scales.current().name == expected
    if not torch.cuda.is_available():
        monkeypatch.setenv(scales.ENV_VAR, "full")
        with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
            scales.current()


def test_small_on_the_cpu_with_caps(monkeypatch):
    """CI's small pass: small sizes on the CPU in fp32, steps and set sizes capped, stand-ins."""
    for var in (scales.DEVICE_ENV_VAR, scales.MAX_STEPS_ENV_VAR, scales.MAX_SAMPLES_ENV_VAR):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv(scales.PRETRAINED_ENV_VAR, raising=False)
    plain = scales.profile("small")
    assert not plain.capped and plain.steps(500) == 500 and plain.pretrained == "published"
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert scales.profile("tiny").pretrained == "stand-in" and plain.device == "cuda:0"
    monkeypatch.setenv("LOCAL_RANK", "3")  # a DDP process evaluates on its own GPU
    assert plain.device == "cuda:3" and scales.profile("tiny").device == "cpu"
    monkeypatch.setenv(scales.DEVICE_ENV_VAR, "cpu")
    monkeypatch.setenv(scales.MAX_STEPS_ENV_VAR, "3")
    monkeypatch.setenv(scales.MAX_SAMPLES_ENV_VAR, "256")
    monkeypatch.setenv(scales.PRETRAINED_ENV_VAR, "stand-in")
    monkeypatch.setenv(scales.ENV_VAR, "small")
    small = scales.current()  # no GPU needed
    assert (small.name, small.accelerator, small.precision, small.device) == (
        "small",
        "cpu",
        "32-true",
        "cpu",
    )
    assert small.steps(500) == 3 and small.steps(2) == 2 and small.capped
    assert small.count(tiny=10, small=50_000, full=9) == 256 and small.count(1, 100, 9) == 100
    assert small.pretrained == "stand-in"
    assert "steps capped at 3" in small.describe() and "stand-ins" in small.describe()
    # a capped run says once, under its profile line, that its numbers mean nothing
    assert small.describe().count(scales.SMOKE_RUN_NOTE) == 1
    uncapped = dataclasses.replace(small, max_steps=None, max_samples=None)
    assert scales.SMOKE_RUN_NOTE not in uncapped.describe()
    # a cap too small for the chapters' grids is refused up front, not by an IndexError later
    monkeypatch.setenv(scales.MAX_SAMPLES_ENV_VAR, str(scales.MIN_SAMPLES - 1))
    with pytest.raises(ValueError, match=f"at least {scales.MIN_SAMPLES}"):
        scales.profile("small")
    monkeypatch.setenv(scales.MAX_SAMPLES_ENV_VAR, str(scales.MIN_SAMPLES))
    assert scales.profile("small").max_samples == scales.MIN_SAMPLES
    from esser_lab.training.trainer import make_trainer

    assert make_trainer(small, 1000).max_steps == 3
    monkeypatch.setenv(scales.DEVICE_ENV_VAR, "tpu")
    with pytest.raises(ValueError, match="ESSER_LAB_DEVICE must be cpu or gpu"):
        scales.profile("small")
    monkeypatch.setenv(scales.DEVICE_ENV_VAR, "gpu")
    with pytest.raises(ValueError, match="tiny runs on the CPU"):
        scales.profile("tiny")
    monkeypatch.delenv(scales.DEVICE_ENV_VAR)
    monkeypatch.setenv(scales.PRETRAINED_ENV_VAR, "published")
    with pytest.raises(ValueError, match="tiny never downloads"):
        scales.profile("tiny")
    monkeypatch.setenv(scales.PRETRAINED_ENV_VAR, "yes")
    with pytest.raises(ValueError, match="ESSER_LAB_PRETRAINED must be one of"):
        scales.profile("small")
    monkeypatch.delenv(scales.PRETRAINED_ENV_VAR)
    monkeypatch.setenv(scales.MAX_STEPS_ENV_VAR, "0")
    with pytest.raises(ValueError, match="ESSER_LAB_MAX_STEPS must be a positive integer"):
        scales.profile("small")


def test_thread_override(monkeypatch):
    monkeypatch.setenv(scales.THREADS_ENV_VAR, "2")
    assert scales.profile("tiny").num_threads == 2
    monkeypatch.setenv(scales.THREADS_ENV_VAR, "two")
    with pytest.raises(ValueError, match="positive integer"):
        scales.profile("tiny")


def test_seed_override(monkeypatch):
    monkeypatch.delenv(scales.SEED_ENV_VAR, raising=False)
    assert scales.profile("tiny").seed == 0 and scales.profile("small").seed == 0
    monkeypatch.setenv(scales.SEED_ENV_VAR, "3")
    assert scales.profile("tiny").seed == 3 and scales.profile("full").seed == 3
    for bad in ("-1", "one", "1.5"):
        monkeypatch.setenv(scales.SEED_ENV_VAR, bad)
        with pytest.raises(ValueError, match="ESSER_LAB_SEED must be a non-negative integer"):
            scales.profile("tiny")


def test_long_budget_is_a_tiny_bench_setting(monkeypatch):
    monkeypatch.delenv(scales.BUDGET_ENV_VAR, raising=False)
    tiny = scales.profile("tiny")
    assert tiny.budget == "minute" and tiny.pick(tiny=1, small=2, full=3, long=10) == 1
    monkeypatch.setenv(scales.BUDGET_ENV_VAR, "long")
    long = scales.profile("tiny")
    assert long.pick(tiny=1, small=2, full=3, long=10) == 10
    assert long.pick(tiny=1, small=2, full=3) == 1  # no long value: tiny's
    assert long.describe().endswith("· budget long")
    with pytest.raises(ValueError, match="tiny-scale bench setting, not small"):
        scales.profile("small")
    monkeypatch.setenv(scales.BUDGET_ENV_VAR, "hour")
    with pytest.raises(ValueError, match="ESSER_LAB_BUDGET must be one of minute, long"):
        scales.profile("tiny")


def test_describe_names_the_profile_threads_and_seed(monkeypatch):
    monkeypatch.setenv(scales.SEED_ENV_VAR, "2")
    line = scales.profile("tiny").describe()
    assert line == f"scale: tiny · cpu · 32-true · threads {torch.get_num_threads()} · seed 2"


def test_apply_sets_threads_and_white_figures(monkeypatch):
    import matplotlib as mpl

    monkeypatch.delenv(scales.THREADS_ENV_VAR, raising=False)
    before = torch.get_num_threads()
    try:
        scales.apply(scales.profile("tiny"))
        assert torch.get_num_threads() == 1
        assert mpl.rcParams["figure.facecolor"] == "white"
    finally:
        torch.set_num_threads(before)


def test_seed_everything_is_repeatable():
    g = seed_everything(3)
    a = (torch.rand(3), torch.rand(3, generator=g))
    g = seed_everything(3)
    b = (torch.rand(3), torch.rand(3, generator=g))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="non-negative"):
        seed_everything(-1)


def test_make_trainer_from_tiny_profile():
    from esser_lab.training.trainer import TextProgress, make_trainer

    trainer = make_trainer(scales.profile("tiny"), 10)
    assert trainer.max_steps == 10
    assert type(trainer.accelerator).__name__ == "CPUAccelerator"
    assert any(isinstance(c, TextProgress) for c in trainer.callbacks)
    assert trainer.logger is None
    with pytest.raises(ValueError, match="max_steps"):
        make_trainer(scales.profile("tiny"), 0)


def test_devices_and_nodes_from_the_environment(monkeypatch):
    monkeypatch.setenv(scales.DEVICES_ENV_VAR, "4")
    monkeypatch.setenv(scales.NODES_ENV_VAR, "2")
    full = scales.profile("full")
    assert (full.devices, full.num_nodes) == (4, 2)
    with pytest.raises(ValueError, match="need small or full"):
        scales.profile("tiny")
    monkeypatch.setenv(scales.DEVICES_ENV_VAR, "0")
    with pytest.raises(ValueError, match="positive integer"):
        scales.profile("small")


@pytest.mark.parametrize("optimizers", [1, 2])
def test_systems_log_only_on_the_steps_text_progress_prints(capsys, optimizers):
    import lightning as L
    from torch.utils.data import DataLoader

    from esser_lab.training.trainer import log_now, make_trainer

    class Toy(L.LightningModule):
        """One batch = ``optimizers`` optimizer steps (like a GAN's two steps)."""

        def __init__(self):
            super().__init__()
            self.automatic_optimization = False
            self.weights = torch.nn.ParameterList(
                [torch.nn.Parameter(torch.ones(())) for _ in range(optimizers)]
            )
            self.logged_at = []

        def training_step(self, batch, batch_idx):
            for opt, w in zip(
                self.optimizers(use_pl_optimizer=True) if optimizers > 1 else [self.optimizers()],
                self.weights,
                strict=True,
            ):
                loss = (w * batch).pow(2).mean()
                opt.zero_grad()
                self.manual_backward(loss)
                opt.step()
            if log_now(self):
                self.logged_at.append(self.trainer.global_step)
                self.log("loss", loss.detach())

        def configure_optimizers(self):
            return [torch.optim.SGD([w], lr=0.01) for w in self.weights]

    toy = Toy()
    max_steps = 10 * optimizers
    trainer = make_trainer(scales.profile("tiny"), max_steps, progress_every=4)
    trainer.fit(toy, DataLoader(torch.randn(64, 1), batch_size=4))
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step")]
    # batches 4, 8 and the last one (10) are printed, each with the value logged in that batch
    assert len(printed) == 3 and all("loss" in line for line in printed)
    assert toy.logged_at == [4 * optimizers, 8 * optimizers, 10 * optimizers]
    assert printed[-1].split()[1] == f"{max_steps}/{max_steps}"


def test_many_cpu_processes_are_honoured_at_small_and_refused_at_tiny(monkeypatch):
    """ESSER_LAB_DEVICE=cpu with ESSER_LAB_DEVICES=2: two CPU processes under DDP, not one."""
    from lightning.pytorch.strategies import DDPStrategy

    from esser_lab.training.trainer import make_trainer

    monkeypatch.setenv(scales.DEVICE_ENV_VAR, "cpu")
    monkeypatch.setenv(scales.DEVICES_ENV_VAR, "2")
    small = scales.profile("small")
    assert (small.accelerator, small.devices, small.num_nodes) == ("cpu", 2, 1)
    trainer = make_trainer(small, 3)
    assert isinstance(trainer.strategy, DDPStrategy) and trainer.num_devices == 2
    assert trainer.strategy.process_group_backend == "gloo"
    with pytest.raises(ValueError, match="need small or full .*, not tiny"):
        scales.profile("tiny")
