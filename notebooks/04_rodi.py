# ---
# jupyter:
#   esser_lab:
#     goals:
#     - Explain the shortcut by which a pose code that sees the target image also carries
#       its appearance, and why an adversarial critic alone can be fooled.
#     - 'Derive RoDi''s objective: a mutual-information constraint through an augmented
#       Lagrangian, and a KL weight raised when an independent critic detects a leak.'
#     - Measure transfers against the exact ground truth for RoDi, a fixed-weight constrained
#       model, an autoencoder and a VAE.
#     key_figure: 'What the pose code carries on its own: held-out figures decoded from
#       the pose code alone by the auxiliary decoder of each model; a code free of appearance
#       gives the silhouette without the figure''s colours.'
#     lab: Train RoDi, a model with the mutual-information constraint but a fixed KL
#       weight, a plain autoencoder and a VAE on pairs of figures that share an appearance;
#       swap pose and appearance and score the transfers, and how much appearance the
#       pose code leaks, against the exact rendering.
#     prerequisites:
#       chapters:
#       - 1
#       maths:
#       - variational autoencoders (ELBO, weighted KL term)
#       - mutual information and its estimation with a classifier
#       - constrained optimisation (augmented Lagrangian, dual updates)
#     week: 3
#   jupytext:
#     formats: py:percent
#     notebook_metadata_filter: esser_lab
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. RoDi: disentangling pose and appearance without a pose model
#
# Esser, Haux & Ommer, *Unsupervised Robust Disentangling of Latent Characteristics for Image
# Synthesis*, ICCV 2019 {cite}`esser2019robust`
# ([arXiv:1910.10223](https://arxiv.org/abs/1910.10223),
# [official code](https://github.com/CompVis/robust-disentangling)).
#
# **The problem.** The VUNet of chapter 1 {cite}`esser2018vunet` separates shape from appearance
# because it is *told* the shape: a stickman $\hat y$ from a keypoint detector. Most object
# classes (animals, anything articulated without a pose model) have no such detector. RoDi asks
# for less: pairs of images that show the same object appearance in two poses (two frames of a
# video). One encoder reads appearance $\alpha$ from the *other* image $x'$; a variational encoder
# reads a pose code $\pi$ from the target $x$; a decoder renders $x$ from $[\pi, \alpha]$.
#
# **The catch.** Nothing in that reconstruction forces $\pi$ to leave the appearance alone: $\pi$
# sees $x$ itself, so it can simply carry $x$'s colours too (a *shortcut*), and then a transfer
# keeps the colours of the pose image. Two classical cures both fail, the paper argues: an
# adversarial classifier that tries to tell whether $\pi$ and $\alpha$ come from the same pair can
# be *fooled* by the encoder without the information being gone; a strong KL bottleneck on $\pi$
# (a fixed-weight β-VAE) removes the appearance but much of the pose with it. RoDi uses both, and
# lets the classifiers decide how much bottleneck is needed:
#
# * a mutual-information estimator $T_1(\pi, \alpha)$ bounds $I(\pi, \alpha) \le \varepsilon$
#   through an augmented Lagrangian, and
# * a second, independent estimator $T_2$, which the encoder never trains against, checks whether
#   $T_1$ is being fooled; if it is, the KL weight $\gamma$ rises.
#
# **In the lineage.** This chapter reuses chapter 1's articulated figures
# (`esser_lab.data.figures`) and its way of scoring a transfer against exact ground truth
# (`esser_lab.metrics`, the explorer of `esser_lab.viz`), by import. What RoDi no longer needs is
# chapter 1's shape estimate $\hat y$: here the pose is learned. The authors' README points to
# Network-to-Network translation (a later chapter) as the modern successor of this approach.

# %% tags=["hide-input"]
# Runs on Colab only: anywhere else (a checkout, CI, the book) this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import importlib
    import subprocess
    from importlib.metadata import version

    # Only what Colab lacks, with Colab's own torch, torchvision, numpy, matplotlib and ipywidgets
    # pinned to the versions it has (so pip never upgrades them); then esser_lab without its
    # dependencies, at the commit `make publish-colab` published this notebook from (no commit
    # in the chapter's source: the repository's default branch).
    lacking = ["lightning>=2.4,<3", "einops>=0.8,<1", "safetensors>=0.4,<1"]
    colab_own = ("torch", "torchvision", "numpy", "matplotlib", "ipywidgets")
    keep = [f"{name}=={version(name)}" for name in colab_own]
    package = "esser-lab @ git+https://github.com/esser-lab/esser-lab"
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, *lacking, *keep], check=True)
    subprocess.run([*pip, "--no-deps", package], check=True)
    importlib.invalidate_caches()
    print("installed esser-lab", version("esser-lab"), "from", package)

# %%
import inspect
import time
from dataclasses import replace

import torch
from IPython.display import Code, Markdown, display

from esser_lab import scale as scales
from esser_lab.data import figures
from esser_lab.training import seed_everything

