"""Read any supported checkpoint into a :class:`~anydepth.models.DepthAnything` (formats: :mod:`.formats`).

Every load is strict: all missing, unexpected and mis-shaped keys are reported in one error.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

from torch import nn

from anydepth.checkpoints.convert import hf_to_official, native_to_official, official_to_native
from anydepth.checkpoints.formats import (
    ANYDEPTH_FORMAT_VERSION,
    ANYDEPTH_KEY,
    DINOV2_HEAD_WIDTH,
    LIGHTNING_PREFIX,
    ZOEDEPTH_KEY,
    CheckpointError,
    StateDict,
    load_strict,
    read_torch_file,
    unreadable,
)
from anydepth.checkpoints.zoedepth import is_zoedepth, load_zoedepth
from anydepth.models.depth_anything import DepthAnything, DepthAnythingConfig, default_layer_indices
from anydepth.models.dpt import HEAD_HIDDEN_CHANNELS
from anydepth.models.encoder import ENCODERS
from anydepth.models.zoedepth import ZoeDepthConfig, ZoeDepthMetric


def _load_hf_weights(directory: Path) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    index = directory / "model.safetensors.index.json"
    try:
        if (directory / "model.safetensors").is_file():
            return load_file(directory / "model.safetensors")
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            return {k: v for shard in shards for k, v in load_file(directory / shard).items()}
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as err:
        raise unreadable(directory, err) from err
    if (directory / "pytorch_model.bin").is_file():
        return read_torch_file(directory / "pytorch_model.bin")
    found = sorted(p.name for p in directory.iterdir())
    raise CheckpointError(
        f"{directory} has a config.json but no weights: expected model.safetensors, "
        f"model.safetensors.index.json or pytorch_model.bin; found {found}"
    )


def version_from_name(path: Path) -> str | None:
    """``v2`` for names like ``depth_anything_v2_vits.pth``, ``v1`` for ``depth_anything_vits14.pth``."""
    name = path.name.lower()
    if re.search(r"(^|[^a-z0-9])v2([^a-z0-9]|$)", name.replace("-", "_")):
        return "v2"
    if re.match(r"depth[_-]anything[_-]vit[sblg]14", name):
        return "v1"
    return None


METRIC_MAX_DEPTHS: dict[str, float] = {"hypersim": 20.0, "vkitti": 80.0}
"""Official V2 metric checkpoints (``depth_anything_v2_metric_<dataset>_vit?.pth``): the training set in the name
and the ``max_depth`` the official ``metric_depth`` code builds them with (indoor 20 m, outdoor 80 m)."""


def metric_head_from_name(path: Path, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``head``/``max_depth`` for an official ``.pth``: the caller's when given, else ``metric`` with the official
    ``max_depth`` when the file name says ``metric_hypersim``/``metric_vkitti`` (the metric weights have the relative
    model's names: only the name tells them apart), else nothing (relative). A name saying ``metric`` without a
    known dataset needs ``max_depth``: CheckpointError instead of a guess."""
    if "head" in kwargs or "max_depth" in kwargs:
        return {"head": "metric"} if kwargs.get("max_depth") is not None and "head" not in kwargs else {}
    name = path.name.lower()
    if "metric" not in name:
        return {}
    for dataset, max_depth in METRIC_MAX_DEPTHS.items():
        if dataset in name:
            return {"head": "metric", "max_depth": max_depth}
    raise CheckpointError(
        f"{path} looks like a metric Depth Anything model (its name says metric) but not which one: pass "
        "max_depth= (CLI: --max-depth, metres: 20 for the indoor Hypersim models, 80 for the outdoor VKITTI ones), "
        "or head='relative' (CLI: --head relative) if it is relative"
    )


def _preset_name(embed_dim: int, depth: int, swiglu: bool) -> str:
    for name, spec in ENCODERS.items():
        if (spec.embed_dim, spec.depth, spec.swiglu) == (embed_dim, depth, swiglu):
            return name
    return "custom"


