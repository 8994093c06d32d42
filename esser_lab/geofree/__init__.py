"""Geometry-free view synthesis (Rombach, Esser & Ommer, ICCV 2021; arXiv 2104.07652), chapter 12.

A transformer that synthesises a new view of a scene from one source view and a camera, with no
depth, no warp and no 3-D prior: camera parameters as one token per scalar, the source's VQGAN
codes, the target's codes predicted autoregressively (reusing chapter 10's VQGAN and GPT).
Beside it, the explicit baseline that warps the source with an estimated depth and fills holes.

* :mod:`~esser_lab.geofree.model`: ``GeoFreeConfig``, ``GeoTransformer``, ``MultiEmbedder``;
* :mod:`~esser_lab.geofree.method`: scale normalisation, loss and sampling (G1)–(G3);
* :mod:`~esser_lab.geofree.warp` and :mod:`~esser_lab.geofree.baseline`: the explicit baseline;
* :mod:`~esser_lab.geofree.training`: the Lightning systems; :mod:`~esser_lab.geofree.claims`;
* :mod:`~esser_lab.geofree.diagnostics`: does the transformer read its source and camera (NLL);
* :mod:`~esser_lab.geofree.first_stage`: the shipped tiny VQGAN;
  :mod:`~esser_lab.geofree.checkpoint`: the released checkpoints.
"""

from esser_lab.geofree.model import (
    CAMERA_KEYS,
    CAMERA_TOKENS,
    GeoFreeConfig,
    GeoTransformer,
    MultiEmbedder,
    first_stage_config,
)

__all__ = [
    "CAMERA_KEYS",
    "CAMERA_TOKENS",
    "GeoFreeConfig",
    "GeoTransformer",
    "MultiEmbedder",
    "first_stage_config",
]
