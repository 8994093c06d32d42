"""Chapter 18's shipped synthetic latents: the file the re-make writes, for its captions."""

import hashlib

import pytest
import torch

from esser_lab.ladd.synthetic import SETTINGS, SHA256, SYNTHETIC, load_synthetic, make_synthetic
from esser_lab.ladd.teacher import sprite_latents


@pytest.fixture(scope="module")
def tokens():
    return sprite_latents(SETTINGS["count"], seed=SETTINGS["caption_seed"])[1].tokens


def test_the_shipped_file_is_the_recorded_one_and_serves_only_its_own_settings(tokens):
    assert hashlib.sha256(SYNTHETIC.read_bytes()).hexdigest() == SHA256
    kwargs = {key: SETTINGS[key] for key in ("steps", "guidance", "seed")}
    latents = load_synthetic(tokens, **kwargs)
    assert latents.shape == (SETTINGS["count"], 4, 8, 8) and torch.isfinite(latents).all()
    assert load_synthetic(tokens, **(kwargs | {"steps": 10})) is None  # other settings
    assert load_synthetic(tokens, **(kwargs | {"seed": 11})) is None
    assert load_synthetic(tokens.flip(0), **kwargs) is None  # other captions
    assert load_synthetic(tokens[:8], **kwargs) is None
    with pytest.raises(FileNotFoundError, match="python -m esser_lab.ladd.synthetic"):
        load_synthetic(tokens, **kwargs, path=SYNTHETIC.with_name("absent.safetensors"))


@pytest.mark.slow_paper
def test_the_remake_reproduces_the_shipped_latents(tokens):
    """``make_synthetic`` (the chapter's own ``synthesize`` on the shipped teacher) gives the
    shipped tensors bit for bit on one thread (~15 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        latents, made_tokens = make_synthetic()
    finally:
        torch.set_num_threads(threads)
    kwargs = {key: SETTINGS[key] for key in ("steps", "guidance", "seed")}
    assert torch.equal(made_tokens, tokens)
    assert torch.equal(latents, load_synthetic(tokens, **kwargs))