chapter_start = time.perf_counter()
profile = scales.apply(scales.current())
generator = seed_everything(profile.seed)
print(profile.describe())

# %% [markdown]
# ## The data: one appearance, two poses
#
# A training pair is two figures with the same part colours in two independent poses
# (`figures.same_appearance_pairs`): $x$, the target, which the pose encoder reads, and $x'$,
# which the appearance encoder reads. Like a second photograph of the same person, $x'$ is
# re-rendered with slightly jittered colours (±0.15 on the [-1, 1] scale): $x'$ tells the
# appearance only approximately, so a model that copies colours from $x$ through $\pi$ gains a
# little. This is the shortcut RoDi has to prevent. No keypoints, stickmen or labels are used
# for training.

# %%
from esser_lab.rodi import RoDiConfig, appearance_pairs
from esser_lab.viz.images import show_grid

config = profile.pick(
    tiny=RoDiConfig.tiny(),
    small=RoDiConfig.small(),
    full=RoDiConfig.paper(),
    # bench/ only (ESSER_LAB_BUDGET=long): five times the steps, the warm-up still a quarter
    long=replace(RoDiConfig.tiny(), num_steps=2000, warmup_steps=500),
)
jitter = 0.15
examples = appearance_pairs(
    8, config.image_size, jitter, generator=torch.Generator().manual_seed(1)
)
fig = show_grid(
    [list(examples.image), list(examples.alpha_image)],
    row_titles=["target x (→ π)", "other view x' (→ α)"],
)

# %% [markdown]
# ## The method
#
# The official PyTorch port writes the objective as follows (we number the equations (R1)–(R6)
# in the order this chapter derives them; we could not check the paper's own numbering). The
# model minimises a β-weighted ELBO of $x$ given $[\pi, \alpha]$,
#
# $$
# \mathcal{L}_{\text{ELBO}} = \sum \big(x - D(\pi, \alpha)\big)^2
#   + \gamma\, \mathrm{KL}\big(q(\pi \mid x)\,\|\,\mathcal N(0, I)\big)
#   + \tfrac12 \sum \Big[\big(x - D_\pi(\mathrm{sg}\,\pi)\big)^2
#   + \big(x - D_\alpha(\alpha)\big)^2\Big] \qquad \text{(R1)}
# $$
#
# with $\pi \sim q(\pi \mid x)$ and $\alpha = E_\alpha(x')$. The two auxiliary decoders show what
# each code carries on its own; $D_\pi$ sees a detached $\pi$ ($\mathrm{sg}$ = stop-gradient) and
# is for monitoring only. An estimator $T(\pi, \alpha) = \langle f_1(\pi), f_2(\alpha)\rangle$ is
# a classifier of joint pairs against pairs whose $\alpha$ comes from another image of the batch
# ($\tilde\alpha$):
#
# $$
# \mathcal{L}_T = \tfrac12\, \mathbb E\big[\operatorname{softplus}(-T(\pi, \alpha))
#   + \operatorname{softplus}(T(\pi, \tilde\alpha))\big] \quad \text{(R2)}, \qquad
# \hat I = \mathbb E\big[T(\pi, \alpha)\big] \quad \text{(R3)}.
# $$
#
# At its optimum the logit is $\log \frac{p(\pi, \alpha)}{p(\pi)p(\alpha)}$, whose mean over joint
# pairs is the mutual information $I(\pi, \alpha)$. The constraint $\hat I_1 \le \varepsilon$
# enters the model's loss as an augmented Lagrangian with multiplier $\lambda$ and penalty $\mu$,
# and $\lambda$ follows dual ascent ($c = \hat I_1 - \varepsilon$):
#
# $$
# \mathcal{L} = \mathcal{L}_{\text{ELBO}} + \mathbb 1[\mu c + \lambda \ge 0]\,
#   \big(\lambda c + \tfrac{\mu}{2} c^2\big) \quad \text{(R4)}, \qquad
# \lambda \leftarrow \max(0, \lambda + \mu c) \quad \text{(R5)}.
# $$
#
# Finally the *robustness* step. $T_1$ is the estimator the encoder is trained against, so the
# encoder can learn to fool it; $T_2$ is trained the same way but only on detached codes. With
# $\bar I$ their running means,
#
# $$
# \gamma \leftarrow \max\big(0,\ \gamma + l_\gamma\, (\bar I_2 - \bar I_1 - b_\gamma)\big)
#   \quad \text{(R6)}:
# $$
#
# the KL weight rises while the honest estimate exceeds the attacked one, and otherwise decays
# slowly: the least regularisation that still makes $\pi$ independent of $\alpha$. (R4)–(R6)
# switch on after a warm-up. Here is the package's code:

# %%
from esser_lab.rodi import (
    constraint_penalty,
    critic_loss,
    dual_update,
    elbo_loss,
    gamma_update,
    mi_logits,
)

