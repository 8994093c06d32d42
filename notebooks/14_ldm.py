# ---
# jupyter:
#   esser_lab:
#     goals:
#     - Explain why diffusing in a compressed latent space spends capacity on content
#       rather than on imperceptible detail.
#     - Implement the latent diffusion objective, the latent scale factor and classifier-free
#       guidance.
#     - Compare class-conditional samples of one UNet trained in pixel space and in
#       latent spaces of different downsampling factors.
#     key_figure: One class-conditional sample per digit class from the pixel-space
#       and the latent-space models, with the same noise in each column.
#     lab: Train KL autoencoders and the same class-conditional UNet in pixel space
#       and in their latent spaces for the same steps on handwritten digits; score samples
#       with a classifier and an FID-style score, sweep classifier-free guidance and
#       test the latent scale factor.
#     prerequisites:
#       chapters:
#       - 10
#       maths:
#       - Gaussian diffusion and the noise-prediction objective
#       - KL-regularised autoencoders
#       - deterministic sampling (DDIM) as an ODE solver
#       - cross-attention
#     week: 9
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
# # 14. Latent diffusion: denoising in an autoencoder's latent space
#
# Rombach, Blattmann, Lorenz, Esser & Ommer, *High-Resolution Image Synthesis with Latent
# Diffusion Models*, CVPR 2022 {cite}`rombach2022ldm`
# ([arXiv:2112.10752](https://arxiv.org/abs/2112.10752),
# [official code](https://github.com/CompVis/latent-diffusion); Stable Diffusion is this model
# trained on LAION, [CompVis/stable-diffusion](https://github.com/CompVis/stable-diffusion)).
#
# **The problem.** Diffusion models {cite}`ho2020ddpm` learn to undo Gaussian noise step by step
# and give excellent samples, but a pixel-space model spends its capacity, its gradients and,
# at sampling time, hundreds of network evaluations on every pixel, including the
# high-frequency detail that matters least to a viewer. Training one takes hundreds of GPU days.
#
# **The idea.** Split the work, as Taming Transformers did (chapter 10): an autoencoder removes
# the *perceptual* redundancy once (a KL- or VQ-regularised conv autoencoder, downsampling by a
# factor $f$), and the diffusion model learns the *semantic* content in its small latent space.
# The latents are rescaled to unit variance (`scale_factor`), the UNet gains cross-attention
# layers so that any condition (a class, a caption, a layout) can steer it, and sampling ends
# with one decoder call.
#
# **In the lineage.** The first stage is chapter 10's conv autoencoder family
# (`esser_lab.nn.ddconv`, the same `Encoder`/`Decoder` with the official names), regularised by
# a KL term instead of a codebook, and trained with the same GAN-autoencoder loss
# (`esser_lab.losses.gan_autoencoder`: L1 + perceptual + the adaptive λ of chapter 10's (T7),
# plus the log-variance weighting of chapters 5–9's `LossPND`, which the released KL
# autoencoders kept fixed). The transformer of chapter 10
# becomes a denoising UNet {cite}`ronneberger2015unet` with attention. Everything after this
# chapter (SD3, distillation, Self-Flow) reuses its generative core, `esser_lab.diffusion`.

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
import math
import time
from dataclasses import replace

import torch
from IPython.display import Code, Markdown, display

from esser_lab import scale as scales
from esser_lab.training import seed_everything

chapter_start = time.perf_counter()
cpu_start = time.process_time()
profile = scales.apply(scales.current())
generator = seed_everything(profile.seed)
print(profile.describe())

# %% [markdown]
# ## The data
#
# scikit-learn's handwritten digits (`esser_lab.data.digits`, 1,797 grey images, 10 classes),
# resized to 16×16 at `tiny`: a small real image set whose class a classifier can check. 1,500
# train the models, the other 297 are held out for every score. The bilinear resize adds
# pixels that carry no new information, the kind of redundancy a first stage can take away.

# %%
from esser_lab.data.digits import load_digits
from esser_lab.viz.images import show_grid

size = profile.pick(tiny=16, small=32, full=64)
images, labels = load_digits(size)
order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
train_x, train_y = images[order[:1500]], labels[order[:1500]]
test_x, test_y = images[order[1500:]], labels[order[1500:]]
num_classes = 10
fig = show_grid([list(test_x[:12])], row_titles=["x"])

