"""``LitLADD``: the student gets gradient through the frozen teacher; the teacher never changes;
a 2-step training run; same seed, same student; bad input named."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from esser_lab.ladd.method import (
    discriminator_hinge,
    generator_hinge,
    renoise,
    student_denoise,
)
from esser_lab.ladd.model import LADDConfig
from esser_lab.ladd.training import LitLADD, fit_ladd
from esser_lab.scale import profile
from esser_lab.sd3.data import captioned_batch
from esser_lab.sd3.model import MMDiT, MMDiTConfig
from esser_lab.sd3.text import ToyTextEncoder
from esser_lab.training import seed_everything


def _teacher() -> MMDiT:
    torch.manual_seed(0)
    model = MMDiT(MMDiTConfig.tiny())
    for p in model.parameters():  # adaLN-Zero leaves an untrained net inert: perturb it
        p.data.add_(0.05 * torch.randn_like(p))
    return model.eval().requires_grad_(False)


def _data(n: int = 16):
    tokens = captioned_batch(n, 16, generator=torch.Generator().manual_seed(0)).tokens
    latents = torch.randn(n, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    return latents, tokens


def test_the_student_receives_gradient_through_the_discriminator():
    teacher = _teacher()
    encoder = ToyTextEncoder(32, 32)
    system = LitLADD(teacher, encoder, LADDConfig.tiny())
    latents, tokens = _data(8)
    cond = encoder.encode(tokens)
    g = torch.Generator().manual_seed(0)
    x0_hat, _ = student_denoise(system.student, latents, cond, system.times, g)
    fake, t_hat = renoise(x0_hat, 1.0, 1.0, g)
    # the pitfall: the discriminator under no_grad, on the very fake that needs a gradient, cuts
    # the graph and the student gets nothing
    with torch.no_grad():
        dead = generator_hinge(system.discriminator(fake, t_hat, cond))
    with pytest.raises(RuntimeError):
        dead.backward()
    assert all(p.grad is None for p in system.student.parameters())
    # without it, through the frozen teacher, every student parameter gets a gradient
    generator_hinge(system.discriminator(fake, t_hat, cond)).backward()
    grads = [p.grad for p in system.student.parameters()]
    assert all(grad is not None for grad in grads)
    assert sum(float(grad.abs().sum()) for grad in grads) > 0
    assert all(p.grad is None for p in system.discriminator.teacher.parameters())


def test_a_two_step_run_trains_the_student_and_leaves_the_teacher():
    teacher = _teacher()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    latents, tokens = _data()
    config = replace(LADDConfig.tiny(), virtual_batch=4)
    seed_everything(0)  # fit_ladd's seeding: the same initial heads
    initial = LitLADD(teacher, ToyTextEncoder(32, 32), config).discriminator.heads.state_dict()
    system = fit_ladd(teacher, ToyTextEncoder(32, 32), config, latents, tokens, profile("tiny"),
                      steps=2, batch_size=8, seed=0)  # fmt: skip
    assert system.global_step == 2 and len(system.history) == 2
    assert {"loss_g", "loss_d", "real_logit", "fake_logit"} <= set(system.history[0])
    for key, value in system.discriminator.teacher.state_dict().items():
        assert torch.equal(value, before[key]), key
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key]), key
    moved = [k for k, v in system.student.state_dict().items() if not torch.equal(v, before[k])]
    assert moved, "the student did not change"
    # the discriminator step moves every head's weights (spectral norm's own buffers change on
    # any forward pass: the trained weights are ``parametrizations.weight.original``)
    heads = dict(system.discriminator.heads.named_parameters())
    originals = [k for k in heads if k.endswith("parametrizations.weight.original")]
    assert len(originals) == 3 * len(system.discriminator.heads)
    for key in [*originals, *(k for k in heads if k.startswith("0.cmapper"))]:
        assert not torch.equal(heads[key].detach(), initial[key]), key
    assert system.device.type == "cpu" and not system.training  # the scale's device, eval
    again = fit_ladd(teacher, ToyTextEncoder(32, 32), config, latents, tokens, profile("tiny"),
                     steps=2, batch_size=8, seed=0)  # fmt: skip
    for key, value in system.student.state_dict().items():
        assert torch.equal(value, again.student.state_dict()[key]), key
    other = fit_ladd(teacher, ToyTextEncoder(32, 32), config, latents, tokens, profile("tiny"),
                     steps=2, batch_size=8, seed=1)  # fmt: skip
    assert not all(
        torch.equal(v, other.student.state_dict()[k])
        for k, v in system.student.state_dict().items()
    )


class _Recorder:
    """An optimiser stand-in that records the gradients it is asked to step with."""

    def __init__(self, parameters) -> None:  # noqa: ANN001
        self.parameters, self.grads = list(parameters), None
        self.optimizer = self  # the system steps the heads' bare optimizer

    def zero_grad(self) -> None:
        for p in self.parameters:
            p.grad = None

    def step(self) -> None:
        self.grads = [None if p.grad is None else p.grad.clone() for p in self.parameters]


def test_each_player_gets_the_gradient_of_its_own_loss_only():
    """The student's gradient is ∇L_G alone; the heads' is ∇L_D alone, with real and fake each
    re-noised afresh and scored in one pass (``pair``) exactly as in two calls."""
    teacher = _teacher()
    encoder = ToyTextEncoder(32, 32)
    config = replace(LADDConfig.tiny(), virtual_batch=4)  # 4 groups of a batch of 8 are 2 each
    torch.manual_seed(0)
    system = LitLADD(teacher, encoder, config).eval()  # eval: spectral norm does not iterate
    student = list(system.student.parameters())
    heads = list(system.discriminator.heads.parameters())
    student_opt, disc_opt = _Recorder(student), _Recorder(heads)
    system.optimizers = lambda: (student_opt, disc_opt)
    system.manual_backward = lambda loss, **kwargs: loss.backward(**kwargs)
    system.log_dict = lambda *args, **kwargs: None
    system.generator = torch.Generator().manual_seed(3)
    replay = torch.Generator().manual_seed(3)
    latents, tokens = _data(6)  # 6 = no multiple of 4: one batch-norm group per part
    system.training_step({"latent": latents, "tokens": tokens}, 0)

    # the same draws by hand, each loss on its own graph, the discriminator called per batch
    cond = encoder.encode(tokens)
    x0_hat, _ = student_denoise(system.student, latents, cond, system.times, replay)
    fake, t_fake = renoise(x0_hat, config.disc_mean, config.disc_std, replay)
    d = system.discriminator
    want_student = torch.autograd.grad(generator_hinge(d(fake, t_fake, cond)), student)
    real, t_real = renoise(latents, config.disc_mean, config.disc_std, replay)
    fake, t_fake = renoise(x0_hat.detach(), config.disc_mean, config.disc_std, replay)
    loss_d = discriminator_hinge(d(real, t_real, cond), d(fake, t_fake, cond))
    want_heads = torch.autograd.grad(loss_d, heads)
    got_all, want_all = student_opt.grads + disc_opt.grads, want_student + want_heads
    assert all(g is not None for g in got_all)
    for got, want in zip(got_all, want_all, strict=True):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-7)
    assert sum(float(g.abs().sum()) for g in disc_opt.grads) > 0
    assert all(p.grad is None for p in system.discriminator.teacher.parameters())


def test_bad_input_is_named():
    teacher = _teacher()
    encoder = ToyTextEncoder(32, 32)
    with pytest.raises(TypeError, match="teacher must be an MMDiT"):
        LitLADD(torch.nn.Linear(2, 2), encoder, LADDConfig.tiny())
    with pytest.raises(TypeError, match="LADDConfig"):
        LitLADD(teacher, encoder, {"student_steps": 4})
    system = LitLADD(teacher, encoder, LADDConfig.tiny())
    with pytest.raises(KeyError, match="'latent' and 'tokens'"):
        system.training_step({"image": torch.zeros(2, 3, 16, 16)}, 0)
    latents, tokens = _data(8)
    with pytest.raises(ValueError, match="one caption per latent"):
        fit_ladd(teacher, encoder, LADDConfig.tiny(), latents, tokens[:4], profile("tiny"),
                 steps=1, batch_size=4)  # fmt: skip
