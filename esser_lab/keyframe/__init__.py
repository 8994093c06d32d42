"""Chapter 15: Towards Unified Keyframe Propagation Models (Esser, Michael & Sengupta 2022,
arXiv 2205.09731): a two-stream (global latents + local flow-warped features) inpainting
generator on a LaMa encoder/decoder.

The Lightning system lives in :mod:`esser_lab.keyframe.training` (``LitKeyframe``), imported from
there, so that importing the networks does not import Lightning.
"""

from esser_lab.keyframe.checkpoint import load_keyframe_generator
from esser_lab.keyframe.model import KeyframeConfig, KeyframeGenerator, count_parameters

__all__ = ["KeyframeConfig", "KeyframeGenerator", "count_parameters", "load_keyframe_generator"]
