"""Chapter 19: Self-Flow (Chefer, Esser et al. 2026, arXiv 2603.06507): self-supervised flow
matching with per-token timesteps, dual-timestep scheduling and an EMA self-distillation teacher.

The objective lives in :mod:`esser_lab.selfflow.method`, the Lightning system ``LitSelfFlow`` in
:mod:`esser_lab.selfflow.training`, the loader of the released weights in
:mod:`esser_lab.selfflow.checkpoint`; importing the network does not import Lightning.
"""

from esser_lab.selfflow.model import SelfFlowConfig, SelfFlowDiT, count_parameters

__all__ = ["SelfFlowConfig", "SelfFlowDiT", "count_parameters"]
