"""The geometry-free transformer (esser_lab.geofree.model / method) at tiny size."""

import pytest
import torch

from esser_lab.geofree.method import (
    estimate_depth,
    geofree_loss,
    normalize_scale,
    sample_codes,
    sample_views,
)
from esser_lab.geofree.model import (
    CAMERA_TOKENS,
    GeoFreeConfig,
    GeoTransformer,
    MultiEmbedder,
    first_stage_config,
)
from esser_lab.taming.model import VQModel


def camera(b: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "R": torch.randn(b, 3, 3, generator=g),
        "t": torch.randn(b, 3, generator=g),
        "K": torch.randn(b, 3, 3, generator=g),
        "K_inv": torch.randn(b, 3, 3, generator=g),
    }


def test_paper_config_is_the_released_impl_nodepth():
    c = GeoFreeConfig.paper()
    assert (c.vocab_size, c.n_layer, c.n_head, c.n_embd) == (16384, 32, 16, 1024)
    assert c.latent_shape == (13, 23) and c.num_codes == 299
    assert c.n_unmasked == 329 and c.block_size == 627  # the yaml's values
    vq = first_stage_config("paper")
    assert vq.n_embed == 16384 and vq.factor == 16 and vq.ddconfig.ch_mult == (1, 1, 2, 2, 4)


def test_camera_tokens_one_per_scalar_through_one_shared_linear():
    embedder = MultiEmbedder(8)
    assert embedder.fc.weight.shape == (8, 1) and embedder.fc.bias is None
    cam = camera()
    tokens = embedder(**cam)
    assert tokens.shape == (2, CAMERA_TOKENS, 8)
    scalars = torch.cat([cam[k].reshape(2, -1) for k in ("R", "t", "K", "K_inv")], 1)
    expected = scalars[..., None] * embedder.fc.weight[:, 0]  # token k = scalar_k · w
    torch.testing.assert_close(tokens, expected)
    assert sum(p.numel() for p in embedder.parameters()) == 8


def test_camera_errors_name_the_keys_and_the_count():
    embedder = MultiEmbedder(8)
    cam = camera()
    with pytest.raises(ValueError, match="missing \\['K_inv'\\]"):
        embedder(**{k: v for k, v in cam.items() if k != "K_inv"})
    with pytest.raises(ValueError, match="30 scalars"):
        embedder(**{**cam, "t": torch.zeros(2, 4)})


def test_conditioning_block_is_bidirectional_and_targets_causal(model):
    model.eval()
    c = model.config
    n = c.num_codes
    g = torch.Generator().manual_seed(1)
    source = torch.randint(c.vocab_size, (1, n), generator=g)
    target = torch.randint(c.vocab_size, (1, n), generator=g)
    cam = camera(1)
    gpt = model.transformer
    mask = gpt.blocks[0].attn.mask[0, 0]
    cond = c.n_unmasked
    assert mask[:cond, :cond].all() and not mask[: cond - 1, cond:].any()
    assert mask.shape == (cond + n - 1, cond + n - 1)
    assert torch.equal(mask[cond:, cond:], torch.tril(torch.ones(n - 1, n - 1)))
    # the last source code changes the first source position's state (bidirectional) ...
    states = model.hidden_states(source, cam)
    changed = source.clone()
    changed[0, -1] = (changed[0, -1] + 1) % c.vocab_size
    after = model.hidden_states(changed, cam)
    assert not torch.allclose(states[-1][0, 0], after[-1][0, 0])
    # ... while a later target code never changes an earlier target prediction
    logits = model(source, target, cam)
    later = target.clone()
    later[0, 5] = (later[0, 5] + 1) % c.vocab_size
    logits_later = model(source, later, cam)
    torch.testing.assert_close(logits[:, :6], logits_later[:, :6])
    assert not torch.allclose(logits[:, 6:], logits_later[:, 6:])


def test_shapes_hidden_states_and_decoding(model, pairs):
    cam = normalize_scale(pairs.camera, pairs.source_depth)
    codes = model.encode_to_z(pairs.source)
    assert codes.shape == (8, 16) and not codes.is_floating_point()
    logits = model(codes, model.encode_to_z(pairs.target), cam)
    assert logits.shape == (8, 16, 128)
    states = model.hidden_states(codes, cam)
    assert len(states) == model.config.n_layer + 1 and states[2].shape == (8, 16, 64)
    assert model.decode_to_img(codes).shape == (8, 3, 16, 16)


def test_normalize_scale_multiplies_t_by_the_largest_inverse_depth(pairs):
    cam = normalize_scale(pairs.camera, pairs.source_depth)
    alpha = 1 / pairs.source_depth.amin(dim=(1, 2, 3))
    torch.testing.assert_close(cam["t"], pairs.t * alpha[:, None])
    assert torch.equal(cam["R"], pairs.R)
    with pytest.raises(ValueError, match="positive"):
        normalize_scale(pairs.camera, -pairs.source_depth)


