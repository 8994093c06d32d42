"""Text conditioning (esser_lab.sd3.text): toy encoder, SD3 assembly, null condition, dropout."""

import sys

import pytest
import torch

from esser_lab.sd3.data import CONTEXT_LENGTH, VOCAB, tokenize
from esser_lab.sd3.text import (
    CAPTION_DROPOUT,
    SD3_GROUPS,
    SD3TextEncoders,
    TextEncoder,
    ToyTextEncoder,
    assemble_sd3_condition,
    drop_captions,
    null_condition,
)


def test_toy_encoder_shapes_seed_and_frozen():
    encoder = ToyTextEncoder(32, 24, seed=0)
    assert isinstance(encoder, TextEncoder)
    cond = encoder.encode(["a red circle", "a blue square left of a green star"])
    assert cond["context"].shape == (2, CONTEXT_LENGTH, 32)
    assert cond["pooled"].shape == (2, 24)
    assert not list(encoder.parameters())  # frozen: buffers only
    same = ToyTextEncoder(32, 24, seed=0).encode(tokenize(["a red circle"]))
    assert torch.equal(same["context"], cond["context"][:1])
    other = ToyTextEncoder(32, 24, seed=1).encode(["a red circle"])
    assert not torch.equal(other["context"], same["context"])


def test_toy_encoder_is_embedding_plus_position_and_pools_the_mean():
    encoder = ToyTextEncoder(16, 8, seed=0)
    tokens = tokenize(["a red circle"])
    cond = encoder.encode(tokens)
    expected = encoder.embedding[tokens[0]] + encoder.position
    torch.testing.assert_close(cond["context"][0], expected)
    mean = encoder.embedding[tokens[0, :3]].mean(0)
    torch.testing.assert_close(cond["pooled"][0], mean @ encoder.projection)
    # the word order reaches the context (positions) but not the pooled mean
    swapped = encoder.encode(tokenize(["a circle red"]))
    assert not torch.allclose(swapped["context"], cond["context"])
    torch.testing.assert_close(swapped["pooled"], cond["pooled"])


def test_null_condition_is_the_empty_caption():
    encoder = ToyTextEncoder(16, 8)
    null = null_condition(encoder, 5)
    assert null["context"].shape == (5, CONTEXT_LENGTH, 16) and null["pooled"].shape == (5, 8)
    empty = encoder.encode(torch.zeros(1, CONTEXT_LENGTH, dtype=torch.long))
    torch.testing.assert_close(null["context"], empty["context"].expand(5, -1, -1))
    assert torch.equal(null["pooled"], torch.zeros(5, 8))
    with pytest.raises(ValueError, match="batch"):
        null_condition(encoder, 0)


def test_assemble_sd3_condition_layout():
    b = 2
    l_tok, l_pool = torch.randn(b, 77, 768), torch.randn(b, 768)
    g_tok, g_pool = torch.randn(b, 77, 1280), torch.randn(b, 1280)
    t5 = torch.randn(b, 77, 4096)
    cond = assemble_sd3_condition((l_tok, l_pool), (g_tok, g_pool), t5)
    assert cond["context"].shape == (b, 154, 4096) and cond["pooled"].shape == (b, 2048)
    assert torch.equal(cond["context"][:, :77, :768], l_tok)
    assert torch.equal(cond["context"][:, :77, 768:2048], g_tok)
    assert torch.equal(cond["context"][:, :77, 2048:], torch.zeros(b, 77, 2048))
    assert torch.equal(cond["context"][:, 77:], t5)
    assert torch.equal(cond["pooled"], torch.cat([l_pool, g_pool], -1))
    with pytest.raises(ValueError, match=r"clip_g pooled must have shape \(2, 1280\)"):
        assemble_sd3_condition((l_tok, l_pool), (g_tok, g_pool[:, :768]), t5)
    with pytest.raises(ValueError, match="same number of tokens"):
        assemble_sd3_condition((l_tok, l_pool), (g_tok[:, :70], g_pool), t5)


