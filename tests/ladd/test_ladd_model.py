"""LADD's discriminator: features at the chosen blocks, head shapes, the frozen teacher, errors."""

from __future__ import annotations

import pytest
import torch
from einops import rearrange

from esser_lab.ladd.model import (
    BatchNormLocal,
    DiscriminatorHead,
    LADDConfig,
    LADDDiscriminator,
    token_features,
)
from esser_lab.sd3.model import MMDiT, MMDiTConfig


def _teacher(depth: int = 3) -> MMDiT:
    torch.manual_seed(0)
    from dataclasses import replace

    model = MMDiT(replace(MMDiTConfig.tiny(), depth=depth))
    for p in model.parameters():  # adaLN-Zero leaves blocks inert: make them do something
        p.data.add_(0.05 * torch.randn_like(p))
    return model.eval().requires_grad_(False)


def _inputs(b: int = 8):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, 4, 8, 8, generator=g)
    t = torch.rand(b, generator=g)
    cond = {
        "context": torch.randn(b, 12, 32, generator=g),
        "pooled": torch.randn(b, 32, generator=g),
    }
    return x, t, cond


def test_token_features_of_the_last_block_give_the_teachers_output():
    from esser_lab.nn.dit import unpatchify

    teacher = _teacher()
    x, t, cond = _inputs()
    features, c = token_features(teacher, x, t, cond, (0, 2))
    assert [tuple(f.shape) for f in features] == [(8, 32, 4, 4)] * 2
    assert c.shape == (8, 32)
    # the final layer on the last block's tokens (grid back to the token order) is the teacher
    tokens = rearrange(features[1], "b d h w -> b (h w) d")
    v = unpatchify(teacher.final_layer(tokens, c), 4, 4, teacher.config.patch_size)
    assert torch.allclose(v, teacher(x, t, cond), atol=1e-5)
    assert not torch.allclose(features[0], features[1])
    with pytest.raises(ValueError, match="blocks must be indices in 0..2"):
        token_features(teacher, x, t, cond, (3,))


def test_head_shapes_and_projection_conditioning():
    torch.manual_seed(0)
    head = DiscriminatorHead(32, 16, cmap_dim=8)
    features = torch.randn(8, 32, 4, 4)
    c = torch.randn(8, 16)
    logits = head(features, c)
    assert logits.shape == (8, 16)  # one logit per grid position: the hinge is per token
    assert not torch.allclose(head(features, torch.randn(8, 16)), logits)  # the condition acts
    with pytest.raises(ValueError, match=r"features must be \(b, 32, h, w\)"):
        head(torch.randn(8, 16, 4, 4), c)
    with pytest.raises(ValueError, match=r"c must be \(8, 16\)"):
        head(features, torch.randn(8, 15))


def test_batch_norm_local_normalises_each_group():
    norm = BatchNormLocal(3, virtual_batch=4)
    x = 5 + 3 * torch.randn(8, 3, 4, 4)
    y = norm(x).view(2, 4, 3, 16)
    assert torch.allclose(y.mean(dim=(1, 3)), torch.zeros(2, 3), atol=1e-5)
    assert torch.allclose(y.var(dim=(1, 3), unbiased=False), torch.ones(2, 3), atol=1e-3)


def _local_norm_by_hand(x: torch.Tensor, groups: int, weight, bias, eps: float = 1e-5):
    out = []
    for part in x.chunk(groups):  # consecutive samples; statistics over samples and the grid
        mean = part.mean(dim=(0, 2, 3), keepdim=True)
        var = part.var(dim=(0, 2, 3), keepdim=True, unbiased=False)
        out.append((part - mean) / torch.sqrt(var + eps))
    return torch.cat(out) * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)


