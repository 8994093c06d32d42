"""GPU smoke bench: a few training steps of every Lightning system, timed, in bf16-mixed.

For each system (every ``class Lit…`` in ``esser_lab``) at a config preset (``small`` by
default: each config's ``small()``, with the first stages the chapters pair it with; the systems
and their data come from ``esser_lab.training.catalog``), this builds one batch of the system's
own data at the preset's batch size, puts it on the device once, and
runs a Lightning ``Trainer`` (``precision="bf16-mixed"``) on that batch repeated:

* 2 warm-up steps (allocation, cuDNN autotuning), untimed;
* 1 step under ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions and
  attention, forward and backward: the usual MFU count; elementwise work is not counted);
* ``--steps`` timed steps (default 20), between two device synchronisations.

It writes one CSV row per system: ``system, config, batch, steps_per_s, samples_per_s,
peak_mem_gb`` (``torch.cuda.max_memory_allocated`` over the whole run, warm-up included),
``tflops_per_step`` (the counted step), ``mfu`` (counted FLOP/s over ``--peak-flops``, by default
989e12, the dense bf16 peak of an H100/H200 SXM), ``torch`` and ``gpu``. A system that fails gets
a row of NaNs, its traceback goes to stderr, and the exit status is 1.

Weights are random and pretrained parts (LPIPS's VGG16) are seeded stand-ins of the same size:
the numbers measure throughput, not training. Needs torch, lightning, einops, numpy,
scikit-learn and torchmetrics only::

    PYTHONPATH=. python bench/gpu_smoke.py results.csv                 # on a CUDA machine
    PYTHONPATH=. python bench/gpu_smoke.py out.csv --device cpu --steps 2 --config tiny
"""

from __future__ import annotations

import argparse
import csv
import gc
import math
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from esser_lab.training.catalog import SYSTEMS, build

COLUMNS = (
    "system", "config", "batch", "steps_per_s", "samples_per_s", "peak_mem_gb",
    "tflops_per_step", "mfu", "torch", "gpu",
)  # fmt: skip
WARMUP = 2  # untimed steps before the counted one
PEAK_FLOPS = 989e12  # dense bf16 FLOP/s of an H100 / H200 SXM


# ---- the timed run --------------------------------------------------------------------------


class _Repeat:
    """The same (on-device) batch ``n`` times; not a DataLoader, so Lightning leaves it alone."""

    def __init__(self, batch: dict, n: int) -> None:
        self.batch, self.n = batch, n

    def __iter__(self):  # noqa: ANN204
        return (self.batch for _ in range(self.n))

    def __len__(self) -> int:
        return self.n


def _clock(steps: int, sync: Callable[[], None]):  # noqa: ANN202
    import lightning as L
    from torch.utils.flop_counter import FlopCounterMode

    class Clock(L.Callback):
        """Counts FLOPs on batch ``WARMUP``, times the ``steps`` batches after it, then stops."""

        def __init__(self) -> None:
            self.flops = math.nan
            self.seconds = math.nan
            self._counter: FlopCounterMode | None = None
            self._start = 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
            if batch_idx == WARMUP:
                self._counter = FlopCounterMode(display=False)
                self._counter.__enter__()
            elif batch_idx == WARMUP + 1:
                sync()
                self._start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            if batch_idx == WARMUP and self._counter is not None:
                self._counter.__exit__(None, None, None)
                self.flops = float(self._counter.get_total_flops())
            elif batch_idx == WARMUP + steps:
                sync()
                self.seconds = time.perf_counter() - self._start
                trainer.should_stop = True

    return Clock()


def _system_and_batch(name: str, preset: str) -> tuple[Any, dict]:
    """System ``name`` at ``preset`` from the registry, with one batch of the preset's size: the
    discriminators on from step 0, RoDi's constrained step (no warm-up)."""
    built = build(name, preset, disc_start=0, warmup_steps=0)
    return built.system, built.make(built.batch_size, torch.Generator().manual_seed(1))


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _batch_size(batch: dict) -> int:
    return next(len(v) for v in batch.values() if isinstance(v, torch.Tensor))


def measure(name: str, preset: str, device: torch.device, steps: int, peak: float) -> dict:
    """One CSV row for system ``name`` at ``preset`` on ``device``."""
    import lightning as L

    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.manual_seed(0)
    system, batch = _system_and_batch(name, preset)
    batch = _to(batch, device)
    clock = _clock(steps, sync)
    trainer = L.Trainer(
        accelerator="gpu" if cuda else "cpu", devices=1, precision="bf16-mixed",
        max_epochs=1, max_steps=-1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=0, callbacks=[clock],
    )  # fmt: skip
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    trainer.fit(system, train_dataloaders=_Repeat(batch, WARMUP + 1 + steps))
    if math.isnan(clock.seconds):
        raise RuntimeError(f"{name} stopped after {trainer.fit_loop.total_batch_idx + 1} batches")
    steps_per_s = steps / clock.seconds
    b = _batch_size(batch)
    row = {
        "system": name,
        "config": preset,
        "batch": b,
        "steps_per_s": steps_per_s,
        "samples_per_s": steps_per_s * b,
        "peak_mem_gb": torch.cuda.max_memory_allocated(device) / 1e9 if cuda else math.nan,
        "tflops_per_step": clock.flops / 1e12,
        "mfu": clock.flops * steps_per_s / peak,
    }
    del system, trainer, batch
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return row