# %% [markdown]
# ## The method
#
# **The forward process** {cite}`ho2020ddpm`. With a schedule $\beta_1, \dots, \beta_T$
# ($T = 1000$; the LDM "linear" schedule is a square of a linspace of $\sqrt\beta$, 0.0015 →
# 0.0195) and $\bar\alpha_n = \prod_{m \le n}(1 - \beta_m)$, a clean latent $z_0$ becomes
#
# $$
# z_n = \sqrt{\bar\alpha_n}\, z_0 + \sqrt{1 - \bar\alpha_n}\; \varepsilon, \qquad
# \varepsilon \sim \mathcal N(0, I) \qquad \text{(L1)}
# $$
#
# **The objective.** With $z_0 = \sigma\, \mathcal E(x)$ (encoder $\mathcal E$, scale factor
# $\sigma$), a condition $y$ embedded by $\tau_\theta$ and fed to the UNet's cross-attention,
# latent diffusion minimises the "simple" loss (the paper's conditional objective, its
# Sec. 3.3):
#
# $$
# L_\text{LDM} = \mathbb E_{\mathcal E(x),\, y,\, \varepsilon,\, n}
#   \big\lVert \varepsilon - \varepsilon_\theta(z_n, n, \tau_\theta(y)) \big\rVert_2^2
#   \qquad \text{(L2)}
# $$
#
# **Sampling** with DDIM {cite}`song2021ddim` ($\eta = 0$: deterministic) on a subsequence
# $\tau_1 < \dots < \tau_S$ of the steps, from $\hat z_0 = (z_n - \sqrt{1-\bar\alpha_n}\,
# \hat\varepsilon)/\sqrt{\bar\alpha_n}$:
#
# $$
# z_{\tau_{i-1}} = \sqrt{\bar\alpha_{\tau_{i-1}}}\; \hat z_0
#   + \sqrt{1 - \bar\alpha_{\tau_{i-1}}}\; \hat\varepsilon \qquad \text{(L3)}
# $$
#
# then $x = \mathcal D(z_0 / \sigma)$. **Classifier-free guidance** {cite}`ho2021cfg`: the
# same network, trained with the label replaced by a "null" class 10 % of the time, mixes its
# unconditional and conditional predictions with a scale $s$ (s = 1: the conditional model;
# the paper's guided ImageNet LDM uses s = 1.5):
#
# $$
# \tilde\varepsilon = \varepsilon_\theta(z_n, n, \varnothing)
#   + s\,\big(\varepsilon_\theta(z_n, n, y) - \varepsilon_\theta(z_n, n, \varnothing)\big)
#   \qquad \text{(L4)}
# $$
#
# **The scale factor.** The schedule assumes data of unit variance; a KL autoencoder with a KL
# weight of $10^{-6}$ gives latents of any spread (Stable Diffusion's have std ≈ 5.5, hence its
# $\sigma$ = 0.18215). With `scale_by_std` the first training batch sets $\sigma = 1 /
# \operatorname{std}(\mathcal E(x))$.
#
# (L1)–(L4) are this chapter's numbers. The package's code, from the generative core shared by
# chapters 13–19 (`esser_lab.diffusion`): the loss, the DDIM sampler and the guidance wrapper.

# %%
from esser_lab.diffusion import classifier_free_guidance, ddim_sample
from esser_lab.ldm.method import ldm_loss

for function in (ldm_loss, ddim_sample, classifier_free_guidance):
    display(Code(inspect.getsource(function), language="python"))

# %% [markdown]
# The first stage: LDM's `AutoencoderKL` (the encoder of chapter 10 with `double_z`, a diagonal
# Gaussian posterior) and its loss, which shares the adaptive GAN weight with chapter 10's VQGAN:

# %%
from esser_lab.losses.gan_autoencoder import kl_autoencoder_loss
from esser_lab.nn.first_stage import AutoencoderKL

display(Code(inspect.getsource(AutoencoderKL.encode), language="python"))
display(Code(inspect.getsource(kl_autoencoder_loss), language="python"))

# %% [markdown]
# ## The configuration
#
# `LDMConfig.paper()` is the guided class-conditional ImageNet model of the paper's Table 3
# (`cin256-v2`: a UNet with cross-attention on a class embedding, on the 64×64×3 latents of a
# VQ-f4 autoencoder; its size is printed in the full-scale section); the UNet table compares it
# with this run's denoiser (differences in bold). At `tiny` the UNet keeps its
# structure (time embedding, residual blocks, a `SpatialTransformer` with self- and
# cross-attention and a GEGLU feed-forward, skip connections) at width 32 on two levels with
# one residual block per level. Training changes the toy needs, all stated here (the table has
# this run's values): a larger learning rate and far fewer steps than the paper's, and first
# stages trained on L1 + KL (weight 10⁻⁶, the official) **without LPIPS and without the
# discriminator** at every scale of this chapter (LPIPS needs VGG16's ImageNet weights; the GAN
# term starts at step 50,001 in the paper's configs; chapter 10 trains both terms), with an Adam
# learning rate of 2·10⁻³ (the official 4.5·10⁻⁶ × batch is for hundreds of thousands of steps).
# As in the official code, the log-variance of the KL loss stays fixed at 0 (its
# `configure_optimizers` leaves `loss.logvar` out; here `learn_logvar=False`).

# %%
from esser_lab.config import config_rows
from esser_lab.ldm.model import LDMConfig
from esser_lab.nn.first_stage import AutoencoderKLConfig

