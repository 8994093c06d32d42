"""The one loader for every paper's weights: safetensors and allow-listed PyTorch/Lightning files.

Two formats are read, and nothing is ever unpickled beyond tensors and plain containers:

* ``.safetensors``: the book's own format (:func:`save_weights` writes it; a JSON-able config
  travels in its string metadata).
* ``.ckpt`` / ``.pt`` / ``.pth`` / ``.bin``: PyTorch zip pickles, read with
  ``torch.load(weights_only=True)``. Released Lightning 1.x checkpoints (Taming, LDM, Stable
  Diffusion) also name a handful of non-tensor classes (the ``ModelCheckpoint`` callback is a
  dict *key*; numpy scalars hold its best score); exactly those globals are allow-listed, each
  mapped to an inert stand-in, so ``pytorch_lightning`` 1.x is not needed. Any other global is
  refused with its name, before anything in the file runs.

Loading is strict: every key of the module must be in the file and every key of the file must be
used, with equal shapes. A mismatch names the first keys of each kind with their counts, and when
the file's names look like another known layout (a diffusers export handed to a loader of the
original layout, a whole Lightning system handed to its network, a ``module.``-wrapped DDP state)
the message says which layout was expected and which was found.

Every failure raises one type, :class:`WeightsError` (a ``ValueError``): a missing file (with its
path and where to get it), an unreadable or unsafe file, an unknown suffix, a layout mismatch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = [
    "WeightsError",
    "check_state_dict",
    "describe_layout",
    "load_weights",
    "read_metadata",
    "read_state_dict",
    "save_weights",
]

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
NOT_FOUND_HINT = (
    "Fetch the file yourself and place it there (esser_lab never downloads weights; see "
    "data/README.md)"
)
SHOWN = 10  # keys named per kind in a mismatch message


class WeightsError(ValueError):
    """A weights file that is missing, unreadable, unsafe, or does not fit the model."""


# ---- reading ------------------------------------------------------------------------------------


class _Inert:
    """Stands in for a class named in a checkpoint's pickle: accepts any state, does nothing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        self.state = state


# The non-tensor globals of Lightning 1.x checkpoints of this era: callback classes used as dict
# keys, and the namespace types their hyper-parameters are stored in. Mapped to the stand-in.
LIGHTNING_GLOBALS = (
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    "pytorch_lightning.callbacks.early_stopping.EarlyStopping",
    "pytorch_lightning.callbacks.lr_monitor.LearningRateMonitor",
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "argparse.Namespace",
)


