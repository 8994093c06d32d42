"""The first stage of Stable Diffusion 3: its 16-channel VAE, the latent format, the toy's AE.

Stable Diffusion 3 (Esser, Kulal, Blattmann et al., ICML 2024; arXiv 2403.03206, Sec. 5.2.1,
Table 3) keeps latent diffusion's KL autoencoder (chapter 14's :class:`AutoencoderKL`, f = 8) and
widens its latent from 4 to 16 channels (PSNR 25.12 → 28.62). The released VAE (official
``sd3_impls.SDVAE`` of github.com/Stability-AI/sd3.5) is the LDM layout with ``z_channels=16``,
widths 128·(1, 2, 4, 4), two residual blocks per level, middle attention only, and **no**
``quant_conv``/``post_quant_conv``: :func:`sd3_vae_config`, loaded strictly by
:func:`load_sd3_vae` from an SD3 single file (``first_stage_model.*``) or a standalone VAE file.

The diffusion model works on *normalised* latents (official ``SD3LatentFormat``)::

    z = (E(x) − shift) · scale,    x̂ = D(z / scale + shift),   shift 0.0609, scale 1.5305

(:class:`LatentFormat`, :func:`encode_latents`, :func:`decode_latents`). Conventions: images
``(b, 3, H, W)`` in [−1, 1]; ``encode_latents`` draws a posterior sample as the official
``SDVAE.encode`` (``sample=False`` gives the mean).

The chapter's toy ships its own first stage (CHAPTER.md's *shipped stages*): a small KL
autoencoder of the same family, 16 px → 8×8×4 (f = 2, no quant convs, as SD3's), trained on
captioned sprites with L1 + KL as LDM weights them (no LPIPS, no discriminator), its shift and
scale measured on the data and stored in the file's metadata.
``python -m esser_lab.sd3.first_stage`` re-makes ``weights/ae_tiny.safetensors`` bit for bit on
a CPU with one thread; :func:`load_toy_first_stage` reads it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from esser_lab.nn.first_stage import AutoencoderKL, AutoencoderKLConfig, DDConfig

__all__ = [
    "SD3_LATENT_FORMAT",
    "WEIGHTS",
    "LatentFormat",
    "decode_latents",
    "encode_latents",
    "load_sd3_vae",
    "load_toy_first_stage",
    "psnr",
    "sd3_vae_config",
    "toy_first_stage_config",
    "train_toy_first_stage",
]

WEIGHTS = Path(__file__).resolve().parent / "weights" / "ae_tiny.safetensors"
COMMAND = "python -m esser_lab.sd3.first_stage"
STEPS, BATCH_SIZE, LEARNING_RATE = 1200, 16, 2e-3
#: LDM's KL weight (``kl_weight: 1e-6`` on the summed KL, against the summed L1 per image)
KL_WEIGHT = 1e-6
STATISTICS_IMAGES = 4096  # images whose latents give the shift and scale
#: the file's one metadata entry, a JSON object: safetensors writes several entries in a random
#: order (a hash map), which would change the file's bytes from one re-make to the next
METADATA_KEY = "esser_lab"


@dataclass(frozen=True)
class LatentFormat:
    """``z = (latent − shift) · scale`` into the diffusion model, and back (official
    ``SD3LatentFormat.process_in`` / ``process_out``)."""

    shift: float
    scale: float

    def process_in(self, latent: Tensor) -> Tensor:
        return (latent - self.shift) * self.scale

    def process_out(self, z: Tensor) -> Tensor:
        return z / self.scale + self.shift


SD3_LATENT_FORMAT = LatentFormat(shift=0.0609, scale=1.5305)


def sd3_vae_config() -> AutoencoderKLConfig:
    """SD3's VAE (official ``SDVAE``): 16 latent channels, f = 8, no quant convs."""
    dd = DDConfig(z_channels=16, ch_mult=(1, 2, 4, 4), num_res_blocks=2, attn_resolutions=())
    return AutoencoderKLConfig(ddconfig=dd, embed_dim=16, use_quant_conv=False)


