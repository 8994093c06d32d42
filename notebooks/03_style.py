# ---
# jupyter:
#   esser_lab:
#     goals:
#     - 'Explain the fix-point idea: re-encoding a stylisation must give back the style
#       it was painted with and nothing of the photo.'
#     - Implement the fix-point triplet and disentanglement losses beside the adversarial
#       objective of a style-transfer network.
#     - Measure the deception rate of an independent artist classifier and the preservation
#       of content, with and without the fix-point losses.
#     key_figure: Held-out photos (rows) stylised by the model trained with the fix-point
#       losses, in the style read from one painting of each artist (top row).
#     lab: Train the content and style network on digits and procedurally painted artworks,
#       with and without its two style fix-point losses; measure how often an independent
#       artist classifier is deceived by the stylisations and whether a digit classifier
#       still reads their content.
#     prerequisites:
#       chapters:
#       - 1
#       maths:
#       - conditional normalisation (a scale and an offset predicted from a code)
#       - triplet and adversarial losses
#       - fixed points of a map
#     week: 2
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
# # 3. Content and style disentanglement for artistic style transfer
#
# Kotovenko, Sanakoyeu, Lang & Ommer, *Content and Style Disentanglement for Artistic Style
# Transfer*, ICCV 2019 {cite}`kotovenko2019content`
# ([official code](https://github.com/CompVis/content-style-disentangled-ST), branch
# `dev_subm_1`).
#
# **The problem.** A style-transfer network G(x, s) paints a photo x in a style s. Earlier
# methods took s from a single painting — the Gram statistics of Gatys et al.
# {cite}`gatys2016style`, the feature mean and variance of AdaIN {cite}`huang2017adain` — or
# learned one network per artist {cite}`sanakoyeu2018style`. None of them made sure that the
# style code holds *only* style: a code read from one painting also carries what that painting
# shows, and a stylisation need not carry the style it was given.
#
# **The idea: fix points.** If s really is the style of a stylisation, reading the style back
# from the stylised image must give s again: $E_s(G(x, s)) \approx s$, a *fix point* of
# "stylise, then re-encode". The fix-point triplet loss (FPT) asks for exactly that, relative to
# the same photo in another style. The fix-point disentanglement loss (FPD) asks that two
# different photos stylised with one s re-encode to the same style, so no content can hide in
# s. A content fix point $E_c(G(x, s)) \approx E_c(x)$ does the same for content.
#
# **In the lineage.** Chapter 1's VUNet split an image into *shape* and *appearance*, with the
# shape given; here content plays the part of shape and style the part of appearance, and
# neither is given: both are encoded, and the fix points keep them apart. The style-predicted
# normalisation (scale and offset from s at every decoder layer) is AdaIN-like conditioning
# that later returns in the book's generators.
#
# **What we measure.** The paper's ablation: the same network trained with and without the two
# style fix-point losses, scored by the *deception rate* — how often an independent artist
# classifier takes G(photo, s_artist) for the target artist — and by whether the content of the
# photo survives. Our procedural "artists" make both factors known.

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
from esser_lab.data import art
from esser_lab.training import seed_everything

chapter_start = time.perf_counter()
profile = scales.apply(scales.current())
generator = seed_everything(profile.seed)
print(profile.describe())

# %% [markdown]
# ## The data: photos with a known content, painted by artists with a known style
#
# The "photos" are scikit-learn's handwritten digits (content = the digit). Each of four
# procedural "artists" is a distribution over a palette and a stroke pattern; a painting is a
# digit painted by one of them, with random palette jitter, stroke width and phase. Photos and
# paintings are *unpaired*: training never sees a photo next to its painted version.

# %%
from esser_lab.style_transfer import StyleTransferConfig
from esser_lab.viz.images import show_grid

config = profile.pick(
    tiny=StyleTransferConfig.tiny(),
    small=StyleTransferConfig.small(),
    full=StyleTransferConfig.paper(),
    long=replace(StyleTransferConfig.tiny(), total_steps=750),  # bench/ only: ESSER_LAB_BUDGET=long
)
size = config.image_size
examples = art.sample(64, size, generator=torch.Generator().manual_seed(1))
rows = [list(examples.photo[:8])]
for k in range(art.NUM_STYLES):
    rows.append(list(examples.painting[examples.style == k][:8]))