factors = profile.pick(tiny=(1, 4), small=(1, 2, 4, 8), full=(1, 2, 4, 8), long=(1, 2, 4))
latent_factor = 4  # the "moderate f" the claims compare with pixel space
denoiser_steps = profile.pick(tiny=150, small=20_000, full=200_000, long=600)
autoencoder_steps = profile.pick(tiny=60, small=5_000, full=50_000, long=240)
# a capped smoke run (CI's small pass) proves the code path with batches of 8
batch_size = 8 if profile.capped else profile.pick(tiny=32, small=64, full=64)
# a capped smoke run (CI's small pass) samples with 5 steps: 3 would overrun the official spacing
ddim_steps = 5 if profile.capped else profile.pick(tiny=10, small=50, full=200)


def ldm_config(factor: int, channels: int) -> LDMConfig:
    side = size // factor
    if profile.name == "tiny":
        config = LDMConfig.tiny(channels, side)
    else:
        config = LDMConfig.small(channels, side)
    return replace(config, batch_size=batch_size, num_steps=denoiser_steps)


paper = LDMConfig.paper()
ours = ldm_config(latent_factor, 4)
rows = config_rows(paper.unet, ours.unet, "paper (cin256-v2 UNet)")
rows += [
    f"| learning rate | {paper.learning_rate:.2g} | **{ours.learning_rate:.2g}** |",
    f"| denoiser steps | 2,000,000 (the f-sweep, unverified) | "
    f"**{profile.steps(denoiser_steps):,}** |",
    f"| classes (with the null class) | {paper.n_classes} | **{ours.n_classes}** |",
]
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## The first stages
#
# One KL autoencoder per factor $f$ (pixel space, f = 1, needs none: the paper's LDM-1 is the
# same diffusion model on pixels), the same widths, steps and seed. Their time is reported
# apart from the denoisers'. To fit the minute, `tiny` compares pixel space with $f = 4$ only;
# the longer bench run (`ESSER_LAB_BUDGET=long`) adds $f = 2$, `small` runs f ∈ {1, 2, 4, 8}.

# %%
from torch.utils.data import DataLoader

from esser_lab.data.modules import BatchIndexSampler, TensorBatches
from esser_lab.losses.gan_autoencoder import GANAutoencoderLossConfig, GANOptimizerConfig
from esser_lab.taming.training import LitGANAutoencoder
from esser_lab.training.trainer import make_trainer


def batches() -> DataLoader:
    data = TensorBatches({"image": train_x, "label": train_y})
    sampler = BatchIndexSampler(len(data), batch_size, shuffle=True, seed=profile.seed)
    return DataLoader(data, sampler=sampler, batch_size=None)


def autoencoder_config(factor: int) -> AutoencoderKLConfig:
    base = AutoencoderKLConfig.tiny(factor) if size == 16 else AutoencoderKLConfig.small(factor)
    dd = replace(base.ddconfig, in_channels=1, out_ch=1, resolution=size)
    return replace(base, ddconfig=dd)


loss_config = profile.pick(
    tiny=replace(GANAutoencoderLossConfig.tiny(), disc_start=10**9, disc_in_channels=1),
    small=replace(GANAutoencoderLossConfig.tiny(), disc_start=10**9, disc_in_channels=1),
    full=replace(GANAutoencoderLossConfig.tiny(), disc_start=10**9, disc_in_channels=1),
)
loss_config = replace(loss_config, learn_logvar=False)  # the official optimiser leaves it out
autoencoders, autoencoder_seconds = {}, {}
for factor in factors[1:]:
    seed_everything(profile.seed)
    model = AutoencoderKL(autoencoder_config(factor))
    optimizer = GANOptimizerConfig(base_learning_rate=2e-3 / batch_size, batch_size=batch_size)
    start = time.perf_counter()
    make_trainer(profile, autoencoder_steps, progress_every=autoencoder_steps // 2).fit(
        LitGANAutoencoder(model, loss_config, optimizer), train_dataloaders=batches()
    )
    autoencoder_seconds[factor] = time.perf_counter() - start
    autoencoders[factor] = model.eval().to(profile.device)

rows = ["| f | latent | L1 reconstruction (test) | latent std | seconds |", "|---|---|---|---|---|"]
latent_stds = {}
with torch.no_grad():
    for factor, model in autoencoders.items():
        posterior = model.encode(test_x.to(profile.device))
        reconstruction = model.decode(posterior.mode()).cpu()
        latent_stds[factor] = float(posterior.sample(torch.Generator().manual_seed(0)).std())
        shape = "×".join(str(n) for n in posterior.mean.shape[1:])
        rows.append(
            f"| {factor} | {shape} | {(reconstruction - test_x).abs().mean():.3f} | "
            f"{latent_stds[factor]:.2f} | {autoencoder_seconds[factor]:.1f} |"
        )
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## The denoisers: one UNet, pixels or latents, the same number of steps
#
# For every $f$ the same class-conditional UNet (its input channels and side follow the
# latent), the same steps, batch, learning rate, label dropout (10 %) and seed; `scale_by_std`
# sets $\sigma$ from the first batch of latents. One more run shows what the scale factor is
# for: the same $f = 4$ autoencoder with its latents multiplied to the spread of Stable
# Diffusion's (std 1 / 0.18215 ≈ 5.49; the reconstructions do not change), diffused **without**
# rescaling ($\sigma = 1$). With the factor, that model would be exactly the $f = 4$ model above
# (σ divides the spread out again), so the two differ in the latents' variance only. The EMA of
# the weights (decay 0.9999 with the official warm-up) samples.

