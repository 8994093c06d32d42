"""``python -m esser_lab <paper> fit …``: train one stage of a paper from its presets.

The command a chapter's "Full scale" section points to. It trains the same Lightning systems as
the chapters, on the same data (the procedural data sets of :mod:`esser_lab.data` at the size the
preset asks, or an image folder where a paper has a real-data loader), with what a long run needs
on top: TensorBoard logs (CSV when tensorboard is not installed), checkpoints (Lightning's
``ModelCheckpoint``) under ``--output_dir``, ``--ckpt_path`` to resume, and many GPUs or nodes
(``--devices``, ``--num_nodes``; else ``ESSER_LAB_DEVICES`` / ``ESSER_LAB_NODES``).

A plain ``argparse`` command line, typed by the config dataclasses themselves:

* ``--preset tiny|small|full`` picks each config's ``tiny()``, ``small()`` or ``paper()``;
* ``--stage`` picks the stage of a multi-stage paper (e.g. taming: ``vqgan`` then
  ``transformer``); a later stage reads what the earlier one exported (``--first_stage``);
* any config field can be overridden: ``--model.n_embed 512``, ``--data.num_train 1000``,
  ``--set model.n_embed=512`` or a YAML file ``--config run.yaml`` with ``model:`` and ``data:``
  sections (preset < YAML < ``--set`` / flags). Values are checked against the field's type; an
  unknown field or a wrong type stops with an error naming the field and what it expects.

Each paper lists its stages in ``esser_lab.<paper>.run`` (``STAGES``): the config presets, the
data settings and a ``build`` function that wires data and system the way the chapter does.
Importing this module is cheap (no torch, no Lightning until a run starts).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from esser_lab.config import (
    ConfigError,
    _as_dict,
    _field_types,
    _merge,
    _parse_scalar,
    build_config,
    describe,
)
from esser_lab.scale import PRETRAINED

# what a paper's run.py declares (re-exported: ``from esser_lab.cli import Plan, Run, Stage``)
from esser_lab.stages import Plan, Run, Stage, lpips, vgg19_feature_loss  # noqa: F401

PRESETS = ("tiny", "small", "full")
# paper → the chapter it belongs to (the help text); its stages live in esser_lab.<paper>.run
PAPERS: dict[str, str] = {
    "vunet": "ch. 1, variational U-Net (Esser et al. 2018)",
    "part_based": "ch. 2, part-based shape/appearance (Lorenz et al. 2019)",
    "style_transfer": "ch. 3, content/style disentanglement (Kotovenko et al. 2019)",
    "rodi": "ch. 4, robust disentanglement (Esser et al. 2019)",
    "iin": "ch. 5, invertible interpretation networks (Esser et al. 2020)",
    "net2net": "ch. 6, network-to-network translation (Rombach et al. 2020)",
    "invariances": "ch. 7, invariances of a representation (Rombach et al. 2020)",
    "part_discovery": "ch. 8, unsupervised part discovery (Braun et al. 2020)",
    "data_bias": "ch. 9, data set bias in a latent space (Esser et al. 2020)",
    "taming": "ch. 10, taming transformers: VQGAN + GPT (Esser et al. 2021)",
    "shape_texture": "ch. 11, shape and texture in a CNN's stages (Islam et al. 2021)",
    "geofree": "ch. 12, geometry-free view synthesis (Rombach et al. 2021)",
    "imagebart": "ch. 13, ImageBART: multinomial diffusion on codes (Esser et al. 2021)",
    "ldm": "ch. 14, latent diffusion: KL autoencoder + UNet (Rombach et al. 2022)",
    "keyframe": "ch. 15, unified keyframe propagation (Esser, Michael & Sengupta 2022)",
    "gen1": "ch. 16, Gen-1: structure- and content-guided video (Esser et al. 2023)",
    "sd3": "ch. 17, rectified flow + MMDiT: Stable Diffusion 3 (Esser et al. 2024)",
    "ladd": "ch. 18, latent adversarial diffusion distillation (Sauer et al. 2024)",
    "selfflow": "ch. 19, Self-Flow: self-supervised flow matching (Chefer, Esser et al. 2026)",
}
COMMANDS = ("fit",)


def paper_stages(paper: str) -> dict[str, Stage]:
    """``esser_lab.<paper>.run.STAGES`` (the first stage is the default)."""
    if paper not in PAPERS:
        raise ValueError(f"unknown paper {paper!r}; expected one of {', '.join(PAPERS)}")
    return importlib.import_module(f"esser_lab.{paper}.run").STAGES


def paper_note(paper: str) -> str:
    """``esser_lab.<paper>.run.NOTE``: what the command does not offer for it and why ("")."""
    return getattr(importlib.import_module(f"esser_lab.{paper}.run"), "NOTE", "")


# --- the command line ---------------------------------------------------------------------------


def _top_parser() -> argparse.ArgumentParser:
    lines = [f"  {name:<15} {text}" for name, text in PAPERS.items()]
    parser = argparse.ArgumentParser(
        prog="python -m esser_lab",
        description="Train a paper's systems at tiny, small or full scale (book/how_to_run.md).",
        epilog="papers:\n" + "\n".join(lines) + "\n\nthen: python -m esser_lab <paper> fit --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paper", choices=list(PAPERS), metavar="paper", help="one of the papers below"
    )
    parser.add_argument("command", choices=COMMANDS, help="fit: train one stage")
    return parser


def _fit_parser(
    paper: str, stages: dict[str, Stage], stage: str, preset: str
) -> argparse.ArgumentParser:
    spec = stages[stage]
    model, data = spec.model(preset), spec.data(preset)
    stage_lines = "\n".join(f"  {name:<12} {s.help}" for name, s in stages.items())
    note = paper_note(paper)
    if note:  # what the paper's command does not offer, and why
        stage_lines += "\n\n" + textwrap.fill(note, 96, break_on_hyphens=False)
    parser = argparse.ArgumentParser(
        prog=f"python -m esser_lab {paper} fit",
        usage="%(prog)s [--stage STAGE] [--preset PRESET] [options] [--model.FIELD VALUE …] "
        "[--data.FIELD VALUE …]",
        description=f"Train a stage of {paper} ({PAPERS[paper]}).\n\nstages:\n{stage_lines}",
        epilog=(
            f"The model and data options above are the fields of stage {stage!r} at preset "
            f"{preset!r}, with that preset's values; pass --stage/--preset with --help to see "
            "another's. Values are read as YAML: 512, 0.5, true, null, '[1, 2]'."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    run = parser.add_argument_group("run")
    run.add_argument(
        "--stage", choices=list(stages), default=stage, help=f"default: {next(iter(stages))}"
    )
    run.add_argument(
        "--preset",
        choices=PRESETS,
        default=preset,
        help="tiny(), small() or paper() (default: full)",
    )
    run.add_argument("--config", metavar="FILE", help="YAML with 'model:' and 'data:' overrides")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model.FIELD=… or data.FIELD=…",
    )
    run.add_argument(
        "--output_dir",
        type=Path,
        default=Path("runs") / paper,
        help=f"logs, checkpoints and exports go to OUTPUT_DIR/STAGE (default: runs/{paper})",
    )
    run.add_argument(
        "--ckpt_path", help="resume from this Lightning checkpoint ('last': the newest)"
    )
    run.add_argument(
        "--first_stage",
        type=Path,
        help="the export (.safetensors) of the stage this one builds on "
        "(default: OUTPUT_DIR/<that stage>/<that stage>.safetensors)",
    )
    run.add_argument(
        "--pretrained",
        choices=PRETRAINED,  # esser_lab.scale's (a torch-free import)
        help="pretrained networks (LPIPS, VGG19 loss): published weights (data/checkpoints, else "
        "fetched once with their checksum) or seeded stand-ins (default: ESSER_LAB_PRETRAINED, "
        "else stand-in for tiny, published for small/full)",
    )
    run.add_argument("--max_steps", type=int, help="training steps (default: the config's)")
    run.add_argument("--seed", type=int, help="training seed (default: ESSER_LAB_SEED, else 0)")
    run.add_argument(
        "--accelerator", choices=("cpu", "gpu"), help="default: cpu for tiny, gpu for small/full"
    )
    run.add_argument(
        "--devices", type=int, help="GPUs per node (default: ESSER_LAB_DEVICES, else 1)"
    )
    run.add_argument("--num_nodes", type=int, help="nodes (default: ESSER_LAB_NODES, else 1)")
    run.add_argument(
        "--precision", help="Lightning precision (default: 32-true on a CPU, bf16-mixed on GPUs)"
    )
    run.add_argument(
        "--logger",
        choices=("auto", "tensorboard", "csv"),
        default="auto",
        help="auto: TensorBoard when installed, else CSV",
    )
    run.add_argument(
        "--log_every_n_steps", type=int, default=50, metavar="STEPS", help="default: 50"
    )
    run.add_argument(
        "--checkpoint_every", type=int, default=1000, metavar="STEPS", help="default: 1000"
    )
    for prefix, config in (("model", model), ("data", data)):
        group = parser.add_argument_group(f"{prefix} ({type(config).__name__}, preset {preset})")
        hints = _field_types(type(config))
        for f in fields(config):
            group.add_argument(
                f"--{prefix}.{f.name}",
                dest=f"{prefix}.{f.name}",
                default=argparse.SUPPRESS,
                metavar=describe(hints[f.name]).upper().replace(" ", "_")
                if typing.get_origin(hints[f.name]) is None
                else "VALUE",
                help=f"{describe(hints[f.name])}; preset: {getattr(config, f.name)!r}",
            )
    return parser


@dataclass(frozen=True)
class Invocation:
    """A parsed ``fit`` command: the stage, its two configs and the run options."""

    paper: str
    stage: str
    preset: str
    model: Any
    data: Any
    options: argparse.Namespace


def parse(argv: list[str]) -> Invocation:
    """Parse ``<paper> fit …``; errors (and ``--help``) exit through ``SystemExit``."""
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in PAPERS:
        _top_parser().parse_args(argv[:2] or ["--help"])  # prints help or the error, exits
    paper = argv[0]
    if len(argv) < 2 or argv[1] not in COMMANDS:
        _top_parser().parse_args(argv[:2] if len(argv) > 1 else [paper, "--help"])
        raise SystemExit(2)  # not reached: argparse exits on a bad command
    rest = argv[2:]
    stages = paper_stages(paper)
    first = next(iter(stages))
    pre = argparse.ArgumentParser(
        prog=f"python -m esser_lab {paper} fit", add_help=False, allow_abbrev=False
    )
    pre.add_argument("--stage", choices=list(stages), default=first)
    pre.add_argument("--preset", choices=PRESETS, default="full")
    known, _ = pre.parse_known_args(rest)
    parser = _fit_parser(paper, stages, known.stage, known.preset)
    options, unknown = parser.parse_known_args(rest)
    spec = stages[options.stage]
    model_config, data_settings = spec.model(options.preset), spec.data(options.preset)
    groups = {"model": type(model_config), "data": type(data_settings)}
    for item in unknown:
        prefix, dot, name = item.lstrip("-").partition(".")
        if item.startswith("--") and dot and prefix in groups:
            known_fields = ", ".join(f.name for f in fields(groups[prefix]))
            parser.error(
                f"unknown {groups[prefix].__name__} field {name.split('=')[0]!r} "
                f"(--{prefix}.{name}); expected one of: {known_fields}"
            )
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")

    values = {"model": _as_dict(model_config), "data": _as_dict(data_settings)}
    if options.config:
        _merge_yaml(parser, values, Path(options.config))
    for item in options.set:
        key, equals, raw = item.partition("=")
        prefix, dot, name = key.strip().partition(".")
        if not equals or not dot or prefix not in values or not name:
            parser.error(f"--set expects model.FIELD=VALUE or data.FIELD=VALUE, got {item!r}")
        _merge(values[prefix], name, _parse_scalar(raw))
    for dest, raw in vars(options).items():
        prefix, dot, name = dest.partition(".")
        if dot and prefix in values:
            _merge(values[prefix], name, _parse_scalar(raw))
    try:
        model_config = build_config(groups["model"], values["model"])
        data_settings = build_config(groups["data"], values["data"])
    except ConfigError as error:
        parser.error(str(error))
    for name in ("max_steps", "devices", "num_nodes", "checkpoint_every", "log_every_n_steps"):
        value = getattr(options, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be ≥ 1, got {value}")
    if options.seed is not None and options.seed < 0:
        parser.error(f"--seed must be ≥ 0, got {options.seed}")
    if options.preset == "tiny" and options.pretrained == "published":
        parser.error("--pretrained published needs --preset small or full: tiny never downloads")
    return Invocation(paper, options.stage, options.preset, model_config, data_settings, options)


def _merge_yaml(parser: argparse.ArgumentParser, values: dict[str, dict], path: Path) -> None:
    import yaml

    if not path.is_file():
        parser.error(f"--config {path}: no such file")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        parser.error(f"--config {path} is not valid YAML: {error}")
    if not isinstance(loaded, dict) or set(loaded) - set(values):
        found = sorted(loaded) if isinstance(loaded, dict) else type(loaded).__name__
        parser.error(
            f"--config {path}: expected a mapping with 'model:' and/or 'data:', got {found}"
        )
    for prefix, section in loaded.items():
        if not isinstance(section, dict):
            parser.error(
                f"--config {path}: '{prefix}:' must be a mapping of fields, got {section!r}"
            )
        for key, value in section.items():
            _merge(values[prefix], str(key), value)


def pretrained_choice(invocation: Invocation) -> str:
    """``--pretrained``, else ``ESSER_LAB_PRETRAINED``, else the preset's (tiny: stand-in)."""
    from esser_lab import scale as scales

    if invocation.options.pretrained is not None:
        return invocation.options.pretrained
    return scales.profile(invocation.preset).pretrained


