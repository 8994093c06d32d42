# ---
# jupyter:
#   esser_lab:
#     goals:
#     - Explain why a latent trained to reconstruct an image from its shape estimate
#       ends up carrying the appearance, with no pairs of poses.
#     - Derive the VUNet's evidence lower bound with a learned prior, unit-variance
#       Gaussians and a KL weight that ramps up during training.
#     - Measure appearance transfer against the exact ground truth and compare the VUNet
#       with a generator trained on pairs.
#     key_figure: 'Appearance transfer by the VUNet on held-out figures: each row keeps
#       the appearance of the figure on the left, each column takes the pose of the
#       stickman on top.'
#     lab: Train a Variational U-Net on single images of procedural articulated figures
#       and a PG2-style generator on pairs of poses; transfer appearance onto new poses
#       and score part colours and SSIM against the exact rendering.
#     prerequisites:
#       chapters: []
#       maths:
#       - variational inference (ELBO, KL divergence)
#       - Gaussian likelihoods and squared-error losses
#       - convolutional networks and the U-Net's skip connections
#     week: 1
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
# # 1. The Variational U-Net: appearance and shape, learned from single images
#
# Esser, Sutter & Ommer, *A Variational U-Net for Conditional Appearance and Shape Generation*,
# CVPR 2018 {cite}`esser2018vunet` ([arXiv:1804.04694](https://arxiv.org/abs/1804.04694),
# [official code](https://github.com/CompVis/vunet)).
#
# **The problem.** A picture of a person mixes two things: the *shape* (where the limbs are) and
# the *appearance* (what the clothes look like). Generators of 2017 that mapped one image directly
# to another, such as pix2pix {cite}`isola2017pix2pix` or PG2 {cite}`ma2017pg2`, blurred or
# misplaced appearance whenever the pose changed a lot. The VUNet factorises the two: a U-Net
# {cite}`ronneberger2015unet` on a shape estimate $\hat y$ (a stickman drawn from keypoints)
# generates the image, and a variational autoencoder {cite}`kingma2014vae` infers a latent $z$ for
# the appearance, which enters the U-Net's coarsest scales.
#
# **The surprise.** It trains on *single images*: no pairs of one person in two poses. Because
# $\hat y$ already tells the decoder where everything is, the cheapest thing for $z$ to carry is
# what $\hat y$ lacks, the appearance. At test time, decoding the appearance of an image $x$ with
# the stickman of another image $y$ transfers appearance onto a new pose.
#
# **In the lineage.** This is the first chapter. Its ideas return throughout the book: a
# conditional generator whose latent carries only what the condition lacks (chapters 2–4 on
# disentangling), the KL-regularised autoencoder and its weight schedule (the first stages of
# VQGAN and latent diffusion), and the U-Net itself.
#
# **What we measure.** The procedural figures of `esser_lab.data.figures` come with their
# ground truth, so the transfer "appearance of $x$ on the pose of $y$" can be rendered exactly and
# compared with what the network produces, something the paper could not do on real photographs.

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
# ## The data: articulated figures with known shape and appearance
#
# Each figure has 14 keypoints (the *shape*) and one colour per part — head, torso, arms, legs —
# plus a background (the *appearance*). The shape estimate $\hat y$ is a stickman with one
# channel per part, drawn from the keypoints alone. The appearance encoder never sees the whole
# image: like the official code, it sees eight crops (torso, head, four arm segments, two thighs),
# each cut along its own limb axis ("in-plane normalisation"), so the crops say *what* a part looks
# like and hardly *where* it is.

# %%
from esser_lab.viz.images import show_grid, stickman_rgb
from esser_lab.vunet import VUNetConfig, figure_boxes, normalize_parts

config = profile.pick(
    tiny=VUNetConfig.tiny(),
    small=VUNetConfig.small(),
    # the paper's network; 4 stickman channels because our figures have 4 parts
    full=VUNetConfig.from_dict({**VUNetConfig.paper().__dict__, "shape_channels": 4}),
)
boxes = figure_boxes()
examples = figures.sample(6, config.image_size, generator=torch.Generator().manual_seed(1))
crops = normalize_parts(examples.image, examples.keypoints, boxes, config.crop_size)
crop_row = [crops[i, 3 * k : 3 * k + 3] for i in range(2) for k in range(4)]
fig = show_grid(
    [list(examples.image), [stickman_rgb(s) for s in examples.stickman], crop_row],
    row_titles=["image x", "stickman ŷ", "crops of x₀, x₁"],
)