fig = show_grid(rows, row_titles=["photos", *art.STYLE_NAMES], title="photos and paintings")

# %% [markdown]
# ## The method
#
# A content encoder $E_c$ maps a photo to a spatial code, a style encoder $E_s$ maps a painting
# to a 16-d unit vector $s$, and the decoder paints $G(x, s) = D(E_c(x), s)$. Every
# normalisation in the decoder is a *local* group norm (statistics over sliding windows) whose
# per-channel scale and offset are predicted from $s$. For a photo $x$, a second photo $x'$, a
# painting $p$ by one artist and $n$ by another, with $s_p = E_s(p)$, $s_n = E_s(n)$:
#
# $$
# \begin{aligned}
# \mathcal{L}_{\mathrm{FPT}} &= \tfrac12\big[\,m + \lVert s_p - E_s(G(x, s_p))\rVert^2
#   - \lVert s_p - E_s(G(x, s_n))\rVert^2\big]_+ + \tfrac12\big[\,(p \leftrightarrow n)\big]_+ \\
# \mathcal{L}_{\mathrm{FPD}} &= \big[\lVert E_s(G(x, s_p)) - E_s(G(x', s_p))\rVert^2
#   - \lVert E_s(G(x, s_p)) - s_p\rVert^2\big]_+ \\
# \mathcal{L}_G &= 20\,\mathcal{L}_{\mathrm{adv}}
#   + 400\,\big\lVert \bar x - \overline{G(x, s_p)}\big\rVert^2
#   + 2\,\big(1 - \cos(E_c(G(x, s_p)), E_c(x))\big)^2 \\
#   &\quad + 50\,(\mathcal{L}_{\mathrm{FPT}} + \mathcal{L}_{\mathrm{FPD}})
#   + 10\,\mathrm{CE}_{\mathrm{content}} + 20\,\mathrm{CE}_{\mathrm{style}}
# \end{aligned}
# $$
#
# where $\bar x$ is a blurred image (average pooling): the photo's layout must survive, its
# texture need not. The weights, the margin $m$ (0.2, growing to 0.5 over the official
# resolution curriculum; FPD has margin 0) and the blur come from the official
# `launch_multistep_training.sh` and `model.py`. The discriminator has three heads — real
# painting vs stylised photo (patch-wise), the artist (per pixel) and the photo's class — and
# trains on real paintings, stylisations and photos. The two style fix-point losses as the
# package implements them:

# %%
from esser_lab.style_transfer import fpd_loss, fpt_loss, generator_loss, triplet_loss

for function in (triplet_loss, fpt_loss, fpd_loss):
    display(Code(inspect.getsource(function), language="python"))

# %% [markdown]
# The generator objective wires three stylisations per row — $G(x, s_p)$, $G(x', s_p)$ and
# $G(x, s_n)$ — through the encoders once more:

# %%
display(Code(inspect.getsource(generator_loss), language="python"))

# %% [markdown]
# And the style-conditioned local group norm, the only place where $s$ enters the decoder:

# %%
from esser_lab.style_transfer import LocalGroupNorm

display(Code(inspect.getsource(LocalGroupNorm.forward), language="python"))

# %% [markdown]
# The paper's configuration (stage 1 of the official six-stage curriculum, 128 px; the later
# stages grow to 768 px) and the one this run uses (differences in bold). Besides sizes and
# steps, the `tiny` preset changes four training settings that a 150-batch run needs: learning
# rate 2e-3, no dropout in the style encoder, both players stepping on every batch (the
# official code's `dsr < 0` branch) instead of the success-rate gate, which reacts over hundreds
# of steps (gated, our discriminator stepped once in 300 batches), and the generator's
# artist-classification weight `style_class_weight` (the code's `cslw`) at 100 instead of 20.
# Why the last one: the style code starts almost collapsed (at initialisation the style vectors
# of different paintings lie close together on the unit sphere), and every term that asks for
# an output that does not depend on $s$ (adversarial, content class, blurred image) pulls the
# codes further together. In side runs made while writing this chapter, each of these three,
# trained alone, collapsed the codes within tens of steps, while the artist term alone or FPT
# alone separated them. Once the codes have collapsed, FPT is stuck at its margin with zero
# gradient (squared distances, $d_{pos} = d_{neg} = 0$), so only the artist term can pull them
# apart again; at the paper's weight it lost that race in those side runs and nothing was
# stylised (a deception rate at chance for both models), while at 100 the codes separated. This
# run's spread is measured below.
# The objective, the networks and the other loss weights are the paper's, and the ablation
# uses the same weight.