# %%
from esser_lab.ldm.model import IdentityFirstStage, LatentDiffusion, RescaledFirstStage
from esser_lab.ldm.training import LitLatentDiffusion


def train_denoiser(
    factor: int, first_stage=None, scale_by_std: bool = True
) -> tuple[LatentDiffusion, float]:
    if first_stage is None:
        first_stage = IdentityFirstStage(1) if factor == 1 else autoencoders[factor]
    channels = 1 if factor == 1 else first_stage.latent_channels
    config = replace(ldm_config(factor, channels), scale_by_std=scale_by_std and factor > 1)
    seed_everything(profile.seed)
    system = LitLatentDiffusion(LatentDiffusion(config, first_stage))
    start = time.perf_counter()
    make_trainer(profile, denoiser_steps, progress_every=denoiser_steps // 2).fit(
        system, train_dataloaders=batches()
    )
    seconds = time.perf_counter() - start
    return system, seconds


systems, denoiser_seconds = {}, {}
for factor in factors:
    print(f"f = {factor}:")
    systems[factor], denoiser_seconds[factor] = train_denoiser(factor)
# Stable Diffusion's KL-f8 latents have std 1 / 0.18215 ≈ 5.49 (its fixed scale_factor)
sd_latent_std = 1 / 0.18215
spread = sd_latent_std / latent_stds[latent_factor]
spread_stage = RescaledFirstStage(autoencoders[latent_factor], spread)
print(f"f = {latent_factor}, latents × {spread:.2f} (std {sd_latent_std:.2f}), σ = 1:")
unscaled_system, unscaled_seconds = train_denoiser(latent_factor, spread_stage, scale_by_std=False)
ldms = {f: s.ldm.eval().to(profile.device) for f, s in systems.items()}
unscaled = unscaled_system.ldm.eval().to(profile.device)
print("scale factors:", {f: round(float(m.scale_factor), 3) for f, m in ldms.items()})
n = profile.steps(denoiser_steps)  # the EMA's warm-up: d = min(0.9999, (1 + n) / (10 + n))
print(f"EMA after {n} steps: decay {min(0.9999, (1 + n) / (10 + n)):.3f}, an average over "
      f"about the last {1 / (1 - min(0.9999, (1 + n) / (10 + n))):.0f} steps")  # fmt: skip

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(7, 3))
for factor, system in systems.items():
    losses = [h["loss"] for h in system.history]
    smooth = torch.tensor(losses).unfold(0, 10, 1).mean(1) if len(losses) >= 10 else losses
    ax.plot(smooth, label=f"f = {factor}" + (" (pixels)" if factor == 1 else ""))
ax.set_xlabel("step")
ax.set_ylabel("L_simple (running mean of 10)")
ax.set_title("each in its own space: the values are not comparable across f", fontsize=9)
ax.set_yscale("log")
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## Samples and scores
#
# Class-conditional samples, the same number for every class, with the EMA weights: a small
# classifier trained on the real training digits names
# their class (`esser_lab.metrics.classifiers`), and the book's FID-style score compares them
# with the 297 held-out digits (a Fréchet distance on the features of a small network, see the
# conventions page; the real FID {cite}`heusel2017fid` at full scale). Sampling is timed with
# its decoder call.

# %%
from esser_lab.ldm.chapter import guidance_explorer, guidance_figure, guided_samples
from esser_lab.ldm.claims import SweepRow, score_samples
from esser_lab.metrics.classifiers import accuracy, fit_classifier
from esser_lab.metrics.fid import load_feature_net

classifier = fit_classifier(
    train_x,
    train_y,
    num_classes,
    steps=profile.steps(profile.pick(tiny=150, small=300, full=300)),
    generator=torch.Generator().manual_seed(0),
)
feature_net = load_feature_net()
per_class = 1 if profile.capped else profile.pick(tiny=10, small=50, full=100)
sample_labels = torch.arange(num_classes).repeat_interleave(per_class)
guidance_scale = 3.0  # where the classifier's accuracy is compared
paper_scale = 1.5  # the paper's guided ImageNet LDM (Table 3), where FID is compared


def latent_shape(model: LatentDiffusion) -> tuple[int, int, int]:
    side = model.config.unet.image_size
    return (model.config.unet.in_channels, side, side)


def draw(model: LatentDiffusion, scale: float):
    start = time.perf_counter()
    images = guided_samples(model, sample_labels, scale, latent_shape(model), steps=ddim_steps)
    seconds = time.perf_counter() - start
    return images, score_samples(images, sample_labels, classifier, test_x, feature_net, seconds)


