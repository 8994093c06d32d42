# ---
# jupyter:
#   esser_lab:
#     goals:
#     - Explain how a flow that makes the latent standard normal within every data set
#       separates what the data sets share from what is specific to each.
#     - Implement translation between data sets by inverting the flow under one label
#       and applying it under another.
#     - Measure that a translation changes the factors whose distribution differs between
#       the data sets and keeps the rest, against a re-encoding control.
#     key_figure: 'Held-out images of data set A, re-encoded under their own label and
#       translated into data sets B and C: what changes is what the model ties to each
#       data set.'
#     lab: Train one autoencoder on the union of three sprite data sets with designed
#       biases and a conditional INN on its latents given the data-set label; translate
#       held-out images between data sets and read colour, shape, size and position
#       back with judges, against re-encoding under the image's own label.
#     prerequisites:
#       chapters:
#       - 5
#       - 6
#       maths:
#       - normalising flows (change of variables)
#       - conditional maximum likelihood
#       - comparing distributions (priors over factors)
#     week: 6
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
# # 9. Data biases: what a generative model learns from *which* data set
#
# Esser, Rombach & Ommer, *A Note on Data Biases in Generative Models*, NeurIPS 2020 workshop on
# Machine Learning for Creativity and Design {cite}`esser2020biases`
# ([arXiv:2012.02516](https://arxiv.org/abs/2012.02516); the code is part of
# [CompVis/net2net](https://github.com/CompVis/net2net): `ml4cad.py`, `configs/creativity/`).
#
# **The question.** A generative model reproduces its training data, biases included. Which
# biases does a data set carry? CelebA, CelebA-HQ and FFHQ all show "faces", but they differ in
# age, make-up, pose, background and framing; photographs and oil portraits differ in far more.
# Comparing the data sets image by image says little, because no two images show the same person.
#
# **The idea.** Train one autoencoder $(E, D)$ on the *union* of the data sets, and one
# conditional invertible network $\tau$ that maps the latent $z = E(x)$ to a code
# $v = \tau^{-1}(z \mid y)$ which is standard normal *within every data set* $y$. Then $v$ holds
# what the data sets share, and the label $y$ holds what is specific to each. Translating
# $x$ from data set $a$ to $b$ keeps $v$ and swaps the label: whatever changes is what the model
# associates with the data set, i.e. its bias, made visible on one and the same image.
#
# **In the lineage.** Nothing new is built here: this is chapter 6's Network-to-Network
# translation {cite}`rombach2020net2net` with the simplest possible first expert, a one-hot
# data-set label (the code's `Labelator`). We reuse by import the flat conditional flow of
# chapters 5–8 (`esser_lab.nn.flows.ConditionalFlow`, ActNorm → double affine coupling →
# shuffle {cite}`dinh2017realnvp,kingma2018glow`), the shared first-stage autoencoder
# (`esser_lab.nn.autoencoder.DenseAutoencoder`, trained by `esser_lab.training.first_stage`), the
# sprites of `esser_lab.data.sprites` and the small judge classifiers of `esser_lab.metrics`.
#
# **What we can check that the note could not.** The note is qualitative: its data sets' biases
# are unknown, so it shows translations and lets the reader look. We *design* the biases, so we
# can measure whether a translation changes exactly the factors whose distribution differs
# between the data sets, and keeps the rest.

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
from esser_lab.training import seed_everything

chapter_start = time.perf_counter()
profile = scales.apply(scales.current())
generator = seed_everything(profile.seed)
print(profile.describe())

# %% [markdown]
# ## Three data sets with designed biases
#
# All three draw one plain sprite on a black background (`esser_lab.data.sprites`, upright,
# 16×16 at `tiny` scale), with its centre uniform over the image. They differ in their priors:
#
# | data set | shapes | colours | size (circumradius / side) |
# |---|---|---|---|
# | **A** "uniform" | uniform over 6 | uniform over 8 (red: 1/8) | 0.22–0.42 |
# | **B** "red, round" | ○ □ △ 30 % each; ✚ ♥ ★ 1/30 each | red 1/2, others 1/14 | 0.22–0.42 |
# | **C** "large" | uniform | uniform | 0.34–0.42 |
#
# So B is biased in colour and in shape, C only in size, and position is shared by all three.
# They are concatenated with their index as the label, as `ConcatDatasetWithIndex` does in the
# official `net2net/data/faces.py`.

