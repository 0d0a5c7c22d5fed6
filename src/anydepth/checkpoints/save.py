"""Write a :class:`~anydepth.models.DepthAnything` as an official ``.pth``, a transformers directory or an anydepth
file, and the ``checkpoint["anydepth"]`` entry LightningModules add to their checkpoints."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from anydepth.checkpoints.convert import hf_config, hf_preprocessor_config, native_to_official, official_to_hf
from anydepth.checkpoints.formats import ANYDEPTH_FORMAT_VERSION, ANYDEPTH_KEY, FORMATS, LIGHTNING_PREFIX
from anydepth.models.depth_anything import DepthAnything


def anydepth_metadata(model: DepthAnything, prefix: str = LIGHTNING_PREFIX) -> dict[str, Any]:
    """The ``checkpoint["anydepth"]`` entry describing ``model`` stored under ``prefix``."""
    return {"format_version": ANYDEPTH_FORMAT_VERSION, "model": model.config.to_dict(), "prefix": prefix}


def add_anydepth_metadata(checkpoint: dict[str, Any], model: DepthAnything, prefix: str = LIGHTNING_PREFIX) -> None:
    """Call from ``LightningModule.on_save_checkpoint`` so ``load_checkpoint`` can read the file."""
    checkpoint[ANYDEPTH_KEY] = anydepth_metadata(model, prefix)


def save_checkpoint(model: DepthAnything, path: str | os.PathLike, format: str = "official") -> None:
    """Write ``model`` as an official ``.pth``, a transformers directory (``hf``) or an anydepth file."""
    path = Path(path)
    native = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if format == "official":
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(native_to_official(native, model.config.swiglu), path)
    elif format == "hf":
        from safetensors.torch import save_file

        config = hf_config(model.config)
        path.mkdir(parents=True, exist_ok=True)
        weights = official_to_hf(native_to_official(native, model.config.swiglu))
        save_file(
            {k: v.contiguous() for k, v in weights.items()},
            path / "model.safetensors",
            metadata={"format": "pt"},
        )
        (path / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (path / "preprocessor_config.json").write_text(json.dumps(hf_preprocessor_config(), indent=2) + "\n")
    elif format == "anydepth":
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {LIGHTNING_PREFIX + k: v for k, v in native.items()}
        torch.save({"state_dict": state, ANYDEPTH_KEY: anydepth_metadata(model)}, path)
    else:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