# %% [markdown]
# ## The method
#
# The VUNet models the image given its shape, $p(x \mid \hat y) = \int p(x \mid \hat y, z)\,
# p(z \mid \hat y)\, dz$, and trains the evidence lower bound with an approximate posterior
# $q(z \mid x)$ (eqs. 3–5 of the paper; its printed signs are off, the code is right, see
# `vunet` issue #17):
#
# $$
# \mathcal{L} = \underbrace{\lambda\, \ell\big(x, D(\hat y, z)\big)}_{\text{likelihood}}
#   + w_{\mathrm{KL}}(t)\, \mathrm{KL}\big(q(z \mid x)\,\|\,p(z \mid \hat y)\big),
#   \qquad z \sim q(z \mid x).
# $$
#
# Three details come from the official code rather than the paper's text:
#
# * **Unit variances.** Posterior and learned prior predict only means, so the KL is
#   $\tfrac12 \lVert \mu_q - \mu_p \rVert^2$, summed over the latent maps.
# * **Two latent scales.** $z$ lives at the two coarsest scales of the U-Net (4×4 and 8×8 at
#   256 px), and the prior over a spatial latent is autoregressive over the four sub-pixel groups.
# * **A KL schedule.** $w_{\mathrm{KL}}$ stays at $10^{-6}$ for the first half of training and
#   ramps to 1 by three quarters, so the decoder learns to use $z$ before it is regularised
#   (`vunet` issue #5: otherwise the latent collapses).
#
# $\ell$ is an L1 distance on VGG19 features weighted $\lambda = 5$ in the paper. At `tiny` and
# `small` scale $\ell$ is the summed squared pixel error (a Gaussian likelihood) with
# $\lambda = 50$, so nothing needs to be downloaded; at `full` scale the VGG19 loss uses
# ImageNet weights (see *Full scale* below). Here is the objective as the package implements it:

# %%
from esser_lab.losses.kl import unit_variance_kl
from esser_lab.vunet import vunet_loss

display(Code(inspect.getsource(vunet_loss), language="python"))
display(Code(inspect.getsource(unit_variance_kl), language="python"))

# %% [markdown]
# The decoder is the U-Net's up path. At each latent scale the learned prior predicts $\mu_p$ from
# the shape features, and $z$ (from the posterior while training) is merged in:

# %%
from esser_lab.vunet.model import Decoder, LatentPrior

display(Code(inspect.getsource(LatentPrior.forward), language="python"))
display(Code(inspect.getsource(Decoder.forward), language="python"))

# %% [markdown]
# The paper's configuration and the one this run uses (differences in bold). The `tiny` preset
# shrinks the image, the widths and the number of steps, and changes two training settings that a
# 400-step run needs: learning rate 3e-3 instead of 1e-3, and no dropout (dropout guards against
# over-fitting over 100k steps; over a few hundred steps it only slowed learning, in the runs
# that chose the preset). The method — two latent scales, the autoregressive prior, unit
# variances, the KL schedule, Adam with β = (0.5, 0.9) and a linear decay — is the same.

# %%
paper = VUNetConfig.paper()
rows = ["| field | paper | this run |", "|---|---|---|"]
for name, value in paper.__dict__.items():
    ours = getattr(config, name)
    rows.append(
        f"| `{name}` | {value} | {'**' if ours != value else ''}{ours}"
        f"{'**' if ours != value else ''} |"
    )