# %%
from esser_lab.data import sprites
from esser_lab.data_bias import DOMAINS, DataBiasConfig, sample_domains
from esser_lab.viz.images import show_grid

config = profile.pick(tiny=DataBiasConfig.tiny(), small=DataBiasConfig.small(), full=None)
if config is None:
    raise RuntimeError("full scale needs the real face data sets: see 'Full scale' below")
names = [d.name for d in DOMAINS]
num_per_domain = profile.count(tiny=2048, small=20_000, full=0)
labels = torch.arange(len(DOMAINS)).repeat_interleave(num_per_domain)
train = sample_domains(labels, config.image_size, generator=torch.Generator().manual_seed(1))
fig = show_grid(
    [list(train.image[train.domain == k][:10]) for k in range(len(DOMAINS))],
    row_titles=[f"data set {name}" for name in names],
)

# %% [markdown]
# ## The method
#
# The note numbers no equations; we number them (B1)–(B4). With the frozen encoder's latent
# $z = E(x)$ and the data-set label $y$ as a one-hot vector, the flow is trained by conditional
# maximum likelihood,
#
# $$
# \mathcal L = \mathbb E_{(x, y)}\Big[\tfrac12 \big\|\tau^{-1}(E(x) \mid y)\big\|^2
#   - \log\Big|\det \frac{\partial \tau^{-1}(z \mid y)}{\partial z}\Big|\Big] \qquad \text{(B1)}
# $$
#
# so that $v = \tau^{-1}(z \mid y) \sim \mathcal N(0, I)$ in every data set. Translation from
# data set $a$ to $b$ keeps $v$ (the official `modify_input`):
#
# $$
# x_{a \to b} = D\Big(\tau\big(\tau^{-1}(E(x) \mid a) \,\big|\, b\big)\Big) \qquad \text{(B2)}
# $$
#
# Samples of one data set decode $v \sim \mathcal N(0, I)$ under its label (B3,
# `sample_all_labels`), and the demo animates a translation by blending the latents,
# $z_\alpha = (1-\alpha)\,E(x) + \alpha\, z_{a\to b}$ (B4). With $a = b$, (B2) is only a
# re-encoding $D(E(x))$: our control. Here is the package's code:

# %%
from esser_lab.data_bias import data_bias_loss, sample, translate
from esser_lab.data_bias.model import DataBiasModel
from esser_lab.data_bias.training import LitDataBias

for function in (data_bias_loss, translate, sample):
    display(Code(inspect.getsource(function), language="python"))
for method in (DataBiasModel.to_shared, DataBiasModel.from_shared, LitDataBias.training_step):
    display(Code(inspect.getsource(method), language="python"))

# %% [markdown]
# Why should a translation change only the biased factors? Within data set $a$, $\tau^{-1}$
# pushes the latents to $\mathcal N(0, I)$; $\tau(\cdot \mid b)$ pulls $\mathcal N(0, I)$ back
# to the latents of $b$. Their composition carries A's distribution onto B's. Where the two
# agree (position), a smooth network gets there with a map close to the identity; where they
# disagree (B has four times as many red objects), the map has to move mass: some non-red
# objects must come out red, and rare-in-B shapes must become common ones. Which objects move
# is the model's choice, and on real data sets that choice is what the note puts on display.
#
# The paper's configuration and this run's (differences in bold). The first stage is a
# stand-in at every scale: the official `BigAE` is a ResNet-101 encoder with a BigGAN decoder,
# trained with LPIPS and a discriminator; ours is the iin/net2net dense autoencoder with an L1
# likelihood, with the paper's latent size and KL weight at `paper()`. The `tiny` preset shrinks
# images (16×16), the latent (16-d), the flow (6 blocks, width 128, one hidden layer) and the
# steps, and changes three training settings a 500-step run needs: learning rates 5e-4 (AE) and
# 2e-3 (flow) instead of 1.35e-5 and 6.75e-5, larger batches, and an AE KL weight of 1e-3 instead
# of 1e-6 (a compact, near-Gaussian latent that a short flow run can model). The AE's rate is the
# one that trained from every seed we tried: at 1e-3, some seeds collapsed to painting the
# background only (the measurement is in `DataBiasConfig.tiny`'s docstring). The
# objective (B1), the one-hot condition through a 10-d BatchNorm embedder, Adam with
# β = (0.5, 0.9) and amsgrad, and the translation (B2) are the paper's.

