# ---
# jupyter:
#   esser_lab:
#     goals:
#     - Explain how dual-timestep scheduling leaves part of an image cleaner than the
#       rest and rewards inferring the noisy tokens from the clean ones.
#     - Implement the self-distillation loss in which the student's shallow features
#       predict an EMA teacher's deeper features at the cleaner noise level.
#     - Compare vanilla flow matching, dual-timestep scheduling alone and Self-Flow
#       by linear probes of their features and by the rule their samples keep.
#     key_figure: Linear-probe accuracy of the class from each block's mean-pooled features,
#       for the three training arms at a few noise levels, with the chance level.
#     lab: Train the same per-token DiT on two-glyph images with vanilla flow matching,
#       dual-timestep scheduling alone and Self-Flow for the same steps; probe each
#       block's features for the class and the colour relation, and score samples for
#       the shared-shape rule and an FID-style score.
#     prerequisites:
#       chapters:
#       - 14
#       - 17
#       maths:
#       - flow matching (velocity regression)
#       - exponential moving averages and self-distillation
#       - linear probes (logistic regression)
#     week: 13
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
# # 19. Self-Flow: self-supervised flow matching
#
# Chefer, Esser, Lorenz, Podell, Raja, Tong, Torralba & Rombach, *Self-Supervised Flow Matching
# for Scalable Multi-Modal Synthesis* (2026;
# [arXiv:2603.06507](https://arxiv.org/abs/2603.06507); inference code and the released
# ImageNet model: [black-forest-labs/Self-Flow](https://github.com/black-forest-labs/Self-Flow)).
#
# **The problem.** A flow-matching model (chapter 17) learns to denoise, and a good denoiser has
# to understand its images: its intermediate features come to encode objects and their
# relations. REPA showed that training goes faster when those features are pulled towards a
# frozen, separately trained image encoder (DINOv2). That helps, but it ties the generator to an
# external network made for another modality and another scale, and the paper reports that a
# bigger external encoder can make the generator *worse*.
#
# **The idea.** Let the generator teach itself. (1) *Dual-timestep scheduling*: noise a random
# quarter of the tokens to one level s and the rest to another level t, and tell each token its
# own level (per-token timestep conditioning). Some of the picture is then cleaner than the rest,
# and the network is rewarded for inferring the noisy parts from the clean ones. (2) *Self-
# distillation*: an exponential moving average of the network (the teacher) sees the whole image
# at the cleaner of the two levels; the student's shallow features, through a small projector,
# must predict the teacher's deeper features, token by token. No external encoder, one extra
# forward pass of the teacher per step.
#
# **In the lineage.** The rectified-flow path, logit-normal training times and the Euler sampler
# are chapter 17's (`esser_lab.diffusion.flow`); the DiT blocks (attention, MLP, sin-cos
# positions, timestep embedding) are chapter 17's `esser_lab.nn.dit`, here with per-token adaLN;
# the linear probe is chapter 5's (`esser_lab.iin.method.linear_probe`); the FID-style score is
# the book's (`esser_lab.metrics.fid`). New here: the per-token DiT (`esser_lab.selfflow.model`),
# the objective (`esser_lab.selfflow.method`) and the loader of the released weights
# (`esser_lab.selfflow.checkpoint`).

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
profile = scales.apply(scales.current())
generator = seed_everything(profile.seed)
print(profile.describe())

# %% [markdown]
# ## The data: two parts and a relation
#
# The notes' earlier toy (single sprites, 1,500 steps) showed no difference between the arms:
# when each image is one object, a token-local denoiser does well and nothing rewards global
# features. Here every 16×16 image holds two glyphs, one per half, at random positions, tied by a
# rule: *both glyphs have the same shape*, the image's class. A second factor, independent of
# the shape, is whether the right glyph has the left one's colour (half the images). Neither
# rule is visible in one half alone (`esser_lab.data.relations`): a denoiser must look across
# the image to keep the shapes equal, and a feature that is a sum of per-token features cannot
# tell "same colour" from "different colour" linearly. The shape rule is what we check in
# generated samples (a template judge reads each half's glyph and refuses blobs); the class and
# the colour relation are the labels of the linear probes.

