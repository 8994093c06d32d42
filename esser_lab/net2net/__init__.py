"""Chapter 6: Net2Net, network-to-network translation with a conditional INN (Rombach, Esser &
Ommer, NeurIPS 2020, arXiv:2005.13580).

The networks (``model``), the experts (``experts``) and the method (``method``) never import
Lightning; ``LitNet2Net`` lives in ``esser_lab.net2net.training``. The flow blocks themselves are
the shared :mod:`esser_lab.nn.flows`.
"""

from esser_lab.net2net.experts import (
    AutoencoderExpert,
    BigGANExpert,
    SentenceEmbedder,
    WordEmbeddingEncoder,
)
from esser_lab.net2net.method import conditional_nll, regression_loss, sample, shift, translate
from esser_lab.net2net.model import (
    Net2Net,
    Net2NetConfig,
    RegressionBaseline,
    SourceExpert,
    TargetExpert,
)

__all__ = [
    "AutoencoderExpert",
    "BigGANExpert",
    "Net2Net",
    "Net2NetConfig",
    "RegressionBaseline",
    "SentenceEmbedder",
    "SourceExpert",
    "TargetExpert",
    "WordEmbeddingEncoder",
    "conditional_nll",
    "regression_loss",
    "sample",
    "shift",
    "translate",
]