def toy_first_stage_config() -> AutoencoderKLConfig:
    """The shipped toy: chapter 14's ``tiny(factor=2)`` (width 32, 16 px) without quant convs."""
    return dataclasses.replace(AutoencoderKLConfig.tiny(factor=2), use_quant_conv=False)


def _format_of(ae: AutoencoderKL, latent_format: LatentFormat | None) -> LatentFormat:
    latent_format = latent_format or getattr(ae, "latent_format", None)
    if not isinstance(latent_format, LatentFormat):
        raise ValueError(
            "no latent format: pass latent_format=LatentFormat(shift, scale) (SD3's VAE: "
            "SD3_LATENT_FORMAT), or load the autoencoder with load_sd3_vae / "
            "load_toy_first_stage, which attach theirs"
        )
    return latent_format


def encode_latents(
    ae: AutoencoderKL,
    images: Tensor,
    *,
    generator: torch.Generator | None = None,
    sample: bool = True,
    latent_format: LatentFormat | None = None,
) -> Tensor:
    """Images ``(b, 3, H, W)`` in [−1, 1] → normalised latents ``z = (E(x) − shift)·scale``
    ``(b, c, H/f, W/f)``; a posterior sample drawn from ``generator`` (the mean if not
    ``sample``). The format is ``latent_format`` or the one the loader attached to ``ae``."""
    latent_format = _format_of(ae, latent_format)
    return latent_format.process_in(ae.encode_latent(images, generator=generator, sample=sample))


def decode_latents(
    ae: AutoencoderKL, z: Tensor, *, latent_format: LatentFormat | None = None
) -> Tensor:
    """Normalised latents → images: ``D(z / scale + shift)``."""
    return ae.decode_latent(_format_of(ae, latent_format).process_out(z))


def load_sd3_vae(
    source: str | Path | dict,
    dtype: torch.dtype | None = torch.float32,
    config: AutoencoderKLConfig | None = None,
) -> AutoencoderKL:
    """SD3's VAE with released weights, frozen, its latent format attached.

    ``source``: an SD3 single file (``sd3_medium.safetensors``, ``sd3.5_large.safetensors``: only
    its ``first_stage_model.*`` tensors are read), a standalone ``sd3_vae.safetensors`` (bare
    ``encoder.*``/``decoder.*``), or a state dict. Strict: a missing or extra key, a shape that
    differs, or the diffusers layout (``vae/diffusion_pytorch_model.safetensors``) is an error
    naming the keys (that layout reads with
    ``esser_lab.ldm.diffusers_layout.load_diffusers_autoencoder(path, sd3_vae_config())``).
    ``config``: :func:`sd3_vae_config` when None (another one for tests).
    """
    from esser_lab.ldm.checkpoint import FIRST_STAGE_PREFIX, load_first_stage

    path = Path(source) if isinstance(source, str | Path) else None
    if path is not None and path.suffix == ".safetensors" and path.is_file():
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as file:  # read the VAE's tensors only
            keys = list(file.keys())
            if any(key.startswith(FIRST_STAGE_PREFIX) for key in keys):
                keys = [key for key in keys if key.startswith(FIRST_STAGE_PREFIX)]
            source = {key: file.get_tensor(key) for key in keys}
    model = load_first_stage(source, config or sd3_vae_config(), dtype=dtype)
    model.latent_format = SD3_LATENT_FORMAT
    return model


