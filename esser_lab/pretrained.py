"""Pretrained components: published weights, or seeded stand-ins of the same architecture.

One rule for every network the book borrows (CHAPTER.md, "Pretrained components"), picked by
``Scale.pretrained`` (``ESSER_LAB_PRETRAINED``):

* ``"published"`` (``small``/``full`` by default): the released weights. A file the user placed
  under ``data/checkpoints/`` is read first; otherwise the weights are fetched by the standard
  mechanism and checked against their published checksum — torchvision's weights API for VGG16
  and VGG19 (ImageNet, ``IMAGENET1K_V1``; the SHA-256 prefix in the file name), and for LPIPS's
  linear layers the URL and MD5 the official taming-transformers code uses (``taming/util.py``:
  ``vgg_lpips``). Everything is loaded tensor-only (``weights_only=True``).
* ``"stand-in"`` (``tiny``, the tests, CI's ``small`` pass): the same architecture with seeded
  random weights (VGG: torchvision's own initialisation, Kaiming normal; LPIPS's linear layers:
  non-negative, as LPIPS constrains them). Nothing downloads. A stand-in measures nothing
  perceptual: a chapter that uses one says so in its output (:func:`describe`).

Only the convolutional trunk of VGG (keys ``features.N.*``) is returned: it is all that LPIPS and
the VGG19 feature loss use (the classifier would be 480 MB of the 528 MB).

Networks read through Hugging Face ``transformers`` (an optional extra, ``pip install
esser-lab[pretrained]``; Gen-1's CLIP and MiDaS, SD3's text encoders) share
:class:`TransformersSource`: a local folder (``local_files_only``: never downloads) or a hub
repository at a pinned commit, allowed at small or full scale with published weights only.
``transformers`` is imported by the loaders alone (:func:`require_transformers`), never by
``import esser_lab``.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from esser_lab.losses.lpips import LPIPS
    from esser_lab.losses.perceptual import VGG19FeatureLoss

__all__ = [
    "LPIPS_LIN_MD5",
    "LPIPS_LIN_URL",
    "TransformersSource",
    "checkpoint_folder",
    "describe",
    "lpips",
    "lpips_lin_state_dict",
    "require_transformers",
    "vgg16_state_dict",
    "vgg19_feature_loss",
    "vgg19_state_dict",
]

# LPIPS v0.1 VGG linear weights as the official taming-transformers code fetches them
# (taming/util.py: URL_MAP / MD5_MAP["vgg_lpips"], saved there as vgg.pth)
LPIPS_LIN_URL = "https://heibox.uni-heidelberg.de/f/607503859c864bc1b30b/?dl=1"
LPIPS_LIN_MD5 = "d507d7349b931f0638a25a48a722f98a"
LPIPS_CHANNELS = (64, 128, 256, 512, 512)
# torchvision's VGG configurations: "D" is VGG16, "E" is VGG19
_VGG_CONFIG = {"vgg16": "D", "vgg19": "E"}


def checkpoint_folder() -> Path:
    """``data/checkpoints`` under the repository (or the working directory outside a checkout)."""
    from esser_lab.cards import repository_root

    return (repository_root() or Path.cwd()) / "data" / "checkpoints"


def _check_choice(pretrained: str) -> None:
    if pretrained not in ("published", "stand-in"):
        raise ValueError(f"pretrained must be 'published' or 'stand-in', got {pretrained!r}")


def describe(pretrained: str, what: str) -> str:
    """The line a chapter prints about ``what`` (e.g. ``"LPIPS (VGG16)"``)."""
    _check_choice(pretrained)
    if pretrained == "published":
        return f"{what}: published weights."
    return (
        f"{what}: STAND-IN, the same architecture with seeded random weights "
        "(ESSER_LAB_PRETRAINED=stand-in); it measures nothing perceptual, so the numbers that "
        "depend on it are not the paper's."
    )


# --------------------------------------------------------------------------------------------
# VGG16 / VGG19 trunks (torchvision layout, ``features.N.*``)
# --------------------------------------------------------------------------------------------


def _fetch_torchvision(name: str) -> dict[str, Tensor]:
    """torchvision's ImageNet weights for ``name``, downloaded with their hash checked."""
    from torchvision.models import VGG16_Weights, VGG19_Weights

    weights = {"vgg16": VGG16_Weights, "vgg19": VGG19_Weights}[name].IMAGENET1K_V1
    return weights.get_state_dict(progress=True, check_hash=True, weights_only=True)


def _stand_in_vgg(name: str, seed: int) -> dict[str, Tensor]:
    """VGG's trunk with torchvision's initialisation, from a private generator (global RNG kept)."""
    from torchvision.models.vgg import cfgs, make_layers

    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # building the layers draws their default init
        features = make_layers(cfgs[_VGG_CONFIG[name]])
    with torch.no_grad():
        for module in features.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(
                    module.weight, mode="fan_out", nonlinearity="relu", generator=generator
                )
                nn.init.zeros_(module.bias)
    return {f"features.{k}": v for k, v in features.state_dict().items()}