# %%
from esser_lab.config import config_rows

paper = DataBiasConfig.paper()
rows = config_rows(paper, config, "paper")
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## Training
#
# First the shared autoencoder on the union A ∪ B ∪ C (`train_first_stage`, frozen afterwards),
# then the flow on its latents with the data-set label as the condition. The autoencoder stays
# in eval mode while the flow trains, on purpose (the code's `disabled_train`).

# %%
from torch.utils.data import DataLoader

from esser_lab.data.modules import BatchIndexSampler, TensorBatches
from esser_lab.nn.autoencoder import DenseAutoencoder
from esser_lab.training.first_stage import train_first_stage
from esser_lab.training.trainer import make_trainer

start = time.perf_counter()
autoencoder = DenseAutoencoder(
    config.image_size, config.image_channels, config.ae_n_down, config.z_dim, config.ae_width
)
autoencoder, first_stage = train_first_stage(
    train.image,
    autoencoder,
    scale=profile,
    steps=config.ae_steps,
    batch_size=config.ae_batch_size,
    learning_rate=config.ae_learning_rate,
    kl_weight=config.ae_kl_weight,
    seed=profile.seed,
    progress_every=config.ae_steps // 2,
)
print(f"first stage: {config.ae_steps} steps in {time.perf_counter() - start:.1f} s")

# %%
seed_everything(profile.seed)
system = LitDataBias(config, autoencoder)
batches = TensorBatches({"image": train.image, "domain": train.domain})
sampler = BatchIndexSampler(len(labels), config.batch_size, shuffle=True, seed=profile.seed)
trainer = make_trainer(
    profile,
    config.num_steps,
    progress_every=config.num_steps // 4,
    progress_keys=("loss", "nll"),
)
start = time.perf_counter()
trainer.fit(system, DataLoader(batches, sampler=sampler, batch_size=None))
print(f"flow: {config.num_steps} steps in {time.perf_counter() - start:.1f} s")
# evaluation on the training device (Lightning hands the model back on the CPU after fit)
model = system.model.eval().to(profile.device)

# %% [markdown]
# The loss (B1) per step and its two parts: $\tfrac12\|v\|^2$, which should settle near $d/2$
# (the value for a standard normal $v$), and $-\log|\det|$, which falls as the flow learns where
# each data set's latents lie.

# %%
import matplotlib.pyplot as plt

history = system.history
fig, ax = plt.subplots(figsize=(6, 3))
steps = [h["step"] for h in history]
ax.plot(steps, [h["loss"] for h in history], label="loss (B1)", lw=1)
ax.plot(steps, [h["nll"] for h in history], label="½‖v‖²", lw=1)
ax.plot(steps, [h["nlogdet"] for h in history], label="−log|det|", lw=1)
ax.axhline(config.z_dim / 2, color="grey", ls="--", lw=0.8, label="d / 2")
ax.set_xlabel("step")
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## Looking at the biases
#
# Held-out images of data set A (top row), re-encoded (A → A, the control), and translated into
# B and into C with (B2). Look for reddening and rounder shapes in the B row, growth in the C
# row, and positions that stay where they were.

# %% tags=["key-figure"]
num_test = profile.count(tiny=1536, small=4096, full=0)
test = sample_domains(
    torch.zeros(num_test, dtype=torch.long),
    config.image_size,
    generator=torch.Generator().manual_seed(12345),
)
outputs = {name: translate(model, test.image, 0, k) for k, name in enumerate(names)}
show = slice(0, 12)
fig = show_grid(
    [list(test.image[show])] + [list(outputs[name][show]) for name in names],
    row_titles=["input (A)"] + [f"A → {name}" for name in names],
)