# %%
from esser_lab.config import config_rows

paper = StyleTransferConfig.paper()
rows = config_rows(paper, config, "paper")
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## Training
#
# Two models, the same network, data, seed and number of steps: the full objective, and the
# ablation without the two style fix-point losses (`fpt_weight = fpd_weight = 0`). The
# ablation still has the discriminator's artist head pushing stylisations towards the target
# artist; what it lacks is the fix-point constraint on the style code.

# %%
from esser_lab.data.modules import ArtPairsDataModule
from esser_lab.style_transfer.training import LitStyleTransfer
from esser_lab.training.trainer import make_trainer

num_train = profile.count(tiny=4096, small=50_000, full=200_000)
num_val = profile.count(tiny=64, small=64, full=64)
# small/full: batches drawn when asked for, not held (tiny: one fixed set)
data = ArtPairsDataModule(
    size, config.batch_size, num_train, num_val, seed=0, on_the_fly=profile.name != "tiny"
)


def train(model_config: StyleTransferConfig) -> LitStyleTransfer:
    seed_everything(profile.seed)
    system = LitStyleTransfer(model_config)
    trainer = make_trainer(
        profile,
        model_config.optimizer_steps,
        progress_every=model_config.optimizer_steps // 3,
        progress_keys=("g_loss", "image", "fpt", "fpd", "style_ce", "d_acc"),
    )
    start = time.perf_counter()
    trainer.fit(system, datamodule=data)
    batches = profile.steps(model_config.total_steps)  # ESSER_LAB_MAX_STEPS may cap the run
    print(f"trained {batches} batches in {time.perf_counter() - start:.1f} s")
    return system.eval()


# evaluation runs where training ran (Lightning hands the model back on the CPU after fit)
full_model = train(config).model.to(profile.device)
ablation = train(config.without_fixpoint()).model.to(profile.device)

# %% [markdown]
# ## The experts that judge
#
# The paper's deception rate asks a classifier trained on real WikiArt paintings which artist a
# stylisation belongs to. Ours is a small CNN trained on real procedural paintings, and a second
# one recognises the digit, trained on photos *and* real paintings (whose content is known by
# construction), so it judges content whatever the style. Both are trained here, independently
# of the style-transfer models, and checked on held-out paintings of unseen digits.

# %%
from esser_lab.metrics.classifiers import accuracy, fit_classifier, predict

device = profile.device  # the experts train, and every model is measured, where training ran
expert_steps = profile.pick(tiny=150, small=1000, full=1000)
num_real = profile.count(tiny=4000, small=4000, full=4000)
real = art.sample(num_real, size, "train", generator=torch.Generator().manual_seed(5)).to(device)
photos, photo_labels = (t.to(device) for t in art.load_photos(size, "train"))
style_expert = fit_classifier(
    real.painting, real.style, art.NUM_STYLES, steps=profile.steps(expert_steps),
    generator=torch.Generator().manual_seed(0),
)  # fmt: skip
content_expert = fit_classifier(
    torch.cat([real.painting, photos]), torch.cat([real.content, photo_labels]), 10,
    steps=profile.steps(2 * expert_steps), generator=torch.Generator().manual_seed(1),
)  # fmt: skip
num_held_out = profile.count(tiny=1000, small=1000, full=1000)
held_out = art.sample(num_held_out, size, "test", generator=torch.Generator().manual_seed(7))
held_out = held_out.to(device)
expert_scores = {
    "artist expert, held-out paintings": accuracy(style_expert, held_out.painting, held_out.style),
    "content expert, held-out paintings": accuracy(
        content_expert, held_out.painting, held_out.content
    ),
    "content expert, held-out photos": accuracy(content_expert, held_out.photo, held_out.content),
}
for name, value in expert_scores.items():
    print(f"{name}: accuracy {value:.3f}")

# %% [markdown]
# ## Stylisations
#
# Held-out photos (rows) in the style of one painting by each artist (columns); the style
# vector is read from the painting in the top row.

# %% tags=["key-figure"]
from esser_lab.style_transfer import interpolate_styles, stylise