def _describe(encoder: str, embed_dim: int, depth: int) -> str:
    return f"a {encoder} encoder (width {embed_dim}, {depth} blocks)"


def _check_encoder(path: Path, requested: str | None, found: str, embed_dim: int, depth: int) -> None:
    if requested is not None and requested != found:
        raise CheckpointError(
            f"{path} holds {_describe(found, embed_dim, depth)}, but encoder={requested!r} was "
            f"requested; drop the encoder argument or pass encoder={found!r}"
        )


def _architecture_from_state_dict(
    sd: StateDict, path: Path, encoder: str | None, overrides: dict[str, Any]
) -> dict[str, Any]:
    """Model kwargs read off official-layout tensor shapes (``pretrained.*``, ``depth_head.*``),
    then updated with the caller's ``overrides``."""
    if "pretrained.cls_token" not in sd:
        raise CheckpointError(f"{path} has no encoder class token (pretrained.cls_token / cls_token)")
    embed_dim = sd["pretrained.cls_token"].shape[-1]
    blocks = {int(m[1]) for k in sd if (m := re.match(r"pretrained\.blocks\.(\d+)\.", k))}
    depth = max(blocks) + 1 if blocks else 0
    fc1, fc2 = sd.get("pretrained.blocks.0.mlp.fc1.weight"), sd.get("pretrained.blocks.0.mlp.fc2.weight")
    swiglu = fc1 is not None and fc2 is not None and fc1.shape[0] == 2 * fc2.shape[1]  # packed gate + value
    name = _preset_name(embed_dim, depth, swiglu)
    _check_encoder(path, encoder, name, embed_dim, depth)
    kwargs: dict[str, Any] = dict(encoder=name, embed_dim=embed_dim, depth=depth, swiglu=swiglu)
    if name == "custom" and "num_heads" not in overrides:
        kwargs["num_heads"] = max(1, embed_dim // DINOV2_HEAD_WIDTH)
        warnings.warn(
            f"{path}: width {embed_dim} is not an official encoder and the file does not store the "
            f"number of attention heads; assuming {kwargs['num_heads']} (width / 64), pass num_heads= if not",
            stacklevel=3,
        )
    if "depth_head.scratch.layer1_rn.weight" in sd:
        kwargs["features"] = sd["depth_head.scratch.layer1_rn.weight"].shape[0]
        kwargs["out_channels"] = tuple(sd[f"depth_head.projects.{i}.weight"].shape[0] for i in range(4))
        kwargs["use_bn"] = any(k.startswith("depth_head.") and ".bn1." in k for k in sd)
        kwargs["use_clstoken"] = any(k.startswith("depth_head.readout_projects.") for k in sd)
    return {**kwargs, **overrides}


def _build(source: Path, kwargs: dict[str, Any]) -> DepthAnything:
    """``DepthAnything(**kwargs)``; an architecture the constructor rejects (a head count that does not divide the
    width, block indices out of range, ...) is a :class:`CheckpointError` naming ``source``."""
    try:
        return DepthAnything(**kwargs)
    except (ValueError, TypeError, AssertionError) as err:
        raise CheckpointError(f"{source} describes a model that cannot be built ({err})") from err


def _require_version(path: Path, version: str | None) -> str:
    version = version or version_from_name(path)
    if version is None:
        raise CheckpointError(
            f"cannot tell whether {path} is Depth Anything V1 or V2 (the weights look alike and "
            "the file name does not say); pass version='v1' or version='v2' (CLI: --version)"
        )
    return version


def _load_official(sd: StateDict, path: Path, encoder: str | None, version: str | None, kwargs: dict) -> DepthAnything:
    version = _require_version(path, version)
    sd = official_to_native(sd)
    kwargs = {"version": version, **metric_head_from_name(path, kwargs), **kwargs}
    model = _build(path, _architecture_from_state_dict(sd, path, encoder, kwargs))
    load_strict(model, sd, path)
    return model


def _load_dinov2(sd: StateDict, path: Path, encoder: str | None, version: str | None, kwargs: dict) -> DepthAnything:
    if version is None:
        raise CheckpointError(
            f"{path} is a DINOv2 backbone; choose the Depth Anything variant whose encoder blocks "
            "feed the DPT head with version='v1' or version='v2' (CLI: --version)"
        )
    sd = official_to_native(sd)
    prefixed = {f"pretrained.{k}": v for k, v in sd.items()}
    model = _build(path, _architecture_from_state_dict(prefixed, path, encoder, {"version": version, **kwargs}))
    load_strict(model.pretrained, sd, path)
    return model


def load_dinov2_encoder(encoder: nn.Module, path: str | os.PathLike) -> None:
    """Load a Meta DINOv2 backbone file (``dinov2_vits14_pretrain.pth``: ``cls_token``, ``pos_embed``,
    ``blocks.*`` ...) into ``encoder`` (a ``DepthAnything.pretrained``), strictly: a missing file, another format
    or another size raises ``CheckpointError`` naming the file and what differs."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"DINOv2 weights {path} do not exist: download dinov2_vit?14_pretrain.pth once (no download happens at "
            "run time) and pass its local path"
        )
    sd = read_torch_file(path)
    if not (isinstance(sd, dict) and "cls_token" in sd and "pos_embed" in sd):
        keys = list(sd)[:5] if isinstance(sd, dict) else type(sd).__name__
        raise CheckpointError(
            f"{path} is not a DINOv2 backbone state dict (expected cls_token, pos_embed, blocks.*; found {keys}); "
            "pass Meta's dinov2_vit?14_pretrain.pth"
        )
    load_strict(encoder, official_to_native(sd), path)


def _hf_layer_indices(backbone: dict[str, Any], path: Path) -> tuple[int, ...]:
    if backbone.get("out_indices"):
        return tuple(int(i) - 1 for i in backbone["out_indices"])  # hidden_states[0] is the embedding
    if backbone.get("out_features"):
        return tuple(int(str(f).removeprefix("stage")) - 1 for f in backbone["out_features"])
    raise CheckpointError(f"{path}: backbone_config has neither out_indices nor out_features")


def _read_hf_config(config_path: Path) -> dict[str, Any]:
    """``config.json`` as a mapping whose ``backbone_config`` is a mapping; CheckpointError otherwise."""
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{config_path} is not valid JSON ({err})") from err
    if not isinstance(config, dict) or not isinstance(config.get("backbone_config") or {}, dict):
        raise CheckpointError(
            f"{config_path} is not a transformers DepthAnything config (expected a JSON object with a "
            "backbone_config object); re-export the model with transformers' save_pretrained"
        )
    return config


def _hf_architecture(config: dict[str, Any], config_path: Path, encoder: str | None) -> dict[str, Any]:
    """Constructor arguments read off a transformers config (version excluded); a missing key or a value of the
    wrong type is a CheckpointError naming the key."""
    backbone = config.get("backbone_config") or {}
    try:
        embed_dim, depth = int(backbone["hidden_size"]), int(backbone["num_hidden_layers"])
        arch = {
            "embed_dim": embed_dim,
            "depth": depth,
            "num_heads": int(backbone["num_attention_heads"]),
            "swiglu": bool(backbone.get("use_swiglu_ffn", False)),
            "features": int(config["fusion_hidden_size"]),
            "out_channels": tuple(int(c) for c in config["neck_hidden_sizes"]),
            "layer_indices": _hf_layer_indices(backbone, config_path),
        }
    except KeyError as err:
        raise CheckpointError(f"{config_path}: missing key {err.args[0]!r}; re-export with save_pretrained") from err
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{config_path}: a value has the wrong type ({err})") from err
    arch["encoder"] = _preset_name(embed_dim, depth, arch["swiglu"])
    _check_encoder(config_path.parent, encoder, arch["encoder"], embed_dim, depth)
    return arch


def _hf_max_depth(config: dict[str, Any], config_path: Path) -> float:
    try:
        return float(config["max_depth"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{config_path}: a metric model needs a numeric max_depth ({err!r})") from err


def _load_hf(directory: Path, encoder: str | None, version: str | None, kwargs: dict) -> DepthAnything:
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{directory} is a directory but not a transformers model directory: no config.json")
    config = _read_hf_config(config_path)
    if config.get("model_type") != "depth_anything":
        raise CheckpointError(
            f"{config_path}: model_type is {config.get('model_type')!r}, expected 'depth_anything' "
            "(a transformers DepthAnythingForDepthEstimation directory)"
        )
    kind = config.get("depth_estimation_type", "relative")
    if kind not in ("relative", "metric"):
        raise CheckpointError(f"{config_path}: depth_estimation_type {kind!r} is neither 'relative' nor 'metric'")
    backbone = config.get("backbone_config") or {}
    if backbone.get("model_type", "dinov2") != "dinov2":
        raise CheckpointError(f"{config_path}: backbone is {backbone.get('model_type')!r}, expected 'dinov2'")
    if config.get("head_hidden_size", HEAD_HIDDEN_CHANNELS) != HEAD_HIDDEN_CHANNELS:
        raise CheckpointError(f"{config_path}: head_hidden_size must be {HEAD_HIDDEN_CHANNELS}")
    arch = _hf_architecture(config, config_path, encoder)
    indices = arch["layer_indices"]
    by_indices = {v for v in ("v1", "v2") if default_layer_indices(arch["encoder"], v, arch["depth"]) == indices}
    if version is not None and by_indices and version not in by_indices:
        raise CheckpointError(
            f"{config_path}: out_indices {[i + 1 for i in indices]} are Depth Anything "
            f"{sorted(by_indices)[0].upper()}'s, but version={version!r} was requested"
        )
    arch["version"] = version or (sorted(by_indices)[0] if by_indices else "v2")
    if kind == "metric":  # transformers' metric head: sigmoid x max_depth, as the official V2 metric_depth
        arch.update(head="metric", max_depth=_hf_max_depth(config, config_path))
    model = _build(config_path, {**arch, **kwargs})
    official_keys = list(native_to_official(model.state_dict(), model.config.swiglu))
    sd = official_to_native(hf_to_official(_load_hf_weights(directory), official_keys))
    load_strict(model, sd, directory)
    return model


def _load_anydepth(
    ckpt: dict, path: Path, encoder: str | None, version: str | None, kwargs: dict
) -> DepthAnything | ZoeDepthMetric:
    meta = ckpt[ANYDEPTH_KEY]
    if not isinstance(meta, dict) or meta.get("format_version") != ANYDEPTH_FORMAT_VERSION or "model" not in meta:
        found = meta.get("format_version") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(
            f"{path}: unsupported anydepth checkpoint metadata (format_version {found!r}, expected "
            f"{ANYDEPTH_FORMAT_VERSION} with a model entry); it was not written by this anydepth"
        )
    try:
        config = DepthAnythingConfig.from_dict(meta["model"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: malformed model entry in its anydepth metadata ({err!r})") from err
    _check_encoder(path, encoder, config.encoder, config.embed_dim, config.depth)
    if version is not None and version != config.version:
        raise CheckpointError(
            f"{path} holds a Depth Anything {config.version} model, but version={version!r} was requested"
        )
    prefix = meta.get("prefix", LIGHTNING_PREFIX)
    if not isinstance(prefix, str) or not isinstance(ckpt["state_dict"], dict):
        raise CheckpointError(f"{path}: malformed anydepth checkpoint (prefix {prefix!r}, state_dict not a mapping)")
    sd = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if isinstance(k, str) and k.startswith(prefix)}
    if not sd:
        raise CheckpointError(f"{path}: no weights under the prefix {prefix!r} in its state_dict")
    if ZOEDEPTH_KEY in meta:  # a trained ZoeDepthMetric: its core's config is "model", its head's this entry
        model = _zoedepth_from_metadata(meta[ZOEDEPTH_KEY], path, config, kwargs)
    else:
        model = _build(path, {**config.to_dict(), **kwargs})
    load_strict(model, sd, path)
    return model


def _zoedepth_from_metadata(head: Any, path: Path, core: DepthAnythingConfig, kwargs: dict[str, Any]) -> ZoeDepthMetric:
    """The untrained ``ZoeDepthMetric`` an anydepth checkpoint describes; ``kwargs`` of its head (``max_depth``, ...)
    override the stored ones, the others go to the core."""
    try:
        settings = ZoeDepthConfig.from_dict(head).to_dict()
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: malformed {ZOEDEPTH_KEY} entry in its anydepth metadata ({err!r})") from err
    overrides = {k: v for k, v in kwargs.items() if k in settings}
    core_kwargs = {k: v for k, v in kwargs.items() if k not in settings and k != "head"}  # as load_zoedepth
    relative = _build(path, {**core.to_dict(), **core_kwargs})
    return ZoeDepthMetric(relative, **{**settings, **overrides})


def load_checkpoint(
    path: str | os.PathLike, encoder: str | None = None, version: str | None = None, **model_kwargs: Any
) -> DepthAnything | ZoeDepthMetric:
    """Build a ``DepthAnything`` from any supported checkpoint (see the module docstring), or a
    :class:`~anydepth.models.zoedepth.ZoeDepthMetric` from the paper's official metric ``.pt`` files.

    The encoder size is read off the tensor shapes (``encoder`` only checks it); ``version``
    overrides the file name; ``model_kwargs`` go to the constructor (e.g. ``num_heads`` for a
    non-preset width, ``pos_embed_interpolation``, ``grad_checkpointing``).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_dir():
        return _load_hf(path, encoder, version, model_kwargs)
    if path.suffix == ".safetensors":
        raise CheckpointError(f"{path} is a bare safetensors file; pass the directory holding it and its config.json")
    ckpt = read_torch_file(path)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} holds a {type(ckpt).__name__}, not a state dict or checkpoint dict")
    if ANYDEPTH_KEY in ckpt and "state_dict" in ckpt:
        return _load_anydepth(ckpt, path, encoder, version, model_kwargs)
    if "state_dict" in ckpt:
        from anydepth.models.segmentation import SEGMENTATION_KEY  # on this error path only: it imports transformers

        if SEGMENTATION_KEY in ckpt:
            raise CheckpointError(
                f"{path} is a semantic segmentation checkpoint, not a depth model; load it with "
                "SegmentationModel.from_checkpoint (anydepth eval / infer --task seg)"
            )
        raise CheckpointError(
            f"{path} is a Lightning checkpoint without anydepth metadata (no {ANYDEPTH_KEY!r} entry); "
            "it was not written by an anydepth LightningModule"
        )
    if is_zoedepth(ckpt):
        return load_zoedepth(ckpt, path, _architecture_from_state_dict, encoder, model_kwargs)
    keys = [k for k in ckpt if isinstance(k, str)]
    if any(k.startswith("pretrained.") for k in keys) and any(k.startswith("depth_head.") for k in keys):
        return _load_official(ckpt, path, encoder, version, model_kwargs)
    if "cls_token" in ckpt and "pos_embed" in ckpt:
        return _load_dinov2(ckpt, path, encoder, version, model_kwargs)
    if any(k.startswith("backbone.embeddings.") for k in keys):
        raise CheckpointError(f"{path} holds transformers weights; pass the directory holding them and config.json")
    raise CheckpointError(
        f"{path}: unknown checkpoint format (first keys: {keys[:5]}); expected an official Depth "
        "Anything .pth, a transformers directory, a DINOv2 backbone .pth or an anydepth checkpoint"
    )
