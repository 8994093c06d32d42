"""Every Lightning system under 2-process DDP on the CPU (gloo), through ``make_trainer``.

Two processes are forked once per module, with the environment a launcher (``torchrun``,
``srun``) would set, so Lightning joins them instead of spawning its own. Each trains every
system for ``STEPS`` steps on its half of the same global batches and saves its final state.
The tests then check:

* the replicas hold identical parameters and buffers, bitwise (DDP averages the gradients, and
  every scalar that steers training is averaged over the ranks); BatchNorm's running statistics
  are the exception, each rank keeping its own last update;
* data-dependent initialisations (ActNorm, the VUNet's weight-normalised layers) agree across
  ranks and equal one process's on the whole global batch;
* systems without in-batch coupling train as one process on the doubled batch does, within float
  tolerance. The others (``NOT_EQUIVALENT``, with the reason) are checked for identical replicas.

Each process draws its own noise (its own random stream, ``ResumableModule.on_fit_start``), so
the equivalence runs use noise-free settings (dropout 0, a posterior variance of ~0) or, for the
systems whose noise is the method (diffusion times and ε, masks, chains), a test-only context that
gives every sample the same draws whatever its index and process; DDP changes the arithmetic, not
the method. The same processes then check that the ranks' streams differ and
that a DDP run resumed from a checkpoint (mid-epoch and at an epoch's end) is bitwise the run that
never stopped, for systems that draw noise from the global stream, from their own generator and
that start a discriminator.
"""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from esser_lab.scale import profile
from esser_lab.training.catalog import SYSTEMS, Built, build
from esser_lab.training.trainer import make_trainer

WORLD = 2
B = 4  # samples per rank and step
STEPS = 3

pytestmark = pytest.mark.filterwarnings("ignore")  # Lightning's notes on tiny loaders and logging


# ---- the systems, each with STEPS global batches of WORLD × B samples ----------------------------

#: Noise-free settings (see the module doc) and schedules that move within the run; the
#: style-transfer players alternate by the (rank-averaged) success rate; the discriminators join
#: at step 1 (both phases, and D's BatchNorm, under DDP), and RoDi's constraint too.
SWITCHES = dict(steps=STEPS, noise_free=True, success_rate=0.5, disc_start=1, warmup_steps=1)
PER_SYSTEM = {
    "LitMMDiT": {"warmup_steps": 2},
    # the decay ends a step after the run: ending at step 3, the KL weight's ramp (from half the
    # decay's end) starts at step 2 and the noise-free VUNet's rounding passes 1e-5 (measured)
    "LitVUNet": {"steps": STEPS + 1},
}


def _build(name: str) -> Built:
    return build(name, "tiny", B, **SWITCHES | PER_SYSTEM.get(name, {}))


def _system_and_batches(name: str) -> tuple[nn.Module, list[dict]]:
    built = _build(name)
    batches = [
        built.make(WORLD * B, torch.Generator().manual_seed(100 + step)) for step in range(STEPS)
    ]
    return built.system, batches


#: Systems for which two ranks of B are not one process of 2B, and why (book/how_to_run.md lists
#: them): their step couples the samples of a batch, or draws noise that a config cannot switch
#: off (each process draws its own). For them the replicas still agree; for "noise only" ones,
#: two ranks equal one process once the noise is taken out (NOISE_ONLY, FIXED_NOISE).
NOT_EQUIVALENT = {
    "LitVUNet": "noise only: the posterior sample of the latents",
    "LitPartBased": "BatchNorm (batch statistics); random transforms drawn per process",
    "LitRoDi": "the critics' marginal pairs flip α within the batch; posterior noise",
    "LitPartDiscovery": "the critics' marginal pairs flip α within the batch; posterior noise",
    "LitNet2Net": "BatchNorm in the condition embedder (the official conditioner)",
    "LitDataBias": "BatchNorm in the condition embedder; posterior noise",
    "LitVQGAN": "adaptive λ from each rank's gradient norms; BatchNorm in the discriminator",
    "LitGANAutoencoder": "as LitVQGAN, and the posterior sample (noise per process)",
    "LitLatentDiffusion": "noise only: steps, ε, label dropout and the posterior sample",
    "LitMMDiT": "noise only: the times, ε and the caption dropout",
    "LitLADD": "noise: the student's times, the re-noising t̂ and ε per process; the heads' local "
    "batch norm (batch statistics)",
    "LitSelfFlow": "noise only: the two times, the token mask and ε",
    "LitKeyframe": "BatchNorm (batch statistics) in the encoder, blocks and decoder",
    "LitGen1": "noise only: t, ε, t_s and the content dropout; the image-or-video coin is one "
    "draw per batch (each process tosses its own for its half)",
    "LitImageBART": "noise only: the forward chain and the scales",
    "LitDenseAutoencoder": "noise only: the posterior sample",
    "LitShapeTexture": "BatchNorm (batch statistics) in every residual block",
    "LitExplicitBaseline": "noise only: the depth errors",
}


