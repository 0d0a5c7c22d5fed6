"""Write a :class:`~anydepth.models.DepthAnything` as an official ``.pth``, a transformers directory or an anydepth
file, and the ``checkpoint["anydepth"]`` entry LightningModules add to their checkpoints."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from anydepth.checkpoints.convert import (
    check_official,
    hf_config,
    hf_preprocessor_config,
    native_to_official,
    official_to_hf,
)
from anydepth.checkpoints.formats import (
    ANYDEPTH_FORMAT_VERSION,
    ANYDEPTH_KEY,
    FORMATS,
    LIGHTNING_PREFIX,
    ZOEDEPTH_KEY,
    CheckpointError,
)
from anydepth.checkpoints.load import METRIC_MAX_DEPTHS, metric_head_from_name, version_from_name
from anydepth.models.depth_anything import DepthAnything, DepthAnythingConfig
from anydepth.models.zoedepth import ZoeDepthMetric


def anydepth_metadata(model: DepthAnything | ZoeDepthMetric, prefix: str = LIGHTNING_PREFIX) -> dict[str, Any]:
    """The ``checkpoint["anydepth"]`` entry describing ``model`` stored under ``prefix``; a ``ZoeDepthMetric`` as its
    relative core's ``model`` entry and its bins head's settings under ``zoedepth``."""
    if isinstance(model, ZoeDepthMetric):
        meta = anydepth_metadata(model.relative, prefix)
        return {**meta, ZOEDEPTH_KEY: model.config.to_dict()}
    return {"format_version": ANYDEPTH_FORMAT_VERSION, "model": model.config.to_dict(), "prefix": prefix}


def add_anydepth_metadata(
    checkpoint: dict[str, Any], model: DepthAnything | ZoeDepthMetric, prefix: str = LIGHTNING_PREFIX
) -> None:
    """Call from ``LightningModule.on_save_checkpoint`` so ``load_checkpoint`` can read the file."""
    checkpoint[ANYDEPTH_KEY] = anydepth_metadata(model, prefix)


def _check_official_file(config: DepthAnythingConfig, path: Path) -> None:
    """:func:`check_official`, and the file name must not name the other version (readers take V1 or V2 from it)."""
    check_official(config)
    named = version_from_name(path)
    if named is not None and named != config.version:
        v1, v2 = f"depth_anything_{config.encoder}14.pth", f"depth_anything_v2_{config.encoder}.pth"
        raise CheckpointError(
            f"the file name {path.name} says Depth Anything {named.upper()}, but the model is {config.version.upper()} "
            f"(readers of official .pth files take the version from the name): name it like "
            f"{v1 if config.version == 'v1' else v2}"
        )
    _check_official_metric_name(config, path)


def _check_official_metric_name(config: DepthAnythingConfig, path: Path) -> None:
    """An official metric ``.pth`` holds the relative model's names: readers tell it by its name
    (``depth_anything_v2_metric_hypersim_vits.pth`` = 20 m, ``..._vkitti_...`` = 80 m), so the name must say the
    head and ``max_depth`` the model has."""
    try:
        named = metric_head_from_name(path, {})
    except CheckpointError:
        named = {"head": "metric", "max_depth": None}
    wanted = {"head": "metric", "max_depth": config.max_depth} if config.head == "metric" else {}
    if named == wanted:
        return
    if config.head == "metric":
        dataset = next((d for d, m in METRIC_MAX_DEPTHS.items() if m == config.max_depth), None)
        hint = (
            f"name it like depth_anything_v2_metric_{dataset}_{config.encoder}.pth"
            if dataset
            else f"the official names know max_depth {sorted(METRIC_MAX_DEPTHS.values())} only; keep the anydepth "
            "format (--format anydepth)"
        )
    else:
        hint = "a relative model's name must not say metric"
    raise CheckpointError(f"the file name {path.name} would load as {named or 'a relative model'}: {hint}")


def save_checkpoint(model: DepthAnything, path: str | os.PathLike, format: str = "official") -> None:
    """Write ``model`` as an official ``.pth``, a transformers directory (``hf``) or an anydepth file.

    Raises :class:`CheckpointError`, writing nothing, when the format cannot represent the model (official: anything
    but a released architecture, see :func:`~anydepth.checkpoints.convert.official_differences`, or a file name naming
    the other version; hf: see :func:`~anydepth.checkpoints.convert.hf_config`); the anydepth format stores them all.
    """
    path = Path(path)
    if format == "official":
        _check_official_file(model.config, path)
    config = hf_config(model.config) if format == "hf" else None  # refuses what transformers cannot build
    native = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if format == "official":
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(native_to_official(native, model.config.swiglu), path)
    elif format == "hf":
        from safetensors.torch import save_file

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
