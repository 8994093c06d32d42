"""Self-Flow's objective (esser_lab.selfflow.method) and its Lightning system, at tiny size."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from esser_lab.diffusion.flow import rf_sample, rf_target
from esser_lab.selfflow.method import (
    DualTimes,
    SelfFlowMethod,
    cosine_loss,
    draw_times,
    ema_update,
    make_teacher,
    noise_tokens,
    selfflow_loss,
    separation_mask,
    token_mask,
)
from esser_lab.selfflow.model import SelfFlowConfig, SelfFlowDiT
from esser_lab.selfflow.training import LitSelfFlow

CONFIG = replace(SelfFlowConfig.tiny(), hidden=32, depth=4, heads=2)
METHOD = SelfFlowMethod(student_layer=1, teacher_layer=3, ema_decay=0.9)


def _model(seed: int = 0) -> SelfFlowDiT:
    torch.manual_seed(seed)
    model = SelfFlowDiT(CONFIG)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name != "pos_embed":
                p.add_(torch.randn_like(p) * 0.05)
    return model


def test_mask_ratio_is_exact_and_placement_random() -> None:
    mask = token_mask(500, 16, 0.25, torch.Generator().manual_seed(0))
    assert (mask.sum(1) == 4).all()
    share = mask.float().mean(0)  # every position masked about a quarter of the time
    assert share.min() > 0.17 and share.max() < 0.33


def test_dual_times_unsorted_and_per_token() -> None:
    times = draw_times(2000, 16, METHOD, torch.Generator().manual_seed(1))
    assert torch.equal(times.per_token, torch.where(times.mask, times.s[:, None], times.t[:, None]))
    assert 0.4 < (times.s > times.t).float().mean() < 0.6  # not sorted
    assert torch.equal(times.tau_min, torch.minimum(times.t, times.s))
    vanilla = draw_times(8, 16, METHOD.vanilla(), torch.Generator().manual_seed(1))
    assert not vanilla.mask.any() and torch.equal(
        vanilla.per_token, vanilla.t[:, None].expand(8, 16)
    )


def test_noise_tokens_broadcasts_each_token_time_to_its_patch() -> None:
    x0, eps = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    t = torch.rand(2, 16)
    x = noise_tokens(x0, eps, t, 4)
    # token 5 = row 1, column 1 of the 4×4 grid: pixels 4..7 × 4..7
    expected = (1 - t[:, 5, None, None, None]) * x0 + t[:, 5, None, None, None] * eps
    torch.testing.assert_close(x[..., 4:8, 4:8], expected[..., 4:8, 4:8])
    same = noise_tokens(x0, eps, t[:, :1].expand(2, 16), 4)
    torch.testing.assert_close(same, rf_sample(x0, eps, t[:, 0]))


def test_loss_without_switches_is_vanilla_flow_matching_exactly() -> None:
    model = _model()
    x0, eps = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)
    times = draw_times(4, 16, METHOD.vanilla(), torch.Generator().manual_seed(2))
    terms = selfflow_loss(model, None, x0, eps, times, METHOD.vanilla())
    by_hand = F.mse_loss(model(rf_sample(x0, eps, times.t), times.t), rf_target(x0, eps))
    assert torch.equal(terms.loss, by_hand)
    assert terms.rep == 0 and torch.isnan(terms.cosine)


def test_cosine_loss_by_hand() -> None:
    a = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    b = torch.tensor([[[0.0, 2.0], [2.0, 2.0]]])
    assert cosine_loss(a, b).item() == pytest.approx(((1 - 0) + (1 - 1)) / 2)


def test_self_flow_loss_teacher_sees_tau_min_and_gets_no_gradient() -> None:
    student = _model()
    teacher = make_teacher(student)
    seen = {}

    def record(module, args, out) -> None:  # noqa: ANN001
        seen["t"] = args[0]

    teacher.t_embedder.register_forward_hook(record)
    x0, eps = torch.randn(3, 3, 16, 16), torch.randn(3, 3, 16, 16)
    times = draw_times(3, 16, METHOD, torch.Generator().manual_seed(3))
    terms = selfflow_loss(student, teacher, x0, eps, times, METHOD)
    terms.loss.backward()
    assert sorted(seen["t"].tolist()) == pytest.approx(sorted(set(times.tau_min.tolist())))
    assert all(p.grad is None for p in teacher.parameters())
    assert student.projector.linear1.weight.grad.abs().sum() > 0
    # the feature term by hand: projector on the student's block 1 vs the teacher's block 3
    with torch.no_grad():
        _, fs = student(
            noise_tokens(x0, eps, times.per_token, 4), times.per_token, return_features=[1]
        )
        clean = rf_sample(x0, eps, times.tau_min)
        _, ft = teacher(clean, times.tau_min, return_features=[3])
        rep = cosine_loss(student.project(fs[1]), ft[3])
    torch.testing.assert_close(terms.rep.detach(), rep)
    torch.testing.assert_close(terms.loss.detach(), terms.gen.detach() + 0.8 * rep)


def test_attention_separation_changes_the_student_only() -> None:
    student = _model()
    x0, eps = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    times = draw_times(2, 16, METHOD, torch.Generator().manual_seed(4))
    plain = selfflow_loss(student, None, x0, eps, times, METHOD.dts_only())
    separated = selfflow_loss(
        student, None, x0, eps, times, replace(METHOD.dts_only(), attention_separation=True)
    )
    assert plain.loss != separated.loss
    mask = separation_mask(times.mask)
    assert mask.shape == (2, 1, 16, 16) and mask[0, 0].float().mean() == pytest.approx(
        (4 * 4 + 12 * 12) / 256
    )


def test_ema_update_follows_the_student() -> None:
    student, teacher = _model(0), make_teacher(_model(1))
    before = teacher.projector.linear1.weight.clone()
    ema_update(teacher, student, 0.9)
    expected = 0.9 * before + 0.1 * student.projector.linear1.weight
    torch.testing.assert_close(teacher.projector.linear1.weight, expected)


def test_lit_system_step_updates_teacher_by_ema_and_loss_falls() -> None:
    torch.manual_seed(0)
    system = LitSelfFlow(SelfFlowDiT(CONFIG), METHOD, learning_rate=3e-3)
    optimizer = system.configure_optimizers()
    batch = {"image": torch.rand(8, 3, 16, 16) * 2 - 1}
    losses = []
    for step in range(40):
        system.generator = torch.Generator().manual_seed(0)  # the same draw each step
        loss = system.training_step(batch, step)
        optimizer.zero_grad()
        loss.backward()
        teacher_before = system.teacher.x_embedder.proj.weight.clone()
        optimizer.step()
        system.on_train_batch_end(None, batch, step)
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    student = system.model.x_embedder.proj.weight
    torch.testing.assert_close(
        system.teacher.x_embedder.proj.weight, 0.9 * teacher_before + 0.1 * student
    )
    assert not any(p.requires_grad for p in system.teacher.parameters())
    assert len(system.history) == 40 and 0 < system.history[-1]["cosine"] <= 1


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="mask_ratio"):
        SelfFlowMethod(mask_ratio=0.0)
    with pytest.raises(ValueError, match="dts=True"):
        SelfFlowMethod(dts=False, attention_separation=True)
    with pytest.raises(ValueError, match="teacher_layer"):
        LitSelfFlow(SelfFlowDiT(CONFIG), SelfFlowMethod())  # blocks 8/20 of a 4-block model
    with pytest.raises(ValueError, match="unconditional models only.*num_classes=5"):
        LitSelfFlow(SelfFlowDiT(replace(CONFIG, num_classes=5)), METHOD)
    with pytest.raises(ValueError, match="per-token times"):
        noise_tokens(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16), torch.zeros(1, 9), 4)
    assert isinstance(draw_times(2, 16, METHOD), DualTimes)
