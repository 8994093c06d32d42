"""No host syncs in training steps but on logging steps (issue 12, item 4), checked on the CPU.

On a GPU, reading a tensor's value into Python (``float(t)``, ``int(t)``, ``bool(t)``, ``if t:``,
``t.item()``, ``t.tolist()``) waits for every kernel queued before it. CUDA's sync debug mode
(``torch.cuda.set_sync_debug_mode("error")``, what ``bench/gpu_smoke.py --sync-report`` uses)
catches those; a CPU has no such mode, so :class:`NoHostSync` stands in for it: every such read
during a step raises, except of the tensors that live on the host on a GPU too: Adam's step
counters when it is neither fused nor capturable, and what the step makes on the host itself
(a factory call without a ``device``, e.g. the seed of a system's CPU noise generator, drawn from
torch's CPU stream, and what is computed from such tensors alone).

Every system the catalog builds is checked (chapters 4 and 8's with their own data as well);
a one-off data-dependent initialisation in a first step is allowed to read, and chapter 3's
player choice reads by design (its own test); the input checks' value reads follow their GPU policy
(:mod:`esser_lab.checks`: not inside a training step, frozen parts included).
"""

from __future__ import annotations

import weakref
from dataclasses import replace

import lightning as L
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from esser_lab.training.trainer import TextProgress, log_now

B = 4  # samples per batch

pytestmark = pytest.mark.filterwarnings("ignore")  # Lightning's notes on tiny loaders


class HostSyncError(RuntimeError):
    """A tensor's value was read into Python during a step that should not sync."""


#: Calls that read their input's values on the CPU only: on CUDA a device-side assert checks
#: instead (ATen's ``one_hot`` checks its classes' range so when ``num_classes`` is given).
CPU_ONLY_READS = (torch.nn.functional.one_hot,)


class _HostTensors(TorchFunctionMode):
    """Tracks the tensors a step makes on the host on a GPU too: the outputs of factory calls
    given no tensor and no ``device`` (torch's default device is the CPU) or ``device="cpu"``
    spelled out, and of calls whose tensors are all such host tensors. Any other call's outputs
    are not host tensors (a ``.to(x)`` that returns its input on the CPU moves it to the device
    on a GPU). ``reads_allowed`` is true inside a call of :data:`CPU_ONLY_READS`."""

    def __init__(self) -> None:
        super().__init__()
        self._host: dict[int, weakref.ref] = {}
        self.reads_allowed = False

    def holds(self, tensor: torch.Tensor) -> bool:
        ref = self._host.get(id(tensor))
        return ref is not None and ref() is tensor

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        if func in CPU_ONLY_READS:
            allowed, self.reads_allowed = self.reads_allowed, True
            try:
                out = func(*args, **kwargs)
            finally:
                self.reads_allowed = allowed
        else:
            out = func(*args, **kwargs)
        inputs = [t for t in torch.utils._pytree.tree_leaves((args, kwargs))
                  if isinstance(t, torch.Tensor)]  # fmt: skip
        device = kwargs.get("device")
        host = all(self.holds(t) for t in inputs) if inputs else device in (None, "cpu")
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                if host:
                    self._host[id(t)] = weakref.ref(t)
                else:
                    self._host.pop(id(t), None)
        return out


class NoHostSync(TorchDispatchMode):
    """Stands in for CUDA's sync debug mode on the CPU: raises :class:`HostSyncError` whenever a
    tensor's value is read back into Python (``aten._local_scalar_dense``, which ``float()``,
    ``int()``, ``bool()`` and ``.item()`` all go through; ``tolist`` is patched, as it reads the
    data directly), unless ``host_tensors()`` holds that very tensor."""

    def __init__(self, host_tensors=lambda: ()) -> None:  # noqa: ANN001
        super().__init__()
        self.host_tensors = host_tensors
        self.made_on_host = _HostTensors()

    def _check(self, tensor: torch.Tensor, what: str) -> None:
        host = self.made_on_host
        if (
            host.reads_allowed
            or host.holds(tensor)
            or any(tensor is t for t in self.host_tensors())
        ):
            return
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
        self.made_on_host.__enter__()
        return super().__enter__()

    def __exit__(self, *args):  # noqa: ANN002, ANN204
        torch.Tensor.tolist = self._tolist
        result = super().__exit__(*args)
        self.made_on_host.__exit__(*args)
        return result


def test_the_stand_in_catches_what_cuda_would():
    t = torch.ones(()) * 2  # a tensor made before the step (a parameter, a batch)
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


