"""Chapter 9: data biases in generative models (Esser, Rombach & Ommer, 2020, arXiv:2012.02516).

The networks (``model``), the method (``method``) and the biased sprite data sets (``data``) never
import Lightning; ``LitDataBias`` lives in ``esser_lab.data_bias.training``.
"""

from esser_lab.data_bias.data import (
    DOMAINS,
    BiasedSprites,
    DomainSpec,
    foreground_readout,
    sample_domains,
)
from esser_lab.data_bias.method import data_bias_loss, sample, translate
from esser_lab.data_bias.model import DataBiasConfig, DataBiasModel, one_hot

__all__ = [
    "DOMAINS",
    "BiasedSprites",
    "DataBiasConfig",
    "DataBiasModel",
    "DomainSpec",
    "data_bias_loss",
    "foreground_readout",
    "one_hot",
    "sample",
    "sample_domains",
    "translate",
]