donor_styles = torch.arange(art.NUM_STYLES)
donors = art.paint(held_out.photo[:4], donor_styles, torch.Generator().manual_seed(2)).to(device)
grid_photos = held_out.photo[4:10]


def stylisation_grid(model) -> torch.Tensor:
    """(photos, artists, 3, h, w): every photo in the style of every donor painting."""
    n, m = len(grid_photos), len(donors)
    out = stylise(model, grid_photos.repeat_interleave(m, 0), donors.repeat(n, 1, 1, 1))
    return out.reshape(n, m, *out.shape[1:])


grids = {"with FPT + FPD": stylisation_grid(full_model), "ablation": stylisation_grid(ablation)}
for name, grid in grids.items():
    rows = [[None, *donors]] + [[p, *g] for p, g in zip(grid_photos, grid, strict=True)]
    fig = show_grid(rows, row_titles=["painting", *["photo"] * len(grid_photos)], title=name)

# %% [markdown]
# Style vectors live on the unit sphere, so one can walk between two artists: one photo,
# stylised along the great circle from the first artist's style vector to the second's.

# %%
with torch.no_grad():
    s_donors = full_model.encode_style(donors)
walks = [interpolate_styles(full_model, grid_photos[0], s_donors[a], s_donors[b], 7)
         for a, b in ((0, 1), (2, 3))]  # fmt: skip
fig = show_grid([list(w) for w in walks], row_titles=["warm → cool", "violet → green"],
                title="style interpolation (with FPT + FPD)")  # fmt: skip

# %% [markdown]
# ### Explore
#
# Pick a photo and an artist. (On the static page the widget is a frozen snapshot; the grids
# above show the same stylisations.)

# %%
from esser_lab.viz.style_explorer import style_explorer

style_explorer(grid_photos, donors, grids, list(art.STYLE_NAMES))

# %% [markdown]
# ## Measuring the claim
#
# Every held-out photo $x_i$ is stylised towards artist $t_i = i \bmod 4$ with the style vector
# $s_p$ of a fresh painting by $t_i$ (of another digit); $s_n$ is the style of a painting by
# another artist. Four scores, for both models:
#
# * **deception rate**: the fraction of stylisations the artist expert assigns to $t_i$ (the
#   paper's measure; higher is better, chance is one in four);
# * **content accuracy**: the fraction whose digit the content expert still recognises;
# * **fix-point error**: $\lVert E_s(G(x_i, s_p)) - s_p\rVert / \lVert s_p - s_n\rVert$, how
#   far the re-encoded style lies from the style it was given, relative to another artist's
#   style: the property FPT asks for, on photos it never saw (lower is better);
# * **style-code spread**: sixteen style vectors (four per artist), each applied to the same 64
#   photos; the distance between the artists' centroids of the re-encoded styles $E_s(G(x, s))$
#   over how much $E_s(G(x, s))$ varies across the photos for one $s$ (FPD asks that it not
#   depend on the photo; the paper shows these clusters as t-SNE plots). The spread is taken
#   across photos for one style vector, not across paintings of one artist, because FPT is
#   meant to keep the differences between paintings of one artist.
#
# The comparison is the paper's ablation: the same network, data and steps without FPT and FPD.
# The chance level of the deception rate is only a sanity row.

# %%
from esser_lab.cards import Card
from esser_lab.style_transfer.claims import evaluation_set, file_claims, style_scores

evaluation = evaluation_set(held_out.photo, art.NUM_STYLES).to(device)
models = {"with FPT + FPD": full_model, "ablation": ablation}
scores = {
    name: style_scores(model, held_out.photo, held_out.content, evaluation, style_expert,
                       content_expert)
    for name, model in models.items()
}  # fmt: skip
card = file_claims(
    Card("03_style", profile.name, profile.seed, chapter_start),
    scores["with FPT + FPD"], scores["ablation"], art.NUM_STYLES, num_held_out=num_held_out,
)  # fmt: skip
path = card.write()
print(f"card written to {path.name} after {time.perf_counter() - chapter_start:.1f} s")
display(Markdown(card.markdown()))

# %% [markdown]
# **Reading the numbers.** What this run and the recorded training seeds say, generated from
# the card above:

