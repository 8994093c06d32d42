"""Chapter 4 over several seeds: is RoDi's margin over its baselines larger than seed noise?

Usage (from the repository root, in the repository's virtual environment; ``make bench-seeds``)::

    python bench/rodi_seeds.py                  # seeds 0-4, the chapter's tiny configuration
    python bench/rodi_seeds.py --seeds 0 1 2 3 4 5 --epsilon 0.25

Trains RoDi (from γ₀ = 1, the ablations' γ, as the official code starts it), the ``MIMin``
ablation (γ fixed at 1 plus the MI constraint), the autoencoder (γ = 0) and the VAE (γ = 1)
exactly as chapter 4 does (same data,
same test triplets, ``fit_rodi`` from each seed) and scores transfer MSE, reconstruction MSE and
the leak. One model's seed changes its initialisation and the order of its batches' randomness
(the posterior samples); the data set is the chapter's, fixed.

Writes ``bench/results/rodi_seeds.csv`` (``seed,model,epsilon,steps,batch,gamma0,l_gamma,
transfer,reconstruction,leak,date``; rows of the same ε, steps, batch, RoDi's γ₀ and l_γ and seed
are replaced) and prints each model's mean and standard deviation over the seeds. About 60 s per
seed on one core at tiny.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import statistics
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "rodi_seeds.csv"
COLUMNS = [
    "seed", "model", "epsilon", "steps", "batch", "gamma0", "l_gamma",
    "transfer", "reconstruction", "leak", "date",
]  # fmt: skip
# rows recorded before a column existed: batch 32 before the batch column; RoDi from γ₀ = 0 with
# the official l_γ = 0.01 before issue 11 (γ₀ = 1, the ablations' γ, since)
OLD = {"batch": "32", "gamma0": "0.0", "l_gamma": "0.01"}
MODELS = ("RoDi", "MIMin", "AE", "VAE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epsilon", type=float, default=None, help="default: the tiny config's")
    parser.add_argument("--steps", type=int, default=None, help="default: the tiny config's")
    parser.add_argument("--warmup", type=int, default=None, help="default: the tiny config's")
    parser.add_argument("--batch", type=int, default=None, help="default: the tiny config's")
    parser.add_argument(
        "--gamma0", type=float, default=None, help="RoDi's γ₀ = MIMin's and the VAE's γ"
    )
    parser.add_argument("--l-gamma", type=float, default=None, help="default: the config's")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--dry", action="store_true", help="print only, write no CSV rows")
    args = parser.parse_args()

    os.environ.setdefault("ESSER_LAB_SCALE", "tiny")
    from esser_lab import scale

    profile = scale.apply(scale.current())
    from esser_lab.rodi import RoDiConfig, transfer_scores, transfer_triplets
    from esser_lab.rodi.training import FigurePairsDataModule, fit_rodi

    config = RoDiConfig.tiny() if profile.name == "tiny" else RoDiConfig.small()
    if args.epsilon is not None:
        config = replace(config, epsilon=args.epsilon)
    if args.steps is not None:
        config = replace(config, num_steps=args.steps)
    if args.warmup is not None:
        config = replace(config, warmup_steps=args.warmup)
    if args.batch is not None:
        config = replace(config, batch_size=args.batch)
    if args.gamma0 is not None:
        config = replace(config, gamma_init=args.gamma0)
    if args.l_gamma is not None:
        config = replace(config, l_gamma=args.l_gamma)
    # the chapter's data and test set (notebooks/04_rodi.py)
    data = FigurePairsDataModule(
        config.image_size, config.batch_size, 4096, num_val=64, jitter=0.15, seed=0
    )
    test = transfer_triplets(512, config.image_size, seed=12345)
    # the ablations keep γ where RoDi starts it (official: RoDi's gamma_init is the ELBO's
    # kl_weight, which Elbo and MIMin keep fixed)
    every = {
        "RoDi": config,
        "MIMin": config.mimin(config.gamma_init),
        "AE": config.fixed(0.0),
        "VAE": config.fixed(config.gamma_init),
    }
    models = {name: every[name] for name in args.models}

    today = dt.date.today().isoformat()
    rows = []
    for seed in args.seeds:
        for name, model_config in models.items():
            system = fit_rodi(model_config, data, profile, seed=seed, progress_every=10**9)
            scores = transfer_scores(system.model, test)
            rows.append(
                {
                    "seed": seed,
                    "model": name,
                    "epsilon": config.epsilon,
                    "steps": config.num_steps,
                    "batch": config.batch_size,
                    "gamma0": config.gamma_init,
                    "l_gamma": config.l_gamma,
                    **{k: f"{scores[k]:.4f}" for k in ("transfer", "reconstruction", "leak")},
                    "date": today,
                }
            )
            print(f"seed {seed} {name:5s} " + " ".join(f"{k} {scores[k]:.4f}" for k in scores))

    for name in models:
        for key in ("transfer", "reconstruction", "leak"):
            values = [float(r[key]) for r in rows if r["model"] == name]
            spread = statistics.stdev(values) if len(values) > 1 else float("nan")
            print(f"{name:5s} {key:14s} mean {statistics.mean(values):.4f} ± {spread:.4f}")

    if args.dry:
        return
    kept = []
    if RESULTS.exists():
        with RESULTS.open() as f:
            old = [r | {k: r.get(k) or v for k, v in OLD.items()} for r in csv.DictReader(f)]
        kept = [
            r
            for r in old
            if not (
                float(r["epsilon"]) == config.epsilon
                and int(r["steps"]) == config.num_steps
                and int(r["batch"]) == config.batch_size
                and float(r["gamma0"]) == config.gamma_init
                and float(r["l_gamma"]) == config.l_gamma
                and int(r["seed"]) in args.seeds
            )
        ]
    key = lambda r: (  # noqa: E731
        float(r["epsilon"]), int(r["steps"]), int(r["batch"]), float(r["gamma0"]),
        float(r["l_gamma"]), int(r["seed"]), r["model"],
    )  # fmt: skip
    with RESULTS.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(sorted(kept + rows, key=key))
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
