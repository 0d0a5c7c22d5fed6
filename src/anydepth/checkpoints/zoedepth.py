"""Read the paper's metric models, the official ``depth_anything_metric_depth_{indoor,outdoor}.pt`` (ZoeDepth
metric bins on the Depth Anything V1 encoder, :class:`~anydepth.models.zoedepth.ZoeDepthMetric`)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from anydepth.checkpoints.convert import official_to_native
from anydepth.checkpoints.formats import CheckpointError, StateDict, load_strict
from anydepth.models.depth_anything import DepthAnything
from anydepth.models.zoedepth import PRESETS, ZoeDepthConfig, ZoeDepthMetric, zoedepth_state_dict_from_official

CORE_PREFIX = "core.core."
"""Where the official ZoeDepth checkpoint keeps the relative Depth Anything model (encoder + DPT)."""


def is_zoedepth(ckpt: dict[str, Any]) -> bool:
    """Whether ``ckpt`` (a file's contents) is an official ZoeDepth metric checkpoint."""
    weights = zoedepth_state_dict_from_official(ckpt)
    return any(isinstance(k, str) and k.startswith(CORE_PREFIX + "pretrained.") for k in weights)


def preset_from_name(path: Path, overrides: dict[str, Any]) -> str:
    """``indoor``/``outdoor`` from the released file names; CheckpointError when neither the name nor ``max_depth``
    says which (their weights have the same names and shapes)."""
    name = path.name.lower()
    for preset in PRESETS:
        if preset in name:
            return preset
    if "max_depth" in overrides:
        return "indoor"  # max_depth, the only difference of the presets, is given
    raise CheckpointError(
        f"{path} is a ZoeDepth metric model, but its name says neither indoor (max 10 m) nor outdoor (80 m): pass "
        "max_depth= (CLI: --max-depth)"
    )


def load_zoedepth(
    ckpt: dict[str, Any], path: Path, architecture: Any, encoder: str | None, kwargs: dict[str, Any]
) -> ZoeDepthMetric:
    """The ZoeDepth model of an official checkpoint, loaded strictly; ``architecture(sd, path, encoder, overrides)``
    reads the relative model's sizes off its tensors (the loader's own shape reader)."""
    weights: StateDict = zoedepth_state_dict_from_official(ckpt)
    relative_sd = official_to_native(
        {k.removeprefix(CORE_PREFIX): v for k, v in weights.items() if k.startswith(CORE_PREFIX)}
    )
    head_fields = {f.name for f in fields(ZoeDepthConfig)}
    overrides = {k: v for k, v in kwargs.items() if k in head_fields}  # the head's: max_depth, n_bins, ...
    relative_kwargs = {k: v for k, v in kwargs.items() if k not in overrides and k != "head"}
    relative = DepthAnything(**architecture(relative_sd, path, encoder, {"version": "v1", **relative_kwargs}))
    model = ZoeDepthMetric.from_preset(preset_from_name(path, overrides), relative, **overrides)
    head_sd = {k: v for k, v in weights.items() if not k.startswith(CORE_PREFIX)}
    load_strict(model, {**{CORE_PREFIX + k: v for k, v in relative_sd.items()}, **head_sd}, path)
    return model