#: Systems whose only difference from one doubled batch is their noise: with the noise set to 0
#: (the posterior mean), two ranks must equal one process again (tiny VUNets have no dropout).
NOISE_ONLY = ("LitVUNet", "LitDenseAutoencoder")


@contextmanager
def _noise_off():
    """Zero noise where the VUNet and the first-stage autoencoder draw their posterior samples."""
    import esser_lab.nn.placement as placement
    import esser_lab.vunet.model as vunet_model

    saved = placement.randn, vunet_model._noise_like

    def zeros(shape, *, generator, device, dtype=None):  # noqa: ANN001, ANN202
        return torch.zeros(tuple(shape), device=device, dtype=dtype)

    placement.randn, vunet_model._noise_like = zeros, lambda mean, generator: torch.zeros_like(mean)
    try:
        yield
    finally:
        placement.randn, vunet_model._noise_like = saved


#: Systems whose noise cannot be set to 0 (diffusion times, masks, chains, depth errors): with
#: every draw of their steps fixed per sample (:func:`_noise_per_sample`), two ranks must equal
#: one process again.
FIXED_NOISE = (
    "LitLatentDiffusion",
    "LitMMDiT",
    "LitSelfFlow",
    "LitGen1",
    "LitImageBART",
    "LitExplicitBaseline",
)


@contextmanager
def _noise_per_sample():
    """Every draw of ``torch.rand/randn/randint`` (and ``*_like``), ``(b, ...)``, gives each of
    its b samples the same values, seeded by the per-sample shape ``(...)``, the bounds and the
    dtype alone: noise independent of the sample's index and of the process (the generator and
    the global stream are ignored). The systems above draw every training-step random number
    through these, batch first (``esser_lab.nn.placement`` calls them too)."""
    import zlib

    saved = {name: getattr(torch, name) for name in ("rand", "randn", "randint")}
    saved_like = {name: getattr(torch, name) for name in ("rand_like", "randn_like")}

    def per_sample(name):  # noqa: ANN001, ANN202
        original = saved[name]

        def draw(*args, size=None, generator=None, device=None, dtype=None, **kwargs):  # noqa: ANN002, ANN003, ANN202
            bounds = ()
            if name == "randint":  # (high, size) or (low, high, size)
                if size is None:
                    *bounds, size = args
                else:
                    bounds = args
                bounds = tuple(bounds)
            elif size is None:  # (*size) or (size,)
                size = args[0] if len(args) == 1 and not isinstance(args[0], int) else args
            shape = tuple(size)
            each = shape[1:]
            seed = zlib.crc32(repr((name, each, bounds, dtype)).encode())
            one = original(
                *bounds, each, generator=torch.Generator().manual_seed(seed), dtype=dtype
            )
            if kwargs:
                raise TypeError(f"_noise_per_sample: torch.{name} with {sorted(kwargs)}")
            return one.expand(shape).clone().to(device)

        return draw

    def like(name):  # noqa: ANN001, ANN202
        def draw(x, *, dtype=None, device=None):  # noqa: ANN001, ANN202
            draw = getattr(torch, name.removesuffix("_like"))  # the per-sample one
            return draw(
                x.shape, dtype=dtype or x.dtype, device=x.device if device is None else device
            )

        return draw

    for name in saved:
        setattr(torch, name, per_sample(name))
    for name in saved_like:
        setattr(torch, name, like(name))
    try:
        yield
    finally:
        for name, function in {**saved, **saved_like}.items():
            setattr(torch, name, function)