def test_drop_captions_toy_and_sd3_groups():
    cond = ToyTextEncoder(16, 8).encode(torch.randint(1, len(VOCAB), (4000, CONTEXT_LENGTH)))
    dropped = drop_captions(cond, 0.25, torch.Generator().manual_seed(0))
    zero = (dropped["context"] == 0).flatten(1).all(1)
    assert torch.equal(zero, (dropped["pooled"] == 0).all(1))  # one encoder: both together
    assert abs(zero.float().mean().item() - 0.25) < 0.03
    kept = ~zero
    assert torch.equal(dropped["context"][kept], cond["context"][kept])
    assert torch.equal(drop_captions(cond, 0.0, torch.Generator())["context"], cond["context"])

    b = 64  # SD3's real widths: the share of each encoder, and that the padding stays put
    sd3 = {"context": torch.ones(b, 154, 4096), "pooled": torch.ones(b, 2048)}
    out = drop_captions(sd3, 0.5, torch.Generator().manual_seed(0), SD3_GROUPS)
    l_off = (out["context"][:, :77, :768] == 0).flatten(1).all(1)
    g_off = (out["context"][:, :77, 768:2048] == 0).flatten(1).all(1)
    t5_off = (out["context"][:, 77:] == 0).flatten(1).all(1)
    assert torch.equal(l_off, (out["context"][:, :77, :768] == 0).flatten(1).any(1))
    assert torch.equal(l_off, (out["pooled"][:, :768] == 0).all(1))
    assert torch.equal(g_off, (out["pooled"][:, 768:] == 0).all(1))
    assert (out["context"][:, :77, 2048:] == 1).all()  # the zero padding's place is untouched
    assert 0 < l_off.sum() < b and 0 < g_off.sum() < b and 0 < t5_off.sum() < b
    # independence at the paper's rate, on a cheap stand-in with three one-channel encoders
    n = 20000
    small = {"context": torch.ones(n, 1, 3), "pooled": torch.ones(n, 1)}
    groups = {name: (("context", (slice(None), slice(i, i + 1))),) for i, name in enumerate("lgt")}
    off = drop_captions(small, CAPTION_DROPOUT, torch.Generator().manual_seed(0), groups)
    off = off["context"][:, 0] == 0  # (n, 3)
    assert (off.float().mean(0) - CAPTION_DROPOUT).abs().max() < 0.015
    assert abs(off.all(1).float().mean().item() - CAPTION_DROPOUT**3) < 0.01  # about 10 %
    with pytest.raises(ValueError, match="probability"):
        drop_captions(cond, 1.5, torch.Generator())


def test_bad_inputs_are_named():
    encoder = ToyTextEncoder(16, 8)
    with pytest.raises(ValueError, match=r"integer tensor \(b, 12\)"):
        encoder.encode(torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="token ids"):
        encoder.encode(torch.full((1, CONTEXT_LENGTH), len(VOCAB)))
    with pytest.raises(ValueError, match="outside VOCAB"):
        encoder.encode(["a purple circle"])
    with pytest.raises(ValueError, match="context_dim"):
        ToyTextEncoder(0, 8)


