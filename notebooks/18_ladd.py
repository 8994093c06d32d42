# ---
# jupyter:
#   esser_lab:
#     goals:
#     - Explain why a discriminator built on the frozen teacher's own token features lets a
#       one- to four-step student match the many-step guided teacher in latent space.
#     - Implement the LADD student, the teacher-feature discriminator heads and the hinge losses,
#       keeping the teacher frozen without cutting the student's gradient.
#     - Measure the few-step student against the guided teacher at the same few steps, and how
#       the discriminator's noise levels trade global layout against detail.
#     key_figure: The same captions and noise through the guided teacher at one, two, four and
#       many steps and through the distilled student at one and two steps.
#     lab: Distil the shipped rectified-flow teacher into a one-step student with the
#       teacher-feature discriminator on synthetic teacher latents; compare it with the teacher
#       at the same steps, move the discriminator's noise levels, and train on real latents.
#     prerequisites:
#       chapters:
#       - 14
#       - 17
#       maths:
#       - generative adversarial networks and the hinge loss
#       - the logit-normal distribution
#       - Euler's method for a flow's ODE
#     week: 12
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
# # 18. LADD: latent adversarial diffusion distillation
#
# Sauer, Boesel, Dockhorn, Blattmann, Esser & Rombach, *Fast High-Resolution Image Synthesis
# with Latent Adversarial Diffusion Distillation*, SIGGRAPH Asia 2024
# ([arXiv:2403.12015](https://arxiv.org/abs/2403.12015)). No code was released with the paper;
# this chapter builds the method from its text and says where it had to choose.
#
# **The problem.** A rectified-flow model such as chapter 17's samples by integrating an ODE:
# dozens of network calls per image, twice that with classifier-free guidance. With one to four
# calls its samples are blurred averages of what the caption allows. Adversarial diffusion
# distillation (ADD, by the same group) had turned a diffusion model into a one-to-four step
# sampler with a GAN loss, but its discriminator works on *pixels* with a pretrained DINOv2
# network: every training step decodes the latents, and the resolution is capped at what that
# network was trained for.
#
# **The idea.** Keep everything in latent space. The student is a copy of the teacher that is
# trained to jump from a noised latent straight to a clean one. The discriminator is the
# *teacher itself*, frozen, run on the student's output after noising it again to a level t̂,
# with small trainable heads reading its token features after several blocks. The "real" data
# are the teacher's own guided samples, so no image data and no distillation loss are needed.
# The level t̂ chooses what the discriminator judges: at high noise only the global layout
# survives, at low noise the fine detail.
#
# **In the lineage.** The teacher is chapter 17's MMDiT (`esser_lab.sd3.model`), trained with
# its rectified-flow formulation, on latents of its shipped autoencoder and conditioned by its
# toy text encoder; sampling, guidance and the time grid are the generative core's
# (`esser_lab.diffusion`); the hinge loss and the adversarial training loop follow the book's
# earlier GANs (chapters 8 and 10). New here: the discriminator on generative features and the
# few-step student (`esser_lab.ladd`).

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
# ## The teacher
#
# LADD distils a pretrained model; SD3-Turbo's teacher is the 8-billion-parameter SD3. The toy's
# teacher is chapter 17's MMDiT, somewhat larger than that chapter's tiny model, trained as SD3
# trains (rectified flow, logit-normal times, caption dropout for guidance) on the latents of
# chapter 17's captioned sprites. Training it takes minutes, so it ships with the package
# (`esser_lab/ladd/weights/teacher_tiny.safetensors`; `python -m esser_lab.ladd.teacher`
# re-makes it bit for bit, its settings are in that module's docstring). At every scale of this
# chapter the shipped teacher is the one distilled: the sprites' world has no use for a larger
# one.