def _safe_globals() -> list:
    import numpy as np

    inert = [(type(name.rsplit(".", 1)[1], (_Inert,), {}), name) for name in LIGHTNING_GLOBALS]
    # numpy scalars (a best-model score) pickle through ``numpy.core.multiarray.scalar``
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    extra = [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar")]
    extra.append(np.dtype)
    extra += [type(np.dtype(t)) for t in ("float64", "float32", "int64")]
    return inert + extra


def _require_file(path: Path, hint: str | None) -> None:
    if not path.is_file():
        where = "is a folder, not a file" if path.is_dir() else "not found"
        raise WeightsError(f"weights file {where}: {path}. {hint or NOT_FOUND_HINT}")


def _read_pickle(path: Path) -> object:
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001  (torch raises several types for bad files)
        message = str(error)
        unsafe = [line.strip() for line in message.splitlines() if "Unsupported global" in line]
        if unsafe:
            named = unsafe[0].split(" was not")[0].removeprefix("WeightsUnpickler error: ")
            raise WeightsError(
                f"refused to read {path}: its pickle names a global outside the allow-list of "
                f"Lightning checkpoint globals ({named}); it is not unpickled further, nothing in "
                "it ran"
            ) from None
        reason = message.splitlines()[0] if message else ""
        raise WeightsError(
            f"could not read {path} as a weights-only PyTorch checkpoint ({type(error).__name__}: "
            f"{reason}): the file is corrupted or truncated, or not a PyTorch file"
        ) from None


def _open_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # noqa: BLE001  (safetensors raises several types for bad files)
        raise WeightsError(
            f"{path} is not a readable safetensors file (corrupted or truncated?): {error}"
        ) from None
    return state, metadata


def _unwrap(checkpoint: object, path: Path) -> dict[str, Tensor]:
    """``checkpoint["state_dict"]`` of a Lightning file, or the file itself if it is one."""
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        state = checkpoint["state_dict"]
    elif isinstance(checkpoint, dict):
        state = checkpoint
    else:
        raise WeightsError(
            f"{path} holds a {type(checkpoint).__name__}, expected a dict of tensors or a "
            "Lightning checkpoint (a dict with 'state_dict')"
        )
    odd = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if odd:
        shown = sorted(map(str, odd))[:SHOWN]
        raise WeightsError(
            f"{path} holds no state dict of tensors: expected ckpt['state_dict'] or a flat "
            f"{{name: tensor}} dict, but {len(odd)} entries are not tensors, e.g. {shown}"
        )
    return dict(state)


def _select(
    state: dict[str, Tensor], prefix: str | None, drop: Iterable[str], source: str
) -> dict[str, Tensor]:
    if isinstance(drop, str):
        raise WeightsError(f"drop must be a tuple of key prefixes, got the string {drop!r}")
    drop = tuple(drop)
    if prefix is not None:
        kept = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
        if not kept:
            found = sorted({k.split(".", 1)[0] + "." for k in state})[:SHOWN]
            raise WeightsError(
                f"{source} has no keys under the prefix {prefix!r}; its top-level prefixes are "
                f"{found}"
            )
        state = kept
    return {k: v for k, v in state.items() if not k.startswith(drop)}


def read_state_dict(
    path: str | Path,
    *,
    prefix: str | None = None,
    drop: Iterable[str] = (),
    hint: str | None = None,
) -> dict[str, Tensor]:
    """The tensors of a weights file, on the CPU, keyed by name.

    ``path``: a ``.safetensors`` file, or a ``.ckpt``/``.pt``/``.pth``/``.bin`` PyTorch file read
    weights-only (a Lightning checkpoint's ``state_dict`` is unwrapped). ``prefix``: keep only the
    keys that start with it, with the prefix removed (``"model.diffusion_model."``). ``drop``: then
    leave out the keys that start with any of these (``("loss.",)``), matched after the prefix
    was removed. ``hint``: what to do when the file is missing (default: place it yourself).
    """
    path = Path(path)
    _require_file(path, hint)
    if path.suffix == ".safetensors":
        state, _ = _open_safetensors(path)
    elif path.suffix in PICKLE_SUFFIXES:
        state = _unwrap(_read_pickle(path), path)
    else:
        raise WeightsError(
            f"unknown weights format {path.suffix or '(no suffix)'!r} of {path}: expected "
            f"'.safetensors' or a PyTorch file ({', '.join(map(repr, PICKLE_SUFFIXES))})"
        )
    return _select(state, prefix, drop, str(path))


def read_metadata(path: str | Path, *, hint: str | None = None) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` file (``{}`` when it has none)."""
    path = Path(path)
    _require_file(path, hint)
    if path.suffix != ".safetensors":
        raise WeightsError(f"only .safetensors files carry metadata, got {path.name!r}")
    return _open_safetensors(path)[1]


# ---- layouts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    name: str
    test: Callable[[set[str]], bool]
    hint: str


def _any(*prefixes: str) -> Callable[[set[str]], bool]:
    return lambda keys: any(k.startswith(prefixes) for k in keys)


def _all(prefix: str) -> Callable[[set[str]], bool]:
    return lambda keys: bool(keys) and all(k.startswith(prefix) for k in keys)


# Most specific first: the first that fits names the layout.
LAYOUTS = (
    _Layout(
        "full LDM / Stable Diffusion checkpoint (CompVis: model.diffusion_model., "
        "first_stage_model., cond_stage_model.)",
        _any("model.diffusion_model."),
        "split it first (esser_lab.ldm.checkpoint.split_ldm_checkpoint) or pass "
        "prefix='model.diffusion_model.' / 'first_stage_model.'",
    ),
    _Layout(
        "Taming Net2NetTransformer checkpoint (transformer., first_stage_model.)",
        lambda keys: _any("transformer.")(keys) and _any("first_stage_model.")(keys),
        "split it first (esser_lab.taming.checkpoint.split_transformer_checkpoint)",
    ),
    _Layout(
        "diffusers UNet (down_blocks., mid_block., up_blocks., time_embedding.)",
        _any("down_blocks.", "up_blocks.", "mid_block.", "time_embedding."),
        "read it with esser_lab.ldm.diffusers_layout.load_diffusers_unet(path, unet_config) "
        "(if that raised this, the file holds another configuration than unet_config)",
    ),
    _Layout(
        "diffusers autoencoder (encoder.down_blocks., decoder.up_blocks.)",
        _any("encoder.down_blocks.", "decoder.up_blocks.", "encoder.mid_block."),
        "read it with esser_lab.ldm.diffusers_layout.load_diffusers_autoencoder(path, config) "
        "(if that raised this, the file holds another configuration than config)",
    ),
    _Layout(
        "diffusers SD3 transformer (transformer_blocks., time_text_embed., pos_embed.proj.)",
        _any("time_text_embed.", "pos_embed.proj."),  # a SpatialTransformer has transformer_blocks.
        "convert it with esser_lab.sd3.checkpoint.mmdit_from_diffusers(state_dict), then "
        "load_mmdit",
    ),
    _Layout(
        "official SD3 MMDiT (mmditx.py: x_embedder., joint_blocks., final_layer.)",
        _any("joint_blocks.", "x_embedder."),
        "",
    ),
    _Layout(
        "original CompVis UNet (input_blocks., middle_block., output_blocks., time_embed.)",
        _any("input_blocks.", "middle_block.", "output_blocks."),
        "",
    ),
    _Layout(
        "original taming/CompVis autoencoder (encoder.down., decoder.up., quant_conv.)",
        _any("encoder.down.", "decoder.up.", "encoder.conv_in."),
        "",
    ),
    _Layout(
        "Hugging Face CLIP text model (text_model.)",
        _any("text_model.", "transformer.text_model."),
        "text encoders come from the transformers package, not from esser_lab's modules",
    ),
    _Layout(
        "DataParallel / DDP wrapper (every key under module.)",
        _all("module."),
        "pass prefix='module.'",
    ),
    _Layout(
        "torch.compile wrapper (every key under _orig_mod.)",
        _all("_orig_mod."),
        "pass prefix='_orig_mod.'",
    ),
    _Layout(
        "Lightning system (every key under model.)",
        _all("model."),
        "the network's weights sit under 'model.': pass prefix='model.'",
    ),
)


def describe_layout(keys: Iterable[str]) -> str | None:
    """The name of the known layout these state-dict keys follow, or ``None``."""
    keys = set(keys)
    return next((layout.name for layout in LAYOUTS if layout.test(keys)), None)


def _layout_note(found_keys: set[str], module_keys: set[str], module_name: str) -> str:
    found = next((layout for layout in LAYOUTS if layout.test(found_keys)), None)
    expected = describe_layout(module_keys)
    if found is None or found.name == expected:
        return ""
    expected = f"the {expected} layout" if expected else f"{module_name}'s own key names"
    example = sorted(found_keys)[0]
    hint = f" ({found.hint})" if found.hint else ""
    return (
        f". The file's keys follow the {found.name} layout (e.g. {example!r}), but {module_name} "
        f"expects {expected}{hint}"
    )


# ---- loading ------------------------------------------------------------------------------------


def _names(keys: list[str]) -> str:
    more = f" … and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
    return f"{keys[:SHOWN]}{more}"


def _rename(
    state: dict[str, Tensor], key_map: Mapping[str, str] | Callable[[str], str], what: str
) -> dict[str, Tensor]:
    renamed: dict[str, Tensor] = {}
    for key, value in state.items():
        new = key_map.get(key, key) if isinstance(key_map, Mapping) else key_map(key)
        if new in renamed:
            raise WeightsError(f"{what}: key_map sends two keys of the file to {new!r}")
        renamed[new] = value
    return renamed


def check_state_dict(module: nn.Module, state: Mapping[str, Tensor], *, what: str) -> None:
    """Raise :class:`WeightsError` unless ``state`` has exactly ``module``'s keys and shapes."""
    expected = module.state_dict()
    name = type(module).__name__
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        note = _layout_note(set(state), set(expected), name)
        raise WeightsError(
            f"{what} does not match {name} (strict): {len(missing)} missing keys "
            f"{_names(missing)}, {len(unexpected)} unexpected keys {_names(unexpected)}{note}"
        )
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if state[k].shape != v.shape
    ]
    if wrong:
        raise WeightsError(
            f"{what} has tensors of the wrong shape for {name} (another config?): "
            f"{len(wrong)} shape mismatches {_names(wrong)}"
        )


def load_weights(
    module: nn.Module,
    source: str | Path | Mapping[str, Tensor],
    *,
    what: str,
    prefix: str | None = None,
    drop: Iterable[str] = (),
    key_map: Mapping[str, str] | Callable[[str], str] | None = None,
    hint: str | None = None,
    assign: bool = False,
) -> nn.Module:
    """Load ``source`` into ``module`` strictly and return ``module``.

    ``source``: a weights file (see :func:`read_state_dict`) or a state dict already in memory.
    ``what`` names the weights in messages ("VQGAN checkpoint last.ckpt"). ``prefix`` and
    ``drop`` select keys as in :func:`read_state_dict`; ``key_map`` then renames the file's keys to
    the module's (a dict, keys it lacks unchanged, or a function). Tensors are copied into the
    module's parameters and buffers (their dtype and device are kept); with ``assign`` the
    module adopts the file's tensors instead (for a module built on the meta device).
    """
    if isinstance(source, Mapping):
        state = _select(dict(source), prefix, drop, what)
    elif isinstance(source, str | Path):
        state = read_state_dict(source, prefix=prefix, drop=drop, hint=hint)
    else:
        raise WeightsError(
            f"{what}: source must be a path or a state dict, got {type(source).__name__}"
        )
    if key_map is not None:
        state = _rename(state, key_map, what)
    check_state_dict(module, state, what=what)
    module.load_state_dict(state, strict=True, assign=assign)
    return module


def adopt_weights(
    module: nn.Module,
    source: str | Path | Mapping[str, Tensor],
    *,
    what: str,
    dtype: torch.dtype | None = torch.float32,
    **options,
) -> nn.Module:
    """Like :func:`load_weights` for a ``module`` built on the meta device: it adopts the file's
    tensors (no random initialisation first, no second copy of a large model).

    ``dtype``: the floating-point dtype of the result (``None``: the file's, e.g. float16).
    Raises :class:`WeightsError` if a tensor of the module was not in the file (it would stay
    on the meta device). ``options``: those of :func:`load_weights`.
    """
    load_weights(module, source, what=what, assign=True, **options)
    left = [name for name, t in module.state_dict().items() if t.is_meta]
    if left:  # neither a parameter nor a persistent buffer the file holds
        raise WeightsError(f"{what}: {len(left)} tensors were not in the file: {left[:5]}")
    return module if dtype is None else module.to(dtype)


# ---- writing ------------------------------------------------------------------------------------


def save_weights(
    module_or_state: nn.Module | Mapping[str, Tensor],
    path: str | Path,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a module's state dict (or a state dict) to a ``.safetensors`` file; return its path.

    ``metadata``: string keys and string values stored in the header (a config as JSON, say).
    Tensors that share memory (tied weights) are written as separate copies.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsError(f"weights are saved as .safetensors files, got {path.name!r}")
    if isinstance(module_or_state, nn.Module):
        state = module_or_state.state_dict()
    elif isinstance(module_or_state, Mapping):
        state = dict(module_or_state)
    else:
        raise WeightsError(
            f"save_weights takes an nn.Module or a state dict, got {type(module_or_state).__name__}"
        )
    metadata = dict(metadata or {})
    odd = {k: type(v).__name__ for k, v in metadata.items() if not isinstance(v, str)}
    if odd or not all(isinstance(k, str) for k in metadata):
        raise WeightsError(
            f"safetensors metadata maps strings to strings (use json.dumps), got {odd or metadata}"
        )
    from safetensors.torch import save_file

    tensors: dict[str, Tensor] = {}
    seen: set[int] = set()
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise WeightsError(f"{key!r} is a {type(value).__name__}, not a tensor")
        value = value.detach().cpu().contiguous()
        pointer = value.untyped_storage().data_ptr()
        tensors[key] = value.clone() if pointer in seen and value.numel() else value
        seen.add(pointer)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return path