def test_sd3_encoders_say_how_to_install_transformers(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    with pytest.raises(ImportError, match="SD3TextEncoders runs .*pip install transformers"):
        SD3TextEncoders.from_folder("/nonexistent")  # said before the folder is looked at


def test_sd3_encoders_name_a_missing_folder():
    pytest.importorskip("transformers")
    with pytest.raises(FileNotFoundError, match="diffusers layout .*never downloads"):
        SD3TextEncoders.from_folder("/nonexistent/sd3")


class _Tokenizer:
    """Words → ids as a CLIP (start, words, end) or T5 (words, end) tokenizer would return."""

    def __init__(self, clip: bool) -> None:
        self.clip, self.eos_token_id = clip, 99

    def __call__(self, captions, truncation=False, max_length=None, padding=None, **kwargs):
        rows = [[10 + len(w) for w in c.split()] for c in captions]
        rows = [[98, *r, 99] if self.clip else [*r, 99] for r in rows]
        if max_length is not None:
            rows = [r[: max_length - 1] + [99] if len(r) > max_length else r for r in rows]
        if kwargs.get("return_tensors") == "pt":
            width = max_length if padding == "max_length" else max(map(len, rows))
            return {"input_ids": torch.tensor([r + [0] * (width - len(r)) for r in rows])}
        return {"input_ids": rows}


def test_sd3_encoders_read_the_official_layers_of_tiny_random_models():
    """Real ``transformers`` classes at SD3's widths, one layer each (runs where installed)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)

    def clip(width):
        config = transformers.CLIPTextConfig(
            vocab_size=100, hidden_size=width, intermediate_size=32, num_hidden_layers=2,
            num_attention_heads=2, projection_dim=width, max_position_embeddings=77,
            eos_token_id=99, bos_token_id=98, pad_token_id=0,
        )  # fmt: skip
        return transformers.CLIPTextModelWithProjection(config)

    t5 = transformers.T5EncoderModel(
        transformers.T5Config(
            vocab_size=100, d_model=4096, d_kv=8, d_ff=16, num_layers=1, num_heads=2
        )
    )
    clip_l, clip_g = clip(768), clip(1280)
    tokenizers = [_Tokenizer(True), _Tokenizer(True), _Tokenizer(False)]
    encoders = SD3TextEncoders(tokenizers, [clip_l, clip_g, t5])
    assert isinstance(encoders, TextEncoder)
    cond = encoders.encode(["a red circle", "a blue square left of a green star"])
    assert cond["context"].shape == (2, 154, 4096) and cond["pooled"].shape == (2, 2048)
    ids = torch.tensor([98, 11, 13, 16, 99])  # "a red circle"
    l_ids = torch.cat([ids, torch.full((72,), 99)])[None]  # CLIP-L pads with its end token
    g_ids = torch.cat([ids, torch.zeros(72, dtype=torch.long)])[None]  # CLIP-G with 0
    with torch.no_grad():
        out_l = clip_l(l_ids, output_hidden_states=True)
        out_g = clip_g(g_ids, output_hidden_states=True)
        out_t5 = t5(torch.cat([ids[1:], torch.zeros(73, dtype=torch.long)])[None])
    context, pooled = cond["context"][:1], cond["pooled"][:1]
    torch.testing.assert_close(context[:, :77, :768], out_l.hidden_states[-2])  # penultimate
    torch.testing.assert_close(context[:, :77, 768:2048], out_g.hidden_states[-2])
    torch.testing.assert_close(pooled[:, :768], out_l.last_hidden_state[:, 4])  # unprojected
    torch.testing.assert_close(pooled[:, 768:], out_g.text_embeds)  # projected
    torch.testing.assert_close(context[:, 77:], out_t5.last_hidden_state)
    null = null_condition(encoders, 3)
    assert null["context"].shape == (3, 154, 4096)
    # a caption's features do not depend on its neighbours (no mask: padding is fixed at 77)
    long = " ".join(["star"] * 100)
    alone, beside = encoders.encode(["a red circle"]), encoders.encode(["a red circle", long])
    torch.testing.assert_close(alone["context"][0], beside["context"][0])
    assert beside["context"].shape == (2, 154, 4096)  # the long one is truncated to 77


def test_the_diffusers_layouts_encoders_read_through_the_shared_source(tmp_path):
    """``SD3TextEncoders.from_folder``'s reading (``TransformersSource``) on a tiny random
    CLIP-L saved in the diffusers layout: the weights back, in the dtype asked, from the
    sub-folder, offline."""
    transformers = pytest.importorskip("transformers")
    from esser_lab.pretrained import TransformersSource

    config = transformers.CLIPTextConfig(
        vocab_size=100, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, projection_dim=16, max_position_embeddings=77,
    )  # fmt: skip
    saved = transformers.CLIPTextModelWithProjection(config)
    saved.save_pretrained(tmp_path / "text_encoder")
    source = TransformersSource.folder(tmp_path, "an SD3 model")
    assert source.has("config.json", "text_encoder") and not source.has("config.json")
    loaded = source.load(transformers.CLIPTextModelWithProjection, "text_encoder", torch.float16)
    assert next(loaded.parameters()).dtype == torch.float16
    state = loaded.state_dict()
    assert state.keys() == saved.state_dict().keys()
    for name, value in saved.state_dict().items():
        torch.testing.assert_close(value.half(), state[name], msg=name)