for function in (elbo_loss, mi_logits, critic_loss, constraint_penalty, dual_update, gamma_update):
    display(Code(inspect.getsource(function), language="python"))

# %% [markdown]
# The estimator is two small residual networks of 3×3 convolutions on the latent maps and an
# inner product; the system `LitRoDi` wires everything with manual optimisation: one step of the
# model on (R4), one step of each estimator on (R2), then the updates (R5) and (R6).

# %%
from esser_lab.rodi.model import MIEstimator
from esser_lab.rodi.training import LitRoDi

display(Code(inspect.getsource(MIEstimator.forward), language="python"))
display(Code(inspect.getsource(LitRoDi.training_step), language="python"))

# %% [markdown]
# Three details come from the official code, not the paper's text: the shuffled pairs are the
# batch in reverse order, the MI estimate is the mean *joint* logit, and $T_1$ sees a detached
# $\alpha$ (only $\pi$ is pushed away from $\alpha$). Where we differ from the code, it is for a
# reason: its residual blocks compute an activation and then discard it (the decoder is linear),
# which we treat as a slip; its estimators update their weights before the model's backward pass
# has used them; and its learning-rate schedule resets the estimators to 1× the model's learning
# rate after the first step, although they are built with 2× (we keep 2×).
#
# The paper's configuration and the one this run uses (differences in bold). The `tiny` preset
# shrinks the image (16×16), widths and steps, and changes three training settings that a run
# of a few hundred steps needs: a 10× learning rate, a warm-up of a quarter of the run instead
# of 1000 steps, and γ's step size $l_\gamma$ ten times the official one, like the learning
# rate (the reason is generated below the table; this step size was chosen after a run at the
# official one, and the claims below are not settled with either). RoDi starts from the
# official $\gamma_0$ at every scale: the official PyTorch `RoDi` loss takes its initial γ from
# the ELBO's KL weight (`gamma_init` defaults to `kl_weight`, 1.0), the weight that its two
# ablations keep fixed. The bound stays the port's $\varepsilon$ = 0.1: looser bounds did not
# help (measured over seeds with the earlier γ₀ = 0 of this preset, in `RoDiConfig.tiny`'s
# docstring; not re-measured since). The objective, the estimators, the updates and Adam with
# β = (0.5, 0.9) are the same.
#
# Our source is the PyTorch port (`rodi/pt/`). The TensorFlow code the paper's DeepFashion
# results came from (`rodi/tf/`) differs in its settings: γ starts at 7.5 there (again the value
# a fixed-γ run would keep), ε = 0.125, γ is clipped to [0, 1000], the two running MI estimates
# and their gap are clipped before the update, and there is no warm-up.

# %%
from esser_lab.config import config_rows

paper = RoDiConfig.paper()
rows = config_rows(paper, config, "paper")
display(Markdown("\n".join(rows)))
# how far (R6) can move γ in this run, with the official step and with this run's (closed form)
after_warmup = config.num_steps - config.warmup_steps
step_fall = paper.l_gamma * paper.b_gamma
text = (
    f"With no gap between the two estimates, (R6) lowers γ by $l_\\gamma b_\\gamma$ a step "
    f"(faster while the attacked estimate exceeds the honest one). At the official "
    f"$l_\\gamma$ = {paper.l_gamma} that is {step_fall:g} a step: over the paper's "
    f"{paper.num_steps - paper.warmup_steps:,} steps after the warm-up, γ has room to fall "
    f"from γ₀ = {paper.gamma_init:g} to 0 and find its level."
)
if config.l_gamma != paper.l_gamma:
    text += (
        f" Over this run's {after_warmup:,} it would fall by {step_fall * after_warmup:.3g}, "
        f"and RoDi would hardly leave the γ its ablations keep. With this run's $l_\\gamma$ = "
        f"{config.l_gamma} it can fall by {config.l_gamma * config.b_gamma * after_warmup:.3g} "
        f"in as many steps, and it rises {config.l_gamma / paper.l_gamma:g} times faster under "
        f"a gap."
    )
display(Markdown(text))

# %% [markdown]
# ## Training
#
# Four models, the same networks, data, optimiser and number of steps:
#
# * **RoDi**: adaptive $\gamma$ and the MI constraint, (R1)–(R6);
# * **MIMin**: the MI constraint (R1)–(R5) with a fixed $\gamma = 1$, the VAE's weight (the
#   official `MIMin` loss, whose KL weight is the ELBO's `kl_weight`; the paper's "adversarial"
#   ablation). RoDi starts from that same $\gamma = 1$, as in the official code, so MIMin
#   differs from RoDi only in the update (R6), the adaptive bottleneck RoDi adds; from the VAE
#   it differs only in the constraint;
# * **AE**: the ELBO with $\gamma = 0$ and no MI term, a plain autoencoder of $[\pi, \alpha]$;
# * **VAE**: the ELBO with a fixed $\gamma = 1$ and no MI term (the official `Elbo` loss; the
#   paper's "variational" ablation).
#
# This is the paper's comparison: RoDi and both ablations begin from the same KL weight, and
# only RoDi may move it. The baselines without the constraint train the honest estimator $T_2$
# too, only to report $\hat I(\pi, \alpha)$; it never touches their loss.