# %% [markdown]
# Samples (B3): one column per $v \sim \mathcal N(0, I)$, decoded under each label. The same
# $v$ is the same "content" rendered with each data set's biases.

# %%
v_generator = torch.Generator()
rows = []
for k in range(len(DOMAINS)):
    v_generator.manual_seed(3)  # the same v for every data set
    rows.append(list(sample(model, k, 12, generator=v_generator).cpu()))
fig = show_grid(rows, row_titles=[f"samples of {name}" for name in names])

# %% [markdown]
# ### Explore
#
# Pick a held-out A image, a target data set and the strength α of the blend (B4). On the
# static page the widget is a frozen snapshot; the strip below it shows the same blends.

# %%
from esser_lab.viz.translation_explorer import translation_explorer

alphas = [0.0, 0.25, 0.5, 0.75, 1.0]
explore = test.image[:16]
blends = torch.stack(
    [
        torch.stack([translate(model, explore, 0, k, alpha=a) for a in alphas])
        for k in range(len(DOMAINS))
    ]
)  # (targets, alphas, n, 3, h, w)
explorer = translation_explorer(
    explore,
    blends,
    [f"A → {name}" for name in names],
    alphas,
    caption="input (A) · translation with strength α",
)
explorer

# %%
fig = show_grid(
    [[explore[i]] + list(blends[1, :, i]) for i in range(4)],
    column_titles=["input"] + [f"α = {a}" for a in alphas],
    title="A → B, blended with strength α (B4)",
)

# %% [markdown]
# ## Measuring the claim
#
# Two judges read the factors back from any image: a shape and a colour classifier
# (`esser_lab.metrics.classifiers.fit_classifier`), trained on fresh *unbiased* renders (data
# set A's priors), never on translations. Area and position are read off the pixels
# (`foreground_readout`: the foreground fraction and its centroid). On all held-out A images:
#
# * **red**: fraction the colour judge calls red (A's prior 1/8, B's 1/2);
# * **common shape**: fraction called circle, square or triangle (A's prior 1/2, B's 0.9);
# * **flip** rates of the shape judge's answer against the true shape, for shapes that are rare
#   in B and for shapes that are common in B;
# * **colour kept**: the colour judge agrees with the true colour;
# * **position error**: distance of the centroid to the true centre, in pixels;
# * **area**: foreground fraction (C's objects are larger).
#
# The control A → A only re-encodes: it shows how much the autoencoder alone changes.

# %%
from esser_lab.data_bias.claims import bias_readout, fit_judges, random_pairing_error
from esser_lab.data_bias.data import RED
from esser_lab.metrics.classifiers import predict

judges = fit_judges(
    config.image_size,
    num=profile.count(tiny=4096, small=4096, full=4096),
    shape_steps=profile.steps(400),
    colour_steps=profile.steps(150),
)
scores = {"input A": bias_readout(test.image, test, judges)}
scores |= {f"A → {name}": bias_readout(out, test, judges) for name, out in outputs.items()}
chance = random_pairing_error(test)
rows = ["| images | " + " | ".join(scores["input A"]) + " |", "|---" * 8 + "|"]
for name, s in scores.items():
    rows.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in s.values()) + " |")
display(Markdown("\n".join(rows)))
print(f"position error of a random pairing (sanity level): {chance:.2f} px")

# %% [markdown]
# The card (`esser_lab.data_bias.claims.file_claims`) compares every translation with the
# A → A control, the same model re-encoding without a change of label, which is the comparison
# the note's argument rests on: what a translation changes beyond re-encoding is what the model
# ties to the target data set. Each claim is a difference from that control, so the
# autoencoder's own blur cancels:
#
# * **colour bias**: the fraction called red, A → B against A → A;
# * **shape bias**: the shape flip rate's gain over the control, for shapes rare in B against
#   shapes common in B;
# * **recoloured, not moved**: the note's message is that a translation changes the attributes whose
#   distribution differs between the data sets, and not the others. Between A and B, colour
#   differs and position does not, so, object by object, A → B should move the colour further
#   than the position. Both changes are measured against the control's output of the same
#   object (the foreground's mean colour; its centroid) and put on one scale by dividing by the
#   factor's random-pairing distance, the mean distance between two different objects' control
#   outputs (1 = as different as another object). The claim fails for a translation that drags
#   objects about as much as it recolours them, or for one that changes nothing. The centroid
#   error of a random pairing is only a sanity row;
# * **size bias**: the foreground area, A → C against A → A.
#
# The note reports no numbers (its evidence is the translations themselves), so the paper column
# says so.

