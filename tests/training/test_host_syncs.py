"""No host syncs in training steps but on logging steps (issue 12, item 4), checked on the CPU.

On a GPU, reading a tensor's value into Python (``float(t)``, ``int(t)``, ``bool(t)``, ``if t:``,
``t.item()``, ``t.tolist()``) waits for every kernel queued before it. CUDA's sync debug mode
(``torch.cuda.set_sync_debug_mode("error")``, what ``bench/gpu_smoke.py --sync-report`` uses)
catches those; a CPU has no such mode, so :class:`NoHostSync` stands in for it: every such read
during a step raises, except of the few tensors that live on the host on a GPU too (Adam's step
counters when it is neither fused nor capturable).
"""

from __future__ import annotations

from dataclasses import replace

import lightning as L
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from esser_lab.training.trainer import TextProgress, log_now

B = 4  # samples per batch

pytestmark = pytest.mark.filterwarnings("ignore")  # Lightning's notes on tiny loaders


class HostSyncError(RuntimeError):
    """A tensor's value was read into Python during a step that should not sync."""


class NoHostSync(TorchDispatchMode):
    """Stands in for CUDA's sync debug mode on the CPU: raises :class:`HostSyncError` whenever a
    tensor's value is read back into Python (``aten._local_scalar_dense``, which ``float()``,
    ``int()``, ``bool()`` and ``.item()`` all go through; ``tolist`` is patched, as it reads the
    data directly), unless ``host_tensors()`` holds that very tensor."""

    def __init__(self, host_tensors=lambda: ()) -> None:  # noqa: ANN001
        super().__init__()
        self.host_tensors = host_tensors

    def _check(self, tensor: torch.Tensor, what: str) -> None:
        if not any(tensor is t for t in self.host_tensors()):
            raise HostSyncError(f"{what} of a {tuple(tensor.shape)} {tensor.dtype} tensor")

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        if func is torch.ops.aten._local_scalar_dense.default:
            self._check(args[0], "a read into Python (float/int/bool/item)")
        return func(*args, **(kwargs or {}))

    def __enter__(self):  # noqa: ANN204
        self._tolist = torch.Tensor.tolist
        mode = self

        def tolist(tensor):  # noqa: ANN001, ANN202
            mode._check(tensor, "tolist()")
            return mode._tolist(tensor)

        torch.Tensor.tolist = tolist
        return super().__enter__()

    def __exit__(self, *args):  # noqa: ANN002, ANN204
        torch.Tensor.tolist = self._tolist
        return super().__exit__(*args)


def test_the_stand_in_catches_what_cuda_would():
    t = torch.ones(()) * 2  # a tensor made by a step
    reads = (float, int, bool, lambda x: x.item(), lambda x: x.tolist(), lambda x: x > 0 and 1)
    for read in reads:
        with NoHostSync(), pytest.raises(HostSyncError):
            read(t)
    with NoHostSync(lambda: (t,)):  # a host tensor may be read
        assert float(t) == 2.0
    with NoHostSync():  # no read: fine
        torch.where(t > 1, t, 0.0).add_(1)
    assert t.tolist() == 2.0  # restored on exit


def _adam_step_counters(system: L.LightningModule) -> list[torch.Tensor]:
    """Adam keeps ``step`` on the host unless fused or capturable: reading it is no GPU sync."""
    return [
        state["step"]
        for optimizer in system.trainer.optimizers
        if not optimizer.defaults.get("fused") and not optimizer.defaults.get("capturable")
        for state in optimizer.state.values()
        if "step" in state
    ]


class _Batches:
    """The same batch ``n`` times, as an iterable that is not a DataLoader."""

    def __init__(self, batch: dict, n: int) -> None:
        self.batch, self.n = batch, n

    def __iter__(self):  # noqa: ANN204
        return iter([self.batch] * self.n)

    def __len__(self) -> int:
        return self.n


def _steps_without_sync(system: L.LightningModule, batch: dict, steps: int = 3) -> list[bool]:
    """Fit ``steps`` steps under a text progress that logs at the last step only; every step that
    does not log runs under :class:`NoHostSync`. Returns, per step, whether it was checked."""
    original, checked = system.training_step, []

    def training_step(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if log_now(system):  # a logging step may read values back
            checked.append(False)
            return original(*args, **kwargs)
        checked.append(True)
        with NoHostSync(lambda: _adam_step_counters(system)):
            return original(*args, **kwargs)

    system.training_step = training_step
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=0, callbacks=[TextProgress(every=100)],
    )  # fmt: skip
    trainer.fit(system, train_dataloaders=_Batches(batch, steps))
    assert trainer.global_step == steps
    return checked


@pytest.fixture(autouse=True)
def gpu_finite_policy(monkeypatch):
    """The finiteness checks of inputs as on a GPU: read only outside training steps (on the CPU
    they always run, see ``esser_lab.checks``), so a check reached with ``training`` unset inside
    a step still counts as a sync here."""
    from esser_lab import checks

    def on_a_gpu(x: torch.Tensor, training: bool | None) -> bool:
        return x.device.type != "meta" and not training

    monkeypatch.setattr(checks, "finite_check_enabled", on_a_gpu)


def _procedural(module_class, **kwargs) -> dict:  # noqa: ANN001
    module = module_class(16, B, num_train=B, num_val=1, seed=0, **kwargs)
    return module._generate(B, torch.Generator().manual_seed(1))


@pytest.mark.parametrize("objective", ["rodi", "fixed"])
def test_rodi_steps_make_no_host_sync(objective):
    from esser_lab.rodi.model import RoDiConfig
    from esser_lab.rodi.training import FigurePairsDataModule, LitRoDi

    torch.manual_seed(0)
    # warm from step 1: the constraint, the dual update and the γ update all run
    config = replace(RoDiConfig.tiny(), objective=objective, warmup_steps=1, batch_size=B)
    system = LitRoDi(config)
    checked = _steps_without_sync(system, _procedural(FigurePairsDataModule, jitter=0.1))
    assert checked == [True, True, False]
    assert [h["step"] for h in system.history] == [1, 2, 3]  # read back lazily
    assert system.ema_count.item() == 3.0


def test_part_discovery_steps_make_no_host_sync():
    from esser_lab.part_discovery.model import PartDiscoveryConfig
    from esser_lab.part_discovery.training import LitPartDiscovery, PartPairsDataModule

    torch.manual_seed(0)
    config = replace(PartDiscoveryConfig.tiny(), mi_constraint=True, batch_size=B)
    system = LitPartDiscovery(config)
    checked = _steps_without_sync(system, _procedural(PartPairsDataModule))
    assert checked == [True, True, False]
    assert len(system.history) == 3 and "lor" in system.history[-1]