def test_loss_falls_on_one_batch(model, pairs):
    cam = normalize_scale(pairs.camera, pairs.source_depth)
    source, target = model.encode_to_z(pairs.source), model.encode_to_z(pairs.target)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    first = geofree_loss(model, source, target, cam).item()
    for _ in range(15):
        loss = geofree_loss(model, source, target, cam)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.7 * first
    assert all(p.grad is None for p in model.first_stage_model.parameters())


def test_same_seed_same_samples_and_the_first_stage_stays_frozen(model, pairs):
    cam = normalize_scale(pairs.camera, pairs.source_depth)
    codes = model.encode_to_z(pairs.source)
    a = sample_codes(model, codes, cam, generator=torch.Generator().manual_seed(0))
    b = sample_codes(model, codes, cam, generator=torch.Generator().manual_seed(0))
    c = sample_codes(model, codes, cam, generator=torch.Generator().manual_seed(1))
    assert a.shape == (8, 16) and torch.equal(a, b) and not torch.equal(a, c)
    model.train()
    assert not model.first_stage_model.training
    views = sample_views(model, pairs.source, cam, generator=torch.Generator().manual_seed(0))
    assert views.shape == (8, 3, 16, 16) and views.abs().max() <= 1


def test_cached_sampling_matches_the_full_forward(model, pairs):
    """With temperature → 0 the cached sampler picks the argmax of the full forward pass."""
    model.eval()
    cam = normalize_scale(pairs.camera, pairs.source_depth)
    source = model.encode_to_z(pairs.source)
    codes = sample_codes(model, source, cam, temperature=1e-6, generator=torch.Generator())
    logits = model(source, codes, cam)
    assert torch.equal(logits.argmax(-1), codes)


def test_bad_inputs_are_named(model):
    with pytest.raises(TypeError, match="first_stage must be a VQModel"):
        GeoTransformer(GeoFreeConfig.tiny(), torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match="vocab_size=16384 must equal"):
        GeoTransformer(GeoFreeConfig.paper(), VQModel(first_stage_config("tiny")))
    with pytest.raises(ValueError, match=r"source_codes must be integer codes \(b, N=16\)"):
        model(torch.zeros(1, 15, dtype=torch.long), torch.zeros(1, 16, dtype=torch.long), camera(1))
    with pytest.raises(ValueError, match="divisible"):
        GeoFreeConfig(n_embd=100, n_head=16)
    with pytest.raises(RuntimeError, match="MiDaS"):
        estimate_depth(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"depth \(b, 1, H, W\)"):
        estimate_depth(torch.zeros(1, 3, 8, 8), estimator=lambda x: x)


@pytest.mark.slow_paper
def test_paper_model_builds_on_meta_with_the_released_sizes():
    with torch.device("meta"):
        model = GeoTransformer(GeoFreeConfig.paper(), VQModel(first_stage_config("paper")))
    gpt = model.transformer
    assert gpt.pos_emb.shape == (1, 627, 1024) and gpt.blocks[0].attn.mask.shape[-1] == 627
    assert model.emb_stage_model.fc.weight.shape == (1024, 1)
    n = sum(p.numel() for p in gpt.parameters())
    assert 420e6 < n < 440e6  # 32 · 12 · 1024² + 2 · 16384 · 1024 + 627 · 1024 ≈ 437 M


def test_gpt_embeddings_take_the_first_positions_and_bad_widths_are_named():
    from esser_lab.nn.transformer import GPT

    gpt = GPT(10, 8, n_layer=1, n_head=2, n_embd=8).eval()
    torch.nn.init.normal_(gpt.pos_emb)
    idx = torch.tensor([[1, 2, 3]])
    embeddings = torch.randn(1, 2, 8)
    logits = gpt(idx, embeddings=embeddings)
    assert logits.shape == (1, 5, 10)
    # the same as feeding the embeddings' positions first and the tokens after, in two calls
    first, past = gpt.forward_with_past(idx[:, :0], embeddings=embeddings)
    rest, _ = gpt.forward_with_past(idx, past)
    torch.testing.assert_close(torch.cat([first, rest], 1), logits)
    with pytest.raises(ValueError, match=r"embeddings must be \(b=1, l_e, n_embd=8\)"):
        gpt(idx, embeddings=torch.randn(1, 2, 4))
    with pytest.raises(ValueError, match="exceeds block_size=8"):
        gpt(torch.zeros(1, 7, dtype=torch.long), embeddings=embeddings)