# %%
from esser_lab.cards import Card
from esser_lab.data_bias.claims import factor_changes, file_claims

control, to_b, to_c = scores["A → A"], scores["A → B"], scores["A → C"]
changes_b = factor_changes(outputs["B"], outputs["A"])
changes_c = factor_changes(outputs["C"], outputs["A"])
c_position, c_colour = changes_c.position.mean().item(), changes_c.colour.mean().item()
floor_share = min(1.0, c_colour / max(changes_b.colour.mean().item(), 1e-12))
card = file_claims(
    Card("09_data_bias", profile.name, profile.seed, chapter_start),
    control,
    to_b,
    to_c,
    chance,
    changes_b,
)
path = card.write()
display(Markdown(card.markdown()))
print(f"card written to {path} after {time.perf_counter() - chapter_start:.1f} s")

# %% [markdown]
# **Reading the numbers.** What this run says, claim by claim (generated from the card above):

# %%
prior_a, prior_b = DOMAINS[0].colour_probs[RED], DOMAINS[1].colour_probs[RED]
texts = [
    card.text(
        "b-red",
        holds="Translating into B raises the fraction of red objects to {ours}, against {baseline} "
        "for the control (the priors: A {a:.3f}, B {b:.3f}); across seeds: {seeds}.",
        fails="Translating into B does *not* raise the fraction of red objects over the control "
        "({ours} vs {baseline}; priors A {a:.3f}, B {b:.3f}); across seeds: {seeds}.",
        a=prior_a,
        b=prior_b,
    ),
    card.text(
        "b-rare-shapes",
        holds="The shapes that are rare in B are the ones that get changed: their flip rate rises "
        "by {ours} over the control, that of common shapes by {baseline}; across seeds: {seeds}.",
        fails="The shapes rare in B are *not* changed more than the common ones (flip-rate gains "
        "{ours} vs {baseline}); across seeds: {seeds}.",
    ),
    card.text(
        "b-position-kept",
        holds="A → B recolours objects further than it moves them: per object, it changes the "
        "position (which no data set biases) by {ours} and the colour (which B biases) by "
        "{baseline} of their random-pairing distances ({position_spread:.2f} px and "
        "{colour_spread:.3f} in RGB distance); the paired difference is {difference:.3f} "
        "(standard error {se:.3f}), and the colour moves further on {share:.0%} of the "
        "objects. Absolute centroid error after A → B: {error_b:.2f} px (control "
        "{error_a:.2f} px, random pairing {chance:.2f} px); across seeds: {seeds}.",
        fails="A → B does *not* recolour objects further than it moves them: per object, it "
        "changes the position by {ours} and the colour by {baseline} of their random-pairing "
        "distances "
        "({position_spread:.2f} px and {colour_spread:.3f} in RGB distance; paired difference "
        "{difference:.3f}, standard error {se:.3f}). Absolute centroid error after A → B: "
        "{error_b:.2f} px (control {error_a:.2f} px, random pairing {chance:.2f} px); across "
        "seeds: {seeds}.",
        position_spread=changes_b.position_spread,
        colour_spread=changes_b.colour_spread,
        difference=changes_b.difference.mean().item(),
        se=changes_b.standard_error(),
        share=changes_b.colour_more(),
        error_b=to_b["position error (px)"],
        error_a=control["position error (px)"],
        chance=chance,
    )
    + f" This is a contrast within one translation, not proof that objects stay put: for a "
    f"translation with no colour bias (A → C) the same read-outs give position {c_position:.3f} "
    f"and colour {c_colour:.3f}, so about {floor_share:.0%} of A → B's colour change is this "
    "read-out's floor rather than B's bias.",
    card.text(
        "c-size",
        holds="Translating into C grows the objects (foreground area {ours} against {baseline}); "
        "the fraction red is {red_c:.3f} (control {red_a:.3f}); across seeds: {seeds}.",
        fails="Translating into C does *not* grow the objects ({ours} vs {baseline}); across "
        "seeds: {seeds}.",
        red_c=to_c["red"],
        red_a=control["red"],
    ),
]
display(Markdown("\n".join(f"* {t}" for t in texts)))