samples, sweep = {}, {}
for factor, model in ldms.items():
    samples[factor], scores = draw(model, 1.0)
    _, guided_scores = draw(model, guidance_scale)
    sweep[factor] = SweepRow(
        factor=factor,
        latent_shape=latent_shape(model),
        autoencoder_seconds=autoencoder_seconds.get(factor, 0.0),
        denoiser_seconds=denoiser_seconds[factor],
        steps=profile.steps(denoiser_steps),
        scores=scores,
        guided=guided_scores,
    )
real_accuracy = accuracy(classifier, test_x, test_y)
rows = [
    "| f | denoiser works on | autoencoder (s) | denoiser (s) | per sample (ms) | FID-style ↓ "
    f"| accuracy ↑ (s = 1) | accuracy ↑ (s = {guidance_scale:g}) |",
    "|---|---|---|---|---|---|---|---|",
]
for factor, row in sweep.items():
    shape = "×".join(str(n) for n in row.latent_shape)
    rows.append(
        f"| {factor}{' (pixels)' if factor == 1 else ''} | {shape} | "
        f"{row.autoencoder_seconds:.1f} | {row.denoiser_seconds:.1f} | "
        f"{1e3 * row.scores.seconds_per_sample:.1f} | {row.scores.fid:.2f} | "
        f"{row.scores.accuracy:.2f} | {row.guided.accuracy:.2f} |"
    )
rows.append(f"| real held-out digits | – | – | – | – | – | {real_accuracy:.2f} | – |")
display(Markdown("\n".join(rows)))

# %% tags=["key-figure"]
fig = show_grid(
    [list(samples[f][::per_class][:10]) for f in ldms],
    row_titles=[f"f = {f}" for f in ldms],
    column_titles=[str(c) for c in range(num_classes)],
    title=f"one sample per class (s = 1, {ddim_steps} DDIM steps, same noise per column)",
)

# %% [markdown]
# ## Classifier-free guidance
#
# The $f = 4$ model, the same noise, guidance scales from 0 (the unconditional model, the null
# class) to 3:

# %%
model = ldms[latent_factor]
guidance, guided = {}, {}
for scale in (0.0, 1.0, paper_scale, guidance_scale):
    guided[scale], guidance[scale] = draw(model, scale)
rows = ["| s | accuracy ↑ | FID-style ↓ | per sample (ms) |", "|---|---|---|---|"]
for scale, scores in guidance.items():
    rows.append(
        f"| {scale:g}{' (unconditional)' if scale == 0 else ''} | {scores.accuracy:.2f} | "
        f"{scores.fid:.2f} | {1e3 * scores.seconds_per_sample:.1f} |"
    )
rows.append("| paper, LDM-4 on ImageNet 256 (Table 3, unverified) | s = 1: FID 10.56 | "
            "s = 1.5: FID 3.60 | – |")  # fmt: skip
display(Markdown("\n".join(rows)))

# %% [markdown]
# ### Explore: a class, a guidance scale, a noise seed
#
# Four samples of the $f = 4$ model drawn live (on the static page the widget is a frozen
# snapshot; the figure below shows the same for every class at three scales).

# %%
explorer = guidance_explorer(model, num_classes, latent_shape(model), steps=ddim_steps)
explorer

# %%
fig = guidance_figure(
    model,
    list(range(num_classes)),
    [0.0, 1.0, guidance_scale],
    latent_shape(model),
    steps=ddim_steps,
    title="the same noise at s = 0 (unconditional), 1 (conditional) and guided",
)

# %% [markdown]
# ## The scale factor
#
# The KL autoencoder's latents are not unit-variance (the table of first stages shows their
# std); Stable Diffusion's have std ≈ 5.5. Diffused at that spread without rescaling, the
# denoiser faces a schedule whose noise is small against the signal at every step (the
# signal-to-noise ratio of each step is the latents' variance times what the schedule was made
# for): the early, coarse steps no longer erase the image, and training spends its steps where
# there is little left to learn.

# %%
_, unscaled_scores = draw(unscaled, 1.0)
scaled_scores = sweep[latent_factor].scores
print(
    f"f = {latent_factor}: latent std {latent_stds[latent_factor]:.2f} → σ = "
    f"{float(model.scale_factor):.3f}. Samples (s = 1): rescaled to unit variance: accuracy "
    f"{scaled_scores.accuracy:.2f}, FID-style {scaled_scores.fid:.2f}; at SD's spread "
    f"(std {sd_latent_std:.2f}) without rescaling: accuracy {unscaled_scores.accuracy:.2f}, "
    f"FID-style {unscaled_scores.fid:.2f}"
)

# %% [markdown]
# ## Measuring the claims
#
# The paper's evidence: the f-sweep of class-conditional ImageNet LDMs (its Fig. 6: LDM-1 in
# pixel space far behind after the same training, LDM-4…16 best; Fig. 7: latent models sample
# faster at a given FID) and classifier-free guidance (Table 3: LDM-4 FID 10.56 → 3.60 at
# s = 1.5). These were not checked against the paper's text offline and are marked
# *unverified*. Ours are 16×16 digits and a few hundred steps, so only the directions can be
# compared. `esser_lab.ldm.claims` files each claim against the comparison the paper makes,
# trained the same way; chance is a sanity row only.

