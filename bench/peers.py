"""esser_lab against the library people use: the same model, the same weights, timed in one run.

Usage (from the repository root; diffusers is a benchmark-only dependency, ``make bench-peers``
installs it into the environment)::

    python bench/peers.py                 # every comparison, results into bench/results/peers.csv
    python bench/peers.py --repeats 10
    python bench/peers.py --only unet ddim kl --match tiny    # some comparisons, some configs
    python bench/peers.py --only mmdit                        # chapter 17's rows

Torch runs with one thread (``--threads``): on a shared 2-core machine two threads contend and
the timings scatter. Each comparison alternates ours and the peer step by step, swapping which
goes first at every repeat (after two untimed warm-up steps of each), and records the medians,
their interquartile ranges (the run-to-run spread) and the 1-minute load average.

VQGAN: ``esser_lab.taming.VQModel`` against ``diffusers.VQModel`` configured to the same
architecture (the taming layout needs attention blocks exactly at the levels whose resolution is
in ``attn_resolutions``), with our weights copied in under diffusers' names. Before timing, the
two reconstructions of one batch are checked equal (max abs difference ≤ 1e-4); a mismatch stops
the benchmark. Then one training step (forward, L1 reconstruction + codebook loss, backward) is
timed for each, alternating, and the median of ``--repeats`` steps is recorded.

GPT sampling: chapter 10's sampler with the key/value cache against the same sampler re-running
the whole sequence at every step (what minGPT does without a cache); both must draw the same
tokens from the same generator before they are timed.

Latent diffusion (chapter 14), each with our weights under diffusers' names and checked equal
before timing (max |ours − peer| ≤ 1e-4 · max |peer|; a mismatch stops the benchmark):

* the UNet: ``esser_lab.nn.unet.UNetModel`` against ``diffusers.UNet2DConditionModel`` with the
  same blocks (:func:`diffusers_unet`; names by ``esser_lab.ldm.diffusers_layout``, the renaming the
  book's diffusers loaders invert), the zero-init
  layers given random weights so that every branch is compared; a training step = forward and
  backward of the MSE to a random target, at the chapter's ``UNetConfig.tiny()`` and at Stable
  Diffusion v1's widths on 16×16 latents with ``use_checkpoint`` off (diffusers does not
  checkpoint by default). At SD size both models hold the same weight tensors (no second
  3.4 GB copy); their gradients are separate.
* DDIM (η = 0) from the same noise: ``esser_lab.diffusion.ddim_sample`` with our UNet against
  ``DDIMScheduler(scaled_linear 0.00085 → 0.012, set_alpha_to_one=False, steps_offset=1)``
  driving diffusers' UNet, and driving ours (only the loops differ); the final latents must
  agree to 1e-4 of their scale (our ᾱ tables are float64, diffusers' float32).
* the KL autoencoder: ``esser_lab.nn.first_stage.AutoencoderKL`` against
  ``diffusers.AutoencoderKL``; a training step = encode, posterior sample (the same noise),
  decode, L1 + 1e-6 · KL, backward; at ``AutoencoderKLConfig.tiny(4)`` and the KL-f8 widths on
  64×64 images.

Stable Diffusion 3 (chapter 17): ``esser_lab.sd3.MMDiT`` against ``diffusers.SD3Transformer2DModel``
configured the same (:func:`diffusers_sd3`), our weights under diffusers' names
(``esser_lab.sd3.checkpoint.mmdit_to_diffusers``: q, k, v split, the two (shift, scale)
modulations swapped), the adaLN-Zero layers given random weights first; outputs and the patch
embedding's gradients checked equal (max |ours − peer| ≤ 1e-4 · max |peer|) before timing. A
training step = forward and backward of the MSE to a random target, at the chapter's
``MMDiTConfig.tiny()`` and at SD3.5-medium's width (1536, 24 heads, QK-norm, ``attn2`` in block
0) at depth 2 on a 16×16 latent.

Rows of ``bench/results/peers.csv``: ``model, peer, config, ours_s, peer_s, ratio, date, torch,
peer_version, threads, ours_iqr_s, peer_iqr_s, repeats, load`` with ``ratio = peer_s / ours_s``
(above 1: ours is faster). A row is replaced when the same (model, peer, config) is measured
again; rows measured before the spread columns existed leave them empty.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "peers.csv"
FIELDS = ["model", "peer", "config", "ours_s", "peer_s", "ratio", "date", "torch", "peer_version"]
FIELDS += ["threads", "ours_iqr_s", "peer_iqr_s", "repeats", "load"]
sys.path.insert(0, str(REPO))

from esser_lab.ldm.diffusers_layout import autoencoder_to_diffusers, unet_to_diffusers  # noqa: E402
from esser_lab.ldm.model import LDMConfig  # noqa: E402
from esser_lab.nn.first_stage import AutoencoderKL, AutoencoderKLConfig  # noqa: E402
from esser_lab.nn.unet import UNetConfig, UNetModel  # noqa: E402
from esser_lab.sd3.checkpoint import mmdit_to_diffusers  # noqa: E402
from esser_lab.sd3.model import MMDiT, MMDiTConfig  # noqa: E402
from esser_lab.taming.model import VQGANConfig, VQModel  # noqa: E402


def alternate(
    name: str,
    ours: Callable[[], object],
    peer: Callable[[], object],
    repeats: int,
    warmup: int = 2,
    before: tuple[Callable[[], object], Callable[[], object]] | None = None,
) -> dict[str, str]:
    """Time ``ours()`` and ``peer()`` alternately ``repeats`` times each (after ``warmup`` untimed
    calls of both), in the order ours-peer, peer-ours, ours-peer, …; ``before`` runs untimed
    ahead of each call (e.g. ``zero_grad``). Returns the
    row fields: medians, ratio = peer / ours and the interquartile ranges (run-to-run spread).
    """
    calls = {"ours": ours, "peer": peer}
    setups = dict(zip(calls, before or (lambda: None, lambda: None), strict=True))
    for _ in range(warmup):
        for key in calls:
            setups[key]()
            calls[key]()
    times: dict[str, list[float]] = {"ours": [], "peer": []}
    for repeat in range(repeats):
        # ours first, then the peer first: whichever runs second finds the memory the other
        # just freed (at SD size several percent of a step: page faults on fresh gradients)
        for key in ("ours", "peer") if repeat % 2 == 0 else ("peer", "ours"):
            setups[key]()
            start = time.perf_counter()
            calls[key]()
            times[key].append(time.perf_counter() - start)
    median = {k: statistics.median(v) for k, v in times.items()}
    spread = {k: _iqr(v) for k, v in times.items()}
    print(
        f"{name}: ours {median['ours'] * 1e3:.1f} ms (IQR {spread['ours'] * 1e3:.1f}), "
        f"peer {median['peer'] * 1e3:.1f} ms (IQR {spread['peer'] * 1e3:.1f}), "
        f"ratio peer/ours {median['peer'] / median['ours']:.3f}"
    )
    return {
        "ours_s": f"{median['ours']:.4f}",
        "peer_s": f"{median['peer']:.4f}",
        "ratio": f"{median['peer'] / median['ours']:.3f}",
        "ours_iqr_s": f"{spread['ours']:.4f}",
        "peer_iqr_s": f"{spread['peer']:.4f}",
        "repeats": str(repeats),
    }


def _iqr(values: list[float]) -> float:
    if len(values) < 4:
        return max(values) - min(values)
    q1, _, q3 = statistics.quantiles(values, n=4)
    return q3 - q1


def diffusers_vqmodel(config: VQGANConfig):
    """A ``diffusers.VQModel`` with the module tree of our :class:`VQModel` for ``config``."""
    from diffusers import VQModel as DiffusersVQModel

    levels = len(config.ch_mult)
    sizes = [config.resolution // 2**i for i in range(levels)]
    attn = [size in config.attn_resolutions for size in sizes]
    down = ["AttnDownEncoderBlock2D" if a else "DownEncoderBlock2D" for a in attn]
    # diffusers lists the decoder's blocks from the lowest resolution up
    up = ["AttnUpDecoderBlock2D" if a else "UpDecoderBlock2D" for a in reversed(attn)]
    return DiffusersVQModel(
        in_channels=config.in_channels,
        out_channels=config.out_ch,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        block_out_channels=tuple(config.ch * m for m in config.ch_mult),
        layers_per_block=config.num_res_blocks,
        act_fn="silu",
        latent_channels=config.z_channels,
        sample_size=config.resolution,
        num_vq_embeddings=config.n_embed,
        norm_num_groups=32,
        vq_embed_dim=config.embed_dim,
        norm_type="group",
        mid_block_add_attention=True,
        lookup_from_codebook=False,
        force_upcast=False,
    )


def _step_ours(model: VQModel, x: torch.Tensor) -> None:
    rec, q = model(x)
    loss = (rec - x).abs().mean() + q.loss
    loss.backward()


def _step_peer(model, x: torch.Tensor) -> None:
    h = model.encode(x).latents
    out = model.decode(h)
    loss = (out.sample - x).abs().mean() + out.commit_loss.mean()
    loss.backward()


def time_vqgan(name: str, config: VQGANConfig, batch: int, repeats: int) -> dict:
    import diffusers

    torch.manual_seed(0)
    ours = VQModel(config)
    peer = diffusers_vqmodel(config)
    converted = autoencoder_to_diffusers(ours.state_dict(), len(config.ch_mult))
    missing, unexpected = peer.load_state_dict(converted, strict=False)
    if missing or unexpected:
        raise SystemExit(
            f"weight mapping incomplete: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    x = torch.rand(batch, config.in_channels, config.resolution, config.resolution) * 2 - 1
    with torch.no_grad():
        ours_rec = ours(x)[0]
        peer_rec = peer.decode(peer.encode(x).latents).sample
    difference = (ours_rec - peer_rec).abs().max().item()
    if difference > 1e-4:
        raise SystemExit(f"{name}: outputs differ by {difference:.2e} (> 1e-4); not timing")
    print(f"{name}: outputs agree (max abs difference {difference:.1e})")
    row = alternate(
        name,
        lambda: _step_ours(ours, x),
        lambda: _step_peer(peer, x),
        repeats,
        before=(lambda: ours.zero_grad(set_to_none=True), lambda: peer.zero_grad(set_to_none=True)),
    )
    return {
        "model": "VQGAN training step (fwd+bwd)",
        "peer": "diffusers.VQModel",
        "config": name,
        **row,
        "peer_version": diffusers.__version__,
    }


def time_gpt_sampling(name: str, gpt_kwargs: dict, batch: int, steps: int, repeats: int) -> dict:
    """Our GPT's sampler with the key/value cache ("ours") against the same sampler re-running
    the whole sequence every step ("peer"), as minGPT without a cache does; the two must draw
    the same tokens for the same generator."""
    from esser_lab.nn.transformer import GPT
    from esser_lab.taming.sampling import sample

    torch.manual_seed(0)
    gpt = GPT(**gpt_kwargs).eval()
    cond = torch.zeros(batch, 1, dtype=torch.long)

    def run(use_cache: bool) -> torch.Tensor:
        generator = torch.Generator().manual_seed(1)
        return sample(gpt, cond, steps, use_cache=use_cache, generator=generator)

    cached, full = run(True), run(False)
    if not torch.equal(cached, full):
        raise SystemExit(f"{name}: cached and uncached sampling drew different tokens; not timing")
    print(f"{name}: cached and uncached sampling agree on {cached.numel()} tokens")
    row = alternate(name, lambda: run(True), lambda: run(False), repeats, warmup=0)
    return {
        "model": "GPT sampling (kv cache)",
        "peer": "same sampler without cache",
        "config": name,
        **row,
        "peer_version": "esser_lab",
    }


GPT_CONFIGS = {
    # chapter 10's tiny GPT: 16 codes (4×4) after one class token, batch 16
    "tiny 2x64, 16 tokens, batch 16": (
        dict(vocab_size=42, block_size=64, n_layer=2, n_head=4, n_embd=64),
        16,
        16,
    ),
    # the FacesHQ/D-RIN transformer's width at 4 layers: 128 tokens, batch 2
    "4x1024, 128 tokens, batch 2": (
        dict(vocab_size=1024, block_size=512, n_layer=4, n_head=16, n_embd=1024),
        2,
        128,
    ),
}


# ---------------------------------------------------------------------------------------------
# Latent diffusion: the UNet, DDIM sampling and the KL autoencoder against diffusers


def diffusers_unet(config: UNetConfig):
    """A ``diffusers.UNet2DConditionModel`` with the block structure of our ``UNetModel``.

    diffusers can express our SpatialTransformer UNets without ``label_emb``, with
    ``conv_resample``, without ``resblock_updown``, ``use_scale_shift_norm`` or dropout, and with
    heads × head width = width at every attended level (its ``attention_head_dim`` is a head
    count). A ``ValueError`` names what it cannot express.
    """
    c = config
    unsupported = {
        "num_classes": c.num_classes is not None,
        "use_spatial_transformer": not c.use_spatial_transformer,
        "use_scale_shift_norm": c.use_scale_shift_norm,
        "resblock_updown": c.resblock_updown,
        "conv_resample": not c.conv_resample,
        "dropout": c.dropout != 0,  # diffusers' transformers would not drop out
    }
    if any(unsupported.values()):
        raise ValueError(f"no UNet2DConditionModel equivalent: {unsupported}")
    widths = [c.model_channels * m for m in c.channel_mult]
    attended = [2**i in c.attention_resolutions for i in range(len(widths))]
    heads = [c.attention_heads(w)[0] for w in widths]
    for width, attends in zip(widths, attended[:-1] + [True], strict=True):  # + the middle
        h, dim_head = c.attention_heads(width)
        if attends and h * dim_head != width:
            raise ValueError(f"at width {width}, {h} × {dim_head} ≠ width: diffusers splits evenly")
    from diffusers import UNet2DConditionModel

    down = ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attended]
    up = ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attended)]
    return UNet2DConditionModel(
        sample_size=c.image_size,
        in_channels=c.in_channels,
        out_channels=c.out_channels,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        block_out_channels=tuple(widths),
        layers_per_block=c.num_res_blocks,
        cross_attention_dim=c.context_dim,
        attention_head_dim=tuple(heads),  # diffusers' name; it is the number of heads
        transformer_layers_per_block=c.transformer_depth,
        norm_num_groups=32,
        norm_eps=1e-5,
        dropout=c.dropout,
    )


def _nonzero_init(model: torch.nn.Module, seed: int) -> None:
    """Give the zero-initialised layers (``out``, ``proj_out``, the ResBlocks' last conv) random
    weights N(0, 1/fan_in), so that the equality check sees every branch."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1 and not parameter.any():
                fan_in = parameter[0].numel()
                parameter.copy_(torch.randn(parameter.shape, generator=generator) / fan_in**0.5)


def _check_close(name: str, what: str, ours: torch.Tensor, peer: torch.Tensor, rtol: float) -> None:
    """Stop unless max |ours − peer| ≤ rtol · max |peer| (the scale of the output)."""
    difference = (ours - peer).abs().max().item()
    scale = peer.abs().max().item()
    if not difference <= rtol * max(scale, 1e-12):
        raise SystemExit(
            f"{name}: {what} differ by {difference:.2e} (max |peer| {scale:.2e}, allowed "
            f"{rtol:.0e} of it); not timing"
        )
    print(f"{name}: {what} agree (max abs difference {difference:.1e}, max |value| {scale:.1e})")


def _unet_pair(config: UNetConfig, share: bool):
    """Our UNet (random, zero-init layers filled) and diffusers' with the same weights: copied,
    or with ``share`` the very same storage (no second copy of SD's 3.4 GB)."""
    torch.manual_seed(0)
    ours = UNetModel(config)
    _nonzero_init(ours, 1)
    with torch.device("meta" if share else "cpu"):  # on meta: no second initialisation
        peer = diffusers_unet(config)
    converted = unet_to_diffusers(ours.state_dict(), config)
    peer.load_state_dict(converted, strict=True, assign=share)
    if any(tensor.is_meta for tensor in peer.state_dict().values()):
        raise SystemExit("diffusers' UNet kept a tensor on the meta device")
    return ours, peer


UNET_RTOL = 1e-4  # float32 through ~30 layers, two summation orders


def time_unet(name: str, config: UNetConfig, side: int, batch: int, tokens: int, repeats: int):
    """One training step, forward + backward of the MSE to a random target, of each UNet."""
    import diffusers
    import torch.nn.functional as F

    ours, peer = _unet_pair(config, share=config.model_channels >= 128)
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(batch, config.in_channels, side, side, generator=generator)
    t = torch.randint(0, 1000, (batch,), generator=generator)
    context = torch.randn(batch, tokens, config.context_dim, generator=generator)
    target = torch.randn(batch, config.out_channels, side, side, generator=generator)

    def step_ours() -> torch.Tensor:
        out = ours(x, t, context=context)
        F.mse_loss(out, target).backward()
        return out

    def step_peer() -> torch.Tensor:
        out = peer(x, t, encoder_hidden_states=context).sample
        F.mse_loss(out, target).backward()
        return out

    _check_close(name, "outputs", step_ours().detach(), step_peer().detach(), UNET_RTOL)
    grad_ours, grad_peer = ours.input_blocks[0][0].weight.grad, peer.conv_in.weight.grad
    _check_close(name, "conv_in gradients", grad_ours, grad_peer, UNET_RTOL)
    zero = (lambda: ours.zero_grad(set_to_none=True), lambda: peer.zero_grad(set_to_none=True))
    row = alternate(name, step_ours, step_peer, repeats, before=zero)
    return {
        "model": "LDM UNet training step (fwd+bwd, MSE)",
        "peer": "diffusers.UNet2DConditionModel",
        "config": name,
        **row,
        "peer_version": diffusers.__version__,
    }


DDIM_RTOL = 1e-4  # our ᾱ tables are float64, diffusers' float32


def time_ddim(
    name: str,
    config: UNetConfig,
    side: int,
    batch: int,
    tokens: int,
    steps: int,
    same_unet: bool,
    repeats: int,
):
    """DDIM (η = 0) from the same noise: our ``ddim_sample`` with our UNet against diffusers'
    ``DDIMScheduler`` with diffusers' UNet (``same_unet``: with our UNet too, so that only the
    sampling loops differ). Stable Diffusion's schedule (0.00085 → 0.012, T = 1000)."""
    import diffusers
    from diffusers import DDIMScheduler

    from esser_lab.diffusion import DiscreteSchedule, ddim_sample, ddim_timesteps, discrete_time

    ours_unet, peer_unet = _unet_pair(config, share=config.model_channels >= 128)
    ours_unet.eval()
    peer_unet.eval()
    generator = torch.Generator().manual_seed(3)
    noise = torch.randn(batch, config.in_channels, side, side, generator=generator)
    context = torch.randn(batch, tokens, config.context_dim, generator=generator)
    schedule = DiscreteSchedule.stable_diffusion()
    denoiser = discrete_time(lambda x, n, cond: ours_unet(x, n, context=cond), schedule.T)
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    scheduler.set_timesteps(steps)
    ours_tau = ddim_timesteps(schedule.T, steps).flip(0)
    if not torch.equal(scheduler.timesteps, ours_tau):
        raise SystemExit(f"{name}: timesteps differ: {scheduler.timesteps} vs {ours_tau}")

    def unet_peer(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if same_unet:
            return ours_unet(x, t.expand(x.shape[0]), context=context)
        return peer_unet(x, t, encoder_hidden_states=context).sample

    @torch.no_grad()
    def sample_ours() -> torch.Tensor:
        return ddim_sample(denoiser, noise, schedule, steps=steps, eta=0.0, cond=context)

    @torch.no_grad()
    def sample_peer() -> torch.Tensor:
        scheduler.set_timesteps(steps)
        x = noise
        for t in scheduler.timesteps:
            x = scheduler.step(unet_peer(x, t), t, x).prev_sample
        return x

    _check_close(name, "final latents", sample_ours(), sample_peer(), DDIM_RTOL)
    row = alternate(name, sample_ours, sample_peer, repeats, warmup=1)
    peer = "DDIMScheduler + our UNet" if same_unet else "DDIMScheduler + UNet2DConditionModel"
    return {
        "model": f"DDIM sampling, {steps} steps (eta 0)",
        "peer": f"diffusers.{peer}",
        "config": name,
        **row,
        "peer_version": diffusers.__version__,
    }


def diffusers_autoencoder_kl(config: AutoencoderKLConfig):
    """A ``diffusers.AutoencoderKL`` with the module tree of our :class:`AutoencoderKL`."""
    dd = config.ddconfig
    if dd.attn_resolutions or config.embed_dim != dd.z_channels:
        raise ValueError(
            "diffusers.AutoencoderKL has no level attention and embed_dim = z_channels; got "
            f"attn_resolutions={dd.attn_resolutions}, embed_dim={config.embed_dim}, "
            f"z_channels={dd.z_channels}"
        )
    from diffusers import AutoencoderKL as DiffusersAutoencoderKL

    levels = len(dd.ch_mult)
    return DiffusersAutoencoderKL(
        in_channels=dd.in_channels,
        out_channels=dd.out_ch,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(dd.ch * m for m in dd.ch_mult),
        layers_per_block=dd.num_res_blocks,
        latent_channels=dd.z_channels,
        norm_num_groups=32,
        sample_size=dd.resolution,
        force_upcast=False,
        mid_block_add_attention=True,
    )


KL_WEIGHT = 1e-6  # LDM's kl_weight


def time_autoencoder_kl(
    name: str, config: AutoencoderKLConfig, side: int, batch: int, repeats: int
) -> dict:
    """One training step of each KL autoencoder: encode → posterior sample (the same noise from
    the same seed) → decode; L1 + 1e-6 · KL, backward."""
    import diffusers

    torch.manual_seed(0)
    ours = AutoencoderKL(config)
    peer = diffusers_autoencoder_kl(config)
    levels = len(config.ddconfig.ch_mult)
    peer.load_state_dict(autoencoder_to_diffusers(ours.state_dict(), levels), strict=True)
    x = torch.rand(batch, config.in_channels, side, side) * 2 - 1

    def step_ours() -> torch.Tensor:
        posterior = ours.encode(x)
        rec = ours.decode(posterior.sample(torch.Generator().manual_seed(4)))
        loss = (rec - x).abs().mean() + KL_WEIGHT * posterior.kl().mean()
        loss.backward()
        return rec

    def step_peer() -> torch.Tensor:
        posterior = peer.encode(x).latent_dist
        rec = peer.decode(posterior.sample(torch.Generator().manual_seed(4))).sample
        loss = (rec - x).abs().mean() + KL_WEIGHT * posterior.kl().mean()
        loss.backward()
        return rec

    _check_close(name, "reconstructions", step_ours().detach(), step_peer().detach(), 1e-4)
    grad_ours = ours.encoder.conv_in.weight.grad
    _check_close(name, "conv_in gradients", grad_ours, peer.encoder.conv_in.weight.grad, 1e-4)
    zero = (lambda: ours.zero_grad(set_to_none=True), lambda: peer.zero_grad(set_to_none=True))
    row = alternate(name, step_ours, step_peer, repeats, before=zero)
    return {
        "model": "KL autoencoder training step (fwd+bwd, L1+KL)",
        "peer": "diffusers.AutoencoderKL",
        "config": name,
        **row,
        "peer_version": diffusers.__version__,
    }


_SD = replace(UNetConfig.stable_diffusion_v1(), use_checkpoint=False)
UNET_CONFIGS = {
    # UNetConfig.tiny() (widths 32/64, a 2-head transformer at ds 2), one class token
    "tiny (UNetConfig.tiny()), 8px, batch 16": (UNetConfig.tiny(), 8, 16, 1),
    "tiny (UNetConfig.tiny()), 16px, batch 16": (UNetConfig.tiny(), 16, 16, 1),
    # chapter 14's denoiser (LDMConfig.tiny(): width 32 on both levels) as the chapter trains it:
    # on 16×16 grey pixels and on the f = 4 latents (4×4×4), batch 32
    "chapter 14 (LDMConfig.tiny()), 16px pixels, batch 32": (LDMConfig.tiny(1, 16).unet, 16, 32, 1),
    "chapter 14 (LDMConfig.tiny()), 4x4x4 latents, batch 32": (LDMConfig.tiny(4, 4).unet, 4, 32, 1),
    # SD v1's widths (859.5 M) on 16×16 latents (128 px images), 77 CLIP tokens, batch 1;
    # use_checkpoint off (diffusers does not checkpoint by default)
    "SD v1 widths (use_checkpoint off), 16x16 latent, 77 tokens, batch 1": (_SD, 16, 1, 77),
}
DDIM_CONFIGS = {
    # name: (config, side, batch, tokens, steps, same_unet)
    "tiny, 8px, batch 16": (UNetConfig.tiny(), 8, 16, 1, 50, False),
    "tiny, 8px, batch 16, our UNet in both": (UNetConfig.tiny(), 8, 16, 1, 50, True),
    "SD v1 widths, 16x16 latent, batch 1": (_SD, 16, 1, 77, 10, False),
}
KL_CONFIGS = {
    # the chapter's tiny KL autoencoder (f = 4, width 32), 16 px
    "tiny f4 (AutoencoderKLConfig.tiny(4)), 16px, batch 16": (AutoencoderKLConfig.tiny(4), 16, 16),
    # the released KL-f8 (= SD's VAE, 83.65 M) on 64×64 images
    "KL-f8 widths, 64px, batch 1": (AutoencoderKLConfig.kl_f8(), 64, 1),
}


# Stable Diffusion 3: the MMDiT against diffusers' SD3Transformer2DModel


def diffusers_sd3(config: MMDiTConfig):
    """A ``diffusers.SD3Transformer2DModel`` with the blocks of our :class:`MMDiT` (``config``)."""
    if config.backbone != "mmdit" or config.mlp_ratio != 4.0:
        raise ValueError(
            "diffusers' SD3Transformer2DModel is the MMDiT with a 4x MLP; got backbone="
            f"{config.backbone!r}, mlp_ratio={config.mlp_ratio}"
        )
    from diffusers import SD3Transformer2DModel

    return SD3Transformer2DModel(
        sample_size=config.pos_embed_max_size * config.patch_size // 2,
        patch_size=config.patch_size,
        in_channels=config.in_channels,
        out_channels=config.in_channels,
        num_layers=config.depth,
        attention_head_dim=config.width // config.heads,
        num_attention_heads=config.heads,
        joint_attention_dim=config.context_dim,
        caption_projection_dim=config.width,
        pooled_projection_dim=config.adm_in,
        pos_embed_max_size=config.pos_embed_max_size,
        qk_norm="rms_norm" if config.qk_norm else None,
        dual_attention_layers=config.x_block_self_attn_layers,
    )


MMDIT_RTOL = 1e-4  # float32, two attention kernels and summation orders


def time_mmdit(
    name: str, config: MMDiTConfig, side: int, batch: int, tokens: int, repeats: int
) -> dict:
    """One training step, forward + backward of the MSE to a random target, of each MMDiT."""
    import diffusers
    import torch.nn.functional as F

    torch.manual_seed(0)
    ours = MMDiT(config)
    _nonzero_init(ours, 1)  # adaLN-Zero: the modulations and the final linear
    peer = diffusers_sd3(config)
    peer.load_state_dict(mmdit_to_diffusers(ours.state_dict()), strict=True)
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(batch, config.in_channels, side, side, generator=generator)
    t = torch.rand(batch, generator=generator)
    cond = {
        "context": torch.randn(batch, tokens, config.context_dim, generator=generator),
        "pooled": torch.randn(batch, config.adm_in, generator=generator),
    }
    target = torch.randn(x.shape, generator=generator)

    def step_ours() -> torch.Tensor:
        out = ours(x, t, cond)
        F.mse_loss(out, target).backward()
        return out

    def step_peer() -> torch.Tensor:
        out = peer(
            hidden_states=x,
            encoder_hidden_states=cond["context"],
            pooled_projections=cond["pooled"],
            timestep=1000 * t,  # the official timestep = 1000·sigma, as MMDiT embeds it
        ).sample
        F.mse_loss(out, target).backward()
        return out

    _check_close(name, "outputs", step_ours().detach(), step_peer().detach(), MMDIT_RTOL)
    grad_ours, grad_peer = ours.x_embedder.proj.weight.grad, peer.pos_embed.proj.weight.grad
    _check_close(name, "patch-embedding gradients", grad_ours, grad_peer, MMDIT_RTOL)
    zero = (lambda: ours.zero_grad(set_to_none=True), lambda: peer.zero_grad(set_to_none=True))
    row = alternate(name, step_ours, step_peer, repeats, before=zero)
    return {
        "model": "SD3 MMDiT training step (fwd+bwd, MSE)",
        "peer": "diffusers.SD3Transformer2DModel",
        "config": name,
        **row,
        "peer_version": diffusers.__version__,
    }


MMDIT_CONFIGS = {
    # name: (config, latent side, batch, text tokens)
    # chapter 17's denoiser (depth 2, width 32, 2 heads) on 8×8×4 latents of 16-px sprites,
    # 12 caption tokens, the chapter's batch of 64
    "chapter 17 (MMDiTConfig.tiny()), 8x8x4 latent, 12 tokens, batch 64": (
        MMDiTConfig.tiny(),
        8,
        64,
        12,
    ),
    # SD3.5-medium's width (1536, 24 heads, QK-norm; attn2 in block 0) at depth 2, 16 channels,
    # a 16×16 latent (128-px image), 77 tokens of 4096, batch 1
    "SD3.5-medium width, depth 2, 16x16x16 latent, 77 tokens, batch 1": (
        replace(
            MMDiTConfig.sd35_medium(),
            depth=2,
            hidden=1536,
            num_heads=24,
            x_block_self_attn_layers=(0,),
            pos_embed_max_size=96,
        ),
        16,
        1,
        77,
    ),
}


def record(rows: list[dict], path: Path = RESULTS) -> None:
    existing = []
    if path.exists():
        with path.open(newline="") as handle:
            existing = list(csv.DictReader(handle))
    keys = {(r["model"], r["peer"], r["config"]) for r in rows}
    kept = [r for r in existing if (r["model"], r["peer"], r["config"]) not in keys]
    stamp = {"date": dt.date.today().isoformat(), "torch": torch.__version__}
    stamp["threads"] = str(torch.get_num_threads())
    merged = sorted(kept + [{**r, **stamp} for r in rows], key=lambda r: (r["model"], r["config"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows({k: r.get(k, "") for k in FIELDS} for r in merged)


CONFIGS = {
    # chapter 10's tiny VQGAN (f = 2, no level blocks or attention), its batch of 16
    "chapter 10 tiny (VQGANConfig.tiny()), batch 16": (VQGANConfig.tiny(), 16),
    # a deeper tiny variant: f = 4 with level blocks and attention at 4×4
    "tiny 16px ch32 (1,2,2) K=64 batch 16": (
        VQGANConfig(
            resolution=16,
            ch=32,
            ch_mult=(1, 2, 2),
            num_res_blocks=1,
            attn_resolutions=(4,),
            z_channels=32,
            embed_dim=32,
            n_embed=64,
        ),
        16,
    ),
    # the released ImageNet f16-1024 network (72.1 M parameters), on 64×64 inputs so a CPU step
    # takes seconds; attention stays at the last level, as in the release
    "f16-1024 architecture, 64px, batch 2": (
        VQGANConfig(resolution=64, attn_resolutions=(4,)),
        2,
    ),
}


#: name → (configs, function(name, *settings, repeats) → row)
GROUPS = {
    "vqgan": (CONFIGS, time_vqgan),
    "gpt": (GPT_CONFIGS, time_gpt_sampling),
    "unet": (UNET_CONFIGS, time_unet),
    "ddim": (DDIM_CONFIGS, time_ddim),
    "kl": (KL_CONFIGS, time_autoencoder_kl),
    "mmdit": (MMDIT_CONFIGS, time_mmdit),
}


def _load() -> str:
    """The 1-minute load average (the machine is shared: the timings scatter with it)."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--only",
        nargs="+",
        choices=GROUPS,
        default=list(GROUPS),
        help="the comparisons to run (default: all)",
    )
    parser.add_argument(
        "--match", default="", help="run only the configs whose name contains this text"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import diffusers  # noqa: F401
    except ImportError:
        raise SystemExit("diffusers is not installed: `make bench-peers` installs it") from None
    rows = []
    for group in args.only:
        configs, run = GROUPS[group]
        for name, settings in configs.items():
            if args.match in name:
                rows.append({**run(name, *settings, args.repeats), "load": _load()})
    record(rows, args.results)
    print(f"recorded {len(rows)} rows in {args.results}")


if __name__ == "__main__":
    main()
