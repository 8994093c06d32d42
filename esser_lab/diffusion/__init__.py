"""The generative core that chapters 13–19 share: schedules, the Gaussian forward process and its
parameterisations, DDPM/DDIM samplers, classifier-free guidance, the rectified-flow path with its
ODE solvers, SD3's formulations and timestep densities of chapter 17 (:mod:`.formulations`,
:mod:`.densities`), and the autoregressive token sampler of chapter 10 (:mod:`.autoregressive`, no
time involved), and multinomial diffusion on discrete codes for chapter 13 (:mod:`.multinomial`, an
integer scale t ∈ {0, …, T} at continuous time t / T). Pure functions and small frozen
dataclasses; no Lightning.

**One denoiser protocol.** Every sampler takes a :data:`Denoiser`, ``model(x_t, t, cond) ->
prediction`` (:mod:`esser_lab.diffusion.protocol`): ``t`` of shape (b,), ``cond=None`` for an
unconditional model.

**One time convention** (the one thing a reader could get wrong):

* time is continuous, **t ∈ [0, 1], t = 1 pure noise, t = 0 data**, for the Gaussian (DDPM/DDIM)
  and the rectified-flow paths alike (x_t = (1 − t) x₀ + t ε for the latter);
* a discrete DDPM schedule of T steps has indices **n = 0 … T − 1**, n = T − 1 the noisiest (the
  official LDM/SD code's ``t``), ᾱ_n = ∏_{m ≤ n}(1 − β_m); index n sits at
  **t = (n + 1) / T** (:func:`index_to_time`), and :func:`time_to_index` rounds and clamps back
  (exact round trip). So t = 1 is n = T − 1 and t = 1/T is n = 0, one step of noise above the
  data;
* ``t`` (or ᾱ) may be a scalar, a per-sample (b,) tensor or a per-token (b, l) tensor; it
  broadcasts against x through :func:`expand_like`. The samplers call the model with (b,).

Noise is drawn from an explicit ``torch.Generator`` on its own device and then moved to the
data's (:mod:`esser_lab.nn.placement`); nothing here seeds or draws from torch's global stream
unless no generator is given.
"""

from esser_lab.diffusion.autoregressive import sample_tokens, top_k_top_p_filtering
from esser_lab.diffusion.densities import TimeDensity
from esser_lab.diffusion.flow import (
    euler_solve,
    heun_solve,
    logit_normal_t,
    rf_sample,
    rf_target,
    shift_time,
    time_grid,
)
from esser_lab.diffusion.formulations import Formulation, formulation, loss_weight
from esser_lab.diffusion.gaussian import (
    Parameterization,
    eps_to_x0,
    eps_x0_to_v,
    q_sample,
    simple_loss,
    to_eps_and_x0,
    training_target,
    v_to_eps,
    v_to_x0,
    x0_to_eps,
)
from esser_lab.diffusion.guidance import classifier_free_guidance, drop_labels
from esser_lab.diffusion.multinomial import (
    MultinomialSchedule,
    forward_chain,
    multinomial_loss,
    multinomial_posterior,
    q_step,
    q_xt_probs,
    q_xt_sample,
)
from esser_lab.diffusion.protocol import (
    Denoiser,
    discrete_time,
    expand_like,
    index_to_time,
    time_to_index,
)
from esser_lab.diffusion.samplers import (
    Spacing,
    Trajectory,
    ddim_invert,
    ddim_sample,
    ddim_timesteps,
    ddpm_sample,
)
from esser_lab.diffusion.schedules import BetaSchedule, DiscreteSchedule, make_beta_schedule

__all__ = [
    "BetaSchedule",
    "Denoiser",
    "DiscreteSchedule",
    "Formulation",
    "MultinomialSchedule",
    "Parameterization",
    "Spacing",
    "TimeDensity",
    "Trajectory",
    "classifier_free_guidance",
    "ddim_invert",
    "ddim_sample",
    "ddim_timesteps",
    "ddpm_sample",
    "discrete_time",
    "drop_labels",
    "eps_to_x0",
    "eps_x0_to_v",
    "euler_solve",
    "expand_like",
    "formulation",
    "forward_chain",
    "heun_solve",
    "index_to_time",
    "logit_normal_t",
    "loss_weight",
    "make_beta_schedule",
    "multinomial_loss",
    "multinomial_posterior",
    "q_sample",
    "q_step",
    "q_xt_probs",
    "q_xt_sample",
    "rf_sample",
    "rf_target",
    "sample_tokens",
    "shift_time",
    "simple_loss",
    "time_grid",
    "time_to_index",
    "to_eps_and_x0",
    "top_k_top_p_filtering",
    "training_target",
    "v_to_eps",
    "v_to_x0",
    "x0_to_eps",
]