# %%
from esser_lab.cards import Card
from esser_lab.ldm.claims import file_claims

card = Card("14_ldm", profile.name, profile.seed, chapter_start)
file_claims(
    card,
    sweep,
    latent_factor,
    guidance,
    paper_scale,
    guidance_scale,
    unscaled_scores,
    sd_latent_std,
    num_classes,
)
path = card.write()
display(Markdown(card.markdown()))
for c in card.claims:
    print(c.summary())
print(f"card written to {path.name} after {time.perf_counter() - chapter_start:.1f} s")
assert all(math.isfinite(c.our_value) and math.isfinite(c.baseline_value) for c in card.claims)

# %% [markdown]
# **Reading the numbers.** What this run shows, claim by claim, and what the recorded seeds say
# (a claim is *reproduced* when it holds in at least 4 of 5 training seeds). The sentences are
# generated from the card above.

# %%
pixel, latent = sweep[1], sweep[latent_factor]
total_latent = latent.autoencoder_seconds + latent.denoiser_seconds
bullets = [
    "**Pixels against latents.** "
    + card.text(
        "latent-fid",
        holds="After the same {steps} denoiser steps the $f = {f}$ model's samples score "
        "{ours} in the FID-style score against {baseline} for the pixel-space model, the "
        "paper's direction. Across seeds: {seeds}.",
        fails="After the same {steps} denoiser steps the $f = {f}$ model's samples do not score "
        "better ({ours} against {baseline} for pixel space). Across seeds: {seeds}.",
        steps=latent.steps,
        f=latent_factor,
    )
    + " "
    + card.text(
        "latent-accuracy",
        holds="Guided (s = {s:g}), the classifier names the class of {ours_pct:.0f} % of its "
        "samples, against {base_pct:.0f} % for pixel space (across seeds: {seeds}).",
        fails="Guided (s = {s:g}), the classifier names the class of {ours_pct:.0f} % of its "
        "samples, not more than for pixel space ({base_pct:.0f} %; across seeds: {seeds}).",
        s=guidance_scale,
        ours_pct=100 * latent.guided.accuracy,
        base_pct=100 * pixel.guided.accuracy,
    )
    + f" Training cost: {pixel.denoiser_seconds:.1f} s for the pixel model; "
    f"{latent.denoiser_seconds:.1f} s for the latent denoiser plus {latent.autoencoder_seconds:.1f}"
    f" s for its autoencoder ({total_latent:.1f} s in all, the autoencoder once for any number "
    "of denoisers).",
    "**Sampling speed.** "
    + card.text(
        "latent-sampling-time",
        holds="A latent sample takes {ours_ms:.1f} ms with its decoder, a pixel sample "
        "{base_ms:.1f} ms ({ratio:.1f}× as fast; across seeds: {seeds}).",
        fails="A latent sample takes {ours_ms:.1f} ms with its decoder, not less than a pixel "
        "sample ({base_ms:.1f} ms; across seeds: {seeds}).",
        ours_ms=1e3 * latent.scores.seconds_per_sample,
        base_ms=1e3 * pixel.scores.seconds_per_sample,
        ratio=pixel.scores.seconds_per_sample / latent.scores.seconds_per_sample,
    ),
    "**Guidance.** "
    + card.text(
        "guidance-accuracy",
        holds="At s = {s:g} the classifier names {ours_pct:.0f} % of the samples' classes, "
        "against {base_pct:.0f} % at s = 1 (across seeds: {seeds}).",
        fails="At s = {s:g} the classifier names {ours_pct:.0f} % of the samples' classes, not "
        "more than at s = 1 ({base_pct:.0f} %; across seeds: {seeds}).",
        s=guidance_scale,
        ours_pct=100 * guidance[guidance_scale].accuracy,
        base_pct=100 * guidance[1.0].accuracy,
    )
    + " "
    + card.text(
        "guidance-fid",
        holds="At the paper's s = {s:g} the FID-style score falls from {baseline} to {ours}, "
        "the direction of the paper's 10.56 → 3.60 (across seeds: {seeds}).",
        fails="At the paper's s = {s:g} the FID-style score does not fall ({baseline} at s = 1, "
        "{ours} guided), unlike the paper's 10.56 → 3.60 (across seeds: {seeds}); the table "
        "above shows it at every scale tried.",
        s=paper_scale,
    ),
    "**The scale factor.** "
    + card.text(
        "scale-factor",
        holds="With latents of Stable Diffusion's spread (std {std:.2f}), rescaling them to unit "
        "variance gives samples scoring {ours} against {baseline} without (across seeds: "
        "{seeds}).",
        fails="With latents of Stable Diffusion's spread (std {std:.2f}), rescaling did not give "
        "better samples here ({ours} against {baseline} without; across seeds: {seeds}).",
        std=sd_latent_std,
    ),
]
unsettled, failed = [], []
for c in card.claims:
    recorded = card.across_seeds(c.key)
    if c.kind != "claim" or recorded is None or recorded.label == "reproduced":
        continue
    (unsettled if recorded.label == "not settled" else failed).append(
        f"`{c.key}` ({recorded.label}: {recorded.held} of {recorded.seeds} seeds, margin "
        f"{recorded.margin_mean:.3g} ± {recorded.margin_sd:.3g})"
    )
