"""Second stage: filtering, sampling with and without cache, TamingTransformer, loading."""

import math
import sys
import types

import pytest
import torch

from esser_lab.nn.transformer import GPT
from esser_lab.taming import VQGANConfig, VQModel
from esser_lab.taming.checkpoint import split_transformer_checkpoint
from esser_lab.taming.sampling import sample, top_k_top_p_filtering
from esser_lab.taming.transformer import TamingTransformer, TamingTransformerConfig
from esser_lab.taming.transformer_training import LitTamingTransformer

K = 64  # the codebook size of VQGANConfig.tiny(), the tiny GPT's vocabulary
VQ = VQGANConfig(
    resolution=16,
    ch=32,
    ch_mult=(1, 2, 2),
    num_res_blocks=1,
    attn_resolutions=(4,),
    z_channels=8,
    embed_dim=8,
    n_embed=K,
)  # f = 4: 4×4 codes


def tiny_model(conditioning="class", seed=0, **kwargs) -> TamingTransformer:
    torch.manual_seed(seed)
    config = TamingTransformerConfig.tiny()
    config = TamingTransformerConfig.from_dict(
        {**config.__dict__, "conditioning": conditioning, **kwargs}
    )
    return TamingTransformer(config, VQModel(VQ))


# ---- top-k / top-p ------------------------------------------------------------------------------


def test_top_k_keeps_the_k_largest():
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(0))
    filtered = top_k_top_p_filtering(logits, top_k=5)
    kept = torch.isfinite(filtered)
    assert (kept.sum(-1) == 5).all()
    assert torch.equal(filtered[kept], logits[kept])  # kept logits unchanged
    assert (
        logits[kept].view(4, 5).min(-1).values >= logits[~kept].view(4, 45).max(-1).values
    ).all()
    assert torch.equal(top_k_top_p_filtering(logits, top_k=50), logits)


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.97, 0.01, 0.01, 0.01]])
    logits = probs.log()
    assert torch.isfinite(top_k_top_p_filtering(logits, top_p=0.75)).tolist() == [
        [True, True, False, False],
        [True, False, False, False],
    ]
    # mass reaches 0.8 with 2 tokens (0.5 + 0.3); a top-p of 0.5 keeps the first token only
    assert torch.isfinite(top_k_top_p_filtering(logits, top_p=0.8)).sum(-1)[0] == 2
    assert torch.isfinite(top_k_top_p_filtering(logits, top_p=0.01)).sum(-1).tolist() == [1, 1]
    random = torch.randn(3, 40, generator=torch.Generator().manual_seed(1))
    for p in (0.3, 0.6, 0.9):
        kept = torch.isfinite(top_k_top_p_filtering(random, top_p=p))
        mass = (random.softmax(-1) * kept).sum(-1)
        assert (mass >= p - 1e-6).all()  # kept mass reaches p ...
        smallest = (random.softmax(-1) * kept).masked_fill(~kept, 2.0).min(-1).values
        assert (mass - smallest < p).all()  # ... and is minimal
    with pytest.raises(ValueError, match="top_p"):
        top_k_top_p_filtering(random, top_p=0.0)
    with pytest.raises(ValueError, match="top_k"):
        top_k_top_p_filtering(random, top_k=0)


# ---- sampling -----------------------------------------------------------------------------------


def _gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(vocab_size=32, block_size=17, n_layer=2, n_head=4, n_embd=64).eval()


