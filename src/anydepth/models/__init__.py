"""Models: the DINOv2 encoder, the DPT head, ``DepthAnything`` and checkpoint conversion."""

from anydepth.models.checkpoint import CheckpointError, add_anydepth_metadata, load_checkpoint, save_checkpoint
from anydepth.models.depth_anything import DepthAnything, DepthAnythingConfig
from anydepth.models.dpt import DPTHead
from anydepth.models.encoder import DINOv2Encoder

__all__ = [
    "CheckpointError",
    "DINOv2Encoder",
    "DPTHead",
    "DepthAnything",
    "DepthAnythingConfig",
    "add_anydepth_metadata",
    "load_checkpoint",
    "save_checkpoint",
]