if unsettled:
    bullets.append(
        "**What a minute does not settle.** With another training seed these comparisons go "
        "either way: " + "; ".join(unsettled) + "."
    )
if failed:
    bullets.append(
        "**What the recorded seeds do not reproduce**: " + "; ".join(failed) + ". These hold in "
        "at most one seed in five at this budget."
    )
display(Markdown("\n".join(f"* {b}" for b in bullets)))

# %% [markdown]
# ## Full scale
#
# * **On a GPU**: `ESSER_LAB_SCALE=small` (32×32 digits, f ∈ {1, 2, 4, 8}, `UNetConfig.small()`,
#   20k steps; the default when a GPU is present) or `ESSER_LAB_SCALE=full`; the same cells run,
#   and Lightning's DDP takes over with `ESSER_LAB_DEVICES=N`. The paper's own configurations
#   build from the presets (`UNetConfig.cin256_v2()`, `.stable_diffusion_v1()`,
#   `AutoencoderKLConfig.kl_f8()`); their sizes, on the meta device (no memory):
# * **The official weights.** `esser_lab.ldm.checkpoint` reads a released LDM or Stable
#   Diffusion 1.x `.ckpt` without unpickling arbitrary objects (`weights_only=True` with an
#   allow-list), splits it by its prefixes (`model.diffusion_model.`, `first_stage_model.`,
#   `cond_stage_model.`, `model_ema.`) and loads each part strictly into our classes; the text
#   encoder of Stable Diffusion (CLIP ViT-L/14) is handed back apart, for `transformers` to
#   load. Put `cin256-v2.ckpt` from the official README at
#   `data/checkpoints/ldm/cin256-v2/model.ckpt` and the next cell samples a class with it; the
#   file is not part of this book and is absent from the run that built this page.
# * **diffusers exports.** Most copies of these weights in circulation are diffusers folders
#   (`unet/diffusion_pytorch_model.safetensors`, `vae/…`): the same tensors under other names.
#   `esser_lab.ldm.diffusers_layout.load_diffusers_unet(path, UNetConfig.stable_diffusion_v1())`
#   and `load_diffusers_autoencoder(path, AutoencoderKLConfig.kl_f8())` rename them back to the
#   CompVis names (one renaming, shared with `bench/peers.py`, which checks that the two libraries
#   compute the same outputs with it) and load strictly.

# %%
from pathlib import Path

from esser_lab.cards import repository_root
from esser_lab.ldm.method import sample_latents
from esser_lab.nn.unet import UNetConfig, UNetModel

with torch.device("meta"):  # shapes only: no memory, no initialisation time
    counts = {
        "SD 1.x UNet": UNetModel(UNetConfig.stable_diffusion_v1()),
        "cin256-v2 UNet (the paper's LDM-4, Table 3)": UNetModel(UNetConfig.cin256_v2()),
        "KL-f8 autoencoder (SD's VAE)": AutoencoderKL(AutoencoderKLConfig.kl_f8()),
    }
for name, module in counts.items():
    tensors = len(module.state_dict())
    print(f"{name}: {sum(p.numel() for p in module.parameters()) / 1e6:.2f} M parameters, "
          f"{tensors} tensors")  # fmt: skip

official = (repository_root() or Path.cwd()) / "data/checkpoints/ldm/cin256-v2/model.ckpt"
if official.is_file():
    from esser_lab.ldm.checkpoint import load_first_stage, load_ldm_unet, split_ldm_checkpoint
    from esser_lab.taming.model import VQModelConfig

    parts = split_ldm_checkpoint(official)  # weights only, every part checked strictly
    first = load_first_stage(parts, VQModelConfig.vq_f4())  # cin256-v2 diffuses VQ-f4 latents
    released = LatentDiffusion(LDMConfig.paper(), first).eval()  # no EMA in this release
    released.model.diffusion_model.load_state_dict(
        load_ldm_unet(parts, UNetConfig.cin256_v2()).state_dict()
    )
    released.cond_stage_model.load_state_dict(parts.cond_stage)
    released = released.to(profile.device)
    torch.manual_seed(0)
    with torch.no_grad():  # class 88 (macaw): 20 DDIM steps at s = 3, as the official notebook
        z = sample_latents(released, torch.tensor([88] * 4), (3, 64, 64), steps=20,
                           guidance_scale=3.0)  # fmt: skip
        fig = show_grid([list(released.decode(z).clamp(-1, 1).cpu())], row_titles=["cin256-v2"])
else:
    print(f"{official.relative_to(official.parents[4])} is absent: the official LDM is not loaded.")