# %%
from esser_lab.rodi.training import FigurePairsDataModule, fit_rodi

num_train = profile.count(tiny=4096, small=50_000, full=200_000)
num_val = profile.count(tiny=64, small=64, full=64)
data = FigurePairsDataModule(
    config.image_size,
    config.batch_size,
    num_train,
    num_val=num_val,
    jitter=jitter,
    seed=0,
    on_the_fly=profile.name != "tiny",  # small/full: batches drawn when asked for, not held
)


def train(model_config: RoDiConfig) -> LitRoDi:
    start = time.perf_counter()
    system = fit_rodi(
        model_config, data, profile, seed=profile.seed
    )  # seeds, trains, returns eval mode
    steps = profile.steps(model_config.num_steps)  # ESSER_LAB_MAX_STEPS may cap the run
    print(f"trained {steps} steps in {time.perf_counter() - start:.1f} s")
    # evaluation runs where training ran (Lightning hands the system back on the CPU after fit)
    return system.to(profile.device)


# the ablations keep γ where RoDi starts it (official: RoDi's gamma_init is the ELBO's kl_weight)
systems = {
    "RoDi": train(config),
    "MIMin": train(config.mimin(config.gamma_init)),
    "AE": train(config.fixed(0.0)),
    "VAE": train(config.fixed(config.gamma_init)),
}
models = {name: system.model for name, system in systems.items()}

# %% [markdown]
# ## γ and the MI estimates over training
#
# Left: RoDi's KL weight $\gamma$ and multiplier $\lambda$, both frozen during the warm-up
# (dotted line), and MIMin's multiplier (its $\gamma$ stays at 1). Right: the running
# MI estimates. For RoDi, $\bar I_1$ (attacked) and $\bar I_2$ (honest); for the other models,
# their honest estimate. If the AE's rises, its $\pi$ is learning about the appearance.

# %%
import matplotlib.pyplot as plt

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
rodi_history = systems["RoDi"].history
steps = [h["step"] for h in rodi_history]
left.plot(steps, [h["gamma"] for h in rodi_history], label="γ (KL weight)")
left.plot(steps, [h["lambda"] for h in rodi_history], label="λ (multiplier)")
mimin_history = systems["MIMin"].history
left.plot(steps, [h["lambda"] for h in mimin_history], label="MIMin's λ", ls="--")
right.plot(steps, [h["mi_attacked_avg"] for h in rodi_history], label="RoDi, Ī₁ (attacked)")
for name, system in systems.items():
    history = system.history
    label = f"{name}, Ī₂ (honest)" if name == "RoDi" else f"{name}, honest"
    right.plot([h["step"] for h in history], [h["mi_honest_avg"] for h in history], label=label)
