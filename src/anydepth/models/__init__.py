"""Models, pure torch: the DINOv2 encoder, the DPT head, ``DepthAnything``, presets and preprocessing.

Imports nothing else of anydepth (checkpoint reading and writing live in :mod:`anydepth.checkpoints`).
"""

from anydepth.models.depth_anything import DepthAnything, DepthAnythingConfig
from anydepth.models.dpt import DPTHead
from anydepth.models.encoder import DINOv2Encoder

__all__ = ["DINOv2Encoder", "DPTHead", "DepthAnything", "DepthAnythingConfig"]
