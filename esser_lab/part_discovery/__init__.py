"""Chapter 8: unsupervised part discovery by unsupervised disentanglement (Braun, Esser &
Ommer, GCPR 2020).

The networks (``model``) and the method never import Lightning; ``LitPartDiscovery`` lives in
``esser_lab.part_discovery.training``, and the paper's competitor (chapter 2's part-based model,
its landmarks turned into segments as the official evaluation does) in
``esser_lab.part_discovery.competitor``.
"""

from esser_lab.part_discovery.method import (
    PartDiscoveryLoss,
    PartIoU,
    colour_kmeans,
    colour_segments,
    compactness_loss,
    figure_labels,
    gmrf_prior,
    hard_cross_entropy,
    kl_to_uniform,
    lor_update,
    mumford_shah_prior,
    part_discovery_loss,
    part_iou,
    part_spread,
    reconstruction_loss,
    transfer,
)
from esser_lab.part_discovery.model import (
    Critic,
    FullGaussian,
    Layout,
    PartDiscovery,
    PartDiscoveryConfig,
    PartDiscoveryOutput,
    Staircase,
    hard_one_hot,
    mask_parts,
    unpool,
)

__all__ = [
    "Critic",
    "FullGaussian",
    "Layout",
    "PartDiscovery",
    "PartDiscoveryConfig",
    "PartDiscoveryLoss",
    "PartDiscoveryOutput",
    "PartIoU",
    "Staircase",
    "colour_kmeans",
    "colour_segments",
    "compactness_loss",
    "figure_labels",
    "gmrf_prior",
    "hard_cross_entropy",
    "hard_one_hot",
    "kl_to_uniform",
    "lor_update",
    "mask_parts",
    "mumford_shah_prior",
    "part_discovery_loss",
    "part_iou",
    "part_spread",
    "reconstruction_loss",
    "transfer",
    "unpool",
]
