"""Chapter 12's stages for ``python -m esser_lab geofree fit`` (see :mod:`esser_lab.cli`).

As the chapter, on view pairs of the toy scenes (:mod:`esser_lab.data.scenes`, drawn with seed
1000 + the run's seed): ``--stage vqgan`` trains the first stage (L1 + the codebook loss, no LPIPS
and no discriminator, Adam (0.5, 0.9) at 2·10⁻³, on fresh views every step, as
:func:`esser_lab.geofree.first_stage.train_first_stage`; here through
:class:`LitGANAutoencoder` with the discriminator never starting) and exports
``vqgan.safetensors``; ``--stage transformer`` trains the geometry-free transformer
(:class:`LitGeoTransformer`) on that VQGAN's codes — at ``tiny`` without that export the
package's shipped 16-px VQGAN stands in, as in the chapter —; ``--stage explicit`` the explicit
baseline's hole filler (:class:`LitExplicitBaseline`), which needs no first stage. ``full`` is the
chapter's: the ``small`` models trained longer (``GeoFreeConfig.paper()`` needs the official
RealEstate10K VQGAN and frames).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

from esser_lab.cli import Plan, Run, Stage
from esser_lab.config import check_positive, check_rates
from esser_lab.geofree.model import GeoFreeConfig
from esser_lab.losses.gan_autoencoder import GANAutoencoderLossConfig, GANOptimizerConfig
from esser_lab.taming.model import VQModelConfig

__all__ = ["NOTE", "STAGES", "BaselineRun", "SceneVQGANRun", "ScenesData", "TransformerRun"]

STEPS = {"tiny": 300, "small": 6000, "full": 60_000}  # the chapter's, both models

NOTE = (
    "At tiny the package's shipped 16-px VQGAN stands in when no vqgan export is there. full is "
    "the chapter's: the small models, longer. GeoFreeConfig.paper() needs the official "
    "RealEstate10K VQGAN and frames, which this command does not train on."
)


@dataclass(frozen=True)
class ScenesData:
    """View pairs of the toy scenes at the model's size; ``seed`` None: 1000 + the run's seed
    (the chapter's)."""

    num_train: int
    seed: int | None = None


@dataclass(frozen=True)
class SceneVQGANRun:
    """The first stage and how :func:`~esser_lab.geofree.first_stage.train_first_stage` fits it."""

    vqgan: VQModelConfig
    num_steps: int
    batch_size: int = 64  # half sources, half targets
    learning_rate: float = 2e-3

    def __post_init__(self) -> None:
        check_positive(self, ("num_steps",))
        check_positive(self, ("batch_size",), minimum=2)
        check_rates(self, ("learning_rate",))


@dataclass(frozen=True)
class TransformerRun:
    """The transformer and the run's length (its warm-up + cosine schedule ends there)."""

    transformer: GeoFreeConfig
    num_steps: int

    def __post_init__(self) -> None:
        check_positive(self, ("num_steps",))


@dataclass(frozen=True)
class BaselineRun:
    """The explicit baseline's hole filler: the transformer's rate, warm-up, batch and steps."""

    learning_rate: float
    warmup_steps: int
    batch_size: int
    num_steps: int

    def __post_init__(self) -> None:
        check_positive(self, ("num_steps", "batch_size"))
        check_positive(self, ("warmup_steps",), minimum=0)
        check_rates(self, ("learning_rate",))


def _toy(preset: str) -> tuple[GeoFreeConfig, str]:
    from esser_lab.geofree.chapter import toy_config

    return toy_config(preset)


def _vqgan(preset: str) -> SceneVQGANRun:
    from esser_lab.geofree import first_stage as shipped
    from esser_lab.geofree.model import first_stage_config

    _, first = _toy(preset)
    if preset == "tiny":  # the shipped one's recipe (python -m esser_lab.geofree.first_stage)
        return SceneVQGANRun(first_stage_config(first), shipped.STEPS, shipped.BATCH_SIZE)
    return SceneVQGANRun(first_stage_config(first), 5000, 64)  # the chapter's small/full


def _transformer(preset: str) -> TransformerRun:
    return TransformerRun(_toy(preset)[0], STEPS[preset])


def _baseline(preset: str) -> BaselineRun:
    config = _toy(preset)[0]
    return BaselineRun(config.learning_rate, config.warmup_steps, config.batch_size, STEPS[preset])


def _data(preset: str) -> ScenesData:
    return ScenesData({"tiny": 2000, "small": 20_000, "full": 100_000}[preset])


def _pairs(data: ScenesData, size: int, run: Run):  # noqa: ANN202
    from esser_lab.data import scenes

    seed = 1000 + run.seed if data.seed is None else data.seed
    return scenes.sample_pairs(data.num_train, size, generator=torch.Generator().manual_seed(seed))


def _build_vqgan(config: SceneVQGANRun, data: ScenesData, run: Run) -> Plan:
    from esser_lab.data import scenes
    from esser_lab.data.modules import BatchIndexSampler, BatchLoader, GeneratedBatches
    from esser_lab.taming.model import VQModel
    from esser_lab.taming.training import LitGANAutoencoder

    size = config.vqgan.resolution

    def views(n: int, generator: torch.Generator) -> dict:  # fresh sources and targets
        pairs = scenes.sample_pairs(max(1, n // 2), size, generator=generator)
        return {"image": torch.cat([pairs.source, pairs.target])}

    model = VQModel(config.vqgan)
    loss = replace(GANAutoencoderLossConfig.tiny(), disc_start=10**9, codebook_weight=1.0)
    optimizer = GANOptimizerConfig(
        base_learning_rate=config.learning_rate / config.batch_size, batch_size=config.batch_size
    )
    seed = 1000 + run.seed if data.seed is None else data.seed
    batches = GeneratedBatches(views, data.num_train, seed)
    sampler = BatchIndexSampler(len(batches), config.batch_size, shuffle=True, seed=run.seed)
    return Plan(
        LitGANAutoencoder(model, loss, optimizer),
        config.num_steps,
        train_dataloaders=BatchLoader(batches, sampler),
        progress_keys=("loss", "rec"),
        export=(model, asdict(config.vqgan)),
        data_note=f"fresh views of the toy scenes at {size} px every batch",
    )


def _first_stage(run: Run):  # noqa: ANN202
    from esser_lab.geofree.first_stage import load_first_stage
    from esser_lab.taming.model import VQModel
    from esser_lab.training.checkpoint import load_checkpoint, read_checkpoint

    if run.first_stage is None:  # tiny: the shipped 16-px VQGAN (cli.Stage.shipped)
        return load_first_stage()
    _, stored = read_checkpoint(run.first_stage)
    model = VQModel(VQModelConfig.from_dict(stored))
    load_checkpoint(model, run.first_stage)
    return model.requires_grad_(False).eval()


def _build_transformer(config: TransformerRun, data: ScenesData, run: Run) -> Plan:
    from esser_lab.data.modules import batch_loader
    from esser_lab.geofree.model import GeoTransformer
    from esser_lab.geofree.training import LitGeoTransformer

    with torch.random.fork_rng(devices=[]):  # the GPT's init draws as right after seeding
        first_stage = _first_stage(run)
    first = first_stage.config
    side = first.resolution // first.ddconfig.factor
    ours = config.transformer
    if ours.vocab_size != first.n_embed or tuple(ours.latent_shape) != (side, side):
        raise ValueError(
            f"the transformer's vocab_size {ours.vocab_size} and latent_shape "
            f"{tuple(ours.latent_shape)} must be the VQGAN's {first.n_embed} codes and "
            f"({side}, {side}) grid: pass --set model.transformer.vocab_size={first.n_embed} "
            f"--set 'model.transformer.latent_shape=[{side}, {side}]'"
        )
    model = GeoTransformer(ours, first_stage)
    train = _pairs(data, first.resolution, run)
    names = ("source", "target", "source_depth", "R", "t", "K", "K_inv")
    fields = {k: getattr(train, k) for k in names}
    with torch.no_grad():  # the frozen first stage's codes, once (as the chapter)
        for key in ("source", "target"):
            fields[f"{key}_codes"] = torch.cat(
                [model.encode_to_z(x) for x in getattr(train, key).split(512)]
            )
    return Plan(
        LitGeoTransformer(model, config.num_steps),
        config.num_steps,
        train_dataloaders=batch_loader(fields, ours.batch_size, shuffle=True, seed=run.seed),
        data_note=f"{data.num_train} view pairs at {first.resolution} px and their codes",
    )


def _build_explicit(config: BaselineRun, data: ScenesData, run: Run) -> Plan:
    from esser_lab.data.modules import batch_loader
    from esser_lab.geofree.baseline import ExplicitBaseline
    from esser_lab.geofree.training import LitExplicitBaseline

    size = _first_stage_size(run.preset)
    train = _pairs(data, size, run)
    names = ("source", "target", "source_depth", "R", "t", "K", "K_inv")
    fields = {k: getattr(train, k) for k in names}
    system = LitExplicitBaseline(
        ExplicitBaseline(), config.learning_rate, config.warmup_steps, config.num_steps
    )
    return Plan(
        system,
        config.num_steps,
        train_dataloaders=batch_loader(fields, config.batch_size, shuffle=True, seed=run.seed),
        data_note=f"{data.num_train} view pairs at {size} px",
    )


def _first_stage_size(preset: str) -> int:
    return _vqgan(preset).vqgan.resolution  # the chapter's view size (16 or 32 px)


STAGES = {
    "vqgan": Stage(
        "the VQGAN of the views (exports vqgan.safetensors; one ships for tiny)",
        _vqgan,
        _data,
        _build_vqgan,
    ),
    "transformer": Stage(
        "the geometry-free transformer on the frozen VQGAN's codes",
        _transformer,
        _data,
        _build_transformer,
        needs="vqgan",
        shipped=("tiny",),
    ),
    "explicit": Stage(
        "the explicit baseline: warp with estimated depth, then fill the holes",
        _baseline,
        _data,
        _build_explicit,
    ),
}