# %% [markdown]
# Read it with care:
#
# * The **control is not perfect**: a 16-d autoencoder trained for a few hundred steps blurs
#   16×16 crosses, hearts and stars and can shift colours, so even A → A changes shapes and
#   colours in the eyes of a judge trained on crisp renders (the numbers below say how many).
#   That is why every claim is a *difference over the control*, not a raw rate.
# * The translation can also add error of its own: colour kept should fall for A → B, for the
#   objects that have to turn red, and objects that grow around their centre (A → C) can shift
#   their centroid; the table below gives both.
# * The last table below puts "recoloured, not moved" beside a contrast between data-set pairs: each
#   factor's change over the control, per object, in units of its random-pairing distance, for
#   A → B (B biases colour) and A → C (C biases only size). C has A's colours, so the colour
#   change A → C is how much this read-out moves for a translation that has no reason to
#   recolour; the colour change A → B should stand above it.
# * The loss curve above shows whether the flow has converged in this run; longer runs (`small`)
#   should move the distributions closer to B's priors. `small` has not been measured yet (no GPU
#   was lent when this chapter was written).

# %%
flip_rare, flip_common = control["flip, rare in B"], control["flip, common"]
display(
    Markdown(
        f"In this run the control A → A flips {flip_rare:.0%} of the crosses, hearts and stars "
        f"and {flip_common:.0%} of the other shapes, and the judge calls {control['red']:.0%} of "
        f"its outputs red against {scores['input A']['red']:.0%} of the inputs. Colour kept: "
        f"{control['colour kept']:.2f} for A → A, {to_b['colour kept']:.2f} for A → B; position "
        f"error {control['position error (px)']:.2f} px for A → A, "
        f"{to_b['position error (px)']:.2f} for A → B and {to_c['position error (px)']:.2f} for "
        "A → C."
    )
)
rows = [
    "| translation | colour change | position change | colour moves further on |",
    "|---|---|---|---|",
]
for name, changes in (("A → B", changes_b), ("A → C", changes_c)):
    rows.append(
        f"| {name} | {changes.colour.mean():.3f} | {changes.position.mean():.3f} | "
        f"{changes.colour_more():.0%} of objects |"
    )
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## Full scale
#
# * **On a GPU**: `ESSER_LAB_SCALE=small` trains `DataBiasConfig.small()` on 32×32 sprites
#   (20k per data set, a 64-d latent, 12 blocks of width 512, 10k steps); the same cells run.
# * **The paper's setting** is `DataBiasConfig.paper()`: real data sets at 256×256 (CelebA,
#   CelebA-HQ and FFHQ; the other two `configs/creativity` files pair photographs with anime or
#   with oil portraits), a 128-d first stage, and the flow with 20 blocks of width 1024 and a
#   10-d label embedding, Adam(6.75e-5, β = (0.5, 0.9), amsgrad), batch 15. Put each data set in
#   its own folder, read them with `esser_lab.data.folder.ImageFolder(root, 256)`, concatenate
#   them with the folder index as the `domain`, train the first stage on the union with
#   `train_first_stage`, then `LitDataBias` through `make_trainer` as above
#   (`ESSER_LAB_DEVICES=N` for DDP on N GPUs). esser_lab never downloads data.
# * **Weights.** The authors' demo loads Lightning checkpoints of the BigAE and the flows from
#   local `logs/` folders; we know of no released files for them in scope here, and our first
#   stage is a stand-in for `BigAE`, so this chapter loads no official weights.

# %%
with torch.device("meta"):  # shapes only: no memory, no initialisation time
    paper_model = DataBiasModel(DataBiasConfig.paper())