rows.append(f"| scales (derived) | {paper.num_scales} | {config.num_scales} |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## Training
#
# Both models train on single images only, with the same data, objective, optimiser and steps.
# The baseline is the paper's competitor, PG2, built from the same U-Net
# (`VUNetConfig.paired_baseline()`): no appearance latent; its input is the target's stickman
# $\hat y$ concatenated with a source image of the same figure in another pose, and it learns to
# paint the figure in the target pose. That is PG2's supervision: *pairs* of one person in two
# poses, which real data rarely has and the VUNet never sees. The procedural figures give the
# pairs for free (each batch re-renders every figure in the pose of the next one), so the
# baseline gets the same data, objective, optimiser and steps, plus the pairs, and can win.

# %%
from esser_lab.data.modules import FiguresDataModule
from esser_lab.training.trainer import make_trainer
from esser_lab.vunet.training import LitVUNet

num_train = profile.count(tiny=4096, small=50_000, full=200_000)
num_test = profile.count(tiny=512, small=512, full=512)  # held-out figures (and the val set)
data = FiguresDataModule(
    size=config.image_size,
    batch_size=config.batch_size,
    num_train=num_train,
    num_val=num_test,
    seed=0,
    on_the_fly=profile.name != "tiny",  # small/full: batches drawn when asked for, not held
)
perceptual = None
if config.likelihood == "vgg19":  # full: data/checkpoints/vgg19/vgg19.pth, else torchvision's
    from esser_lab import pretrained

    perceptual = pretrained.vgg19_feature_loss(profile.pretrained, seed=profile.seed)
    print(pretrained.describe(profile.pretrained, "VGG19 feature loss"))


def train(model_config: VUNetConfig, paired: bool = False) -> LitVUNet:
    seed_everything(profile.seed)
    system = LitVUNet(model_config, boxes, perceptual, paired=paired)
    trainer = make_trainer(
        profile,
        model_config.total_steps,
        progress_every=model_config.total_steps // 4,
        progress_keys=("loss", "likelihood", "kl"),
    )
    start = time.perf_counter()
    trainer.fit(system, datamodule=data)
    steps = profile.steps(model_config.total_steps)  # ESSER_LAB_MAX_STEPS may cap the run
    print(f"trained {steps} steps in {time.perf_counter() - start:.1f} s")
    return system.eval()


# evaluation runs where training ran (Lightning hands the model back on the CPU after fit)
vunet = train(config).model.to(profile.device)
baseline = train(config.paired_baseline(), paired=True).model.to(profile.device)

# %% [markdown]
# ## Reconstructions and transfers
#
# On held-out figures: the VUNet reconstructs each figure from its own stickman and its own
# appearance latent (the posterior mean); the PG2 baseline from its own stickman and its own
# image (for it, a reconstruction is a copy).

# %%
from esser_lab.vunet import reconstruct, transfer

test = figures.sample(num_test, config.image_size, generator=torch.Generator().manual_seed(12345))
test = test.to(profile.device)
test_crops = normalize_parts(test.image, test.keypoints, boxes, config.crop_size)
with torch.no_grad():
    rec_vunet = reconstruct(vunet, test_crops[:8], test.stickman[:8])
    rec_baseline = reconstruct(
        baseline, test.image[:8], torch.cat([test.stickman[:8], test.image[:8]], dim=1)
    )
fig = show_grid(
    [list(test.image[:8]), list(rec_vunet), list(rec_baseline)],
    row_titles=["input", "VUNet", "PG2 (pairs)"],
    title="reconstructions (held-out figures)",
)
# %% [markdown]
# Now the transfer, the paper's Figure 1 on our figures: each row keeps the appearance of the
# figure on the left, each column takes the pose of the figure on top. Below it, the exact
# ground truth rendered from (pose of $y$, appearance of $x$).

# %% tags=["key-figure"]
n_app, n_pose = 5, 6
app_idx, pose_idx = torch.arange(n_app), torch.arange(n_app, n_app + n_pose)
ii, jj = torch.meshgrid(app_idx, pose_idx, indexing="ij")
grid_vunet = transfer(vunet, test_crops[ii.flatten()], test.stickman[jj.flatten()])
appearance_of = figures.Appearance(test.colours, test.background, test.texture)
grid_truth = figures.render(
    test.keypoints[jj.flatten()], appearance_of[ii.flatten()], config.image_size
).image
grid_vunet = grid_vunet.reshape(n_app, n_pose, *grid_vunet.shape[1:])
grid_truth = grid_truth.reshape(n_app, n_pose, *grid_truth.shape[1:])


def transfer_figure(grid: torch.Tensor, title: str):
    rows = [[None] + [stickman_rgb(test.stickman[j]) for j in pose_idx]]
    rows += [[test.image[i]] + list(grid[k]) for k, i in enumerate(app_idx)]
    return show_grid(rows, row_titles=["pose ŷ"] + [f"x{int(i)}" for i in app_idx], title=title)


fig = transfer_figure(grid_vunet, "VUNet: appearance of x (rows) × pose of y (columns)")
fig = transfer_figure(grid_truth, "ground truth")
# %% [markdown]
# Because $z$ is stochastic, the VUNet can also *sample* appearances for a fixed pose from its
# learned prior $p(z \mid \hat y)$:

# %%
with torch.no_grad():
    samples = vunet.sample(
        test.stickman[:1].expand(8, -1, -1, -1), generator=torch.Generator().manual_seed(0)
    )
fig = show_grid([[stickman_rgb(test.stickman[0])] + list(samples)], title="samples from p(z | ŷ)")
# %% [markdown]
# ### Explore
#
# Pick an appearance and a pose. (On the static page the widget is a frozen snapshot; the grids
# above show the same transfers.)

# %%
from esser_lab.viz.explorer import transfer_explorer

explorer_idx = torch.arange(8)
ei, ej = torch.meshgrid(explorer_idx, explorer_idx, indexing="ij")
explorer_transfer = transfer(vunet, test_crops[ei.flatten()], test.stickman[ej.flatten()])
explorer_truth = figures.render(
    test.keypoints[ej.flatten()], appearance_of[ei.flatten()], config.image_size
).image
transfer_explorer(
    test.image[:8],
    test.image[:8],
    explorer_transfer.reshape(8, 8, *explorer_transfer.shape[1:]),
    explorer_truth.reshape(8, 8, *explorer_truth.shape[1:]),
)

# %% [markdown]
# ## Measuring the claim
#
# On all held-out figures (512 at `tiny`), each takes the appearance of figure $i$ and the pose
# of figure $i+1$. Two scores against the exact ground truth:
#
# * **part-colour error**: for each part, the mean colour the model paints on the part's true
#   mask against the true colour, in [0, 1] RGB units (lower is better; the ground truth scores
#   0). Measured against the *pose donor's* colours too: a model that leaked the pose image's
#   appearance would score low there.
# * **SSIM** of the transfer against the ground-truth image (higher is better), the metric the
#   paper reports against PG2 on DeepFashion; torchmetrics' `structural_similarity_index_measure`
#   (Gaussian window, σ = 1.5, averaged over the whole image) through `esser_lab.metrics.ssim`.

# %%
from esser_lab.vunet.claims import paired_transfer_scores, random_colour_error, transfer_scores

pose_of = torch.roll(torch.arange(num_test), -1)
scores = {
    "VUNet": transfer_scores(vunet, test, test_crops, pose_of),
    "PG2 baseline (pairs)": paired_transfer_scores(baseline, test, pose_of),
}
chance = random_colour_error(test.colours, torch.Generator().manual_seed(3))

rows = [
    "| model | reconstruction ↓ | **transfer** ↓ | vs pose donor's colours | SSIM ↑ |",
    "|---|---|---|---|---|",
]
for name, s in scores.items():
    rows.append(
        f"| {name} | {s.reconstruction:.3f} | **{s.transfer:.3f}** | "
        f"{s.vs_pose_donor:.3f} | {s.ssim:.3f} |"
    )
rows.append(f"| random colours | {chance:.3f} | {chance:.3f} | – | – |")
rows.append("| paper, DeepFashion (VUNet vs PG2) | – | – | – | 0.786 vs 0.762 (unverified) |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# The paper reports SSIM 0.786 for the VUNet against 0.762 for PG2 on DeepFashion (its comparison
# table with PG2, as our notes recall it; we could not check the number against the paper's text, so
# the card marks it *unverified*). Its real-data test set has no ground truth for a transfer, so it
# could only measure reconstruction-like scores and realism. With procedural figures we can score
# the transfer itself. `esser_lab.vunet.claims` files both scores on the reproduction card, VUNet
# against the baseline trained the same way (random colours only as a sanity row); the column
# *across seeds* reads `bench/results/claims_seeds.csv` (training seeds 0–4, the same data):

# %%
from esser_lab.cards import Card
from esser_lab.vunet.claims import file_claims

card = file_claims(
    Card("01_vunet", profile.name, profile.seed, chapter_start),
    scores["VUNet"],
    scores["PG2 baseline (pairs)"],
    chance,
    num_test=num_test,
)
path = card.write()
display(Markdown(card.markdown()))
for c in card.claims:
    print(c.summary())
print(f"card written to {path.name} after {time.perf_counter() - chapter_start:.1f} s")
assert all(torch.isfinite(torch.tensor([c.our_value, c.baseline_value])).all() for c in card.claims)

# %% [markdown]
# **Reading the numbers.** Generated from the card above and the recorded seeds (a claim is
# *reproduced* when it holds in at least 4 of 5 training seeds):

# %%
v, b = scores["VUNet"], scores["PG2 baseline (pairs)"]
colour = card.text(
    "transfer-colour",
    holds="The VUNet's transfer error ({ours}) is below that of PG2's generator trained on "
    "pairs ({baseline}; random colours score {chance:.3f}): single images were enough. Across "
    "seeds: {seeds}.",
    fails="The VUNet's transfer error ({ours}) is not below that of PG2's generator trained on "
    "pairs ({baseline}; random colours score {chance:.3f}): here the pairs' supervision wins. "
    "Across seeds: {seeds}.",
    chance=chance,
)
leak = (
    f"Its transfer is closer to $x$'s colours ({v.transfer:.3f}) than to the pose donor's "
    f"({v.vs_pose_donor:.3f}; its reconstruction from its own pose scores "
    f"{v.reconstruction:.3f}): $z$ carries $x$'s appearance rather than the pose image's, "
    "although training never showed the model two poses of one figure."
    if v.transfer < v.vs_pose_donor
    else f"Its transfer is not closer to $x$'s colours ({v.transfer:.3f}) than to the pose "
    f"donor's ({v.vs_pose_donor:.3f}): in this run $z$ leaks the pose image's appearance."
)
structure = card.text(
    "transfer-ssim",
    holds="The VUNet's SSIM against the ground truth is higher than the PG2 baseline's: "
    "{ours} against {baseline} (the paper: 0.786 against PG2's 0.762 on DeepFashion). Across "
    "seeds: {seeds}.",
    fails="The VUNet's SSIM against the ground truth is not higher than the PG2 baseline's: "
    "{ours} against {baseline} (the paper: 0.786 against PG2's 0.762 on DeepFashion). Across "
    "seeds: {seeds}.",
)
display(Markdown(f"* {colour} {leak}\n* {structure}"))

# %% [markdown]
# At `tiny` scale the absolute quality is modest (a few hundred steps on 16×16 images); the
# comparison with the baseline trained the same way is what the claims measure. The `small` scale
# (64×64) gives sharper figures.

# %% [markdown]
# ## Full scale
#
# * **On a GPU**: `ESSER_LAB_SCALE=small` (64×64 figures, the default when a GPU is present) or
#   `ESSER_LAB_SCALE=full` (the paper's network: 256×256, seven scales, latents at 4×4 and 8×8
#   with 128 channels, 46 M parameters; batch 8; 100k steps). The same cells run; Lightning uses
#   bf16 mixed precision; `ESSER_LAB_DEVICES=N python notebooks/01_vunet.py` trains with DDP on
#   N GPUs (Lightning cannot start DDP from inside a notebook; see *How to run*).
# * **The VGG19 likelihood** at `full` uses ImageNet VGG19 weights: a file you placed in
#   `data/checkpoints/vgg19/vgg19.pth` (torchvision's `vgg19` state dict), else torchvision's
#   published weights, fetched with their checksum (`ESSER_LAB_PRETRAINED=stand-in` uses seeded
#   random weights of the same network instead: a smoke run that downloads nothing).
# * **Real data.** The paper trains on DeepFashion and Market-1501 with keypoints from a pose
#   estimator. The official TensorFlow checkpoints are out of scope (see `CHAPTER.md`); the book
#   has no keypoint-annotated real-data loader yet, so `full` here runs the paper's network on
#   256×256 procedural figures.

# %% [markdown]
# ## Exercises
#
# 1. **Where does the appearance live?** The latent has two scales. Measure the KL
#    $\tfrac12\lVert\mu_q-\mu_p\rVert^2$ per scale on the test figures. Which scale carries more
#    information, and why would the coarsest scale be enough for flat part colours?
#    (`check_kl_per_scale(out, kl)` checks the list of KLs, coarsest scale first.)
# 2. **Who reads $x$?** Both models take the appearance image. Show numerically that each
#    model's transfer changes when the appearance images are shuffled among the figures, and
#    compare how much.
# 3. **Prior vs posterior.** The prior $p(z\mid\hat y)$ was trained to match the posterior. Are
#    samples from the prior as colourful as real figures? Compare the spread of the mean torso
#    colour of prior samples with that of real figures.
#    (`check_torso_spread(prior_samples, test.image[:64], test.part_masks[:64, 1], spreads)`
#    checks the two spreads.)

# %% [markdown]
# ```{admonition} Solution 1
# :class: dropdown
# The code below computes the KL per scale. Flat colours need only a few numbers per part, which
# fit at the 4×4 scale; expect the finer scale to add little, as the toy has little detail. The
# printout shows how this run splits the KL.
# ```

# %% tags=["hide-input"]
from esser_lab.vunet.exercises import check_kl_per_scale

# the exercises look at a subset of the held-out figures beyond tiny (all 512 at tiny)
n_ex = profile.count(tiny=512, small=64, full=64)
with torch.no_grad():
    out = vunet(test.stickman[:n_ex], test_crops[:n_ex], sample=False)
# solution begins; students get: kl = None  # your code here: the KL of each scale, coarsest first
kl = [0.5 * (mq - mp).pow(2).flatten(1).sum(1).mean().item()
      for mq, mp in zip(out.posterior_means, out.prior_means, strict=True)]  # fmt: skip
for mq, value in zip(out.posterior_means, kl, strict=True):
    print(f"latent scale {tuple(mq.shape[-2:])}: KL {value:.1f} nats")
assert check_kl_per_scale(out, kl), "the checker must accept the solution"
# solution ends
print(check_kl_per_scale(out, kl))

# %% [markdown]
# ```{admonition} Solution 2
# :class: dropdown
# Feed the same poses with shuffled appearance inputs (the VUNet's part crops, the PG2
# baseline's source images). Both outputs change with the appearance; the printout says by
# how much in this run.
# ```

# %% tags=["hide-input"]
crops_ex, shapes_ex = test_crops[:n_ex], test.stickman[:n_ex]
shuffled = crops_ex[torch.randperm(n_ex, generator=torch.Generator().manual_seed(0))]
change = transfer(vunet, shuffled, shapes_ex) - transfer(vunet, crops_ex, shapes_ex)
print(f"VUNet: mean |change| when the appearance changes = {change.abs().mean():.4f}")
images_ex = test.image[:n_ex]
shuffled_images = images_ex[torch.randperm(n_ex, generator=torch.Generator().manual_seed(0))]
change = transfer(baseline, images_ex, torch.cat([shapes_ex, shuffled_images], 1)) - transfer(
    baseline, images_ex, torch.cat([shapes_ex, images_ex], 1)
)
print(f"PG2 baseline: mean |change| when the appearance changes = {change.abs().mean():.4f}")

# %% [markdown]
# ```{admonition} Solution 3
# :class: dropdown
# Compare the standard deviation of the torso colour (mean colour on the torso mask) across
# samples from the prior with that across real figures. The prior's samples vary, but typically
# less than real figures: at this scale the prior is an approximation of the aggregate posterior.
# ```

# %% tags=["hide-input"]
from esser_lab.vunet.exercises import check_torso_spread

with torch.no_grad():
    prior_samples = vunet.sample(test.stickman[:64], generator=torch.Generator().manual_seed(1))
# solution begins; students get: spreads = None  # your code here: (prior samples, real figures)
torso = test.part_masks[:64, 1:2].float()
area = torso.sum((2, 3)).clamp_min(1)
mean_prior = (prior_samples * torso).sum((2, 3)) / area
mean_real = (test.image[:64] * torso).sum((2, 3)) / area
spreads = (mean_prior.std(0).mean().item(), mean_real.std(0).mean().item())
print(f"torso colour std over figures: prior samples {spreads[0]:.3f}, "
      f"real figures {spreads[1]:.3f}")  # fmt: skip
assert check_torso_spread(prior_samples, test.image[:64], test.part_masks[:64, 1], spreads)
# solution ends
print(check_torso_spread(prior_samples, test.image[:64], test.part_masks[:64, 1], spreads))
print(f"chapter ran in {time.perf_counter() - chapter_start:.1f} s at scale {profile.name}")

# %% [markdown]
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
