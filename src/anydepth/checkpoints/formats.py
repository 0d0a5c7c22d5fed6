"""The checkpoint formats anydepth reads and writes, their constants and their one error type.

Formats (detected by :func:`anydepth.checkpoints.load.load_checkpoint`):
- **official** Depth Anything ``.pth`` (V1 ``depth_anything_vits14.pth``, V2
  ``depth_anything_v2_vits.pth``): a flat state dict with ``pretrained.*`` and ``depth_head.*``.
  V1 and V2 weights look alike; the version comes from the ``version`` argument or the file name.
- **hf**: a transformers ``DepthAnythingForDepthEstimation`` directory (``config.json`` +
  ``model.safetensors`` [sharded or not] or ``pytorch_model.bin``); the version follows from the
  backbone's ``out_indices``.
- **dinov2**: a Meta DINOv2 backbone (``dinov2_vits14_pretrain.pth``): encoder weights only,
  the DPT head keeps its random initialisation; ``version`` must be given.
- **anydepth**: a Lightning checkpoint (or a file written by ``save_checkpoint(format="anydepth")``)
  whose ``checkpoint["anydepth"]`` holds ``{"format_version", "model": <DepthAnythingConfig dict>,
  "prefix"}`` and whose ``checkpoint["state_dict"]`` holds the model under ``prefix``.
  LightningModules add this entry with ``add_anydepth_metadata`` in ``on_save_checkpoint``.

Every load is strict: all missing, unexpected and mis-shaped keys are reported in one error.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

StateDict = dict[str, torch.Tensor]
FORMATS = ("official", "hf", "anydepth")
ANYDEPTH_KEY = "anydepth"
ANYDEPTH_FORMAT_VERSION = 1
LIGHTNING_PREFIX = "model."
ZOEDEPTH_KEY = "zoedepth"  # the anydepth entry's ZoeDepthMetric bins head settings, beside its core's "model"
DINOV2_HEAD_WIDTH = 64  # DINOv2 attention head width; num_heads of a non-preset width defaults to width / 64


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit the requested model; the message says why."""


def read_torch_file(path: Path) -> Any:
    """``torch.load`` with ``weights_only`` (no pickled code ever runs); every failure is a :class:`CheckpointError`."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "unsupported global" in str(err).lower():  # torch words it "Unsupported global" or "unsupported GLOBAL"
            raise CheckpointError(
                f"{path} holds pickled Python objects that anydepth will not execute; save the "
                "model's state_dict (or use save_checkpoint) and load that instead"
            ) from err
        raise unreadable(path, "invalid pickle data") from err
    except Exception as err:  # torch.load fails on garbage with many types (RuntimeError, KeyError, EOFError ...)
        raise unreadable(path, err) from err


def unreadable(path: Path, err: Exception | str) -> CheckpointError:
    """The error for a file that is not a readable checkpoint, with the first line of the reason."""
    text = str(err).strip()
    reason = text.splitlines()[0] if text else type(err).__name__
    return CheckpointError(
        f"cannot read checkpoint {path} ({reason}): the file is truncated, corrupt or not a "
        "PyTorch checkpoint; copy or download it again"
    )


def load_strict(module: nn.Module, state_dict: StateDict, source: str | Path) -> None:
    """``module.load_state_dict(strict=True)`` that reports every missing/unexpected/mis-shaped key."""
    expected = module.state_dict()
    missing = sorted(expected.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - expected.keys())
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(expected.keys() & state_dict.keys())
        if state_dict[k].shape != expected[k].shape
    ]
    problems = [
        f"{title} ({len(items)}):\n    " + "\n    ".join(items)
        for title, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        )
        if items
    ]
    if problems:
        raise CheckpointError(f"{source} does not fit the {type(module).__name__}:\n  " + "\n  ".join(problems))
    module.load_state_dict(state_dict, strict=True)