def _shard(batch: dict, rank: int) -> dict:
    return {k: v[rank * B : (rank + 1) * B] for k, v in batch.items()}


class _Batches:
    """Fixed batches, as an iterable that is not a DataLoader (Lightning would re-shard it) nor a
    list (Lightning would read it as a list of loaders)."""

    def __init__(self, batches: list[dict]) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _state(system) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in system.state_dict().items()}


#: The test-only contexts that take each system's noise out of the comparison.
NOISE = {"off": _noise_off, "per sample": _noise_per_sample, None: nullcontext}


def _fit(name: str, noise: str | None = None, **trainer_args) -> tuple[dict, dict]:
    """Train system ``name`` from seed 0 (with ``NOISE[noise]``); its state after STEPS steps."""
    torch.manual_seed(0)
    system, batches = _system_and_batches(name)
    rank = trainer_args.pop("rank", None)
    data = batches if rank is None else [_shard(b, rank) for b in batches]
    trainer = make_trainer(profile("tiny"), STEPS, progress_every=10_000, **trainer_args)
    with NOISE[noise]():
        trainer.fit(system, train_dataloaders=_Batches(data))
    assert trainer.global_step == STEPS, (name, trainer.global_step)
    return _state(system)


def _inits(rank: int | None) -> dict[str, torch.Tensor]:
    """The data-dependent inits of a VUNet and of a flow on this rank's share (all: ``None``)."""
    from esser_lab.nn.flows import Flow
    from esser_lab.vunet import VUNet, VUNetConfig, figure_boxes, normalize_parts
    from esser_lab.vunet.layers import data_dependent_init

    config = VUNetConfig.tiny()
    batch = _build("LitVUNet").make(WORLD * B, torch.Generator().manual_seed(7))
    if rank is not None:
        batch = _shard(batch, rank)
    crops = normalize_parts(batch["image"], batch["keypoints"], figure_boxes(), config.crop_size)
    torch.manual_seed(0)
    vunet = VUNet(config).eval()  # eval: no dropout, so only the statistics differ
    with torch.no_grad(), data_dependent_init(vunet):
        vunet(batch["stickman"], crops, sample=False)
    torch.manual_seed(1)  # the VUNet's pass drew noise of a batch-dependent size
    flow = Flow(8, 16, 2).train()
    x = torch.randn(WORLD * B, 8, generator=torch.Generator().manual_seed(3)) * 3 + 1
    with torch.no_grad():
        flow(x if rank is None else x[rank * B : (rank + 1) * B])
    out = {f"vunet.{k}": v for k, v in vunet.state_dict().items() if k.endswith((".g", ".b"))}
    out |= {f"flow.{k}": v for k, v in flow.state_dict().items() if ".norm." in k}
    return {k: v.clone() for k, v in out.items()}