def _logger(kind: str, save_dir: Path) -> Any:
    from importlib.util import find_spec

    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    if kind == "auto":
        kind = "tensorboard" if find_spec("tensorboard") or find_spec("tensorboardX") else "csv"
    if kind == "tensorboard":
        return TensorBoardLogger(save_dir, name="logs")
    return CSVLogger(save_dir, name="logs")


def fit(invocation: Invocation) -> Path:
    """Train the stage; return its folder (checkpoints, logs, the export)."""
    import dataclasses
    import warnings

    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    from esser_lab import scale as scales
    from esser_lab.training import save_checkpoint, seed_everything
    from esser_lab.training.trainer import make_trainer

    options = invocation.options
    stages = paper_stages(invocation.paper)
    spec = stages[invocation.stage]
    profile = scales.profile(invocation.preset)
    accelerator = options.accelerator or profile.accelerator
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise SystemExit(
            f"error: --preset {invocation.preset} trains on a GPU and none was found; "
            "pass --accelerator cpu to run it on the CPU"
        )
    default_precision = "32-true" if accelerator == "cpu" else "bf16-mixed"
    profile = dataclasses.replace(
        profile,
        accelerator=accelerator,
        precision=options.precision or default_precision,
        devices=options.devices or profile.devices,
        num_nodes=options.num_nodes or profile.num_nodes,
    )
    seed = profile.seed if options.seed is None else options.seed
    out = options.output_dir / invocation.stage
    first_stage = None
    if spec.needs is not None:
        first_stage = (
            options.first_stage or options.output_dir / spec.needs / f"{spec.needs}.safetensors"
        )
        if options.first_stage is None and invocation.preset in spec.shipped:
            if not Path(first_stage).is_file():
                print(f"stage {invocation.stage!r}: no {first_stage}; the package's shipped "
                      f"{spec.needs} ({invocation.preset}) stands in")  # fmt: skip
                first_stage = None
        elif not Path(first_stage).is_file():
            raise SystemExit(
                f"error: stage {invocation.stage!r} builds on stage {spec.needs!r}, whose export "
                f"{first_stage} does not exist: train it first (--stage {spec.needs}) or pass "
                "--first_stage PATH"
            )
    ckpt_path = options.ckpt_path
    if ckpt_path not in (None, "last") and not Path(ckpt_path).is_file():
        raise SystemExit(f"error: --ckpt_path {ckpt_path}: no such checkpoint file")
    chosen = pretrained_choice(invocation)
    run = Run(invocation.paper, invocation.stage, invocation.preset, seed, out, first_stage, chosen)
    seed_everything(seed)
    try:
        plan = spec.build(invocation.model, invocation.data, run)
    except (FileNotFoundError, ValueError) as error:  # a missing file, configs that disagree
        raise SystemExit(
            f"error: {invocation.paper} --stage {invocation.stage}: {error}"
        ) from error
    max_steps = options.max_steps or plan.max_steps
    checkpoint = ModelCheckpoint(
        dirpath=out / "checkpoints",
        filename="{step}",
        every_n_train_steps=options.checkpoint_every,  # fixed: part of the callback's state key
        save_last=True,
        save_top_k=1,
    )
    # manual-optimisation systems checkpoint the weights after the step's update: what we want
    warnings.filterwarnings("ignore", message=r".*ModelCheckpoint with manual optimization.*")
    trainer = make_trainer(
        profile,
        max_steps,
        progress_every=max(1, max_steps // 10),
        progress_keys=plan.progress_keys,
        default_root_dir=str(out),
        logger=_logger(options.logger, out),
        extra_callbacks=(checkpoint,),
    )
    trainer.log_every_n_steps = options.log_every_n_steps  # Trainer's own attribute
    if trainer.is_global_zero:
        print(
            f"{invocation.paper} · stage {invocation.stage} · preset {invocation.preset} · "
            f"{max_steps} steps · {profile.accelerator} × {profile.devices} × {profile.num_nodes} "
            f"node(s) · {profile.precision} · seed {seed} → {out}"
        )
        print(f"model: {invocation.model}")
        print(f"data: {invocation.data}" + (f" ({plan.data_note})" if plan.data_note else ""))
    trainer.fit(
        plan.system,
        train_dataloaders=plan.train_dataloaders,
        datamodule=plan.datamodule,
        ckpt_path=ckpt_path,
        weights_only=True,
    )
    if trainer.global_step % options.checkpoint_every:  # the last steps since a checkpoint
        trainer.save_checkpoint(out / "checkpoints" / "last.ckpt")  # every rank calls it
    if trainer.is_global_zero:
        if plan.export is not None:
            module, config = plan.export
            path = save_checkpoint(module, out / f"{invocation.stage}.safetensors", config)
            print(f"exported {path}")
        print(f"checkpoints in {out / 'checkpoints'}, logs in {out / 'logs'}")
    return out


def main(argv: list[str] | None = None) -> int:
    """The ``python -m esser_lab`` entry point."""
    invocation = parse(list(sys.argv[1:] if argv is None else argv))
    fit(invocation)
    return 0