# %%
from esser_lab.config import config_rows
from esser_lab.ladd.teacher import load_teacher, sprite_latents
from esser_lab.sd3.first_stage import decode_latents, load_toy_first_stage
from esser_lab.sd3.model import MMDiTConfig
from esser_lab.sd3.text import ToyTextEncoder
from esser_lab.viz.images import show_grid

teacher = load_teacher().to(profile.device)
encoder = ToyTextEncoder(teacher.config.context_dim, teacher.config.adm_in, seed=0)
autoencoder = load_toy_first_stage().to(profile.device)
print(f"teacher: {sum(p.numel() for p in teacher.parameters()):,} parameters")
display(Markdown("\n".join(config_rows(MMDiTConfig.paper(), teacher.config, "SD3 (medium)"))))

# %% [markdown]
# ## The data
#
# The captions are those of chapter 17's training sprites. LADD's "real" latents are the
# teacher's own samples for them, drawn with classifier-free guidance and many Euler steps: the
# distribution the student should match, with the guidance baked in (the student itself samples
# unguided). They are drawn with as many steps as "the many-step teacher" that the student is
# compared with below, so that reference and data are the same sampler. For the data comparison
# below, the encoded real training images are kept too. Held-out sprites (another seed) are the
# reference of every score. The synthetic data are one fixed set (noise seed 10), whatever the
# training seed, as the real data are: at `tiny` the package ships exactly these latents
# (`esser_lab.ladd.synthetic`, re-made bit for bit by `synthesize` below) because generating them
# would take a fifth of the minute; at `small`, `full` and the longer CPU budget they are
# generated here.

# %%
from esser_lab.ladd.method import synthesize
from esser_lab.ladd.synthetic import load_synthetic

num_train = profile.count(tiny=512, small=4096, full=16_384)
num_test = profile.count(tiny=256, small=1024, full=4096)
guidance = 3.0  # the teacher's guidance scale, for the synthetic data and its evaluation
many = profile.pick(tiny=25, small=50, full=50)  # "the many-step teacher" of the evaluation
synthetic_steps = many  # the data are the many-step teacher's samples
real_latents, train = sprite_latents(num_train, seed=1)
test_latents, test = sprite_latents(num_test, seed=2)
latent_shape = tuple(real_latents.shape[1:])
null = {k: torch.zeros_like(v) for k, v in encoder.encode(train.tokens[:1]).items()}
start = time.perf_counter()
synthetic_latents = load_synthetic(train.tokens, steps=synthetic_steps, guidance=guidance, seed=10)
made = "read from the package's file" if synthetic_latents is not None else "generated"
if synthetic_latents is None:
    synthetic_latents = synthesize(
        teacher, encoder.encode(train.tokens), null, latent_shape,
        steps=synthetic_steps, guidance=guidance, seed=10,
    )  # fmt: skip
print(f"{num_train} synthetic latents ({synthetic_steps} guided Euler steps, s = {guidance:g}), "
      f"{made} in {time.perf_counter() - start:.1f} s")  # fmt: skip
with torch.no_grad():
    shown = decode_latents(autoencoder, synthetic_latents[:8].to(profile.device)).clamp(-1, 1)
fig = show_grid([list(train.image[:8]), list(shown.cpu())], row_titles=["real", "teacher's"],
                column_titles=[c.replace(" of ", " of\n") for c in train.caption[:8]])  # fmt: skip

