"""esser_lab against the library people use: the same model, the same weights, timed in one run.

Usage (from the repository root; diffusers is a benchmark-only dependency, ``make bench-peers``
installs it into the environment)::

    python bench/peers.py                 # every comparison, results into bench/results/peers.csv
    python bench/peers.py --repeats 10

Torch runs with one thread (``--threads``): on a shared 2-core machine two threads contend and
the timings scatter.

VQGAN: ``esser_lab.taming.VQModel`` against ``diffusers.VQModel`` configured to the same
architecture (the taming layout needs attention blocks exactly at the levels whose resolution is
in ``attn_resolutions``), with our weights copied in under diffusers' names. Before timing, the
two reconstructions of one batch are checked equal (max abs difference ≤ 1e-4); a mismatch stops
the benchmark. Then one training step (forward, L1 reconstruction + codebook loss, backward) is
timed for each, alternating, and the median of ``--repeats`` steps is recorded.

GPT sampling: chapter 10's sampler with the key/value cache against the same sampler re-running
the whole sequence at every step (what minGPT does without a cache); both must draw the same
tokens from the same generator before they are timed.

Rows of ``bench/results/peers.csv``: ``model, peer, config, ours_s, peer_s, ratio, date, torch,
peer_version, threads`` with ``ratio = peer_s / ours_s`` (above 1: ours is faster). A row is
replaced when the same (model, peer, config) is measured again.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import re
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "peers.csv"
FIELDS = ["model", "peer", "config", "ours_s", "peer_s", "ratio", "date", "torch", "peer_version"]
FIELDS.append("threads")
sys.path.insert(0, str(REPO))

from esser_lab.taming.model import VQGANConfig, VQModel  # noqa: E402


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


def to_diffusers_state_dict(state: dict[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """Our (= the official taming) names → diffusers' names (1×1 attention convs → Linear)."""
    out = {}
    attention = {
        "norm": "group_norm",
        "q": "to_q",
        "k": "to_k",
        "v": "to_v",
        "proj_out": "to_out.0",
    }
    for key, value in state.items():
        new = key.replace("nin_shortcut", "conv_shortcut").replace("norm_out", "conv_norm_out")
        new = new.replace("mid.block_1", "mid_block.resnets.0").replace(
            "mid.block_2", "mid_block.resnets.1"
        )
        match = re.match(
            r"(encoder|decoder)\.(?:mid\.attn_1|(down|up)\.(\d+)\.attn\.(\d+))\.(\w+)\.(\w+)$", key
        )
        if match:
            part, direction, level, index, layer, kind = match.groups()
            if direction is None:
                prefix = f"{part}.mid_block.attentions.0"
            else:
                i = int(level) if direction == "down" else levels - 1 - int(level)
                prefix = f"{part}.{direction}_blocks.{i}.attentions.{index}"
            new = f"{prefix}.{attention[layer]}.{kind}"
            if layer != "norm" and kind == "weight":
                value = value[:, :, 0, 0]
        else:
            new = re.sub(r"encoder\.down\.(\d+)\.block\.", r"encoder.down_blocks.\1.resnets.", new)
            new = re.sub(
                r"encoder\.down\.(\d+)\.downsample\.",
                r"encoder.down_blocks.\1.downsamplers.0.",
                new,
            )
            new = re.sub(
                r"decoder\.up\.(\d+)\.block\.",
                lambda m: f"decoder.up_blocks.{levels - 1 - int(m[1])}.resnets.",
                new,
            )
            new = re.sub(
                r"decoder\.up\.(\d+)\.upsample\.",
                lambda m: f"decoder.up_blocks.{levels - 1 - int(m[1])}.upsamplers.0.",
                new,
            )
        out[new] = value
    return out


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
    converted = to_diffusers_state_dict(ours.state_dict(), len(config.ch_mult))
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
    times: dict[str, list[float]] = {"ours": [], "peer": []}
    for _ in range(2):  # warm-up
        _step_ours(ours, x)
        _step_peer(peer, x)
    for _ in range(repeats):
        for key, model, step in (("ours", ours, _step_ours), ("peer", peer, _step_peer)):
            model.zero_grad(set_to_none=True)
            start = time.perf_counter()
            step(model, x)
            times[key].append(time.perf_counter() - start)
    ours_s, peer_s = statistics.median(times["ours"]), statistics.median(times["peer"])
    print(f"{name}: ours {ours_s * 1e3:.1f} ms, diffusers {peer_s * 1e3:.1f} ms per step")
    return {
        "model": "VQGAN training step (fwd+bwd)",
        "peer": "diffusers.VQModel",
        "config": name,
        "ours_s": f"{ours_s:.4f}",
        "peer_s": f"{peer_s:.4f}",
        "ratio": f"{peer_s / ours_s:.3f}",
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

    def run(use_cache: bool) -> tuple[torch.Tensor, float]:
        generator = torch.Generator().manual_seed(1)
        start = time.perf_counter()
        tokens = sample(gpt, cond, steps, use_cache=use_cache, generator=generator)
        return tokens, time.perf_counter() - start

    cached, _ = run(True)
    full, _ = run(False)
    if not torch.equal(cached, full):
        raise SystemExit(f"{name}: cached and uncached sampling drew different tokens; not timing")
    print(f"{name}: cached and uncached sampling agree on {cached.numel()} tokens")
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeats):
        for use_cache in (True, False):
            times[use_cache].append(run(use_cache)[1])
    ours_s, peer_s = statistics.median(times[True]), statistics.median(times[False])
    print(f"{name}: with cache {ours_s * 1e3:.1f} ms, without {peer_s * 1e3:.1f} ms")
    return {
        "model": "GPT sampling (kv cache)",
        "peer": "same sampler without cache",
        "config": name,
        "ours_s": f"{ours_s:.4f}",
        "peer_s": f"{peer_s:.4f}",
        "ratio": f"{peer_s / ours_s:.3f}",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import diffusers  # noqa: F401
    except ImportError:
        raise SystemExit("diffusers is not installed: `make bench-peers` installs it") from None
    rows = [
        time_vqgan(name, config, batch, args.repeats) for name, (config, batch) in CONFIGS.items()
    ]
    rows += [
        time_gpt_sampling(name, kwargs, batch, steps, args.repeats)
        for name, (kwargs, batch, steps) in GPT_CONFIGS.items()
    ]
    record(rows, args.results)
    print(f"recorded {len(rows)} rows in {args.results}")


if __name__ == "__main__":
    main()
