"""Autoregressive sampling of the second stage of Taming Transformers (chapter 10).

The sampler lives in the generative core, :mod:`esser_lab.diffusion.autoregressive`, beside the
diffusion samplers; this module keeps the chapter's names: :func:`sample` is
:func:`esser_lab.diffusion.autoregressive.sample_tokens` (the same function) and
:func:`top_k_top_p_filtering` the same filter.
"""

from __future__ import annotations

from esser_lab.diffusion.autoregressive import sample_tokens as sample
from esser_lab.diffusion.autoregressive import top_k_top_p_filtering

__all__ = ["sample", "top_k_top_p_filtering"]