def _stand_in_keys(name: str) -> list[str]:
    from torchvision.models.vgg import cfgs, make_layers

    with torch.device("meta"):  # names only: no memory, no random numbers drawn
        return [f"features.{k}" for k in make_layers(cfgs[_VGG_CONFIG[name]]).state_dict()]


def _trunk(state: dict[str, Tensor], name: str, source: str) -> dict[str, Tensor]:
    trunk = {k: v for k, v in state.items() if k.startswith("features.")}
    expected = set(_stand_in_keys(name))
    if set(trunk) != expected:
        missing = sorted(expected - set(trunk))
        unexpected = sorted(set(trunk) - expected)
        raise ValueError(
            f"{source}: not torchvision's {name} state dict (keys features.N.weight/bias); "
            f"missing {missing[:6]}, unexpected {unexpected[:6]}"
        )
    return trunk


def _default_vgg_path(name: str) -> Path:
    # where the book has always told users to put them
    folder = checkpoint_folder()
    return folder / "lpips" / "vgg16.pth" if name == "vgg16" else folder / "vgg19" / "vgg19.pth"


def _vgg_state_dict(
    name: str, pretrained: str, path: str | Path | None, seed: int
) -> dict[str, Tensor]:
    _check_choice(pretrained)
    if pretrained == "stand-in":
        return _stand_in_vgg(name, seed)
    from esser_lab.losses.perceptual import load_state_dict_file

    path = Path(path) if path is not None else _default_vgg_path(name)
    if path.is_file():
        return _trunk(load_state_dict_file(path), name, str(path))
    print(f"{name}: {path} not found; fetching torchvision's ImageNet weights (hash checked)")
    return _trunk(_fetch_torchvision(name), name, f"torchvision's {name} ImageNet weights")


def vgg16_state_dict(
    pretrained: str, path: str | Path | None = None, *, seed: int = 0
) -> dict[str, Tensor]:
    """VGG16's trunk (LPIPS): ``data/checkpoints/lpips/vgg16.pth``, else torchvision's weights."""
    return _vgg_state_dict("vgg16", pretrained, path, seed)


def vgg19_state_dict(
    pretrained: str, path: str | Path | None = None, *, seed: int = 0
) -> dict[str, Tensor]:
    """VGG19's trunk (feature loss): ``data/checkpoints/vgg19/vgg19.pth``, else torchvision's."""
    return _vgg_state_dict("vgg19", pretrained, path, seed)


