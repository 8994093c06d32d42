"""Gen-1 (Esser, Chiu, Atighehchian, Granskog & Germanidis, ICCV 2023; arXiv 2302.03011):
structure- and content-guided video diffusion, chapter 16."""

from esser_lab.gen1.model import (
    Gen1Config,
    Gen1UNet,
    TemporalAttention,
    TemporalConv,
    count_parameters,
)

__all__ = ["Gen1Config", "Gen1UNet", "TemporalAttention", "TemporalConv", "count_parameters"]