def _loader_batches(**trainer_args) -> torch.Tensor:
    """The sample indices each step saw when training from a chapter-style loader (whole batches
    from a ``BatchIndexSampler`` in a ``BatchLoader``), ``(STEPS, B)``."""
    from lightning.pytorch.callbacks import Callback

    from esser_lab.data.modules import batch_loader

    seen: list[torch.Tensor] = []

    class Record(Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:  # noqa: ANN001
            seen.append(batch["index"].clone())

    torch.manual_seed(0)
    system = _build("LitDenseAutoencoder").system
    n = 8 * B
    fields = {"image": torch.rand(n, 3, 16, 16) * 2 - 1, "index": torch.arange(n)}
    loader = batch_loader(fields, B, shuffle=True, seed=0)
    trainer = make_trainer(profile("tiny"), STEPS, progress_every=10_000, **trainer_args)
    trainer.callbacks.append(Record())
    trainer.fit(system, loader)
    return torch.stack(seen)


#: Systems resumed under DDP: noise from the global stream (posterior samples; diffusion times
#: from a generator seeded by it), a generator of their own, a discriminator joining at step 1.
RESUMED = ("LitDenseAutoencoder", "LitLatentDiffusion", "LitPartBased", "LitVQGAN")
RESUME_STEPS = 4
RESUME_POSITIONS = {"mid-epoch": 3, "epoch end": 2}  # batches per rank and epoch; save after 2


def _joined(batches: list[dict]) -> dict:
    return {
        k: torch.cat([b[k] for b in batches])
        if isinstance(batches[0][k], torch.Tensor)
        else [x for b in batches for x in b[k]]
        for k in batches[0]
    }


def _resumed_under_ddp(name: str, per_epoch: int, folder: str, rank: int) -> dict:
    """States of the run that never stopped and of the one saved after 2 steps and resumed."""
    from esser_lab.data.modules import batch_loader

    fields = _joined(_system_and_batches(name)[1])
    data = {k: v[: per_epoch * WORLD * B] for k, v in fields.items()}

    def run(steps: int, seed: int, ckpt_path: Path | None = None):
        torch.manual_seed(seed)
        system = _build(name).system
        loader = batch_loader(data, B, shuffle=True, seed=0)
        trainer = make_trainer(
            profile("tiny"), steps, progress_every=10_000, devices=WORLD, accelerator="cpu"
        )
        if ckpt_path is not None:
            torch.manual_seed(12345 + rank)  # a random state only the checkpoint can replace
        trainer.fit(system, loader, ckpt_path=ckpt_path, weights_only=True)
        assert trainer.global_step == steps
        return system, trainer

    straight, _ = run(RESUME_STEPS, 0)
    _, trainer = run(RESUME_STEPS // 2, 0)
    path = Path(folder) / f"{name}-{per_epoch}.ckpt"
    trainer.save_checkpoint(path)
    resumed, _ = run(RESUME_STEPS, 1, path)
    return {"straight": _state(straight), "resumed": _state(resumed)}


def _branched_in_checkpoint_folder(folder: str) -> dict:
    """Chapter 10's recipe under DDP: a prefix saved into ``checkpoint_folder`` (rank 0 writes),
    then a branch resumed from it on every rank (each must find the file)."""
    from dataclasses import replace

    from esser_lab.data.modules import batch_loader
    from esser_lab.training.trainer import checkpoint_folder

    scale = replace(profile("tiny"), devices=WORLD)
    fields = _joined(_system_and_batches("LitDenseAutoencoder")[1])
    here = os.getcwd()
    os.chdir(folder)  # the job's working directory
    try:
        checkpoints = checkpoint_folder(scale, "taming")

        def run(steps: int, ckpt_path: Path | None = None):
            torch.manual_seed(0)
            system = _build("LitDenseAutoencoder").system
            trainer = make_trainer(scale, steps, progress_every=10_000, accelerator="cpu")
            loader = batch_loader(fields, B, shuffle=True, seed=0)
            trainer.fit(system, loader, ckpt_path=ckpt_path, weights_only=True)
            return system, trainer

        _, trainer = run(RESUME_STEPS // 2)
        trainer.save_checkpoint(checkpoints / "prefix.ckpt")
        branch, _ = run(RESUME_STEPS, checkpoints / "prefix.ckpt")
    finally:
        os.chdir(here)
    return {"folder": str(checkpoints.relative_to(folder)), **_state(branch)}


def _ldm_scale_after_one_step(rank: int) -> dict:
    """LDM's ``scale_by_std`` factor after its first step on this rank's share (set from the
    first batch's latents; DDP broadcasts buffers only at the next step's start)."""
    torch.manual_seed(0)
    system, batches = _system_and_batches("LitLatentDiffusion")
    trainer = make_trainer(
        profile("tiny"), 1, progress_every=10_000, devices=WORLD, accelerator="cpu"
    )
    trainer.fit(system, train_dataloaders=_Batches([_shard(b, rank) for b in batches[:1]]))
    return {"scale_factor": system.ldm.scale_factor.clone()}


def _worker(rank: int, port: int, folder: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(WORLD),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        NODE_RANK="0",
    )
    torch.set_num_threads(1)
    results: dict[str, dict] = {}
    for name in SYSTEMS:
        results[name] = _fit(name, rank=rank, devices=WORLD, accelerator="cpu")
    results["inits"] = _inits(rank)
    results["loader"] = {"index": _loader_batches(devices=WORLD, accelerator="cpu")}
    for name in NOISE_ONLY:
        results[f"{name} noise off"] = _fit(
            name, noise="off", rank=rank, devices=WORLD, accelerator="cpu"
        )
    for name in FIXED_NOISE:
        results[f"{name} noise off"] = _fit(
            name, noise="per sample", rank=rank, devices=WORLD, accelerator="cpu"
        )
    results["stream"] = {"draw": torch.rand(8)}  # after fits under DDP: this rank's own stream
    for name in RESUMED:
        for position, per_epoch in RESUME_POSITIONS.items():
            results[f"resume {name} {position}"] = _resumed_under_ddp(name, per_epoch, folder, rank)
    results["chapter 10 branch"] = _branched_in_checkpoint_folder(folder)
    results["ldm one step"] = _ldm_scale_after_one_step(rank)
    torch.save(results, Path(folder) / f"rank{rank}.pt")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    folder = tmp_path_factory.mktemp("ddp")
    mp.start_processes(_worker, args=(_free_port(), str(folder)), nprocs=WORLD, start_method="fork")
    return [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_replicas_are_identical(ranks, name):
    a, b = ranks[0][name], ranks[1][name]
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    # BatchNorm's running statistics are buffers: DDP re-broadcasts rank 0's at every step, and
    # each rank's last update is its own (evaluation uses rank 0's)
    differ = [k for k in differ if not k.endswith(("running_mean", "running_var"))]
    assert differ == []
    torch.manual_seed(0)
    initial = _state(_build(name).system)
    moved = [k for k, v in a.items() if v.is_floating_point() and not torch.equal(v, initial[k])]
    assert moved, f"{name} did not train"


def test_data_dependent_inits_agree_across_ranks_and_use_the_global_batch(ranks):
    a, b = ranks[0]["inits"], ranks[1]["inits"]
    assert len(a) > 10 and any(k.startswith("flow") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    whole = _inits(None)  # one process on both shares together
    for k in a:
        torch.testing.assert_close(a[k], whole[k], rtol=1e-4, atol=1e-5, msg=k)
    half = _inits(0)  # rank 0's share alone: different statistics (the test can fail)
    assert any(not torch.allclose(half[k], whole[k], rtol=1e-3, atol=1e-4) for k in a)


@pytest.mark.parametrize("name", [n for n in SYSTEMS if n not in NOT_EQUIVALENT])
def test_two_ranks_equal_one_process_on_the_doubled_batch(ranks, name):
    single = _fit(name)
    differ = []
    for k, v in ranks[0][name].items():
        if v.is_floating_point() and not torch.allclose(v, single[k], rtol=1e-4, atol=1e-5):
            differ.append((k, float((v - single[k]).abs().max())))
    # attention's key bias shifts every logit of a query alike, which softmax ignores: its exact
    # gradient is 0, the computed one rounding noise that Adam scales up to a full step
    differ = [(k, d) for k, d in differ if not k.endswith("attn.key.bias")]
    assert differ == []


@pytest.mark.parametrize("name", NOISE_ONLY + FIXED_NOISE)
def test_noise_is_their_only_difference_from_the_doubled_batch(ranks, name):
    assert name in NOT_EQUIVALENT and NOT_EQUIVALENT[name].startswith("noise only")
    single = _fit(name, noise="off" if name in NOISE_ONLY else "per sample")
    differ = []
    for k, v in ranks[0][f"{name} noise off"].items():
        if v.is_floating_point() and not torch.allclose(v, single[k], rtol=1e-4, atol=1e-5):
            differ.append((k, float((v - single[k]).abs().max())))
    assert differ == []
    noisy = ranks[0][name]  # the same run with its noise: not the noise-free one (can fail)
    assert any(not torch.equal(noisy[k], v) for k, v in single.items() if v.is_floating_point())


def test_chapter_loaders_give_each_rank_its_own_whole_batches(ranks):
    a, b = ranks[0]["loader"]["index"], ranks[1]["loader"]["index"]
    assert a.shape == b.shape == (STEPS, B)  # a config's batch size is per process
    assert set(a.flatten().tolist()).isdisjoint(b.flatten().tolist())


def test_each_rank_draws_its_own_noise(ranks):
    a, b = ranks[0]["stream"]["draw"], ranks[1]["stream"]["draw"]
    assert not torch.equal(a, b)


def test_ldm_scale_factor_comes_from_the_global_batch_on_every_rank(ranks):
    first, second = (r["ldm one step"]["scale_factor"] for r in ranks)
    assert torch.equal(first, second) and float(first) != 1.0


def test_chapter_10s_branches_resume_from_one_folder_on_every_rank(ranks):
    first, second = (r["chapter 10 branch"] for r in ranks)
    assert first["folder"] == second["folder"] == "runs/taming/seed0"
    for key, value in first.items():
        if key != "folder":
            assert torch.equal(value, second[key]), key


@pytest.mark.parametrize("position", list(RESUME_POSITIONS))
@pytest.mark.parametrize("name", RESUMED)
def test_ddp_resume_is_exact(ranks, name, position):
    for rank in range(WORLD):
        run = ranks[rank][f"resume {name} {position}"]
        straight, resumed = run["straight"], run["resumed"]
        differ = [k for k in straight if not torch.equal(straight[k], resumed[k])]
        if rank > 0:  # BatchNorm statistics: each rank keeps its own, the checkpoint rank 0's
            differ = [k for k in differ if not k.endswith(("running_mean", "running_var"))]
        assert differ == [], f"rank {rank}: {len(differ)} of {len(straight)} differ: {differ[:4]}"


def test_rank_streams_are_left_alone_on_one_process():
    from esser_lab.training.resume import ResumableModule

    class SimpleNamespace:  # a trainer's two fields (hashable, weak-referenceable: watch_trainer)
        def __init__(self, world_size: int, global_rank: int) -> None:
            self.world_size, self.global_rank = world_size, global_rank

    module = ResumableModule()
    torch.manual_seed(3)
    before = torch.get_rng_state()
    module._trainer = SimpleNamespace(world_size=1, global_rank=0)
    module.on_fit_start()
    assert torch.equal(torch.get_rng_state(), before)
    draws = []
    for rank in range(2):
        torch.set_rng_state(before)
        module._trainer = SimpleNamespace(world_size=2, global_rank=rank)
        module.on_fit_start()
        draws.append(torch.rand(4))
    torch.set_rng_state(before)
    assert not torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], torch.rand(4))
    module._trainer = None


def test_a_sharded_sampler_splits_each_epoch_and_refuses_another_world_mid_epoch():
    from esser_lab.data.modules import BatchIndexSampler

    whole = BatchIndexSampler(10, 2, shuffle=True, seed=4)  # 5 batches
    order = list(whole)
    shards = [whole.shard(2, r) for r in range(2)]
    assert [len(s) for s in shards] == [3, 3]
    got = [list(s) for s in shards]
    expected = [order[0], order[2], order[4]], [order[1], order[3], order[0]]  # padded: 6th = 1st
    for mine, theirs in zip(got, expected, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(mine, theirs, strict=True))
    half = whole.shard(2, 1)
    iterator = iter(half)
    next(iterator)
    state = half.state_dict()
    assert state["num_replicas"] == 2 and state["position"] == 1
    with pytest.raises(ValueError, match="middle of a data epoch on 2 process"):
        BatchIndexSampler(10, 2, shuffle=True, seed=4).load_state_dict(state)
    at_start = state | {"position": 0, "epoch": 1}
    BatchIndexSampler(10, 2, shuffle=True, seed=4).load_state_dict(at_start)  # an epoch's end
    with pytest.raises(ValueError, match="rank must be an int in"):
        BatchIndexSampler(10, 2, shuffle=True, num_replicas=2, rank=2)


def test_make_trainer_asks_for_cpu_ddp_and_keeps_tiny_as_it_was():
    from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy

    tiny = make_trainer(profile("tiny"), 3)
    assert isinstance(tiny.strategy, SingleDeviceStrategy) and tiny.num_devices == 1
    assert tiny.precision == "32-true" and tiny.max_steps == 3
    ddp = make_trainer(profile("tiny"), 3, devices=2, accelerator="cpu")
    assert isinstance(ddp.strategy, DDPStrategy) and ddp.num_devices == 2
    assert ddp.strategy._ddp_kwargs["find_unused_parameters"] is True
    assert ddp.strategy.process_group_backend == "gloo"
    for bad in (0, -1, "2", 1.5):
        with pytest.raises(ValueError, match="devices must be a positive integer"):
            make_trainer(profile("tiny"), 3, devices=bad)
    with pytest.raises(ValueError, match="accelerator must be 'cpu' or 'gpu'"):
        make_trainer(profile("tiny"), 3, accelerator="tpu")