# %% [markdown]
# ## The method
#
# **The student** (a copy of the teacher, so it starts as a good denoiser) has a few fixed
# timesteps, the uniform grid $t \in \{1, 1 - 1/n, \dots, 1/n\}$ (shifted as SD3's sampling grid
# where the resolution asks for it). A training latent $x_0$ is noised to one of them and the
# student predicts the clean latent in one call, unguided:
#
# $$
# x_t = (1 - t)\, x_0 + t\, \varepsilon, \qquad
# \hat x_0 = x_t - t\, v_\theta(x_t, t, c) \qquad \text{(L1)}
# $$
#
# **Re-noising.** Both the student's $\hat x_0$ and a real $x_0$ are noised again, each to its
# own level $\hat t \sim$ logit-normal$(m, s)$ with fresh noise; the paper shifts this density
# towards high noise:
#
# $$
# \hat x_{\hat t} = (1 - \hat t)\, \hat x_0 + \hat t\, \hat\varepsilon \qquad \text{(L2)}
# $$
#
# **The discriminator** runs the frozen teacher on $(\hat x_{\hat t}, \hat t, c)$, takes the
# image tokens after several of its blocks, lays them out on their 2-D patch grid, and gives
# each map to a small head (the StyleGAN-T/ADD head: convolutions with spectral norm, a local
# batch norm and leaky ReLUs, and a projection onto a condition vector) that gives one logit per
# token; the heads' logits are
# concatenated. The condition is the noise level and the pooled caption: here, the teacher's own
# adaLN vector $c = t_\text{emb}(\hat t) + y_\text{emb}(\text{pooled})$, which carries both
# (our choice; the paper names the inputs, not the wiring). **The losses** are the hinge loss
# of ADD, taken per token and head and averaged over them, batch and heads alike:
#
# $$
# \mathcal L_D = \mathbb E\,\max(0, 1 - D(x_{\hat t})) + \mathbb E\,\max(0, 1 + D(\hat x_{\hat t}))
#   \qquad \text{(L3)}
# $$
# $$
# \mathcal L_G = -\,\mathbb E\, D(\hat x_{\hat t}) \qquad \text{(L4)}
# $$
#
# and nothing else: with synthetic data the paper drops ADD's distillation loss. The teacher's
# weights never train, but the student's gradient must pass *through* its layers, so the fake
# branch is never run under `torch.no_grad()` (a re-implementation that does so trains
# nothing; the package's tests check that the student receives a gradient). (L1)–(L4) are this
# chapter's labels; the paper's Sec. 3 describes them in words and figures.
#
# **Where we chose differently from the references** (none of them changes the method's
# idea): the heads' convolution runs over the 2-D patch grid with zero padding, StyleGAN-T's
# over a 1-D token sequence with circular padding; the local batch norm normalises groups of
# eight consecutive samples when eight divide the batch and the whole batch otherwise; the
# student's training time is drawn uniformly from its grid, where LADD and SANA-Sprint give
# the pure-noise time t = 1 extra weight; and several student steps are deterministic Euler
# steps (x̂₀ re-noised with the noise the student predicted), where ADD re-noises with fresh
# noise. The package's code:

# %%
from esser_lab.ladd.method import (
    discriminator_hinge,
    generator_hinge,
    renoise,
    student_denoise,
    student_timesteps,
)
from esser_lab.ladd.model import DiscriminatorHead, LADDDiscriminator, token_features
from esser_lab.ladd.training import LitLADD

for function in (student_timesteps, student_denoise, renoise, discriminator_hinge,
                 generator_hinge, token_features, DiscriminatorHead.forward,
                 LADDDiscriminator.forward, LitLADD.training_step):  # fmt: skip
    display(Code(inspect.getsource(function), language="python"))

# %% [markdown]
# ## Training the students
#
# `LitLADD` alternates, as the book's other GANs: one Adam step of the student on (L4), then
# one of the heads on (L3). Adam's β = (0, 0.99) for both, as StyleGAN-T's and ADD's
# discriminators: the paper gives no optimiser settings, and β₁ = 0 keeps no momentum across
# the two players' alternating updates. The configuration beside the paper's (SD3-Turbo: four
# steps, high-noise t̂; the paper states no shift: `LADDConfig.paper()` takes the one
# SD3.5-Large-Turbo samples with, and the learning rates and β are ours). The toy's student has two
# steps, not four: on these 8×8 latents the guided teacher with four Euler steps is already
# about as good as with many (the table below shows it), so four steps leave nothing to
# distil; one and two steps do. The shift is 1 because the student samples at the teacher's
# training resolution (SD3.5-Large-Turbo uses 3 at 1024²).