@pytest.mark.parametrize("top_k, top_p", [(None, None), (8, 0.9)])
def test_sampling_with_and_without_cache_is_identical(top_k, top_p):
    gpt = _gpt()
    cond = torch.tensor([[3], [7]])
    draws = []
    for use_cache in (True, False):
        generator = torch.Generator().manual_seed(5)
        draws.append(sample(gpt, cond, 16, 1.0, top_k, top_p, use_cache, generator))
    assert draws[0].shape == (2, 16) and draws[0].dtype == torch.long
    assert torch.equal(draws[0], draws[1])
    again = sample(gpt, cond, 16, 1.0, top_k, top_p, generator=torch.Generator().manual_seed(5))
    assert torch.equal(again, draws[0])
    other = sample(gpt, cond, 16, 1.0, top_k, top_p, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(other, draws[0])


def test_low_temperature_is_greedy_and_top_k_one_is_argmax():
    gpt = _gpt()
    cond = torch.tensor([[1]])
    greedy = sample(gpt, cond, 6, top_k=1, generator=torch.Generator().manual_seed(0))
    sequence = cond
    for _ in range(6):
        sequence = torch.cat((sequence, gpt(sequence)[:, -1:].argmax(-1)), dim=1)
    assert torch.equal(greedy, sequence[:, 1:])


def test_sampling_errors():
    gpt = _gpt()
    with pytest.raises(ValueError, match="block_size"):
        sample(gpt, torch.zeros(1, 2, dtype=torch.long), 17)
    with pytest.raises(ValueError, match="temperature"):
        sample(gpt, torch.zeros(1, 1, dtype=torch.long), 2, temperature=0.0)
    with pytest.raises(ValueError, match="cond_tokens"):
        sample(gpt, torch.zeros(3, dtype=torch.long), 2)


# ---- TamingTransformer --------------------------------------------------------------------------


def test_configs():
    paper = TamingTransformerConfig.paper()
    assert (paper.vocab_size, paper.block_size, paper.n_layer, paper.n_head, paper.n_embd) == (
        16384,
        256,
        48,
        24,
        1536,
    )
    with torch.device("meta"):  # 1.4 B parameters, built without memory
        gpt = paper.build_gpt()
    assert round(sum(p.numel() for p in gpt.parameters()) / 1e9, 2) == 1.41
    assert len(gpt.state_dict()) == 48 * 17 + 5  # incl. one mask buffer per block
    assert paper.learning_rate(batch_size=2) == pytest.approx(9e-6)
    tiny = TamingTransformerConfig.tiny()
    assert (tiny.n_layer, tiny.n_head, tiny.n_embd) == (2, 4, 64)
    with pytest.raises(ValueError, match="n_classes"):
        TamingTransformerConfig(vocab_size=16, n_classes=20)
    with pytest.raises(ValueError, match="pkeep"):
        TamingTransformerConfig(pkeep=0.0)


def test_first_stage_is_frozen_and_shapes():
    model = tiny_model()
    model.train()
    assert not model.first_stage_model.training and model.transformer.training
    assert not any(p.requires_grad for p in model.first_stage_model.parameters())
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    z = model.encode_to_z(x)
    assert z.shape == (3, 16) and z.dtype == torch.long
    indices = model.first_stage_model.encode(x).indices
    assert torch.equal(z[:, 4:8], indices[:, 1])  # row-major: the second row of codes
    logits, target = model(z, torch.tensor([0, 1, 9]))
    assert logits.shape == (3, 16, K) and torch.equal(target, z)
    assert model.latent_shape == (4, 4) and model.cond_length == 1


def test_condition_tokens():
    uncond = tiny_model("unconditional", sos_token=5)
    assert uncond.condition_tokens(2).tolist() == [[5], [5]]
    model = tiny_model()
    assert model.condition_tokens(2, torch.tensor([3, 9])).tolist() == [[3], [9]]
    with pytest.raises(ValueError, match="labels"):
        model.condition_tokens(2)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        model.condition_tokens(1, torch.tensor([10]))
    with pytest.raises(ValueError, match="no labels"):
        uncond.condition_tokens(1, torch.tensor([0]))


def test_class_token_is_visible_to_every_code():
    model = tiny_model().eval()
    z = torch.randint(K, (1, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = model(z, torch.tensor([1]))[0]
        b = model(z, torch.tensor([2]))[0]
    assert not torch.allclose(a[:, 0], b[:, 0]) and not torch.allclose(a[:, -1], b[:, -1])


def test_pkeep_noise_touches_inputs_only():
    model = tiny_model(pkeep=0.5).train()
    z = torch.randint(K, (4, 16), generator=torch.Generator().manual_seed(0))
    labels = torch.arange(4)
    a, target = model(z, labels, torch.Generator().manual_seed(1))
    b, _ = model(z, labels, torch.Generator().manual_seed(2))
    assert torch.equal(target, z) and not torch.allclose(a, b)
    model.eval()
    assert torch.equal(model(z, labels)[0], model(z, labels)[0])


def test_loss_falls_on_one_batch_and_nll_starts_near_log_k():
    model = tiny_model()
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    labels = torch.arange(8) % 10
    z = model.encode_to_z(x)
    assert abs(model.nll_per_token(z, labels) - math.log(K)) < 0.1
    system = LitTamingTransformer(model, learning_rate=3e-3)
    optimizer = system.configure_optimizers()
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(
        list(model.transformer.parameters())
    )
    losses = []
    for step in range(25):
        loss = system.training_step({"z_indices": z, "label": labels}, step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert model.nll_per_token(z, labels, batch_size=3) < 0.5 * math.log(K)
    assert len(system.history) == 25
    image_loss = system.training_step({"image": x, "label": labels}, 0)
    assert image_loss.item() == pytest.approx(losses[-1], rel=0.2)
    with pytest.raises(ValueError, match="'image' or 'z_indices'"):
        system.training_step({"label": labels}, 0)


def test_sample_images_shapes_and_determinism():
    model = tiny_model().eval()
    labels = torch.tensor([0, 3])
    images = model.sample_images(labels, generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, 3, 16, 16)
    codes = [
        model.sample_codes(labels, use_cache=c, generator=torch.Generator().manual_seed(0))
        for c in (True, False)
    ]
    assert codes[0].shape == (2, 4, 4) and torch.equal(codes[0], codes[1])
    assert torch.allclose(model.first_stage_model.decode_code(codes[0]), images)
    uncond = tiny_model("unconditional").eval()
    assert uncond.sample_codes(num_samples=3, top_k=5, top_p=0.9).shape == (3, 4, 4)
    greedy = tiny_model("unconditional", top_k=1).eval()  # decoding defaults from the config
    assert torch.equal(greedy.sample_codes(num_samples=2), greedy.sample_codes(num_samples=2))
    with pytest.raises(ValueError, match="num_samples"):
        uncond.sample_codes()


def test_model_errors():
    with pytest.raises(ValueError, match="n_embed=16"):
        TamingTransformer(TamingTransformerConfig.tiny(), VQModel(VQ.with_codebook(16)))
    with pytest.raises(ValueError, match="block_size"):
        tiny_model(block_size=8)
    with pytest.raises(TypeError, match="VQModel"):
        TamingTransformer(TamingTransformerConfig.tiny(), torch.nn.Linear(1, 1))
    model = tiny_model()
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 65, dtype=torch.long), torch.tensor([0]))
    with pytest.raises(ValueError, match="vocab_size"):
        model(torch.full((1, 16), K), torch.tensor([0]))


# ---- released-checkpoint layout -----------------------------------------------------------------


def _official_transformer_ckpt(state_dict: dict, path) -> None:
    """A Lightning 1.x ``.ckpt`` whose callback class (a dict key) lives in pytorch_lightning."""
    name = "pytorch_lightning.callbacks.model_checkpoint"
    fakes = {n: types.ModuleType(n) for n in ("pytorch_lightning", "pytorch_lightning.callbacks")}
    fakes[name] = types.ModuleType(name)
    callback = type("ModelCheckpoint", (), {"__module__": name})
    fakes[name].ModelCheckpoint = callback
    saved = {n: sys.modules.get(n) for n in fakes}
    sys.modules.update(fakes)
    try:
        torch.save(
            {"global_step": 7, "callbacks": {callback: {"x": 1}}, "state_dict": state_dict}, path
        )
    finally:
        for n, module in saved.items():
            if module is None:
                sys.modules.pop(n)
            else:
                sys.modules[n] = module


def test_released_transformer_part_loads_strictly(tmp_path):
    source = tiny_model(seed=1)
    state = {f"transformer.{k}": v for k, v in source.transformer.state_dict().items()}
    state |= {f"first_stage_model.{k}": v for k, v in source.first_stage_model.state_dict().items()}
    assert "transformer.blocks.1.attn.mask" in state and "transformer.head.weight" in state
    path = tmp_path / "last.ckpt"
    _official_transformer_ckpt(state, path)
    parts = split_transformer_checkpoint(path)
    target = tiny_model(seed=2)
    target.transformer.load_state_dict(parts["transformer"], strict=True)
    target.first_stage_model.load_state_dict(parts["first_stage_model"], strict=True)
    # and the whole checkpoint (no cond stage weights for class/sos conditioning) in one go
    tiny_model(seed=3).load_state_dict(state, strict=True)
    z = torch.randint(K, (2, 16), generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([1, 2])
    with torch.no_grad():
        assert torch.equal(target.eval()(z, labels)[0], source.eval()(z, labels)[0])
    # a GPT of another block_size refuses the persistent mask
    with pytest.raises(RuntimeError, match="mask"):
        tiny_model(block_size=32).transformer.load_state_dict(parts["transformer"], strict=True)


def test_system_trains_through_the_trainer(capsys):
    from esser_lab.data.modules import BatchIndexSampler, TensorBatches
    from esser_lab.scale import profile
    from esser_lab.training.trainer import make_trainer

    model = tiny_model()
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    batches = TensorBatches({"image": x, "label": torch.arange(8)})  # images encoded every step
    sampler = BatchIndexSampler(8, 8, shuffle=False)
    data = torch.utils.data.DataLoader(batches, sampler=sampler, batch_size=None)
    system = LitTamingTransformer(model, learning_rate=3e-3)
    make_trainer(profile("tiny"), 6, progress_every=3).fit(system, train_dataloaders=data)
    assert system.global_step == 6 and len(system.history) == 6
    assert system.history[-1]["loss"] < system.history[0]["loss"]
    assert "loss" in capsys.readouterr().out  # logged on the printed steps
    assert not model.first_stage_model.training


def test_top_p_alone_filters_when_sampling():
    gpt = _gpt()
    cond = torch.zeros(64, 1, dtype=torch.long)
    draws = sample(gpt, cond, 1, top_p=1e-6, generator=torch.Generator().manual_seed(0))
    assert (draws == gpt(cond)[:, -1].argmax(-1, keepdim=True)).all()  # only the mode survives


@pytest.mark.skipif(not hasattr(VQGANConfig, "tiny"), reason="VQGANConfig presets not there yet")
@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_presets_fit_the_first_stage_presets(preset):
    vq = getattr(VQGANConfig, preset)()
    config = getattr(TamingTransformerConfig, preset)()
    assert config.vocab_size == vq.n_embed
    assert 1 + (vq.resolution // vq.factor) ** 2 - 1 <= config.block_size


def test_network_and_sampler_do_not_import_lightning():
    import subprocess

    code = (
        "import sys, esser_lab.nn.transformer, esser_lab.taming.sampling, "
        "esser_lab.taming.transformer; assert 'lightning' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