# %% [markdown]
# **Against the library people use.** `bench/peers.py` (`make bench-peers`) builds diffusers'
# `UNet2DConditionModel` and `AutoencoderKL` configured like ours, copies our weights in, checks
# that both give the same outputs, and times a training step of each on the CPU; it also runs
# our DDIM sampler against diffusers' `DDIMScheduler` on the same UNet and noise. The rows
# recorded in `bench/results/peers.csv`:

# %%
peers = (repository_root() or Path.cwd()) / "bench/results/peers.csv"
if peers.is_file():
    import csv

    rows = [
        "| what | configuration | ours (ms) | against | theirs (ms) | theirs / ours |",
        "|---|---|---|---|---|---|",
    ]
    with peers.open(newline="") as handle:
        for r in csv.DictReader(handle):
            if not any(k in r["model"] for k in ("UNet", "AutoencoderKL", "DDIM")):
                continue
            rows.append(
                f"| {r['model']} | {r['config']} | {1e3 * float(r['ours_s']):.1f} | {r['peer']} "
                f"{r['peer_version']} | {1e3 * float(r['peer_s']):.1f} | {float(r['ratio']):.2f} |"
            )
    display(Markdown("\n".join(rows)))
else:
    print("bench/results/peers.csv is absent: run `make bench-peers` to measure it.")

# %% [markdown]
# ## Exercises
#
# 1. **Fewer sampling steps.** Sample the $f = 4$ model with 5, 10 and 50 DDIM steps (s = 3).
#    How do the accuracy and the FID-style score change, and what does that say about where
#    the time of a diffusion sampler goes?
# 2. **η.** DDIM with η = 1 adds fresh noise at every step (the DDPM-like sampler). Compare the
#    accuracy of η = 0 and η = 1 at 20 steps, same seed.
# 3. **The scale factor by hand.** Compute 1 / std of the $f = 4$ autoencoder's latents over the
#    training set and compare it with the σ its denoiser set from its first batch. Why does the
#    official code use one batch only? (`check_scale_factor(ae, train_x, inverse_std)` checks
#    1 / std.)

# %% [markdown]
# ```{admonition} Solution 1
# :class: dropdown
# Sampling time grows linearly with the steps (one network call each; with guidance one call on
# a doubled batch); what
# the steps buy is measured below. Each DDIM jump predicts $\hat z_0$ from one call, so a few
# large jumps can only be as good as those predictions; how much that costs depends on how well
# the model is trained.
# ```

# %% tags=["hide-input"]
from esser_lab.ldm.method import sample_images

by_steps = {}
for steps in (5,) if profile.capped else (5, 10, 50):
    start = time.perf_counter()
    images = guided_samples(model, sample_labels, guidance_scale, latent_shape(model), steps=steps)
    seconds = time.perf_counter() - start
    by_steps[steps] = score_samples(images, sample_labels, classifier, test_x, feature_net, seconds)
    s = by_steps[steps]
    print(
        f"{steps} steps: accuracy {s.accuracy:.2f}, FID-style {s.fid:.2f}, "
        f"{1e3 * s.seconds_per_sample:.1f} ms per sample"
    )

# %% [markdown]
# ```{admonition} Solution 2
# :class: dropdown
# η = 1 injects fresh noise at every step that later steps must remove again; η = 0 follows a
# deterministic path from the noise to the sample (the LDM and Stable Diffusion scripts default
# to it). The numbers below are this run's.
# ```

# %% tags=["hide-input"]
with model.model_ema.average_of(model.model):
    for eta in (0.0, 1.0):
        images = sample_images(
            model,
            sample_labels,
            latent_shape(model),
            steps=ddim_steps,
            eta=eta,
            guidance_scale=guidance_scale,
            generator=torch.Generator().manual_seed(0),
        ).clamp(-1, 1)
        print(f"η = {eta}: accuracy {accuracy(classifier, images.cpu(), sample_labels):.2f}")

# %% [markdown]
# ```{admonition} Solution 3
# :class: dropdown
# One batch holds hundreds of latent values or more, enough for a standard deviation (the two
# numbers below). The official code sets σ once, at the very first step, so that it is a
# fixed constant of the model, stored as a buffer in the checkpoint, not a moving statistic.
# ```

# %% tags=["hide-input"]
from esser_lab.ldm.exercises import check_scale_factor

ae = autoencoders[latent_factor]
# solution begins; students get: inverse_std = None  # your code here: 1 / std over the training set
with torch.no_grad():
    z = ae.encode_latent(train_x.to(profile.device), generator=torch.Generator().manual_seed(0))
inverse_std = 1 / float(z.std())
print(f"1 / std over the training set: {inverse_std:.3f}")
assert check_scale_factor(ae, train_x, inverse_std), "the checker must accept the solution"
# solution ends
print(check_scale_factor(ae, train_x, inverse_std))
print(f"σ from the first batch: {float(ldms[latent_factor].scale_factor):.3f}")
print(
    f"chapter ran in {time.perf_counter() - chapter_start:.1f} s "
    f"({time.process_time() - cpu_start:.1f} s of CPU) at scale {profile.name}"
)

# %% [markdown]
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