# %%
from esser_lab.ladd.model import LADDConfig
from esser_lab.ladd.training import fit_ladd

high, low = (1.0, 1.0), (-1.0, 1.0)  # t̂ ~ logit-normal(m, s): high noise (ours), low noise
config = profile.pick(tiny=LADDConfig.tiny(), small=LADDConfig.small(), full=LADDConfig.small())
config = replace(config, student_steps=2, disc_mean=high[0], disc_std=high[1])
ladd_steps = profile.pick(tiny=100, small=2000, full=10_000, long=400)
batch_size = 4 if profile.capped else profile.pick(tiny=32, small=128, full=256)
rows = config_rows(LADDConfig.paper(), config, "paper() (SD3-Turbo; SD3.5-L-Turbo's shift)")
rows += [f"| student steps trained | – | **{profile.steps(ladd_steps):,}** |",
         f"| batch | – | **{batch_size}** |"]  # fmt: skip
display(Markdown("\n".join(rows)))


def distil(name: str, latents: torch.Tensor, level: tuple[float, float]) -> LitLADD:
    """One student, trained from the chapter's seed; only the data and t̂ differ."""
    print(f"{name}:")
    run = replace(config, disc_mean=level[0], disc_std=level[1])
    steps = profile.steps(ladd_steps)
    return fit_ladd(teacher, encoder, run, latents, train.tokens, profile, steps=steps,
                    batch_size=batch_size, seed=profile.seed)  # fmt: skip


students = {"high t̂, synthetic": distil("high t̂, synthetic data", synthetic_latents, high)}

# %% [markdown]
# ## Samples and scores
#
# The teacher samples with guidance s = 3 (as its synthetic data), with Euler on the uniform
# grid, at the same few steps as the student and at many; the student samples unguided on its
# own grid. Every model draws from the same noise for the captions of held-out images. Scores,
# all on decoded samples: the book's FID-style score against the held-out real images, the
# FID-style distance to the many-step teacher's samples (how close to the teacher), and the
# attribute accuracy of chapter 17's classifier trained on real images; the layout and detail
# columns are explained with the noise-level comparison below. Wall time per sample is measured
# on this machine.

# %%
from esser_lab.diffusion import euler_solve
from esser_lab.diffusion.guidance import classifier_free_guidance
from esser_lab.ladd.claims import ScoreReference, scores_of
from esser_lab.ladd.method import sample_student
from esser_lab.metrics.fid import load_feature_net
from esser_lab.sd3.adherence import fit_attribute_classifier

classifier = fit_attribute_classifier(
    train.image, train.labels, steps=profile.steps(profile.pick(tiny=150, small=1500, full=3000)),
    generator=torch.Generator().manual_seed(0), batch_size=32, learning_rate=3e-3,
)  # fmt: skip
feature_net = load_feature_net()
num_eval = 8 if profile.capped else profile.count(tiny=128, small=512, full=2048)
eval_labels = {k: v[:num_eval] for k, v in test.labels.items()}
eval_captions = list(test.caption[:num_eval])
eval_cond = {k: v.to(profile.device) for k, v in encoder.encode(test.tokens[:num_eval]).items()}
guided = classifier_free_guidance(
    teacher, guidance, {k: v.to(profile.device) for k, v in null.items()}
)
few = (1, config.student_steps)


def draw(
    model_name: str, steps: int, *, cond=eval_cond, seed: int = 0
) -> tuple[torch.Tensor, float]:
    """Decoded samples of the teacher (guided) or a student and the seconds they took."""
    b = cond["pooled"].shape[0]
    noise = torch.randn((b, *latent_shape), generator=torch.Generator().manual_seed(seed))
    noise = noise.to(profile.device)
    start = time.perf_counter()
    with torch.no_grad():
        if model_name == "teacher":
            z = euler_solve(guided, noise, steps, cond, grid="uniform")
        else:
            system = students[model_name]  # its training grid: the same shift
            z = sample_student(system.student, noise, cond, steps, shift=system.config.shift)
        images = decode_latents(autoencoder, z).clamp(-1, 1).cpu()
    return images, time.perf_counter() - start


