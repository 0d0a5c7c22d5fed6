"""anydepth: train Depth Anything style monocular depth models end to end with PyTorch Lightning."""

from anydepth.models import CheckpointError, DepthAnything, DepthAnythingConfig

__all__ = ["CheckpointError", "DepthAnything", "DepthAnythingConfig"]
__version__ = "0.1.0"
