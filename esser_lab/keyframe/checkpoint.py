"""The released guided-inpainting checkpoints, read strictly into :class:`KeyframeGenerator`.

Esser, Michael & Sengupta 2022 (arXiv 2205.09731), chapter 15. The release (runwayml/
guided-inpainting README: ``models/<model>.ckpt`` for ``ours``, ``ours_big``, ``ours_no_ffc``,
``transformer``, ``lama``) holds Lightning 1.x checkpoints of the whole training system
(``DefaultInpaintingTrainingModule``). Its ``state_dict`` has

* ``generator.*`` — the ``GIResNetGenerator``: ``generator.model.<i>.…`` (the encoder, the
  latent initialisation, the GIBlocks, the decoder, indexed as one ``nn.Sequential``) and
  ``generator.deformable_writes.<i>.…``; these are read, strictly, into our class;
* ``discriminator.*`` (the PatchGAN), ``flow.*`` (the frozen RAFT), ``loss_resnet_pl.*`` (the
  ADE20k ResNet-50 of the perceptual loss) and, when averaging was on, ``generator_average.*``:
  not part of the generator, left out by the ``generator.`` prefix.

The file is read with ``torch.load(weights_only=True)``. Besides the Lightning callback classes
and numpy scalars that :mod:`esser_lab.weights` allow-lists, the official system calls
``save_hyperparameters`` on its OmegaConf config, so Lightning pickles that ``DictConfig`` (and
its type) under ``hyper_parameters``: exactly the OmegaConf container, metadata and node classes
(and ``typing.Any``, the containers' key type) are allow-listed too, each mapped to an inert
stand-in (OmegaConf need not be installed, and nothing in the file runs). OmegaConf 2.1 (the
official environment's pin) also pickles two builtins in every ``ContainerMetadata``:
``object_type=dict`` (the global ``builtins.dict``) and ``resolver_cache=defaultdict(dict)``
(``collections.defaultdict``, rebuilt by a call). Both are mapped to stand-ins too: a class that
holds nothing for ``builtins.dict``, and a plain ``dict`` subclass that ignores its default
factory for ``defaultdict`` (its items are kept, no factory is ever called). This list is written
from OmegaConf 2.1's pickle format and tested on files written in that format, not checked
against the released files, which the book does not ship; a global outside it is refused with
its name.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from esser_lab.keyframe.model import KeyframeConfig, KeyframeGenerator
from esser_lab.weights import WeightsError, _Inert, _safe_globals, _unwrap, load_weights

__all__ = ["GENERATOR_PREFIX", "load_keyframe_generator", "read_official_state"]

GENERATOR_PREFIX = "generator."
#: The other parts of the official system's state dict (left out, named in messages).
OTHER_PREFIXES = ("discriminator.", "flow.", "loss_resnet_pl.", "generator_average.")
OMEGACONF_GLOBALS = (
    "omegaconf.dictconfig.DictConfig",
    "omegaconf.listconfig.ListConfig",
    "omegaconf.base.ContainerMetadata",
    "omegaconf.base.Metadata",
    "omegaconf.nodes.AnyNode",
    "omegaconf.nodes.StringNode",
    "omegaconf.nodes.IntegerNode",
    "omegaconf.nodes.FloatNode",
    "omegaconf.nodes.BooleanNode",
)
HINT = (
    "Download the checkpoint from the guided-inpainting README's link (models/<model>.ckpt; "
    "esser_lab never downloads) and put it under data/checkpoints/keyframe/"
)
LAYOUT = (
    "the guided-inpainting Lightning checkpoint layout: a 'state_dict' whose generator tensors "
    "are under 'generator.' (generator.model.<i>.…, generator.deformable_writes.<i>.…)"
)


class _FactorylessDict(dict):
    """Stands in for ``collections.defaultdict``: a plain dict; the factory is dropped."""

    def __init__(self, factory: object = None, *args: object) -> None:
        super().__init__()


def _allowed() -> list:
    inert = [(type(name.rsplit(".", 1)[1], (_Inert,), {}), name) for name in OMEGACONF_GLOBALS]
    builtins = [(type("dict", (_Inert,), {}), "builtins.dict"),
                (_FactorylessDict, "collections.defaultdict")]  # fmt: skip
    return [*_safe_globals(), *inert, *builtins, (typing.Any, "typing.Any")]


def read_official_state(path: str | Path) -> dict[str, Tensor]:
    """The ``generator.*`` tensors of an official checkpoint, prefix removed."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path}. {HINT}")
    try:
        with torch.serialization.safe_globals(_allowed()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 (torch raises several types for bad files)
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise WeightsError(
            f"could not read {path} weights-only (allow-list: Lightning callbacks, numpy "
            f"scalars, OmegaConf containers): {first}"
        ) from None
    state = _unwrap(checkpoint, path)
    generator = {k.removeprefix(GENERATOR_PREFIX): v for k, v in state.items()
                 if k.startswith(GENERATOR_PREFIX)}  # fmt: skip
    if not generator:
        found = sorted({k.split(".", 1)[0] + "." for k in state})[:8]
        raise WeightsError(
            f"{path} does not follow {LAYOUT}: no key starts with 'generator.'; its top-level "
            f"prefixes are {found}"
        )
    return generator


def load_keyframe_generator(
    source: str | Path | Mapping[str, Tensor], config: KeyframeConfig | None = None
) -> KeyframeGenerator:
    """A :class:`KeyframeGenerator` of ``config`` (default :meth:`KeyframeConfig.paper`, i.e.
    ``ours.yaml``) holding the released generator's weights; strict (missing and unexpected
    keys named). ``source``: a checkpoint path or its ``generator.*`` state dict, prefix removed."""
    config = KeyframeConfig.paper() if config is None else config
    state = read_official_state(source) if isinstance(source, str | Path) else dict(source)
    if any(k.startswith(("generator.", *OTHER_PREFIXES, "state_dict")) for k in state):
        raise WeightsError(
            "pass the checkpoint's path, or its generator tensors with the 'generator.' prefix "
            f"removed (read_official_state); got keys such as {sorted(state)[:3]}. Expected "
            + LAYOUT
        )
    model = KeyframeGenerator(config)
    try:
        return load_weights(model, state, what="guided-inpainting generator")
    except WeightsError as error:
        raise WeightsError(f"{error}. Expected {LAYOUT}, at the config {config}") from None