samples, runs = {}, {}
samples["teacher", many], seconds = draw("teacher", many)
# every set is scored against the held-out images and these many-step samples: featurised once
reference = ScoreReference.of(test.image, samples["teacher", many], feature_net)


def score(key: tuple[str, int], seconds: float):  # noqa: ANN201
    return scores_of(samples[key], eval_labels, classifier=classifier, reference=reference,
                     seconds=seconds)  # fmt: skip


runs[f"teacher@{many}"] = score(("teacher", many), seconds)
for steps in sorted({*few, 4}):
    samples["teacher", steps], seconds = draw("teacher", steps)
    runs[f"teacher@{steps}"] = score(("teacher", steps), seconds)
ours = "high t̂, synthetic"
for steps in few:
    samples[ours, steps], seconds = draw(ours, steps)
    runs[f"student@{steps}"] = score((ours, steps), seconds)
real = scores_of(test.image[:num_eval], eval_labels, classifier=classifier, reference=reference,
                 seconds=0.0)  # fmt: skip


def row(label: str, s) -> str:  # noqa: ANN001
    return (f"| {label} | {s.scores.fid:.2f} | {s.to_teacher:.2f} | {s.scores.attributes:.2f} | "
            f"{s.layout:.4f} | {s.low_frequency:.3f} | {s.high_frequency:.2f} | "
            f"{s.detail:.2f} | {1e3 * s.seconds_per_sample:.2f} |")  # fmt: skip