# %%
full_s, ablation_s = scores["with FPT + FPD"], scores["ablation"]
lines = [
    card.text(
        "deception",
        holds="**Deception.** With the fix-point losses the artist expert takes {ours} of the "
        "stylisations for the target artist, against {baseline} without them (+{margin}); "
        "across training seeds: {seeds}.",
        fails="**Deception.** In this run the ablation deceives the artist expert as often or "
        "more often ({baseline}) than the full model ({ours}); across training seeds: {seeds}.",
    ),
    card.text(
        "content",
        holds="**Content.** The content expert reads the digit in {ours} of the full model's "
        "stylisations and {baseline} of the ablation's; across seeds: {seeds}.",
        fails="**Content.** The ablation keeps the digit as often or more often ({baseline} "
        "against {ours}); across seeds: {seeds}.",
    ),
    card.text(
        "fixpoint",
        holds="**Fix point.** The style read back from a stylisation lies nearer to the style it "
        "was given with FPT: {ours} of the distance to another artist's style, against "
        "{baseline} without; across seeds: {seeds}.",
        fails="**Fix point.** The ablation's read-back styles lie as near or nearer to the "
        "given style ({baseline} of the distance to another artist's, against {ours}); across "
        "seeds: {seeds}.",
    ),
    card.text(
        "style-spread",
        holds="**Style-code spread.** The full model's re-encoded styles tell the artists apart "
        "better relative to how much they vary with the photo ({ours} against {baseline}); "
        "across seeds: {seeds}. Trained five times longer (750 batches): {long}.",
        fails="**Style-code spread.** The ablation's re-encoded styles tell the artists apart "
        "at least as well relative to how much they vary with the photo ({baseline} against "
        "{ours}). The distances behind the ratios: with FPT + FPD the artists' centroids lie "
        "{f_between} apart and a style read back from 64 photos varies by {f_across}; without, "
        "{a_between} and {a_across}. Across seeds: {seeds}. Trained five times longer (750 "
        "batches): {long}.",
        f_between=f"{full_s.between:.3f}",
        f_across=f"{full_s.across_photos:.3f}",
        a_between=f"{ablation_s.between:.3f}",
        a_across=f"{ablation_s.across_photos:.3f}",
    ),
]
display(Markdown("\n\n".join(lines)))

# %% [markdown]
# At `tiny` scale expect coarse stylisations (the grids above): the donor artist's palette
# more than its strokes, and blurred digits. Both models have the discriminator's artist head,
# which pushes every stylisation towards its target artist; what only the full model has is
# the fix-point constraint on the style code. The paper trains the full objective for over a
# million steps at 128–768 px, where FPT and FPD have time to shape the code; the `small`
# scale (4,000 batches at 32×32) has not been measured yet (no GPU was available when this
# chapter was written).

# %% [markdown]
# ## Full scale
#
# * **On a GPU**: `ESSER_LAB_SCALE=small` (32×32 paintings, 4,000 batches) or
#   `ESSER_LAB_SCALE=full` (the paper's network: 16-d style, ngf 32, four down- and
#   upsamplings, nine residual blocks, a seven-layer multi-scale discriminator; 64 M parameters
#   at 128 px). `StyleTransferConfig.paper_stage(i)` gives the six stages of the official
#   curriculum (128 → 768 px, batch 16 → 1, margin 0.2 → 0.5); train them in turn, loading the
#   previous stage's weights (the networks are the same at every resolution).
# * **Real data.** The paper trains on Places365 photos and WikiArt artists (the script: Cézanne
#   and van Gogh). `esser_lab` never downloads: put the images on disk and read them with
#   `esser_lab.data.folder.ImageFolder` — one folder per artist for the paintings, Places365's
#   class folders for the photos (the content head classifies its 365 categories) — and build the
#   batches of `StyleBatch` from them (two photos, two paintings by different artists).
# * **No released weights.** The authors published work-in-progress TensorFlow code and no
#   trained models (issue #7 of the official repository asks for them and is unanswered), so
#   there is nothing to load.

# %% [markdown]
# ## Exercises
#
# 1. **Does the style code ignore the photo?** FPD asks that two different photos stylised with
#    one style re-encode to the same style. On held-out photos, compare
#    $\lVert E_s(G(x, s_p)) - E_s(G(x', s_p))\rVert$ with $\lVert E_s(G(x, s_p)) - s_p\rVert$:
#    how often is the FPD triplet satisfied, with and without the fix-point losses?
#    (`check_fpd_fraction(model, photo_a, photo_b, paintings, fraction)` checks a fraction.)
# 2. **Does the style code leak content?** Train a linear probe (logistic regression on $s$) to
#    predict the *digit* of the painting from $E_s(\text{painting})$. Chance is 0.1; what does
#    the probe reach?
# 3. **One vector per artist.** Replace each painting's style vector by the normalised mean
#    style vector of its artist and measure the deception rate again. Average over the first
#    1,000 real paintings (`check_mean_style_deception(full_model, style_expert, paintings,
#    artists, held_out.photo, evaluation.targets, rate)` checks the rate).