def _steps_without_sync(
    system: L.LightningModule, batch: dict, steps: int = 3, init_steps: int = 0
) -> list[bool]:
    """Fit ``steps`` steps under a text progress that logs at the last step only; every step that
    does not log runs under :class:`NoHostSync`, but the first ``init_steps`` (a one-off
    data-dependent initialisation may read its batch). Returns, per step, whether it was
    checked."""
    original, checked = system.training_step, []

    def training_step(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if log_now(system) or len(checked) < init_steps:  # may read values back
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
def gpu_value_checks(monkeypatch):
    """The input checks' value reads (NaN, ranges) as on a GPU: a read is never free, so the
    package's policy decides (``esser_lab.checks``: not inside a training step); on the CPU they
    always run, as a CPU read is no sync."""
    from esser_lab import checks

    monkeypatch.delenv(checks.FINITE_ENV, raising=False)
    monkeypatch.setattr(checks, "_read_is_free", lambda x: False)


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


def test_the_stand_in_lets_host_tensors_be_read():
    """What a step makes on the host (no device given, or from host tensors alone) stays there on
    a GPU too: reading it is no sync. A copy to the batch's device is no longer a host tensor."""
    x = torch.ones(2)  # a batch: on the device on a GPU
    with NoHostSync():
        seed = int(torch.randint(0, 2**62, (1,)))  # a system's CPU generator's seed
        assert int(torch.arange(3).sum() + seed) == 3 + seed  # host tensors alone
        with pytest.raises(HostSyncError):
            float(torch.ones(()).to(x).sum())  # to(x) is x's device on a GPU
        with pytest.raises(HostSyncError):
            float(torch.zeros((), device=x.device))  # an explicit device
        with pytest.raises(HostSyncError):
            bool((x > 0).all())
        torch.nn.functional.one_hot(x.long(), 3)  # reads on the CPU only (CUDA: an assert)
        assert float(torch.zeros(2, dtype=torch.float64, device="cpu").sum()) == 0.0


#: Chapters 11-19's systems and LitDataBias, with the switches that put every path in a step from
#: the first step on: the discriminators, warm-ups.
SYSTEMS_9_TO_19 = [
    "LitDataBias",
    "LitShapeTexture",
    "LitGeoTransformer",
    "LitExplicitBaseline",
    "LitImageBART",
    "LitCodeGPT",
    "LitGANAutoencoder",
    "LitLatentDiffusion",
    "LitMMDiT",
    "LitLADD",
    "LitSelfFlow",
    "LitKeyframe",
    "LitGen1",
]


#: Systems that accumulate gradients over several batches per optimiser step (the keyframe
#: generator's paper objective: 2, as the official config): every batch of the logging step logs.
BATCHES_PER_STEP = {"LitKeyframe": 2}

#: Systems whose first step runs a data-dependent initialisation that reads its batch once
#: (LitDataBias: its flow's ActNorms): that step is not checked, the next ones are.
INIT_STEPS = {"LitDataBias": 1}


@pytest.mark.parametrize("name", SYSTEMS_9_TO_19)
def test_catalog_steps_make_no_host_sync(name):
    from esser_lab.training.catalog import build

    torch.manual_seed(0)
    built = build(name, "tiny", B, disc_start=0, warmup_steps=0)
    init = INIT_STEPS.get(name, 0)
    batch = built.make(B, torch.Generator().manual_seed(1))
    checked = _steps_without_sync(built.system, batch, steps=3 + init, init_steps=init)
    k = BATCHES_PER_STEP.get(name, 1)
    assert checked == [False] * init + [True] * 2 * k + [False] * k


#: Chapters 1-8's systems and the shared ones not checked above, with the one-off reads of their
#: first step (a data-dependent initialisation: ActNorm in the flows and the dense autoencoder,
#: the VUNet's weight-normalised layers, whose flags each process reads once).
SYSTEMS_1_TO_10 = [
    "LitVUNet",
    "LitPartBased",
    "LitIIN",
    "LitNet2Net",
    "LitRegressionBaseline",
    "LitInvariances",
    "LitVQGAN",
    "LitTamingTransformer",
    "LitDenseAutoencoder",
]
FIRST_STEP_READS = {"LitVUNet", "LitIIN", "LitNet2Net", "LitInvariances", "LitDenseAutoencoder"}


@pytest.mark.parametrize("name", SYSTEMS_1_TO_10)
def test_chapters_1_to_10_steps_make_no_host_sync(name):
    from esser_lab.training.catalog import build

    torch.manual_seed(0)
    built = build(name, "tiny", B, disc_start=0, warmup_steps=0)
    init = 1 if name in FIRST_STEP_READS else 0
    batch = built.make(B, torch.Generator().manual_seed(1))
    checked = _steps_without_sync(built.system, batch, steps=3 + init, init_steps=init)
    assert checked == [False] * init + [True, True, False]


def test_style_transfer_reads_its_success_rate_every_step_by_design():
    """The one read left: which player trains next is Python control flow on the (rank-averaged)
    rate the discriminator is fooled at, as in the official code (a float there too)."""
    from esser_lab.training.catalog import build

    torch.manual_seed(0)
    built = build("LitStyleTransfer", "tiny", B)
    batch = built.make(B, torch.Generator().manual_seed(1))
    with pytest.raises(HostSyncError):
        _steps_without_sync(built.system, batch)