for part in ("flow", "autoencoder"):
    count = sum(p.numel() for p in getattr(paper_model, part).parameters())
    print(f"paper configuration, {part}: {count / 1e6:.1f} M parameters")
del paper_model

# %% [markdown]
# ## Exercises
#
# 1. **Is the flow needed?** Translate with a plain *latent shift* instead: add the difference of
#    B's and A's mean latents to $E(x)$ and decode. Compare the fraction red and the position
#    error with the cINN's.
# 2. **Which objects turn red?** Among the A → B translations the colour judge calls red, which
#    source colours were they? (`check_red_by_colour(judges.colour, outputs["B"], test.colour,
#    fractions)` checks the fraction called red per source colour.)
# 3. **A bias that is not there.** C has A's colour prior. Does A → C leave the fraction red at
#    the control's level?

# %% [markdown]
# ```{admonition} Solution 1
# :class: dropdown
# A mean shift moves every latent by the same vector: it can make all objects a little redder,
# but it cannot turn *some* objects fully red and leave the others alone. The flow models the
# whole conditional distribution, not only its mean, so it can move mass selectively. Compare
# the two rows printed below.
# ```

# %% tags=["hide-input"]
from esser_lab.nn.placement import images_per_pass

# a chunk of images at a time (one pass at tiny; 2,048 at 32 px, where one pass held gigabytes)
per_pass = images_per_pass(config.image_size, config.image_size, pixels=2**21)
with torch.no_grad():
    z_train = torch.cat(
        [model.encode(x.to(profile.device)).cpu() for x in train.image.split(per_pass)]
    )
    shift = (z_train[train.domain == 1].mean(0) - z_train[train.domain == 0].mean(0)).to(
        profile.device
    )
    shifted = torch.cat(
        [
            model.decode(model.encode(x.to(profile.device)) + shift).cpu()
            for x in test.image.split(per_pass)
        ]
    )
s = bias_readout(shifted, test, judges)
print(
    f"mean shift: red {s['red']:.3f}, colour kept {s['colour kept']:.3f}, "
    f"position error {s['position error (px)']:.2f} px"
)
print(
    f"cINN:       red {to_b['red']:.3f}, colour kept {to_b['colour kept']:.3f}, "
    f"position error {to_b['position error (px)']:.2f} px"
)

# %% [markdown]
# ```{admonition} Solution 2
# :class: dropdown
# Count the translations called red, per true source colour. Red objects should stay red. Among
# the others, look at the colours whose red channel is already full (orange, yellow, magenta,
# white) against green, blue and cyan: where the first group makes up most of the new red
# objects, the map moves the mass it must move where that is cheapest in the latent space.
# Which objects pay for a bias is the model's choice, not the data's.
# ```

# %% tags=["hide-input"]
from esser_lab.data_bias.exercises import check_red_by_colour

# solution begins; students get: fractions = None  # your code here: one fraction per colour
called_red = predict(judges.colour, outputs["B"]) == RED
counts = torch.bincount(test.colour[called_red], minlength=len(sprites.COLOURS))
totals = torch.bincount(test.colour, minlength=len(sprites.COLOURS))
fractions = [n / max(total, 1) for n, total in zip(counts.tolist(), totals.tolist(), strict=True)]
for name, fraction in zip(sprites.COLOURS, fractions, strict=True):
    print(f"{name:>8}: {fraction:.2f} of them called red after A → B")
assert check_red_by_colour(judges.colour, outputs["B"], test.colour, fractions), "must agree"
# solution ends
print(check_red_by_colour(judges.colour, outputs["B"], test.colour, fractions))

# %% [markdown]
# ```{admonition} Solution 3
# :class: dropdown
# C shares A's colour prior, so A → C should leave the fraction red near the control's while
# the area grows: the translation changes what differs between the data sets, not more.
# ```

# %% tags=["hide-input"]
print(f"fraction red: A → A {control['red']:.3f}, A → C {to_c['red']:.3f}")
print(f"area:         A → A {control['area']:.3f}, A → C {to_c['area']:.3f}")
print(f"chapter ran in {time.perf_counter() - chapter_start:.1f} s at scale {profile.name}")

# %% [markdown]
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