header = ["| samples | FID-style ↓ | to the teacher ↓ | attributes ↑ | layout ↓ | "
          "paired low-freq. error | high-freq. ratio | detail error ↓ | ms per sample |",
          "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
table = []
for key, s in runs.items():
    model_name, steps = key.split("@")
    table.append(row(f"{model_name}, {steps} steps" + (" (guided)" * (model_name == "teacher")), s))
table.append(row("real held-out images", real))
display(Markdown("\n".join(header + table)))

# %% tags=["key-figure"]
from esser_lab.sd3.chapter import samples_figure

figure_rows = {f"teacher, {k}": samples["teacher", k] for k in sorted({*few, 4, many})}
figure_rows |= {f"student, {k}": samples[ours, k] for k in few}
title = "the same captions and noise: the guided teacher and the student"
fig = samples_figure(figure_rows, eval_captions, title=title)

# %% [markdown]
# ## Where the discriminator looks: the noise level t̂
#
# The same student, trained the same way, with the discriminator's re-noising density moved
# from high noise, logit-normal(1, 1), to low noise, logit-normal(−1, 1). Measured on the
# student's one-step samples: the **layout distance**, the Fréchet distance between the 4×4
# pooled samples and the 4×4 pooled held-out real images (where the blobs are and how bright,
# the fine detail averaged away), and the **detail error**, |log r| of the high-frequency ratio
# r: the energy left after subtracting the 4×4 pooled image, relative to the same on real
# images (r below 1: smoother than the data, above 1: noisier; both count). The layout
# distance is unpaired on purpose: LADD never trains the student to map a given noise to the
# teacher's image for that noise, so the distance to the teacher's sample *from the same
# noise* (the paired low-frequency error of the table) would reward a student that merely
# drifts less from its initialisation; it is shown, not scored.

# %%
from esser_lab.ladd.chapter import adversarial_figure, noise_level_figure

fig = noise_level_figure({"high noise: logit-normal(1, 1)": high,
                          "low noise: logit-normal(−1, 1)": low})  # fmt: skip
students["low t̂, synthetic"] = distil("low t̂, synthetic data", synthetic_latents, low)
samples["low t̂, synthetic", 1], seconds = draw("low t̂, synthetic", 1)
level_runs = {"high": runs["student@1"], "low": score(("low t̂, synthetic", 1), seconds)}
display(Markdown("\n".join(header + [row(f"student, 1 step, {name} t̂", s)
                                     for name, s in level_runs.items()])))  # fmt: skip

# %% [markdown]
# ## Synthetic against real data
#
# The same student once more, with the paper's t̂, trained on the encoded *real* training
# images instead of the teacher's samples for the same captions.

# %%
students["high t̂, real"] = distil("high t̂, real data", real_latents, high)
samples["high t̂, real", config.student_steps], seconds = draw("high t̂, real", config.student_steps)
data_runs = {"synthetic": runs[f"student@{config.student_steps}"],
             "real": score(("high t̂, real", config.student_steps), seconds)}  # fmt: skip
display(Markdown("\n".join(header + [row(f"student, {config.student_steps} steps, {name} data", s)
                                     for name, s in data_runs.items()])))  # fmt: skip
fig = adversarial_figure({name: s.history for name, s in students.items()})

# %% [markdown]
# ### Explore: steps and models
#
# Four samples for a held-out caption, drawn live: the guided teacher or a student, and the
# number of Euler steps (on the static page the widget is a frozen snapshot; the samples figure
# above shows the same captions at fixed settings).

# %%
from esser_lab.ladd.chapter import steps_explorer
from esser_lab.sd3.data import tokenize


def sampler(model_name: str, captions, steps: int, seed: int) -> torch.Tensor:  # noqa: ANN001
    cond = {k: v.to(profile.device) for k, v in encoder.encode(tokenize(list(captions))).items()}
    return draw(model_name, steps, cond=cond, seed=seed)[0]


explorer = steps_explorer(sampler, list(dict.fromkeys(test.caption))[:8], ["teacher", *students])
explorer

# %% [markdown]
# ## Measuring the claims
#
# The paper's evidence is mostly human preference: SD3-Turbo with 4 unguided steps against its
# teacher SD3 with 50 guided steps, where raters found the image quality on par and the prompt
# alignment slightly lower (Sec. 4); the ablations of t̂ and of synthetic data are plots of FID
# and CLIP score. We type none of those numbers: only directions compare.
# `esser_lab.ladd.claims` files each claim against the paper's comparison, trained the same
# way; the wall time and the many-step teacher against its one-step self are sanity rows.

# %%
from esser_lab.cards import Card
from esser_lab.ladd.claims import file_data_claims, file_few_step_claims, file_noise_level_claims

card = Card("18_ladd", profile.name, profile.seed, chapter_start)
file_few_step_claims(card, runs, steps=few, many=many, train_steps=profile.steps(ladd_steps))
file_noise_level_claims(card, level_runs["high"], level_runs["low"], steps=1,
                        high_label="logit-normal(1, 1)",
                        low_label="logit-normal(−1, 1)")  # fmt: skip
file_data_claims(card, data_runs["synthetic"], data_runs["real"], steps=config.student_steps)
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
def verdicts(keys: list[str]) -> str:
    return f"{sum(card[k].holds for k in keys)} of {len(keys)}"


few_keys = [c.key for c in card.claims if c.key.startswith("student-") and c.kind == "claim"]
bullets = [
    f"**Few steps.** Of the {len(few_keys)} comparisons of the student with the teacher at the "
    f"same {' and '.join(map(str, few))} steps, {verdicts(few_keys)} go the paper's way in this "
    "run. "
    + card.text(
        "student-closer-to-teacher-1",
        holds="With one step the student's samples are at FID-style {ours} from the "
        "{many}-step teacher's, the one-step teacher's at {baseline} (across seeds: {seeds}).",
        fails="With one step the student's samples are at FID-style {ours} from the "
        "{many}-step teacher's, not closer than the one-step teacher's {baseline} (across "
        "seeds: {seeds}).",
        many=many,
    ),
    "**The noise level t̂.** "
    + card.text(
        "t-hat-high-noise-layout",
        holds="High-noise t̂ leaves a layout closer to the real images' ({ours} against "
        "{baseline}), the paper's direction (across seeds: {seeds}).",
        fails="High-noise t̂ does not bring the layout closer to the real images' here ({ours} "
        "against {baseline} with low-noise t̂; across seeds: {seeds}).",
    )
    + " "
    + card.text(
        "t-hat-low-noise-detail",
        holds="Low-noise t̂ leaves a high-frequency energy closer to the data's (detail "
        "error {ours} against {baseline}; across seeds: {seeds}).",
        fails="Low-noise t̂ does not bring the high-frequency energy closer to the data's "
        "(detail error {ours} against {baseline}; across seeds: {seeds}).",
    ),
    "**Synthetic data.** "
    + card.text(
        "synthetic-vs-real-fid",
        holds="Trained on the teacher's samples the student scores {ours} against {baseline} "
        "on real data (across seeds: {seeds}).",
        fails="Trained on the teacher's samples the student scores {ours}, not better than "
        "{baseline} on real data (across seeds: {seeds}).",
    )
    + " "
    + card.text(
        "synthetic-vs-real-attributes",
        holds="Its attribute accuracy is {ours} against {baseline} (across seeds: {seeds}).",
        fails="Its attribute accuracy is {ours}, not above {baseline} (across seeds: {seeds}).",
    ),
]
groups = [few_keys, ["t-hat-high-noise-layout", "t-hat-low-noise-detail"],
          ["synthetic-vs-real-fid", "synthetic-vs-real-attributes"]]  # fmt: skip
for i, keys in enumerate(groups):
    longer = [f"`{k}`: {card.long_phrase(k)}" for k in keys if card.long_run(k) is not None]
    if longer:
        bullets[i] += " With the longer bench run: " + "; ".join(longer) + "."
unsettled, failed = [], []
for c in card.claims:
    recorded = card.across_seeds(c.key)
    if c.kind != "claim" or recorded is None or recorded.label == "reproduced":
        continue
    (unsettled if recorded.label == "not settled" else failed).append(
        f"`{c.key}` ({recorded.label}: {recorded.held} of {recorded.seeds} seeds)"
    )
if unsettled:
    bullets.append("**What a minute does not settle**: " + "; ".join(unsettled) + ".")
if failed:
    bullets.append("**What the recorded seeds do not reproduce**: " + "; ".join(failed) + ".")
display(Markdown("\n".join(f"* {b}" for b in bullets)))

# %% [markdown]
# ## Full scale
#
# * **On a GPU**: `ESSER_LAB_SCALE=small` runs the same cells with more captions, more synthetic
#   steps and longer students (the configuration table above shows the values); the teacher is
#   the shipped one at every scale. `LADDConfig.paper()` holds SD3-Turbo's choices as far as the
#   paper states them, with SD3.5-Large-Turbo's inference shift (the paper gives none).
#   Distilling the real SD3 needs its released weights (`esser_lab.sd3.checkpoint.load_mmdit`
#   reads them into the same `MMDiT` class this chapter distils), SD3's text encoders, the
#   prompts, many GPUs and a synthetic set generated with guidance; none of that has been run
#   for this book.
# * **Released models.** SD3-Turbo itself was never released. SD3.5-Large-Turbo was; its model
#   card names "adversarial diffusion distillation" and the official `sd3_infer` samples it with
#   4 Euler steps, no guidance and shift 3. FLUX.1-schnell's model card says it was trained with
#   latent adversarial diffusion distillation (1–4 steps, no guidance). Both are MMDiTs that load
#   like their teachers; no LADD training code has been published.

# %%
print(f"LADDConfig.paper(): {LADDConfig.paper()}")
with torch.device("meta"):
    from esser_lab.sd3.model import MMDiT

    sd3 = MMDiT(MMDiTConfig.paper())
size = sum(p.numel() for p in sd3.parameters()) / 1e9
print(f"an SD3-medium student (a copy of its teacher): {size:.2f} B parameters")

# %% [markdown]
# ## Exercises
#
# 1. **The dead gradient.** Run the student's loss with the discriminator under
#    `torch.no_grad()` and check what reaches the student's weights.
# 2. **Where to look.** Draw 10,000 levels t̂ from logit-normal(1, 1) and from
#    logit-normal(−1, 1). What fraction of each lies above t̂ = 0.8, where the sprites' shapes
#    are drowned in noise? (`check_fraction_above(m, s, fraction)` checks a fraction.)
# 3. **Cost per sample.** Count the network calls of the guided teacher with the many steps of
#    this chapter and of the student with its steps (`check_evaluations(steps, guided, count)`).

# %% [markdown]
# ```{admonition} Solution 1
# :class: dropdown
# Nothing: under `no_grad` the discriminator's output carries no graph, so the student's loss
# cannot be back-propagated and its weights never move. The package freezes the teacher with
# `requires_grad_(False)` instead, which keeps the graph through its layers:
# ```

# %% tags=["hide-input"]
student = students[ours].student.train()
g = torch.Generator().manual_seed(0)
cond8 = {k: v.to(profile.device) for k, v in encoder.encode(train.tokens[:8]).items()}
x0_8 = synthetic_latents[:8].to(profile.device)
times = student_timesteps(config.student_steps, config.shift)
x0_hat, _ = student_denoise(student, x0_8, cond8, times, g)
noisy, t_hat = renoise(x0_hat, *high, g)
with torch.no_grad():
    dead = generator_hinge(students[ours].discriminator(noisy, t_hat, cond8))
print("under no_grad the loss needs a gradient:", dead.requires_grad)
live = generator_hinge(students[ours].discriminator(noisy, t_hat, cond8))
live.backward()
norm = sum(float(p.grad.norm()) for p in student.parameters() if p.grad is not None)
print(f"with the frozen teacher in the graph: the student's gradient norm is {norm:.3g}")
student.zero_grad(set_to_none=True)
student.eval()

# %% [markdown]
# ```{admonition} Solution 2
# :class: dropdown
# The logit-normal with m = 1 puts most of its mass at high noise, the one with m = −1 at low
# noise. Measured:
# ```

# %% tags=["hide-input"]
from esser_lab.diffusion.densities import logit_normal
from esser_lab.ladd.exercises import check_evaluations, check_fraction_above

for label, (m, s) in (("high", high), ("low", low)):
    t = logit_normal(m, s).sample(10_000, torch.Generator().manual_seed(0))
    # solution begins; students get: above = None  # your code here: the share of t above 0.8
    above = float((t > 0.8).float().mean())
    print(f"{label} noise, logit-normal({m:g}, {s:g}): {above:.3f} of the levels above 0.8")
    assert check_fraction_above(m, s, above), "the checker must accept the solution"
    # solution ends
    print(check_fraction_above(m, s, above))

# %% [markdown]
# ```{admonition} Solution 3
# :class: dropdown
# Guidance evaluates the network twice per step (one batched call of twice the size). So:
# ```

# %% tags=["hide-input"]
# solution begins; students get: teacher_calls, student_calls = None, None  # your code here
teacher_calls, student_calls = 2 * many, config.student_steps
print(f"teacher: {many} steps × 2 = {teacher_calls} evaluations per sample; student: "
      f"{config.student_steps} steps × 1 = {student_calls}")  # fmt: skip
assert check_evaluations(many, True, teacher_calls), "the checker must accept the solution"
# solution ends
print(check_evaluations(many, True, teacher_calls))
print(check_evaluations(config.student_steps, False, student_calls))
print(
    f"chapter ran in {time.perf_counter() - chapter_start:.1f} s "
    f"({time.process_time() - cpu_start:.1f} s of CPU) at scale {profile.name}"
)