# %%
from esser_lab.data.relations import GLYPHS, relation_batch
from esser_lab.viz.images import show_grid

num_train = profile.count(tiny=8192, small=50_000, full=200_000)
num_probe = profile.count(tiny=1024, small=2048, full=4096)
train = relation_batch(num_train, torch.Generator().manual_seed(1))
probe_train = relation_batch(num_probe, torch.Generator().manual_seed(2))
probe_test = relation_batch(num_probe // 2, torch.Generator().manual_seed(3))
fig = show_grid(
    [list(probe_test.image[:8])],
    column_titles=[
        f"{GLYPHS[s]}\n{'same' if c else 'other'} colour"
        for s, c in zip(
            probe_test.shape[:8].tolist(), probe_test.same_colour[:8].tolist(), strict=True
        )
    ],
)

# %% [markdown]
# ## The method
#
# In the book's convention ($t = 0$ data, $t = 1$ noise) flow matching noises an image $x_0$ to
# $x_t = (1 - t)\,x_0 + t\,\varepsilon$ and regresses the velocity $\varepsilon - x_0$.
#
# **Dual-timestep scheduling (DTS).** Draw $t, s \sim p(t)$ (the model's own density, here
# logit-normal) and a random set $M$ holding a share $R_M = 0.25$ of the tokens. Token $i$ is
# noised to $t_i = s$ if $i \in M$, else $t$, all with one $\varepsilon$, and conditioned on its
# own $t_i$:
#
# $$
# \mathcal L_\text{gen} = \mathbb E\,\big\lVert v_\theta(x_{\{t_i\}}, \{t_i\}) -
#   (\varepsilon - x_0) \big\rVert^2 . \qquad (1)
# $$
#
# $t$ and $s$ are not sorted (the maintainers, issue #11): some images see mostly the cleaner
# level, some mostly the noisier one, and every token's marginal time stays $p(t)$. At sampling
# time every token has the same time: the model is sampled as a vanilla flow.
#
# Two choices here are ours, because the release publishes inference code only. The density
# $p(t)$ is the logit-normal with mean 0 and scale 1 of chapter 17; SiT and REPA, the code
# Self-Flow builds on, draw $t$ uniformly, and the paper does not say which density it used.
# And $M$ holds *exactly* a quarter of the tokens (rounded), where the release only names the
# ratio: a coin per token with that probability would be an equally faithful reading.
#
# **Self-distillation.** The teacher $\bar\theta$, an EMA of $\theta$, sees the homogeneous view
# at $\tau_{\min} = \min(t, s)$, the cleaner of the two levels. With $h^{(l)}$ the tokens after
# block $l$, the student's shallow block $l_s$ (8 of 28 in the release) through a projector
# $g$ predicts the teacher's deeper block $l_t$ (20 of 28):
#
# $$
# \mathcal L_\text{rep} = \frac{1}{N}\sum_{i=1}^{N}
#   \Big(1 - \cos\big(g(h^{(l_s)}_{\theta, i}),\ \mathrm{sg}\,h^{(l_t)}_{\bar\theta, i}\big)\Big),
# \qquad \mathcal L = \mathcal L_\text{gen} + \gamma\,\mathcal L_\text{rep},\ \gamma = 0.8 .
#   \qquad (2)
# $$
#
# Turning the teacher off leaves DTS alone; turning DTS off too leaves vanilla flow matching:
# the same function with switches (the tests check that the switched-off loss *is* chapter 17's
# rectified-flow loss, exactly).

# %%
from esser_lab.selfflow.method import selfflow_loss

display(Code(inspect.getsource(selfflow_loss), language="python"))

# %% [markdown]
# **Seeing the two views.** The explorer draws what the student and the teacher receive for a
# choice of $t$, $s$ and the mask ratio (on a static page it is a frozen snapshot; the figure
# below it shows a few settings).

# %%
from esser_lab.selfflow.chapter import dts_explorer, views_figure

patch = 4
explorer = dts_explorer(probe_test.image[:6], patch)
explorer

# %%
fig = views_figure(probe_test.image[:6], [(0.8, 0.2), (0.3, 0.9)], 0.25, patch)

# %% [markdown]
# ## The model: a DiT with a time per token
#
# The release is SiT-XL/2 with two changes: the timestep embedding is computed per token and
# added to the class embedding, and every adaLN modulation (shift, scale and gate of each block
# and of the final layer) is applied per token. Computing the modulation for every token would
# multiply the cost of the adaLN layers by the number of tokens; within a batch there are only
# two distinct times per image, so `SelfFlowDiT` computes it once per distinct (time, class)
# and gathers it per token (the same numbers). The toy is unconditional (no class labels reach
# the model, as the paper's probing protocol asks). The book has no class-conditional training
# path: the release's label table with its extra null class (for classifier-free guidance) is
# there to load the released weights, and `LitSelfFlow` refuses a conditional model with an
# error that says so.

# %%
from esser_lab.selfflow.model import SelfFlowConfig, SelfFlowDiT, count_parameters

config = profile.pick(
    tiny=SelfFlowConfig.tiny(),
    small=replace(SelfFlowConfig.tiny(), hidden=192, depth=8, heads=6),
    full=replace(SelfFlowConfig.tiny(), hidden=384, depth=12, heads=6),
)
with torch.device("meta"):
    paper_model = SelfFlowDiT(SelfFlowConfig.paper())
print(
    f"toy: {count_parameters(SelfFlowDiT(config)):,} parameters, {config.tokens} tokens of "
    f"{config.patch_size}×{config.patch_size} pixels, depth {config.depth}, width {config.hidden}"
)
print(f"paper (SiT-XL/2, 4×32×32 latents, 1001 classes): {count_parameters(paper_model):,}")

# %% [markdown]
# ## Training three arms the same way
#
# Vanilla flow matching, DTS alone and Self-Flow train the same network from the same seed on
# the same batches for the **same number of steps** (equal steps, not equal wall time: Self-Flow
# also runs the teacher, and the table below gives each arm's seconds). The student block is
# the one at about 0.3 of the depth and the teacher's at about 0.7, the release's 8/28 and
# 20/28; a short run needs a faster EMA than a long one.

# %%
from esser_lab.data.modules import batch_loader
from esser_lab.selfflow.method import SelfFlowMethod
from esser_lab.selfflow.training import LitSelfFlow
from esser_lab.training.trainer import make_trainer

long_steps = 1000  # the tiny budget of the longer bench run (ESSER_LAB_BUDGET=long)
train_steps = profile.pick(tiny=150, small=20_000, full=100_000, long=long_steps)
batch_size = 4 if profile.capped else profile.pick(tiny=64, small=128, full=256)
learning_rate = profile.pick(tiny=1e-3, small=3e-4, full=1e-4)
student_layer = max(1, round(0.3 * config.depth))
teacher_layer = max(student_layer + 1, round(0.7 * config.depth))
ema_decay = profile.pick(tiny=0.99, small=0.999, full=0.9999)
self_flow = SelfFlowMethod(
    student_layer=student_layer, teacher_layer=teacher_layer, ema_decay=ema_decay
)
arms = {"vanilla": self_flow.vanilla(), "dts": self_flow.dts_only(), "selfflow": self_flow}
print(
    f"{profile.steps(train_steps):,} steps of batch {batch_size}, lr {learning_rate:g}; "
    f"student block {student_layer} → teacher block {teacher_layer}, EMA {ema_decay}"
)


def train_arm(method: SelfFlowMethod) -> LitSelfFlow:
    seed_everything(profile.seed)
    system = LitSelfFlow(SelfFlowDiT(config), method, learning_rate=learning_rate)
    loader = batch_loader({"image": train.image}, batch_size, shuffle=True, seed=profile.seed)
    steps = profile.steps(train_steps)
    start = time.perf_counter()
    make_trainer(profile, steps, progress_every=max(steps // 2, 1)).fit(system, loader)
    system.seconds = time.perf_counter() - start
    return system.eval()


systems = {}
for name, method in arms.items():
    print(f"{name}:")
    systems[name] = train_arm(method)

# %% [markdown]
# ## What the features know, and what the samples show
#
# **Probes** (the REPA protocol at toy scale): the trained networks are frozen; held-out images
# are noised to a few times $t$ with fixed noise; each block's tokens are averaged; a linear
# (logistic) probe learns a label on one set and is tested on another: the class (the shared
# glyph, four ways, chance 0.25; at strong noise, seeing both halves helps) and the colour
# relation (chance 0.5). **Samples**: Euler from the same noise for every arm; the share of
# samples whose two glyphs the judge reads as one and the same shape, and the FID-style score
# against held-out images.

# %%
from esser_lab.selfflow.claims import ArmResult, probe_table, sample_scores

probe_times = (0.5, 0.75)
relation_times = (0.25, 0.5)
num_samples = 8 if profile.capped else profile.count(tiny=256, small=1024, full=2048)
sample_steps = profile.pick(tiny=20, small=50, full=50)
reference = relation_batch(max(num_samples, 256), torch.Generator().manual_seed(4)).image
results = {}
for name, system in systems.items():
    model = system.model.to(profile.device)  # Lightning hands it back on the CPU after fit
    results[name] = ArmResult(
        probe=probe_table(model, probe_train, probe_test, probe_times, seed=profile.seed),
        relation=probe_table(
            model, probe_train, probe_test, relation_times, seed=profile.seed, label="same_colour"
        ),
        samples=sample_scores(model, reference, num_samples, sample_steps, seed=profile.seed),
        seconds=system.seconds,
        cosines=[h["cosine"] for h in system.history],
    )
rows = ["| arm | class probe (block, t) | relation probe | shape rule in samples | FID-style "
        "| training (s) |", "|---|---|---|---|---|---|"]  # fmt: skip
for name, r in results.items():
    block, t = r.best_at
    rows.append(f"| {name} | {r.best_probe:.3f} ({block}, {t:g}) | {r.best_relation:.3f} | "
                f"{r.samples.rule:.3f} | "
                f"{r.samples.fid:.2f} | {r.seconds:.1f} |")  # fmt: skip
display(Markdown("\n".join(rows)))

# %% tags=["key-figure"]
from esser_lab.selfflow.chapter import alignment_figure, probe_figure

fig = probe_figure(
    {name: r.probe for name, r in results.items()},
    chance=1 / len(GLYPHS),
    label=f"the class, {len(GLYPHS)} ways",
)

# %%
fig = show_grid(
    [list(r.samples.images[:10]) for r in results.values()], row_titles=list(results), cell=0.8
)

# %%
from esser_lab.selfflow.claims import PLATEAU_FALL, alignment_curve, half_rises

fig = alignment_figure({"Self-Flow": alignment_curve(results["selfflow"].cosines)})

# %% [markdown]
# ## Measuring the claims

# %%
from esser_lab.cards import Card
from esser_lab.selfflow.claims import file_selfflow_claims

card = Card("19_self_flow", profile.name, profile.seed, chapter_start)
file_selfflow_claims(card, results, steps=profile.steps(train_steps))
path = card.write()
display(Markdown(card.markdown()))
for c in card.claims:
    print(c.summary())
print(f"card written to {path.name} after {time.perf_counter() - chapter_start:.1f} s")
assert all(math.isfinite(c.our_value) and math.isfinite(c.baseline_value) for c in card.claims)

# %% [markdown]
# **Reading the numbers.** Generated from the card above and the recorded seeds (a claim is
# *reproduced* when it holds in at least 4 of 5 seeds).

# %%
ours = results["selfflow"]
first_rise, second_rise = half_rises(alignment_curve([c for c in ours.cosines if math.isfinite(c)]))
bullets = [
    "**Features.** "
    + card.text(
        "probe-vs-vanilla",
        holds="Self-Flow's best probe reads the class with accuracy {ours} against {baseline} "
        "for vanilla flow matching (across seeds: {seeds}; {long}).",
        fails="Self-Flow's best class probe ({ours}) is not above vanilla flow matching's "
        "({baseline}) in this run (across seeds: {seeds}; {long}).",
    )
    + " "
    + card.text(
        "dts-vs-vanilla",
        holds="DTS alone reaches {ours} against the same {baseline} (across seeds: {seeds}),",
        fails="DTS alone reaches {ours}, not above vanilla's {baseline} (across seeds: {seeds}),",
    )
    + " "
    + card.text(
        "probe-vs-dts",
        holds="and the teacher adds to it: {ours} against {baseline} (across seeds: {seeds}).",
        fails="and the teacher adds nothing measurable to it: {ours} against {baseline} "
        "(across seeds: {seeds}).",
    )
    + " "
    + card.text(
        "relation-probe-vs-vanilla",
        holds="The colour relation is read at {ours} against {baseline} (chance 0.5; across "
        "seeds: {seeds}).",
        fails="The colour relation is read at {ours}, not above vanilla's {baseline} (chance "
        "0.5; across seeds: {seeds}).",
    ),
    "**Samples.** "
    + card.text(
        "rule-vs-vanilla",
        holds="{ours_pct:.1f} % of Self-Flow's samples keep the shape rule against "
        "{base_pct:.1f} % of vanilla's (across seeds: {seeds}).",
        fails="{ours_pct:.1f} % of Self-Flow's samples keep the shape rule, not more than "
        "vanilla's {base_pct:.1f} % (across seeds: {seeds}).",
        ours_pct=100 * ours.samples.rule,
        base_pct=100 * results["vanilla"].samples.rule,
    )
    + " "
    + card.text(
        "fid-vs-vanilla",
        holds="Their FID-style score is {ours} against {baseline} (across seeds: {seeds}; {long}).",
        fails="Their FID-style score is {ours} against {baseline}, not better (across seeds: "
        "{seeds}; {long}).",
    ),
    "**Alignment.** "
    + card.text(
        "alignment-plateaus",
        holds="The student–teacher cosine rises by {baseline} over the first half of training "
        "and changes by {second:+.4f} over the second: fast, then flat, as the maintainers "
        "describe.",
        fails="The student–teacher cosine rises by {baseline} over the first half of training "
        "and changes by {second:+.4f} over the second: no plateau at this budget (a plateau "
        "here means a smaller second-half rise and no fall of more than {fall:g} % of the "
        "first).",
        second=second_rise,
        fall=100 * PLATEAU_FALL,
    ),
    "**Cost.** "
    + card.text(
        "teacher-cost",
        holds="At equal steps Self-Flow trained for {ours} s against {baseline} s for vanilla: "
        "equal steps are not equal compute.",
        fails="Self-Flow trained for {ours} s against {baseline} s for vanilla.",
    ),
]
probes = [r.best_probe for r in results.values()]
rules = [r.samples.rule for r in results.values()]
bullets.append(
    f"**What {profile.steps(train_steps):,} steps show.** The three arms' best class probes lie "
    f"within {max(probes) - min(probes):.3f} of one another (chance 0.25), and at most "
    f"{100 * max(rules):.1f} % of any arm's samples show two clear glyphs of one shape: "
    + (
        "the networks have not yet learned to draw the glyphs, so a minute cannot separate the "
        "arms; the verdicts above are noise until the seeds and the longer run say otherwise."
        if max(rules) < 0.2
        else "the arms draw glyphs, and the comparison above is between trained models."
    )
)
longer = [f"`{c.key}`: {card.long_phrase(c.key)}" for c in card.claims
          if c.kind == "claim" and card.long_run(c.key) is not None]  # fmt: skip
bullets.append(
    "**The longer bench run** (the same cells at "
    f"{long_steps:,} steps, "
    "`claims_long.csv`): " + ("; ".join(longer) + "." if longer else "none recorded yet.")
)
display(Markdown("\n".join(f"* {b}" for b in bullets)))

# %% [markdown]
# **The paper's numbers, beside.** On ImageNet-256 the released SiT-XL/2 reaches FID 5.7
# without guidance (model card: 250 SDE steps, IS 151.4); on text-to-image the project page
# reports convergence about 2.8× faster than REPA. The counter-paper (Jiang et al.,
# arXiv 2607.02508) trained SiT-B for 800 k iterations with and without blocking attention
# between the two noise groups: FID 25.19 without the block and 25.06 with it, IS 66.75 and
# 72.94. If the teacher's features were what mattered through the mixing of clean and noisy
# tokens, blocking that mixing should hurt; it did not, which they read as DTS acting mostly
# as *noise augmentation*. A report in the release's issues (#4) saw DiT-B at 400 k steps go
# from FID 33 to 29, a modest gain at small scale; the paper's own scaling plots show the gap
# growing with model size. A toy of a hundred thousand parameters sits at the far small end of
# that curve, and the minute run above is a short training even for it: read its verdicts with
# the seeds and the longer bench run beside them.

# %% [markdown]
# ## Full scale
#
# * **On a GPU**: `ESSER_LAB_SCALE=small` trains a wider, deeper per-token DiT
#   (width 192, depth 8) for 20,000 steps on the same sprites, `full` a width-384, depth-12
#   model for 100,000; neither has been run for this page (times "not yet measured").
#   `SelfFlowConfig.paper()` is the released SiT-XL/2 on 4×32×32 SD-VAE latents; training it
#   needs ImageNet latents and many GPUs (the release's recipe: AdamW, gradient clipping at 1,
#   bf16, mask ratio 0.25, teacher block 20, student block 8).
# * **The official weights.** `esser_lab.selfflow.checkpoint.load_selfflow` reads the released
#   `selfflow_imagenet256.pt` (Hugging Face `Hila/Self-Flow`, Apache-2.0) with
#   `torch.load(weights_only=True)`, strictly, naming missing or unexpected keys and wrong shapes;
#   a file in the DiT/SiT layout (a convolutional patch embedding) or a diffusers export is
#   refused with a message naming the layout expected. The one exception follows the official
#   loader, which is lenient: the fixed sin-cos position table is recomputed if the file lacks it.
# * **Its time runs the other way.** The stored network speaks SiT's convention: it takes SiT's
#   time (0 noise, 1 data) and predicts $x_0 - \varepsilon$, and the release's sampler integrates
#   it from noise to data. The release's public `forward` wraps it into this book's convention:
#   it evaluates the network at $1 - t$ and negates the result. The loader sets
#   `SelfFlowConfig.release_time`, which makes our model do the same, so the loaded model is
#   called like every flow model of the book (time 1 = noise, velocity
#   $\varepsilon - x_0$); `sit_velocity` gives the stored network's own answer. Both are tested
#   against the release's `forward` and sampler written out from their equations, with an exact
#   case in which one Euler step of ours lands where the release's sampler steps.
# * **Sampling it.** Put the file at `data/checkpoints/selfflow/selfflow_imagenet256.pt`; the
#   next cell then draws latents for four ImageNet classes with our deterministic Euler sampler
#   (the release's reported numbers use 250 steps of an SDE sampler, with classifier-free
#   guidance optional) and prints their shape and spread. It does not decode them: turning the
#   4×32×32 latents into images needs the SD-VAE decoder, which the book does not ship. The
#   file is not part of this book and was absent from the run that built this page.

# %%
from pathlib import Path

from esser_lab.cards import repository_root

root = repository_root() or Path.cwd()
official = root / "data/checkpoints/selfflow/selfflow_imagenet256.pt"
print(f"{len(paper_model.state_dict())} tensors in the release layout")
if official.is_file():
    from esser_lab.diffusion.flow import euler_solve
    from esser_lab.selfflow.checkpoint import load_selfflow

    released = load_selfflow(official).to(profile.device)
    labels = torch.tensor([207, 360, 387, 974], device=profile.device)  # ImageNet classes
    noise = torch.randn(4, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # book convention (release_time): Euler from t = 1 (noise) to 0
        latents = euler_solve(lambda x, t, y: released(x, t, y), noise.to(profile.device), 50,
                              labels)  # fmt: skip
    print("sampled latents (not decoded)", tuple(latents.shape),
          f"std {latents.std().item():.3f}")  # fmt: skip
else:
    print(f"no file at {official.relative_to(root)}: the full-scale sampling is not run here")

# %% [markdown]
# ## Exercises
#
# 1. **Where is the cleaner view?** In SiT's convention (time 1 = data) which of $t$ and $s$
#    would the teacher see, the smaller or the larger (`check_teacher_time_in_sit("min" or
#    "max")`)? Check with `draw_times` that our $\tau_{\min}$ is always at most both times.
# 2. **Attention Separation.** Train the Self-Flow arm once more with
#    `attention_separation=True` (the two noise groups cannot attend to each other in the
#    student) and compare its best probe with the arms above.
# 3. **The mask ratio.** What fraction of tokens does `token_mask` noise to $s$ at ratio 0.25
#    with 16 tokens, and what happens at a ratio that does not divide the tokens evenly?
#    (`check_masked_tokens(tokens, ratio, count)` checks a count of tokens per image.)

# %% [markdown]
# ```{admonition} Solution 1
# :class: dropdown
# SiT's time runs the other way, so the cleaner view is the *larger* SiT time, max of the two;
# in the book's convention it is the smaller. This run's check:
# ```

# %% tags=["hide-input"]
from esser_lab.selfflow.exercises import check_masked_tokens, check_teacher_time_in_sit
from esser_lab.selfflow.method import draw_times

# solution begins; students get: teacher_sees = None  # your answer: "min" or "max" of the SiT times
teacher_sees = "max"
times = draw_times(10_000, config.tokens, self_flow, torch.Generator().manual_seed(0))
print("τ_min ≤ t and τ_min ≤ s everywhere:",
      bool((times.tau_min <= times.t).all() and (times.tau_min <= times.s).all()))  # fmt: skip
print(f"share of images where s is the cleaner level: {(times.s < times.t).float().mean():.3f}")
assert check_teacher_time_in_sit(teacher_sees), "the checker must accept the solution"
# solution ends
print(check_teacher_time_in_sit(teacher_sees))

# %% [markdown]
# ```{admonition} Solution 2
# :class: dropdown
# The counter-paper found blocking attention between the groups harmless at SiT-B scale. At the
# toy's budget (a shorter run than above, for time):
# ```

# %% tags=["hide-input"]
separated = replace(self_flow, attention_separation=True)
short = max(profile.steps(train_steps) // 3, 1)
seed_everything(profile.seed)
system = LitSelfFlow(SelfFlowDiT(config), separated, learning_rate=learning_rate)
loader = batch_loader({"image": train.image}, batch_size, shuffle=True, seed=profile.seed)
make_trainer(profile, short, progress_every=short).fit(system, loader)
table = probe_table(
    system.model.to(profile.device).eval(), probe_train, probe_test, probe_times[:1]
)
print(f"Attention Separation, {short} steps: best probe {max(table.values()):.3f}")

# %% [markdown]
# ```{admonition} Solution 3
# :class: dropdown
# Exactly round(0.25 · 16) = 4 tokens per image, at random places; at a ratio that does not
# divide evenly the count is rounded, so the share is only approximately the ratio:
# ```

# %% tags=["hide-input"]
from esser_lab.selfflow.method import token_mask

for ratio in (0.25, 0.3):
    # solution begins; students get: count = None  # your code here: tokens at s per image
    mask = token_mask(1000, config.tokens, ratio, torch.Generator().manual_seed(0))
    count = int(mask.sum(1)[0])
    print(f"ratio {ratio}: {mask.sum(1).unique().tolist()} tokens per image, share "
          f"{mask.float().mean():.4f}")  # fmt: skip
    assert check_masked_tokens(config.tokens, ratio, count), "the checker must accept it"
    # solution ends
    print(check_masked_tokens(config.tokens, ratio, count))
print(f"chapter time: {time.perf_counter() - chapter_start:.1f} s")