# %% [markdown]
# ```{admonition} Solution 1
# :class: dropdown
# The fraction of rows where the styles re-encoded from two photos in one style lie nearer to
# each other than to the style vector they were given (the FPD triplet with margin 0).
# ```

# %% tags=["hide-input"]
from esser_lab.style_transfer.exercises import check_fpd_fraction

half = min(256, num_held_out // 2)
photo_a, photo_b = held_out.photo[:half], held_out.photo[half : 2 * half]
paintings = evaluation.paintings[:half]
for name, model in models.items():
    # solution begins; students get: satisfied = None  # your code here: the fraction of rows
    with torch.no_grad():
        s_p = model.encode_style(paintings)
        back_a = model.encode_style(model(photo_a, s_p))
        back_b = model.encode_style(model(photo_b, s_p))
    satisfied = ((back_a - back_b).norm(dim=1) < (back_a - s_p).norm(dim=1)).float().mean().item()
    print(f"{name}: FPD triplet satisfied in {satisfied:.2f} of rows")
    assert check_fpd_fraction(model, photo_a, photo_b, paintings, satisfied), "checker must agree"
    # solution ends
    print(check_fpd_fraction(model, photo_a, photo_b, paintings, satisfied))

# %% [markdown]
# ```{admonition} Solution 2
# :class: dropdown
# A few hundred steps of logistic regression on the 16-d style vectors of real paintings. A
# probe near chance means the style code holds little about the digit.
# ```

# %% tags=["hide-input"]
num_probe = profile.count(tiny=2000, small=2000, full=2000)
fit = num_probe * 3 // 4  # the probe's training part; the rest tests it
probe_set = art.sample(num_probe, size, "train", generator=torch.Generator().manual_seed(11))
probe_set = probe_set.to(device)
with torch.no_grad():
    s_probe = full_model.encode_style(probe_set.painting)
probe = torch.nn.Linear(s_probe.shape[1], 10).to(device)
optimizer = torch.optim.Adam(probe.parameters(), lr=0.05)
for _ in range(profile.steps(200)):
    loss = torch.nn.functional.cross_entropy(probe(s_probe[:fit]), probe_set.content[:fit])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
probe_accuracy = (probe(s_probe[fit:]).argmax(1) == probe_set.content[fit:]).float().mean()
print(f"digit from the style code: {probe_accuracy:.3f} (chance 0.1)")

# %% [markdown]
# ```{admonition} Solution 3
# :class: dropdown
# Average each artist's style vectors over many paintings, re-normalise, and stylise with it.
# ```

# %% tags=["hide-input"]
from esser_lab.style_transfer.exercises import check_mean_style_deception

paintings, artists = real.painting[:1000], real.style[:1000]
# solution begins; students get: rate = None  # your code here: the deception rate
with torch.no_grad():
    s_real = full_model.encode_style(paintings)
per_artist = torch.stack([s_real[artists == k].mean(0) for k in range(art.NUM_STYLES)])
mean_styles = torch.nn.functional.normalize(per_artist, dim=1)  # back to unit length
with torch.no_grad():
    out = full_model(held_out.photo, mean_styles[evaluation.targets])
rate = (predict(style_expert, out) == evaluation.targets).float().mean().item()
print(f"deception rate with one mean style vector per artist: {rate:.3f}")
assert check_mean_style_deception(full_model, style_expert, paintings, artists, held_out.photo,
                                  evaluation.targets, rate), "the checker must agree"  # fmt: skip
# solution ends
print(check_mean_style_deception(full_model, style_expert, paintings, artists, held_out.photo,
                                 evaluation.targets, rate))  # fmt: skip
print(f"chapter ran in {time.perf_counter() - chapter_start:.1f} s at scale {profile.name}")

# %% [markdown]
# ## References
#
# ```{bibliography}
# :filter: docname in docnames
# ```
