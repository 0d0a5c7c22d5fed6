"""Checkpoints: format detection, key conversion (official <-> native <-> transformers), load and save.

Depends on :mod:`anydepth.models`, never the reverse (``DepthAnything.from_checkpoint`` / ``save_checkpoint`` reach
this package at call time only).
"""

from anydepth.checkpoints.formats import FORMATS, CheckpointError, load_strict
from anydepth.checkpoints.load import load_checkpoint, load_dinov2_encoder, version_from_name
from anydepth.checkpoints.save import add_anydepth_metadata, anydepth_metadata, save_checkpoint

__all__ = [
    "FORMATS",
    "CheckpointError",
    "add_anydepth_metadata",
    "anydepth_metadata",
    "load_checkpoint",
    "load_dinov2_encoder",
    "load_strict",
    "save_checkpoint",
    "version_from_name",
]
