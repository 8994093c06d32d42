"""The token sampler lives in the core; chapter 10's module names the same functions."""

from __future__ import annotations

import subprocess
import sys

import torch

from esser_lab import diffusion
from esser_lab.nn.transformer import GPT
from esser_lab.taming import sampling


def test_taming_names_are_the_core_functions():
    assert sampling.sample is diffusion.sample_tokens
    assert sampling.top_k_top_p_filtering is diffusion.top_k_top_p_filtering


def test_sample_tokens_is_seeded_and_cache_free_equal():
    torch.manual_seed(0)
    gpt = GPT(vocab_size=16, block_size=8, n_layer=1, n_head=2, n_embd=16)
    cond = torch.zeros(3, 1, dtype=torch.long)

    def draw(use_cache):
        g = torch.Generator().manual_seed(4)
        return diffusion.sample_tokens(gpt, cond, 6, top_k=5, use_cache=use_cache, generator=g)

    tokens = draw(True)
    assert tokens.shape == (3, 6) and int(tokens.max()) < 16
    assert torch.equal(tokens, draw(False))


def test_importing_the_core_stays_light():
    code = (
        "import sys, esser_lab.diffusion; "
        "assert 'lightning' not in sys.modules and 'esser_lab.nn.transformer' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