def generator_check(device: torch.device) -> list[str]:
    """Every function that draws with a caller's generator, with the model on ``device`` and a CPU
    generator (``seed_everything``'s): it must run, land on ``device`` and match the same call on
    the CPU (the same random numbers; float tolerance for the device's arithmetic). The metrics
    that take tensors run on ``device`` too. Returns one ``ok``/``FAILED`` line per function."""
    import copy

    from esser_lab.iin.method import linear_probe, linear_r2
    from esser_lab.metrics.landmarks import fit_landmark_regressor, landmark_error
    from esser_lab.net2net import method as net2net_method
    from esser_lab.net2net.baselines import GaussianTranslator
    from esser_lab.nn.autoencoder import DiagonalGaussian
    from esser_lab.nn.flows import ConditionalFlow, Flow
    from esser_lab.part_discovery.method import colour_kmeans
    from esser_lab.part_discovery.model import FullGaussian, PartDiscovery, PartDiscoveryConfig
    from esser_lab.rodi.model import Posterior
    from esser_lab.taming.model import VQGANConfig, VQModel
    from esser_lab.taming.transformer import TamingTransformer, TamingTransformerConfig
    from esser_lab.vunet.claims import random_colour_error

    torch.manual_seed(0)
    flow = Flow(8, 2, 16).eval()
    conditional = ConditionalFlow(8, 4, 2, 16, embedding_dim=8).eval()
    translator = GaussianTranslator(torch.nn.Linear(4, 8), torch.eye(8))
    config = replace(PartDiscoveryConfig.tiny(), batch_size=2)
    parts = PartDiscovery(config).train()
    first = VQGANConfig(
        resolution=16, ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(4,),
        z_channels=8, embed_dim=8, n_embed=64,
    )  # fmt: skip
    gpt_config = replace(TamingTransformerConfig.tiny(), pkeep=0.5)
    taming = TamingTransformer(gpt_config, VQModel(first)).train()
    codes, labels = torch.randint(64, (2, 16)), torch.tensor([1, 2])
    x = torch.rand(2, 3, config.image_size, config.image_size) * 2 - 1
    features, classes = torch.randn(40, 3), torch.randint(2, (40,))
    landmarks, keypoints = torch.rand(20, 2, 2), torch.rand(20, 3, 2)
    cases: dict[str, Callable[..., torch.Tensor]] = {
        # name: f(device, to, generator), to(x) = x (a copy of a module) on that device
        "DiagonalGaussian.sample": lambda d, to, g: DiagonalGaussian(to(torch.randn(4, 8))).sample(
            g
        ),
        "rodi Posterior.sample": lambda d, to, g: Posterior(
            to(torch.zeros(2, 3, 4, 4)), to(torch.zeros(2, 3, 4, 4))
        ).sample(g),
        "FullGaussian.sample": lambda d, to, g: FullGaussian.from_parameters(
            to(torch.randn(2, 9)), 3
        ).sample(g),
        "Flow.sample": lambda d, to, g: to(flow).sample(3, generator=g),
        "net2net sample": lambda d, to, g: net2net_method.sample(
            to(conditional), to(torch.randn(3, 4)), generator=g
        ),
        "GaussianTranslator.sample": lambda d, to, g: GaussianTranslator(
            to(translator.mean), to(translator.scale_tril)
        ).sample(to(torch.randn(3, 4)), generator=g),
        "PartDiscovery.layout": lambda d, to, g: to(parts).layout(to(x), g).logits,
        "TamingTransformer pkeep noise": lambda d, to, g: to(taming)(to(codes), to(labels), g)[0],
        "TamingTransformer.sample_codes": lambda d, to, g: to(taming).sample_codes(
            to(labels), generator=g
        ),
        "colour_kmeans": lambda d, to, g: colour_kmeans(to(torch.rand(50, 3)), 3, generator=g),
        "random_colour_error": lambda d, to, g: torch.tensor(
            random_colour_error(to(torch.rand(4, 5, 3)), g)
        ),
        "linear_probe": lambda d, to, g: torch.tensor(
            linear_probe(
                to(features[:30]), to(classes[:30]), to(features[30:]), to(classes[30:]), 2, steps=5
            )
        ),  # fmt: skip
        "linear_r2": lambda d, to, g: torch.tensor(
            linear_r2(
                to(features[:30]), to(features[:30, :1]), to(features[30:]), to(features[30:, :1])
            )
        ),  # fmt: skip
        "landmark regressor + error": lambda d, to, g: landmark_error(
            fit_landmark_regressor(to(landmarks), to(keypoints))(to(landmarks)), to(keypoints)
        ),
    }
    lines = []
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # full fp32
    for name, case in cases.items():
        try:
            results = []
            for where in (torch.device("cpu"), device):

                def to(obj, where=where):  # noqa: ANN001, ANN202
                    moved = copy.deepcopy(obj) if isinstance(obj, torch.nn.Module) else obj
                    return moved.to(where)

                torch.manual_seed(0)  # draws without a generator (dropout) alike
                results.append(case(where, to, torch.Generator().manual_seed(0)))
            cpu, there = results
            assert there.device.type in (device.type, "cpu"), there.device
            exact = not there.is_floating_point()
            if exact:
                same = torch.equal(cpu, there.cpu())
            else:
                same = torch.allclose(cpu.float(), there.cpu().float(), rtol=1e-3, atol=1e-3)
            # DIFFERS is a note, not a failure: the draws match, the device's arithmetic may not
            # (a sampled token can flip where two probabilities nearly tie)
            lines.append(f"{'ok' if same else 'DIFFERS'}  {name} on {there.device}")
        except Exception as error:  # noqa: BLE001
            lines.append(f"FAILED  {name}: {type(error).__name__}: {str(error)[:200]}")
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    return lines