def train_toy_first_stage(
    steps: int = STEPS,
    batch_size: int = BATCH_SIZE,
    seed: int = 0,
    statistics_images: int = STATISTICS_IMAGES,
) -> tuple[AutoencoderKL, LatentFormat]:
    """Train the toy autoencoder on fresh captioned sprites every step (deterministic on a CPU),
    then measure its latent format: ``shift`` = mean, ``scale`` = 1 / std of posterior samples of
    ``statistics_images`` fresh images (SD3's 0.0609 / 1.5305 are such numbers for its VAE).

    Loss per image: Σ|x − x̂| + ``KL_WEIGHT``·KL(q(z|x) ‖ N(0, I)), LDM's weighting without its
    LPIPS, discriminator and learned log-variance; Adam (0.5, 0.9) as LDM's first stages.
    """
    from esser_lab.sd3.data import captioned_batch

    torch.manual_seed(seed)
    model = AutoencoderKL(toy_first_stage_config())
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, betas=(0.5, 0.9))
    generator = torch.Generator().manual_seed(seed)
    size = model.config.resolution
    for _ in range(steps):
        x = captioned_batch(batch_size, size, generator=generator).image
        x_hat, posterior = model(x, generator=generator)
        loss = ((x_hat - x).abs().flatten(1).sum(1) + KL_WEIGHT * posterior.kl()).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval().requires_grad_(False)
    with torch.no_grad():
        x = captioned_batch(statistics_images, size, generator=generator).image
        latents = model.encode_latent(x, generator=generator)
    latent_format = LatentFormat(shift=latents.mean().item(), scale=1.0 / latents.std().item())
    return model, latent_format


def load_toy_first_stage(path: str | Path = WEIGHTS) -> AutoencoderKL:
    """The shipped toy autoencoder, frozen, its latent format (from the file) attached."""
    from esser_lab.weights import load_weights, read_metadata

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: re-make it with `{COMMAND}`")
    metadata = json.loads(read_metadata(path).get(METADATA_KEY, "{}"))
    missing = [key for key in ("config", "latent_shift", "latent_scale") if key not in metadata]
    if missing:
        raise ValueError(f"{path} lacks the metadata {missing}; re-make it with `{COMMAND}`")
    config = AutoencoderKLConfig.from_dict(metadata["config"])
    model = AutoencoderKL(config)
    load_weights(model, path, what="chapter 17's toy autoencoder")
    model.latent_format = LatentFormat(metadata["latent_shift"], metadata["latent_scale"])
    return model.eval().requires_grad_(False)


def psnr(ae: AutoencoderKL, images: Tensor) -> float:
    """Reconstruction PSNR (dB) of images in [−1, 1] through the posterior mean."""
    from esser_lab.metrics.transfer import psnr as pooled_psnr

    with torch.no_grad():
        x_hat = ae.decode_latent(ae.encode_latent(images, sample=False))
    return pooled_psnr(x_hat, images)


def _record(path: Path, seconds: float) -> None:
    """Upsert this file's row of bench/results/shipped_stages.csv (in a source checkout)."""
    import csv
    import datetime
    import hashlib
    import subprocess

    root = Path(__file__).resolve().parents[2]
    table = root / "bench" / "results" / "shipped_stages.csv"
    if not table.parent.is_dir():
        return
    name = str(path.relative_to(root))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    row = {
        "file": name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "bytes": str(path.stat().st_size),
        "seconds": f"{seconds:.1f}",
        "command": COMMAND,
        "commit": commit,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
    }
    rows = []
    if table.is_file():
        with table.open(newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if r["file"] != name]
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        writer.writeheader()
        writer.writerows([*rows, row])


if __name__ == "__main__":
    import time

    from esser_lab.sd3.data import captioned_batch
    from esser_lab.weights import save_weights

    torch.set_num_threads(1)  # bit-for-bit reproducible on a CPU
    start = time.perf_counter()
    trained, found = train_toy_first_stage()
    seconds = time.perf_counter() - start
    metadata = {
        "made_by": COMMAND,
        "config": dataclasses.asdict(trained.config),
        "latent_shift": found.shift,
        "latent_scale": found.scale,
    }
    save_weights(trained, WEIGHTS, {METADATA_KEY: json.dumps(metadata, sort_keys=True)})
    _record(WEIGHTS, seconds)
    held_out = captioned_batch(1024, 16, generator=torch.Generator().manual_seed(12345)).image
    print(
        f"wrote {WEIGHTS} ({WEIGHTS.stat().st_size / 1e6:.2f} MB, {seconds:.0f} s); "
        f"shift {found.shift:.4f}, scale {found.scale:.4f}; "
        f"held-out PSNR {psnr(trained, held_out):.2f} dB"
    )