@pytest.mark.parametrize(("b", "groups"), [(12, 3), (6, 1)])  # 4 divides 12; not 6: one group
def test_batch_norm_local_by_hand_with_its_affine_weights(b, groups):
    norm = BatchNormLocal(5, virtual_batch=4)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 5))
        norm.bias.copy_(torch.linspace(-1.0, 1.0, 5))
    g = torch.Generator().manual_seed(0)
    x = 2 + torch.randn(b, 5, 3, 3, generator=g) * torch.arange(1, 6).view(1, -1, 1, 1)
    x.requires_grad_(True)
    y = norm(x)
    expected = _local_norm_by_hand(x, groups, norm.weight, norm.bias)
    assert torch.allclose(y, expected, atol=1e-5)
    # the gradient too (the affine weights and the input): the same function
    w = torch.randn(y.shape, generator=g)
    grads = torch.autograd.grad((y * w).sum(), (x, norm.weight, norm.bias))
    hand = torch.autograd.grad((expected * w).sum(), (x, norm.weight, norm.bias))
    for got, want in zip(grads, hand, strict=True):
        assert torch.allclose(got, want, atol=1e-4)


def test_discriminator_sums_its_heads_and_keeps_the_teacher_frozen():
    teacher = _teacher()
    disc = LADDDiscriminator(teacher, LADDConfig.tiny())
    assert len(disc.heads) == 3 and disc.blocks == (0, 1, 2)
    assert not any(p.requires_grad for p in disc.teacher.parameters())
    disc.train()
    assert not disc.teacher.training
    x, t, cond = _inputs()
    features, c = token_features(teacher, x, t, cond, disc.blocks)
    logits = disc(x, t, cond)
    assert logits.shape == (8, 3 * 16)  # three heads of 4×4 tokens, concatenated
    for k, (head, f) in enumerate(zip(disc.heads, features, strict=True)):
        assert torch.allclose(logits[:, 16 * k : 16 * (k + 1)], head(f, c), atol=1e-5)
    chosen = LADDDiscriminator(_teacher(), LADDConfig(head_blocks=(1,)))
    assert chosen.blocks == (1,) and len(chosen.heads) == 1
    with pytest.raises(ValueError, match="head_blocks"):
        LADDDiscriminator(_teacher(), LADDConfig(head_blocks=(5,)))
    with pytest.raises(TypeError, match="MMDiT"):
        LADDDiscriminator(torch.nn.Linear(2, 2), LADDConfig())


def test_config_errors():
    with pytest.raises(ValueError, match="student_steps"):
        LADDConfig(student_steps=0)
    with pytest.raises(ValueError, match="head_kernel"):
        LADDConfig(head_kernel=2)
    with pytest.raises(TypeError):
        LADDConfig(disc_mean="high")
    assert LADDConfig.paper().student_steps == 4 and LADDConfig.paper().disc_mean > 0


def test_a_bfloat16_teacher_takes_float32_latents():
    teacher = _teacher().to(torch.bfloat16)
    x, t, cond = _inputs()
    features, c = token_features(teacher, x, t, cond, (1,))
    assert features[0].dtype == torch.bfloat16 and c.dtype == torch.bfloat16
    disc = LADDDiscriminator(teacher, LADDConfig(head_blocks=(1,)))
    logits = disc(x, t, cond)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()


@pytest.mark.parametrize("b", [8, 6])  # groups of 4 inside each part; 6: one group per part
def test_one_pass_over_real_and_fake_gives_the_logits_of_two_calls(b):
    teacher = _teacher()
    d = LADDDiscriminator(teacher, LADDConfig(virtual_batch=4)).eval()
    x, t, cond = _inputs(b)
    fake = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    t_fake = t.flip(0)
    real_logits, fake_logits = d.pair(x, t, fake, t_fake, cond)
    assert torch.allclose(real_logits, d(x, t, cond), atol=1e-5)
    assert torch.allclose(fake_logits, d(fake, t_fake, cond), atol=1e-5)
    # without the parts a concatenated 12 would be normalised in groups of 4 across real and
    # fake (a batch of 8 happens to group the same either way)
    if b == 6:
        assert not torch.allclose(d(torch.cat([x, fake]), torch.cat([t, t_fake]),
                                    {k: torch.cat([v, v]) for k, v in cond.items()})[:b],
                                  real_logits, atol=1e-3)  # fmt: skip
    with pytest.raises(ValueError, match="real and fake batches must match"):
        d.pair(x, t, fake[:2], t_fake[:2], cond)
    with pytest.raises(ValueError, match="cannot be 3 equal parts"):
        BatchNormLocal(4)(torch.randn(4, 4, 2, 2), parts=3)
