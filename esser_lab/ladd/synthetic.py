"""Chapter 18's synthetic training data at ``tiny``, shipped beside the teacher.

LADD trains on the teacher's own guided samples (Sec. 3.3 of the paper). At ``tiny`` these are the
shipped teacher's samples for the chapter's 512 training captions (captioned sprites, seed 1): 25
guided Euler steps on the uniform grid, guidance 3, from noise seeded 10. Generating them costs
about 13 s of the chapter's minute on one core, the same every run, so the package ships them
(CHAPTER.md, *shipped stages*): ``weights/synthetic_tiny.safetensors`` holds the latents and the
caption tokens they belong to, re-made bit for bit on a CPU with one thread by
``python -m esser_lab.ladd.synthetic`` (:func:`make_synthetic`, which calls the same
:func:`esser_lab.ladd.method.synthesize` the chapter shows), its sha256 recorded in
:data:`SHA256` and in ``bench/results/shipped_stages.csv``.

:func:`load_synthetic` returns the shipped latents only for exactly the settings and captions they
were made with (else None, and the chapter generates them itself, saying so): at ``small`` and
``full`` and at the longer CPU budget the data are generated live.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["SETTINGS", "SHA256", "SYNTHETIC", "load_synthetic", "make_synthetic"]

SYNTHETIC = Path(__file__).resolve().parent / "weights" / "synthetic_tiny.safetensors"
COMMAND = "python -m esser_lab.ladd.synthetic"
#: the sha256 of the shipped file (a test checks it; re-making the file must reproduce it)
SHA256 = "612e7358c9ed337ce2dffa5624c7d05b16658eca4aff836c3a90b9f985322ac5"
METADATA_KEY = "esser_lab"
#: how the shipped latents were made: the chapter's settings at tiny
SETTINGS = {"count": 512, "caption_seed": 1, "steps": 25, "guidance": 3.0, "seed": 10, "shift": 1.0}


def make_synthetic() -> tuple[Tensor, Tensor]:
    """``(latents, tokens)``: the shipped teacher's guided samples for the captions of
    :data:`SETTINGS` (the chapter's tiny training set), as the chapter would generate them."""
    from esser_lab.ladd.method import synthesize
    from esser_lab.ladd.teacher import TEXT_SEED, load_teacher, sprite_latents
    from esser_lab.sd3.text import ToyTextEncoder

    teacher = load_teacher()
    encoder = ToyTextEncoder(teacher.config.context_dim, teacher.config.adm_in, seed=TEXT_SEED)
    latents, sprites = sprite_latents(SETTINGS["count"], seed=SETTINGS["caption_seed"])
    null = {k: torch.zeros_like(v) for k, v in encoder.encode(sprites.tokens[:1]).items()}
    synthetic = synthesize(
        teacher,
        encoder.encode(sprites.tokens),
        null,
        tuple(latents.shape[1:]),
        steps=SETTINGS["steps"],
        guidance=SETTINGS["guidance"],
        shift=SETTINGS["shift"],
        seed=SETTINGS["seed"],
    )
    return synthetic.contiguous(), sprites.tokens.contiguous()


def load_synthetic(
    tokens: Tensor,
    *,
    steps: int,
    guidance: float,
    seed: int,
    shift: float = 1.0,
    path: str | Path = SYNTHETIC,
) -> Tensor | None:
    """The shipped synthetic latents for the captions ``tokens`` made with these settings, or
    None when the file was made for other captions or settings (then generate them)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: re-make it with `{COMMAND}`")
    with safe_open(str(path), framework="pt") as handle:
        metadata = json.loads((handle.metadata() or {}).get(METADATA_KEY, "{}"))
        if metadata.get("settings") != SETTINGS:
            raise ValueError(f"{path} was made with other settings; re-make it with `{COMMAND}`")
        wanted = {"count": len(tokens), "steps": steps, "guidance": float(guidance)}
        wanted |= {"seed": seed, "shift": float(shift)}
        if any(SETTINGS[key] != value for key, value in wanted.items()):
            return None
        if not torch.equal(handle.get_tensor("tokens"), tokens.cpu()):
            return None
        return handle.get_tensor("latents")


if __name__ == "__main__":
    import time

    from safetensors.torch import save_file

    from esser_lab.ladd.teacher import _record, file_sha256

    torch.set_num_threads(1)  # bit-for-bit reproducible on a CPU
    start = time.perf_counter()
    latents, tokens = make_synthetic()
    seconds = time.perf_counter() - start
    metadata = {"made_by": COMMAND, "settings": SETTINGS}
    save_file(
        {"latents": latents, "tokens": tokens},
        str(SYNTHETIC),
        metadata={METADATA_KEY: json.dumps(metadata, sort_keys=True)},
    )
    _record(SYNTHETIC, seconds, command=COMMAND)
    print(
        f"wrote {SYNTHETIC} ({SYNTHETIC.stat().st_size / 1e6:.2f} MB, {seconds:.0f} s); "
        f"sha256 {file_sha256(SYNTHETIC)}"
    )
