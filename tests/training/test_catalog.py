"""The registry of every Lightning system (``esser_lab.training.catalog``), which the DDP, resume
and bf16 tests and ``bench/gpu_smoke.py`` build their systems from: it covers every ``Lit…`` class
of the package, its batch makers draw from their generator only, and it refuses what it can't
build."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from esser_lab.training.catalog import SYSTEMS, Built, build, lightning_systems


def test_every_system_is_covered():
    found = lightning_systems()
    assert len(found) >= 25 and "LitVUNet" in found
    assert found == set(SYSTEMS)


def test_the_gpu_smoke_bench_runs_every_system_of_the_registry():
    path = Path(__file__).parents[2] / "bench" / "gpu_smoke.py"
    spec = importlib.util.spec_from_file_location("gpu_smoke", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit):  # --systems accepts every name and nothing else
        module.main(["out.csv", "--systems", "LitNothing"])
    assert module.SYSTEMS is SYSTEMS


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in a
    )


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_batches_come_from_the_generator_alone(name):
    built = build(name, "tiny", 3)
    assert isinstance(built, Built) and built.batch_size == 3
    first = built.make(5, torch.Generator().manual_seed(0))
    torch.manual_seed(123)  # the global stream must not matter
    again = built.make(5, torch.Generator().manual_seed(0))
    assert _equal(first, again)
    tensors = [v for v in first.values() if torch.is_tensor(v)]
    assert tensors and all(len(v) == 5 for v in tensors)
    other = built.make(5, torch.Generator().manual_seed(1))
    assert not _equal(first, other)  # the generator does matter (the test can fail)


def test_switches_reach_the_systems_that_read_them():
    vqgan = build("LitVQGAN", disc_start=3).system
    assert vqgan.config.disc_start == 3
    style = build("LitStyleTransfer", success_rate=-1.0, noise_free=True).system
    assert style.config.discriminator_success_rate == -1.0 and style.config.style_dropout == 0
    rodi = build("LitRoDi", steps=5, warmup_steps=1).system
    assert (rodi.config.num_steps, rodi.config.warmup_steps) == (5, 1)
    assert build("LitVUNet", batch_size=6).system.config.batch_size == 6


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        (("LitNothing",), {}, ValueError, "unknown system 'LitNothing'"),
        (("LitVUNet", "medium"), {}, ValueError, "preset must be one of"),
        (("LitVUNet", "tiny", 0), {}, ValueError, "batch_size must be a positive int"),
        (("LitVUNet",), {"noise": True}, TypeError, "noise"),
        (("LitVUNet",), {"steps": 0}, ValueError, "steps must be None or an int >= 1"),
        (("LitVQGAN",), {"disc_start": 1.5}, ValueError, "disc_start must be None or an int"),
        (("LitVUNet",), {"noise_free": 1}, TypeError, "noise_free must be a bool"),
        (("LitStyleTransfer",), {"success_rate": "0.5"}, TypeError, "success_rate must be"),
    ],
)
def test_bad_requests_are_refused(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        build(*args, **kwargs)


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_every_system_builds_at_small_with_its_batches(name):
    """``bench/gpu_smoke.py``'s default preset: the system on the meta device (no memory, no
    compute), a batch of its data on the CPU."""
    with torch.device("meta"):
        built = build(name, "small", disc_start=0, warmup_steps=0)
    assert built.batch_size >= 8
    assert sum(p.numel() for p in built.system.parameters()) > 0
    batch = built.make(2, torch.Generator().manual_seed(0))
    tensors = [v for v in batch.values() if torch.is_tensor(v)]
    assert tensors and all(v.device.type == "cpu" and len(v) == 2 for v in tensors)