right.axhline(config.epsilon, color="grey", lw=0.8, ls="--", label="ε")
for ax in (left, right):
    ax.axvline(config.warmup_steps, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
left.set_title("RoDi's adaptive weights")
right.set_title("MI(π, α) estimates (nats)")
fig.tight_layout()

# %% [markdown]
# ## Swapping pose and appearance
#
# On held-out figures: each row takes the appearance of a figure $y$ (its $\alpha$ comes from
# *another* view of $y$, $y'$), each column the pose of a figure $x$ (its $\pi$, the posterior
# mean; the official code decodes a sample, we decode the mean so a transfer is deterministic).
# Below it, the exact ground truth `render(keypoints of x, appearance of y)`.
# At `tiny` scale (16×16, a few hundred steps) the transfers are blurry; look for the trend: do
# the poses follow the columns and the colours the rows, or do the transfers keep the pose
# image's colours (the shortcut)?

# %%
from esser_lab.rodi import transfer, transfer_triplets

size, n_test = config.image_size, profile.count(tiny=512, small=512, full=512)
test = transfer_triplets(n_test, size, seed=12345).to(profile.device)  # x: poses, y: appearances
x, x_view, y, y_view, truth = test.x, test.x_view, test.y, test.y_view, test.truth

n_app, n_pose = 5, 6
app_idx, pose_idx = torch.arange(n_app), torch.arange(n_pose)
ii, jj = torch.meshgrid(app_idx, pose_idx, indexing="ij")


def swap_grid(model) -> torch.Tensor:
    out = transfer(model, x.image[jj.flatten()], y_view.image[ii.flatten()])
    return out.reshape(n_app, n_pose, *out.shape[1:])


grid_truth = figures.render(x.keypoints[jj.flatten()], y.appearance[ii.flatten()], size).image
grid_truth = grid_truth.reshape(n_app, n_pose, *grid_truth.shape[1:])


def swap_figure(grid: torch.Tensor, title: str):
    rows = [[None] + [x.image[j] for j in pose_idx]]
    rows += [[y_view.image[i]] + list(grid[k]) for k, i in enumerate(app_idx)]
    return show_grid(rows, row_titles=["pose x"] + [f"y{int(i)}'" for i in app_idx], title=title)


fig = swap_figure(swap_grid(models["RoDi"]), "RoDi: appearance of y (rows) × pose of x (columns)")
fig = swap_figure(swap_grid(models["MIMin"]), "MIMin (γ fixed, MI constraint)")
fig = swap_figure(swap_grid(models["AE"]), "AE baseline")
fig = swap_figure(grid_truth, "ground truth")

# %% [markdown]
# What does $\pi$ carry on its own? The auxiliary decoder $D_\pi$ was trained to reconstruct $x$
# from a detached $\pi$ alone. If $\pi$ held only the pose, $D_\pi$ could paint the silhouette but
# not the colours.

# %% tags=["key-figure"]
with torch.no_grad():
    aux_rows = [list(x.image[:8])]
    for model in models.values():
        posterior, _ = model.encode(x.image[:8], x_view.image[:8])
        aux_rows.append(list(model.aux_pi_decoder(posterior.mean)))
fig = show_grid(aux_rows, row_titles=["x", *(f"D_π: {name}" for name in models)])

# %% [markdown]
# ### Explore
#
# Pick an appearance and a pose. (On the static page the widget is a frozen snapshot; the grids
# above show the same transfers.)

# %%
from esser_lab.viz.explorer import transfer_explorer

explorer_idx = torch.arange(8)
ei, ej = torch.meshgrid(explorer_idx, explorer_idx, indexing="ij")
explorer_transfer = transfer(models["RoDi"], x.image[ej.flatten()], y_view.image[ei.flatten()])
explorer_truth = figures.render(x.keypoints[ej.flatten()], y.appearance[ei.flatten()], size).image
explorer = transfer_explorer(
    y_view.image[:8],
    x.image[:8],
    explorer_transfer.reshape(8, 8, *explorer_transfer.shape[1:]),
    explorer_truth.reshape(8, 8, *explorer_truth.shape[1:]),
    caption="appearance of y · pose of x · RoDi transfer · ground truth",
)
explorer

# %% [markdown]
# ## Measuring the claim
#
# On all held-out triplets (512 at `tiny`): $\pi$ from $x$, $\alpha$ from $y'$, target
# `render(keypoints of x, appearance of y)`. The scores, all against exact ground truth:
#
# * **transfer MSE**, the official evaluation (`triplet_mse_error` in `rodi/pt/iterator.py`):
#   per-pixel squared error on the [-1, 1] scale;
# * **reconstruction MSE**: $\pi$ from $x$, $\alpha$ from $x'$, target $x$;
# * **leak** = transfer − reconstruction: what is lost only when the appearance comes from
#   another figure, i.e. what $\pi$ smuggles from $x$;
# * **MSE to the pose donor** $x$ itself: a model that kept $x$'s colours would score low here;
# * chapter 1's **part-colour error** (in [0, 1] RGB units) against $y$'s colours and against the
#   pose donor's colours;
# * the honest estimate $\bar I_2(\pi, \alpha)$ at the end of training.

# %%
from esser_lab.rodi.claims import score_models

scores = score_models(models, test)
for name, system in systems.items():
    scores[name]["mi"] = float(system.mi_honest_avg)
copy_x = (x.image - truth.image).pow(2).mean().item()

rows = [
    "| model | **transfer MSE** ↓ | reconstruction MSE ↓ | leak ↓ | MSE to pose donor | "
    "part colour ↓ | part colour vs donor | Ī(π, α) |",
    "|---|---|---|---|---|---|---|---|",
]
for name, s in scores.items():
    rows.append(
        f"| {name} | **{s['transfer']:.4f}** | {s['reconstruction']:.4f} | {s['leak']:.4f} | "
        f"{s['vs pose donor']:.4f} | {s['colour']:.3f} | {s['colour vs donor']:.3f} | "
        f"{s['mi']:.2f} |"
    )
rows.append(f"| copy the pose image x | {copy_x:.4f} | 0 | – | 0 | – | – | – |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# The paper compares triplet MSE on the Sprites data {cite}`esser2019robust`; its numbers are
# plotted, not tabulated. Read off the authors' violin plot (project page,
# `images/sprites_quantitative.png`), the mean is about 0.0025 for RoDi, 0.007 for the
# "variational" ablation (a fixed KL weight, our VAE) and 0.006 for the "adversarial" one (the
# MI constraint with a fixed γ, our MIMin). They are approximate readings of a figure, and the
# card marks them unverified. Our images, networks and budget are much smaller, so only the
# ordering can be compared.
#
# The card (`esser_lab.rodi.claims.file_claims`) makes the paper's comparisons: RoDi against
# MIMin (the adaptive γ, RoDi's own contribution), against the VAE (the bottleneck alone) and
# against the autoencoder (the shortcut), on transfer; the leak against the autoencoder's; the
# reconstruction against the VAE's (does RoDi over-regularise?).

# %%
from esser_lab.cards import Card
from esser_lab.rodi.claims import file_claims

card = Card("04_rodi", profile.name, profile.seed, chapter_start)
card = file_claims(card, scores, n_test, gamma0=config.gamma_init)
path = card.write()
display(Markdown(card.markdown()))
print(f"card written to {path} after {time.perf_counter() - chapter_start:.1f} s")

# %% [markdown]
# **Reading the numbers.** What this run says, and what the recorded training seeds say
# (`bench/results/claims_seeds.csv`), claim by claim (generated from the card above):

# %%
texts = [
    card.text(
        "transfer-vs-mimin",
        holds="**The adaptive γ.** RoDi transfers better than MIMin, the same constraint with "
        "γ fixed where RoDi starts it, at {g0} ({ours} vs {baseline}; RoDi's γ ended at {g_end}); "
        "across seeds: {seeds}. Trained five times longer (2,000 steps): {long}.",
        fails="**The adaptive γ.** In this run RoDi does *not* transfer better than MIMin, the "
        "same constraint with γ fixed where RoDi starts it, at {g0} ({ours} vs {baseline}; "
        "RoDi's γ ended at {g_end}); across seeds: {seeds}. Trained five times longer (2,000 "
        "steps): {long}.",
        g0=f"{config.gamma_init:g}",
        g_end=f"{float(systems['RoDi'].gamma):.2f}",
    ),
    card.text(
        "transfer-vs-vae",
        holds="**The bottleneck alone.** RoDi transfers better than the VAE ({ours} vs "
        "{baseline}); across seeds: {seeds}. Trained five times longer (2,000 steps): {long}.",
        fails="**The bottleneck alone.** In this run RoDi does *not* transfer better than the "
        "VAE ({ours} vs {baseline}); across seeds: {seeds}. Trained five times longer (2,000 "
        "steps): {long}.",
    ),
    card.text(
        "transfer-vs-ae",
        holds="**The shortcut.** RoDi transfers better than the autoencoder ({ours} vs "
        "{baseline}); across seeds: {seeds}.",
        fails="**The shortcut.** In this run RoDi does *not* transfer better than the "
        "autoencoder ({ours} vs {baseline}); across seeds: {seeds}.",
    ),
    card.text(
        "leak-vs-ae",
        holds="Its leak is smaller than the autoencoder's ({ours} vs {baseline}); across seeds: "
        "{seeds}.",
        fails="Its leak is *not* smaller than the autoencoder's ({ours} vs {baseline}); across "
        "seeds: {seeds}.",
    ),
    card.text(
        "reconstruction-vs-vae",
        holds="It reconstructs better than the VAE ({ours} vs {baseline}; the KL of π was "
        "{kl_vae:.1f} nats in the VAE against {kl_rodi:.1f} in RoDi); across seeds: {seeds}.",
        fails="It does *not* reconstruct better than the VAE ({ours} vs {baseline}; the KL of π "
        "was {kl_vae:.1f} nats in the VAE against {kl_rodi:.1f} in RoDi); across seeds: "
        "{seeds}.",
        kl_vae=systems["VAE"].history[-1]["kl"],
        kl_rodi=systems["RoDi"].history[-1]["kl"],
    ),
]
mi = ", ".join(f"{scores[name]['mi']:.2f} in {name}" for name in scores)
texts.append(f"By the honest estimate at the end of training, π carries {mi} nats about α.")
display(Markdown("\n".join(f"* {t}" for t in texts)))

# %% [markdown]
# %%
final = {name: system.history[-1] for name, system in systems.items()}
rodi_end, mimin_end = final["RoDi"], final["MIMin"]
fooled = rodi_end["mi_honest_avg"] > rodi_end["mi_attacked_avg"]
display(
    Markdown(
        f"**Where γ ended in this run.** RoDi's γ went from γ₀ = {config.gamma_init:g} to "
        f"{rodi_end['gamma']:.3f} (KL "
        f"{rodi_end['kl']:.0f} nats; honest Ī₂ = {rodi_end['mi_honest_avg']:.2f} against the "
        f"attacked Ī₁ = {rodi_end['mi_attacked_avg']:.2f} nats, so (R6) "
        f"{'saw T₁ being fooled' if fooled else 'saw no fooling'} at the end). MIMin, at γ = 1, "
        f"ended with λ = {mimin_end['lambda']:.2f} and Ī₂ = {mimin_end['mi_honest_avg']:.2f} nats "
        f"against ε = {config.epsilon}; the VAE's KL was {final['VAE']['kl']:.1f} nats, "
        f"MIMin's {mimin_end['kl']:.1f}."
    )
)

# %% [markdown]
# How to read it:
#
# * **The autoencoder** has nothing against the shortcut: its π can carry $x$'s colours, and a
#   transfer then keeps part of the pose image's appearance (the "MSE to pose donor" column and
#   $D_\pi$'s colours show how much). **The VAE** can only remove the leak by squeezing π as a
#   whole, which costs reconstruction. **MIMin** constrains what π knows about α but with a
#   fixed bottleneck, so an encoder that fools its critic $T_1$ is never caught. **RoDi** adds
#   the second critic and raises γ only while $T_1$ is being fooled. The paper's argument in
#   miniature: constrain what π knows about α instead of squeezing π as a whole.
# * A few hundred steps of a minimax game between the π-encoder and its critic settle
#   differently from run to run, and tiny changes to the floating-point path (a thread count, a
#   reordered sum) can move RoDi's result as a new seed would. That is why every claim above is
#   read against the recorded seeds, and the per-model spread is below.
# * **Where RoDi against MIMin and the VAE is decided.** All three start at γ = 1, so RoDi can
#   only beat them by moving γ. While the honest estimate $\bar I_2$ stays at or below the
#   attacked $\bar I_1$, (R6) sees no fooling and lowers γ: π may carry more of the pose, and
#   reconstruction and transfer improve as long as the constraint still holds. When $\bar I_2$
#   exceeds $\bar I_1$, γ rises above the ablations' and π is squeezed harder than theirs.
#   MIMin, at γ = 1, starts where the VAE is: when its π already carries less than ε about α,
#   its multiplier stays at 0 and it trains like the VAE. The paragraph above gives this run's
#   values; a few hundred steps leave γ little room to find its level.
# * Expect the leak to shrink rather than close: a small critic trained for a few hundred
#   steps sees only part of the dependence, so $\hat I_1 \le \varepsilon$ can hold while π
#   still carries some colour (the leak row of the card says how much in this run).
# * Absolute errors are far from the paper's on Sprites: 16×16 figures, a few hundred steps and
#   networks of a few hundred thousand parameters. The `small` scale (32×32, 10k steps, the
#   paper's ε, μ, l_γ, b_γ and γ₀) is where the comparison is worth making; it has not yet been
#   measured (no GPU was available when this chapter was written).
#
# The four models trained from several seeds by `bench/rodi_seeds.py` (`make bench-seeds`;
# recorded in `bench/results/rodi_seeds.csv`), read from that file for this configuration:

# %%
import csv
import statistics
from pathlib import Path

from esser_lab.cards import repository_root

root = repository_root()
seed_file = (root or Path(".")) / "bench" / "results" / "rodi_seeds.csv"
recorded = []
if seed_file.is_file():
    with seed_file.open() as handle:
        recorded = [
            r
            for r in csv.DictReader(handle)
            if float(r["epsilon"]) == config.epsilon
            and int(r["steps"]) == config.num_steps
            and int(r.get("batch") or 32) == config.batch_size  # rows without it ran at 32
            # rows without γ₀ and l_γ: RoDi from γ₀ = 0 at the official l_γ (before issue 11)
            and float(r.get("gamma0") or 0.0) == config.gamma_init
            and float(r.get("l_gamma") or 0.01) == config.l_gamma
        ]
rows = ["| model | seeds | transfer MSE | reconstruction MSE | leak |", "|---|---|---|---|---|"]
for name in scores:
    runs = [r for r in recorded if r["model"] == name]
    if len(runs) < 2:
        continue
    cells = []
    for key in ("transfer", "reconstruction", "leak"):
        values = [float(r[key]) for r in runs]
        cells.append(f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}")
    rows.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
if len(rows) > 2:
    display(Markdown("Mean ± standard deviation over seeds:\n\n" + "\n".join(rows)))
else:
    display(
        Markdown(
            f"No seeds recorded in `{seed_file.name}` for ε = {config.epsilon}, "
            f"{config.num_steps} steps, batch {config.batch_size}, γ₀ = {config.gamma_init:g} "
            f"and l_γ = {config.l_gamma}."
        )
    )

# %% [markdown]
# ## Full scale
#
# * **On a GPU**: `ESSER_LAB_SCALE=small` (32×32 figures, 10k steps, the default when a GPU is
#   present) or `ESSER_LAB_SCALE=full`, which trains `RoDiConfig.paper()`: the official port's
#   networks at 64×64 (encoders with four down-samplings to 4×4×16 codes, width-512 MI
#   estimators), ε = 0.1, μ = 0.1, l_γ = b_γ = 0.01, γ₀ = 1, a 1000-step warm-up, Adam(2e-4,
#   β = (0.5, 0.9)) with the estimators at 2×, batch 16, 100k steps. The same cells run;
#   `ESSER_LAB_DEVICES=N python notebooks/04_rodi.py` trains with DDP on N GPUs.
# * **Real pairs.** RoDi needs two images per object, nothing else: two frames of a video, two
#   photographs of one garment or person. Put them in a folder per object
#   (`data/pairs/<object>/<image>.jpg`); `esser_lab.data.folder.ImageFolder(root, 64)` reads them
#   with the object as the label, and a pair is two images with one label. Swap that for
#   `FigurePairsDataModule` (its `_generate` returns `{"image": x, "alpha_image": x'}`), and the
#   chapter runs on it. The paper trains on DeepFashion, Market-1501, Sprites and several video
#   data sets; the original TensorFlow code and its weights are out of scope here (see
#   `CHAPTER.md`), and esser_lab never downloads data.

# %%
with torch.device("meta"):  # shapes only: no memory, no initialisation time
    paper_model = LitRoDi(RoDiConfig.paper())
for part in ("model", "estimator_attacked", "estimator_honest"):
    count = sum(p.numel() for p in getattr(paper_model, part).parameters())
    print(f"paper configuration, {part}: {count / 1e6:.1f} M parameters")
del paper_model

# %% [markdown]
# ## Exercises
#
# 1. **What does π know?** Score the auxiliary decoder $D_\pi$'s output with the part-colour
#    error against $x$'s own colours, for each model. Which models' $\pi$ carries appearance?
# 2. **Read the honest estimator yourself.** Use each model's trained $T_2$ on the test codes
#    (posterior means of $x$ and $\alpha$ of $x'$): its mean joint logit and its accuracy on
#    joint vs shuffled pairs. Do they agree with the leak column?
# 3. **How fast can γ move?** With the official $l_\gamma = b_\gamma = 0.01$, iterate (R6) for a
#    constant gap $\bar I_2 - \bar I_1$ of 0.5 nats and of 0 nats. How many steps does γ need to
#    go from 0 to 1, and from 1 back to 0? What does that mean for a toy of a few hundred steps?
#    (`check_gamma_steps(gap, steps)` checks a count.)

# %% [markdown]
# ```{admonition} Solution 1
# :class: dropdown
# A lower error against $x$'s colours means $D_\pi$ can paint $x$'s appearance from $\pi$ alone,
# i.e. $\pi$ carries it. Expect the autoencoder's $\pi$ to carry the most (nothing stops it) and
# the VAE's the least (its $\pi$ carries little of anything); the printout shows where RoDi and
# MIMin fall in this run.
# ```

# %% tags=["hide-input"]
from esser_lab.metrics import part_colour_error

with torch.no_grad():
    for name, model in models.items():
        posterior, _ = model.encode(x.image, x_view.image)
        painted = model.aux_pi_decoder(posterior.mean)
        error = part_colour_error(painted, x.part_masks, x.colours).mean().item()
        print(f"{name}: D_π part-colour error against x's own colours {error:.3f}")

# %% [markdown]
# ```{admonition} Solution 2
# :class: dropdown
# A critic that cannot tell joint from shuffled pairs has accuracy ≈ 0.5 and mean logit ≈ 0.
# The more $\pi$ knows about $\alpha$, the higher both. (The estimate is a lower bound of sorts:
# a small critic trained for a few hundred steps sees only part of the dependence.)
# ```

# %% tags=["hide-input"]
with torch.no_grad():
    for name, system in systems.items():
        posterior, alpha = system.model.encode(x.image, x_view.image)
        terms = critic_loss(*mi_logits(system.estimator_honest, posterior.mean, alpha))
        print(f"{name}: Î₂ = {terms.mi.item():.3f} nats, accuracy {terms.accuracy.item():.2f}")

# %% [markdown]
# ```{admonition} Solution 3
# :class: dropdown
# With a gap of 0.5 nats γ grows by 0.01·(0.5 − 0.01) ≈ 0.005 per step: about 200 steps from 0
# to 1. With no gap it decays by $l_\gamma b_\gamma$ = 1e-4 per step: 10,000 steps from 1 to 0.
# Over 100k steps that is gentle; in a toy of a few hundred steps, γ can rise but hardly ever
# come back down from the official γ₀ = 1, which is why the toy takes a ten times larger
# $l_\gamma$ (and keeps γ₀ where the ablations are).
# ```

# %% tags=["hide-input"]
from esser_lab.rodi.exercises import check_gamma_steps

for gap in (0.5, 0.0):
    # solution begins; students get: steps_taken = None  # your code here: iterate (R6)
    gamma, steps_taken = (0.0, 0) if gap > 0 else (1.0, 0)
    while (gamma < 1.0) if gap > 0 else (gamma > 0.0):
        gamma = gamma_update(gamma, gap, 0.0, l_gamma=0.01, b_gamma=0.01, warm=True)
        steps_taken += 1
    print(f"gap {gap} nats: {steps_taken} steps to go {'0 → 1' if gap > 0 else '1 → 0'}")
    assert check_gamma_steps(gap, steps_taken), "the checker must accept the solution"
    # solution ends
    print(check_gamma_steps(gap, steps_taken))
print(f"chapter ran in {time.perf_counter() - chapter_start:.1f} s at scale {profile.name}")

# %% [markdown]
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
