"""anydepth: train Depth Anything style monocular depth models end to end with PyTorch Lightning."""

from anydepth.checkpoints import CheckpointError
from anydepth.models import DepthAnything, DepthAnythingConfig

__all__ = ["CheckpointError", "DepthAnything", "DepthAnythingConfig"]
__version__ = "0.1.0"