def sync_census(name: str, preset: str, device: torch.device, steps: int = 3) -> list[str]:
    """Where a training step of ``name`` waits for the GPU: ``torch.cuda.set_sync_debug_mode``
    over ``steps`` steps after the warm-up; one ``count × file:line: message`` line per place, the
    count per step (a separate short run, so the timed one is not slowed)."""
    import collections

    import lightning as L

    torch.manual_seed(0)
    system, batch = _system_and_batch(name, preset)
    batch = _to(batch, device)
    caught: list[warnings.WarningMessage] = []

    class Census(L.Callback):
        def __init__(self) -> None:
            self._record: Any = None
            self._log: list[warnings.WarningMessage] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
            if batch_idx == WARMUP:
                self._record = warnings.catch_warnings(record=True)
                self._log = self._record.__enter__()
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            if batch_idx == WARMUP + steps - 1 and self._record is not None:
                torch.cuda.set_sync_debug_mode("default")
                self._record.__exit__(None, None, None)
                caught.extend(self._log)

    trainer = L.Trainer(
        accelerator="gpu", devices=1, precision="bf16-mixed", max_epochs=1, max_steps=-1,
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        callbacks=[Census()],
    )  # fmt: skip
    try:
        trainer.fit(system, train_dataloaders=_Repeat(batch, WARMUP + steps))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    places = collections.Counter(
        f"{Path(w.filename).name}:{w.lineno}: {str(w.message).splitlines()[0][:60]}"
        for w in caught
        if "synchroniz" in str(w.message)
    )
    return [f"{count / steps:5.1f} × {place}" for place, count in places.most_common()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", type=Path, help="where to write the results (CSV)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per system")
    parser.add_argument("--config", default="small", choices=("tiny", "small", "full"))
    parser.add_argument("--systems", nargs="*", choices=list(SYSTEMS), help="default: all")
    parser.add_argument("--peak-flops", type=float, default=PEAK_FLOPS, help="for the MFU")
    parser.add_argument(
        "--sync-report", type=Path, help="also list where each system's step syncs (CUDA only)"
    )
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be ≥ 1, got {args.steps}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA device (use --device cpu)")
    if device.type not in ("cuda", "cpu"):
        parser.error(f"--device must be cuda or cpu, got {args.device!r}")
    if device.type == "cuda":  # as esser_lab.scale.apply does for the GPU profiles
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    warnings.filterwarnings("ignore")  # Lightning's notes on tiny loaders and logging
    import logging

    import lightning  # noqa: F401  (it sets its log level when imported: quiet it after)

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    failed = []
    checks = generator_check(device)
    print("a CPU generator with the model on " + str(device) + ":\n  " + "\n  ".join(checks))
    failed += [line for line in checks if line.startswith("FAILED")]
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with args.csv.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        for name in args.systems or list(SYSTEMS):
            try:
                row = measure(name, args.config, device, args.steps, args.peak_flops)
            except Exception:  # noqa: BLE001  one system's failure must not hide the others
                traceback.print_exc()
                failed.append(name)
                row = {"system": name, "config": args.config} | {k: math.nan for k in COLUMNS[2:8]}
            row |= {"torch": torch.__version__, "gpu": gpu}
            writer.writerow({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in row.items()})
            file.flush()
            print(
                f"{name:24s} {row['steps_per_s']:8.3g} steps/s  {row['peak_mem_gb']:7.3g} GB  "
                f"{row['tflops_per_step']:8.3g} TFLOP/step  MFU {row['mfu']:.3g}",
                flush=True,
            )
    if args.sync_report is not None and device.type == "cuda":
        lines = []
        for name in args.systems or list(SYSTEMS):
            try:
                places = sync_census(name, args.config, device)
            except Exception:  # noqa: BLE001
                traceback.print_exc()
                places = ["(census failed)"]
            lines += [f"{name}: {len(places)} places, per step:"] + [f"  {p}" for p in places]
        args.sync_report.write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