# --------------------------------------------------------------------------------------------
# LPIPS's linear layers
# --------------------------------------------------------------------------------------------


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, destination: Path, md5: str) -> None:
    """``url`` → ``destination`` (torch.hub's downloader), kept only if its MD5 is ``md5``."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    # one partial file per process: DDP ranks that start at once each fetch into their own file,
    # and the atomic rename below leaves one whole, checked copy whichever finishes first
    partial = destination.with_name(f"{destination.name}.{os.getpid()}.partial")
    torch.hub.download_url_to_file(url, str(partial), progress=True)
    got = _md5(partial)
    if got != md5:
        partial.unlink(missing_ok=True)
        raise ValueError(
            f"checksum mismatch for {url}: MD5 {got}, expected {md5} (the value the official "
            "taming-transformers code checks); the file was discarded. Download it yourself "
            f"and place it at {destination}."
        )
    os.replace(partial, destination)


def _stand_in_lin(seed: int) -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    # non-negative like the trained weights, mean 1/channels so a distance is of order one
    return {
        f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=generator) * (2.0 / c)
        for k, c in enumerate(LPIPS_CHANNELS)
    }


def lpips_lin_state_dict(
    pretrained: str, path: str | Path | None = None, *, seed: int = 0
) -> dict[str, Tensor]:
    """LPIPS's ``lin0`` … ``lin4`` weights: ``data/checkpoints/lpips/vgg.pth``, else fetched.

    A missing file is downloaded from the URL the official taming-transformers code uses and
    kept only when its MD5 matches (``LPIPS_LIN_URL``, ``LPIPS_LIN_MD5``).
    """
    _check_choice(pretrained)
    if pretrained == "stand-in":
        return _stand_in_lin(seed)
    from esser_lab.losses.perceptual import load_state_dict_file

    path = Path(path) if path is not None else checkpoint_folder() / "lpips" / "vgg.pth"
    if not path.is_file():
        print(f"LPIPS: {path} not found; fetching the LPIPS linear weights (MD5 checked)")
        _download(LPIPS_LIN_URL, path, LPIPS_LIN_MD5)
    state = load_state_dict_file(path)
    return {k: v for k, v in state.items() if k.startswith("lin")}


# --------------------------------------------------------------------------------------------
# The losses, built
# --------------------------------------------------------------------------------------------


def lpips(pretrained: str, *, seed: int = 0) -> LPIPS:
    """The VGG16 LPIPS distance with published weights or a seeded stand-in (frozen)."""
    from esser_lab.losses.lpips import LPIPS

    module = LPIPS(pretrained=False)
    source = "published" if pretrained == "published" else f"stand-in (seed {seed})"
    module.load_vgg16_state(vgg16_state_dict(pretrained, seed=seed), source)
    module.load_lin_state(lpips_lin_state_dict(pretrained, seed=seed), source)
    return module


def vgg19_feature_loss(pretrained: str, *, seed: int = 0, **kwargs: Any) -> VGG19FeatureLoss:
    """The VGG19 feature loss (chapters 1 and 8) with published weights or a seeded stand-in."""
    from esser_lab.losses.perceptual import VGG19FeatureLoss

    return VGG19FeatureLoss(vgg19_state_dict(pretrained, seed=seed), **kwargs)


# --------------------------------------------------------------------------------------------
# Networks read through Hugging Face transformers (an optional extra)
# --------------------------------------------------------------------------------------------

_COMMIT = re.compile(r"[0-9a-f]{40}")


def require_transformers(needs: str, without: str) -> ModuleType:
    """``transformers``, imported only here (by a loader); else an ImportError that says who
    ``needs`` it, how to install it, and what works ``without`` it."""
    try:
        import transformers
    except ImportError:
        raise ImportError(
            f"{needs} through Hugging Face transformers, an optional extra: "
            f"`pip install transformers` ({without})"
        ) from None
    return transformers


@dataclass(frozen=True)
class TransformersSource:
    """Where ``from_pretrained`` reads a model, tokenizer or processor from.

    :meth:`folder`: a local copy (``local_files_only``; esser_lab never downloads it).
    :meth:`hub`: a hub repository at a pinned ``revision`` (a 40-hex commit), fetched by
    ``transformers`` into ``huggingface_hub``'s cache (checksummed), allowed only at scale small
    or full with published weights.
    """

    location: str | Path
    revision: str | None = None  # None: a local folder

    @classmethod
    def folder(cls, folder: str | Path, what: str) -> TransformersSource:
        """A local folder holding ``what`` (said in the error when it is not a folder)."""
        root = Path(folder)
        if not root.is_dir():
            raise FileNotFoundError(
                f"{root} is not a folder; expected a local copy of {what}; esser_lab never "
                "downloads it"
            )
        return cls(root)

    @classmethod
    def hub(cls, scale: Any, repository: str, revision: str | None) -> TransformersSource:
        """Refuse a download outside small/full with published weights, or without a pinned
        commit."""
        name = getattr(scale, "name", None)
        if name not in ("small", "full"):
            raise RuntimeError(
                f"{repository} is fetched at small or full scale only, got scale {name!r}: at "
                "tiny, in tests and in CI the chapter uses its stand-ins and nothing downloads"
            )
        if getattr(scale, "pretrained", "published") != "published":
            raise RuntimeError(
                f"ESSER_LAB_PRETRAINED={scale.pretrained}: stand-ins were asked for, so "
                f"{repository} is not fetched"
            )
        if not isinstance(revision, str) or not _COMMIT.fullmatch(revision):
            raise ValueError(
                f"{repository} is fetched at a pinned revision: pass revision= a 40-hex commit "
                f"of the hub repository (got {revision!r}); a branch name such as 'main' is not "
                "pinned"
            )
        return cls(repository, revision)

    def has(self, name: str, part: str | None = None) -> bool:
        """Whether a local folder holds the file ``name`` (in ``part``); a hub repository is
        assumed to hold it (``from_pretrained`` says otherwise when it does not)."""
        if self.revision is not None:
            return True
        root = Path(self.location)
        return ((root / part if part else root) / name).is_file()

    def load(self, loader: Any, part: str | None = None, dtype: Any = None) -> Any:
        """``loader.from_pretrained`` (a transformers class) on this source or its sub-folder
        ``part``, in ``dtype`` when given (a model; tokenizers and processors take none)."""
        kwargs: dict[str, Any] = {}
        if dtype is not None:
            kwargs[_dtype_keyword()] = dtype
        if self.revision is None:
            root = Path(self.location)
            path = root / part if part else root
            return loader.from_pretrained(path, local_files_only=True, **kwargs)
        if part:
            kwargs["subfolder"] = part
        return loader.from_pretrained(self.location, revision=self.revision, **kwargs)


def _dtype_keyword() -> str:
    """``from_pretrained``'s dtype argument: ``dtype`` from transformers 4.56 on (the older
    ``torch_dtype`` is deprecated there), ``torch_dtype`` before."""
    import transformers

    major, minor = (int(part) for part in re.findall(r"\d+", transformers.__version__)[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
