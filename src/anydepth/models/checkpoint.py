"""Checkpoint formats: read official / transformers / DINOv2 / anydepth files, write official / hf / anydepth.

Formats ``load_checkpoint`` recognises:

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

import json
import os
import pickle
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anydepth.models.depth_anything import (
    DepthAnything,
    DepthAnythingConfig,
    default_layer_indices,
)
from anydepth.models.dpt import HEAD_HIDDEN_CHANNELS
from anydepth.models.encoder import ENCODERS, PATCH_SIZE, PRETRAIN_IMAGE_SIZE
from anydepth.models.preprocess import IMAGENET_MEAN, IMAGENET_STD

StateDict = dict[str, torch.Tensor]
FORMATS = ("official", "hf", "anydepth")
ANYDEPTH_KEY = "anydepth"
ANYDEPTH_FORMAT_VERSION = 1
LIGHTNING_PREFIX = "model."
DINOV2_HEAD_WIDTH = 64  # DINOv2 attention head width; num_heads of a non-preset width defaults to width / 64


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit the requested model; the message says why."""


# ---------------------------------------------------------------- key translation


def official_to_native(state_dict: StateDict) -> StateDict:
    """Official names -> this package's (only vitg differs: SwiGLU ``w12``/``w3`` -> ``fc1``/``fc2``)."""
    return {
        re.sub(r"\.mlp\.w12\.", ".mlp.fc1.", re.sub(r"\.mlp\.w3\.", ".mlp.fc2.", k)): v
        for k, v in state_dict.items()
    }


def native_to_official(state_dict: StateDict, swiglu: bool) -> StateDict:
    """Inverse of ``official_to_native`` for a model with (``swiglu=True``) or without SwiGLU FFNs."""
    if not swiglu:
        return dict(state_dict)
    return {
        re.sub(r"\.mlp\.fc1\.", ".mlp.w12.", re.sub(r"\.mlp\.fc2\.", ".mlp.w3.", k)): v
        for k, v in state_dict.items()
    }


def _refine(template: str) -> Callable[[re.Match], str]:
    """Official ``refinenet{r}`` (r = 4 coarsest .. 1 finest) is transformers' fusion layer ``4 - r``."""
    return lambda m: template.format(4 - int(m[1]), *m.groups()[1:])


# Official name prefix (regex) -> transformers on-disk name prefix; the first match wins.
_HF_RULES: list[tuple[str, str | Callable[[re.Match], str]]] = [
    (r"pretrained\.cls_token", "backbone.embeddings.cls_token"),
    (r"pretrained\.mask_token", "backbone.embeddings.mask_token"),
    (r"pretrained\.pos_embed", "backbone.embeddings.position_embeddings"),
    (r"pretrained\.patch_embed\.proj\.", "backbone.embeddings.patch_embeddings.projection."),
    (r"pretrained\.blocks\.(\d+)\.attn\.proj\.", r"backbone.encoder.layer.\1.attention.output.dense."),
    (r"pretrained\.blocks\.(\d+)\.ls(\d)\.gamma", r"backbone.encoder.layer.\1.layer_scale\2.lambda1"),
    (r"pretrained\.blocks\.(\d+)\.mlp\.w12\.", r"backbone.encoder.layer.\1.mlp.weights_in."),
    (r"pretrained\.blocks\.(\d+)\.mlp\.w3\.", r"backbone.encoder.layer.\1.mlp.weights_out."),
    (r"pretrained\.blocks\.(\d+)\.", r"backbone.encoder.layer.\1."),  # norm1, norm2, mlp.fc1, mlp.fc2
    (r"pretrained\.norm\.", "backbone.layernorm."),
    (r"depth_head\.projects\.(\d)\.", r"neck.reassemble_stage.layers.\1.projection."),
    (r"depth_head\.resize_layers\.(\d)\.", r"neck.reassemble_stage.layers.\1.resize."),
    (r"depth_head\.scratch\.layer(\d)_rn\.", lambda m: f"neck.convs.{int(m[1]) - 1}."),
    (r"depth_head\.scratch\.refinenet(\d)\.out_conv\.", _refine("neck.fusion_stage.layers.{}.projection.")),
    (
        r"depth_head\.scratch\.refinenet(\d)\.resConfUnit(\d)\.conv(\d)\.",
        _refine("neck.fusion_stage.layers.{}.residual_layer{}.convolution{}."),
    ),
    (r"depth_head\.scratch\.output_conv1\.", "head.conv1."),
    (r"depth_head\.scratch\.output_conv2\.0\.", "head.conv2."),
    (r"depth_head\.scratch\.output_conv2\.2\.", "head.conv3."),
]
_QKV = re.compile(r"pretrained\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)$")
_HF_QKV = ("query", "key", "value")


def hf_name(official: str) -> str:
    """The transformers on-disk name of an official (non-qkv) parameter name."""
    for pattern, replacement in _HF_RULES:
        match = re.match(pattern, official)
        if match:
            head = replacement(match) if callable(replacement) else match.expand(replacement)
            return head + official[match.end() :]
    raise CheckpointError(
        f"parameter {official!r} has no transformers equivalent (transformers' DepthAnything "
        "supports neither use_bn nor use_clstoken)"
    )


def official_to_hf(state_dict: StateDict) -> StateDict:
    """Official names -> transformers on-disk names; fused qkv is split into query/key/value."""
    out: StateDict = {}
    for key, value in state_dict.items():
        qkv = _QKV.match(key)
        if qkv:
            for name, part in zip(_HF_QKV, value.chunk(3, dim=0)):
                out[f"backbone.encoder.layer.{qkv[1]}.attention.attention.{name}.{qkv[2]}"] = (
                    part.contiguous()
                )
        else:
            out[hf_name(key)] = value
    return out


def hf_to_official(state_dict: StateDict, official_keys: list[str]) -> StateDict:
    """Transformers names -> official names for the parameters in ``official_keys``.

    HF keys with no official counterpart are kept under their own name, so a strict load
    reports them as unexpected.
    """
    out = dict(state_dict)
    for key in official_keys:
        qkv = _QKV.match(key)
        if qkv:
            names = [f"backbone.encoder.layer.{qkv[1]}.attention.attention.{n}.{qkv[2]}" for n in _HF_QKV]
            if all(n in out for n in names):
                out[key] = torch.cat([out.pop(n) for n in names], dim=0)
        elif hf_name(key) in out:
            out[key] = out.pop(hf_name(key))
    return out


# ---------------------------------------------------------------- reading


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" in str(err):
            raise CheckpointError(
                f"{path} holds pickled Python objects that anydepth will not execute; save the "
                "model's state_dict (or use save_checkpoint) and load that instead"
            ) from err
        raise _unreadable(path, "invalid pickle data") from err
    except (
        Exception
    ) as err:  # torch.load fails on garbage with many types (RuntimeError, KeyError, EOFError ...)
        raise _unreadable(path, err) from err


def _unreadable(path: Path, err: Exception | str) -> CheckpointError:
    text = str(err).strip()
    reason = text.splitlines()[0] if text else type(err).__name__
    return CheckpointError(
        f"cannot read checkpoint {path} ({reason}): the file is truncated, corrupt or not a "
        "PyTorch checkpoint; copy or download it again"
    )


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
        raise _unreadable(directory, err) from err
    if (directory / "pytorch_model.bin").is_file():
        return _torch_load(directory / "pytorch_model.bin")
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


def _require_version(path: Path, version: str | None) -> str:
    version = version or version_from_name(path)
    if version is None:
        raise CheckpointError(
            f"cannot tell whether {path} is Depth Anything V1 or V2 (the weights look alike and "
            "the file name does not say); pass version='v1' or version='v2' (CLI: --version)"
        )
    return version


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
        raise CheckpointError(
            f"{source} does not fit the {type(module).__name__}:\n  " + "\n  ".join(problems)
        )
    module.load_state_dict(state_dict, strict=True)


def _load_official(
    sd: StateDict, path: Path, encoder: str | None, version: str | None, kwargs: dict
) -> DepthAnything:
    version = _require_version(path, version)
    sd = official_to_native(sd)
    model = DepthAnything(**_architecture_from_state_dict(sd, path, encoder, {"version": version, **kwargs}))
    load_strict(model, sd, path)
    return model


def _load_dinov2(
    sd: StateDict, path: Path, encoder: str | None, version: str | None, kwargs: dict
) -> DepthAnything:
    if version is None:
        raise CheckpointError(
            f"{path} is a DINOv2 backbone; choose the Depth Anything variant whose encoder blocks "
            "feed the DPT head with version='v1' or version='v2' (CLI: --version)"
        )
    sd = official_to_native(sd)
    prefixed = {f"pretrained.{k}": v for k, v in sd.items()}
    model = DepthAnything(
        **_architecture_from_state_dict(prefixed, path, encoder, {"version": version, **kwargs})
    )
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
    sd = _torch_load(path)
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


def _load_hf(directory: Path, encoder: str | None, version: str | None, kwargs: dict) -> DepthAnything:
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise CheckpointError(
            f"{directory} is a directory but not a transformers model directory: no config.json"
        )
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{config_path} is not valid JSON ({err})") from err
    if config.get("model_type") != "depth_anything":
        raise CheckpointError(
            f"{config_path}: model_type is {config.get('model_type')!r}, expected 'depth_anything' "
            "(a transformers DepthAnythingForDepthEstimation directory)"
        )
    if config.get("depth_estimation_type", "relative") != "relative":
        raise CheckpointError(f"{config_path}: metric Depth Anything models are not supported, only relative")
    backbone = config.get("backbone_config") or {}
    if backbone.get("model_type", "dinov2") != "dinov2":
        raise CheckpointError(f"{config_path}: backbone is {backbone.get('model_type')!r}, expected 'dinov2'")
    if config.get("head_hidden_size", HEAD_HIDDEN_CHANNELS) != HEAD_HIDDEN_CHANNELS:
        raise CheckpointError(f"{config_path}: head_hidden_size must be {HEAD_HIDDEN_CHANNELS}")
    embed_dim, depth = backbone["hidden_size"], backbone["num_hidden_layers"]
    swiglu = bool(backbone.get("use_swiglu_ffn", False))
    name = _preset_name(embed_dim, depth, swiglu)
    _check_encoder(directory, encoder, name, embed_dim, depth)
    indices = _hf_layer_indices(backbone, config_path)
    by_indices = {v for v in ("v1", "v2") if default_layer_indices(name, v, depth) == indices}
    if version is not None and by_indices and version not in by_indices:
        raise CheckpointError(
            f"{config_path}: out_indices {[i + 1 for i in indices]} are Depth Anything "
            f"{sorted(by_indices)[0].upper()}'s, but version={version!r} was requested"
        )
    model = DepthAnything(
        **{
            "encoder": name,
            "version": version or (sorted(by_indices)[0] if by_indices else "v2"),
            "embed_dim": embed_dim,
            "depth": depth,
            "num_heads": backbone["num_attention_heads"],
            "swiglu": swiglu,
            "features": config["fusion_hidden_size"],
            "out_channels": tuple(config["neck_hidden_sizes"]),
            "layer_indices": indices,
            **kwargs,
        }
    )
    official_keys = list(native_to_official(model.state_dict(), model.config.swiglu))
    sd = official_to_native(hf_to_official(_load_hf_weights(directory), official_keys))
    load_strict(model, sd, directory)
    return model


def _load_anydepth(
    ckpt: dict, path: Path, encoder: str | None, version: str | None, kwargs: dict
) -> DepthAnything:
    meta = ckpt[ANYDEPTH_KEY]
    if meta.get("format_version") != ANYDEPTH_FORMAT_VERSION or "model" not in meta:
        raise CheckpointError(
            f"{path}: unsupported anydepth checkpoint metadata {meta.get('format_version')!r}"
        )
    config = DepthAnythingConfig.from_dict(meta["model"])
    _check_encoder(path, encoder, config.encoder, config.embed_dim, config.depth)
    if version is not None and version != config.version:
        raise CheckpointError(
            f"{path} holds a Depth Anything {config.version} model, but version={version!r} was requested"
        )
    prefix = meta.get("prefix", LIGHTNING_PREFIX)
    sd = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    if not sd:
        raise CheckpointError(f"{path}: no weights under the prefix {prefix!r} in its state_dict")
    model = DepthAnything.from_config(config, **kwargs)
    load_strict(model, sd, path)
    return model


def load_checkpoint(
    path: str | os.PathLike, encoder: str | None = None, version: str | None = None, **model_kwargs: Any
) -> DepthAnything:
    """Build a ``DepthAnything`` from any supported checkpoint (see the module docstring).

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
        raise CheckpointError(
            f"{path} is a bare safetensors file; pass the directory holding it and its config.json"
        )
    ckpt = _torch_load(path)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} holds a {type(ckpt).__name__}, not a state dict or checkpoint dict")
    if ANYDEPTH_KEY in ckpt and "state_dict" in ckpt:
        return _load_anydepth(ckpt, path, encoder, version, model_kwargs)
    if "state_dict" in ckpt:
        raise CheckpointError(
            f"{path} is a Lightning checkpoint without anydepth metadata (no {ANYDEPTH_KEY!r} entry); "
            "it was not written by an anydepth LightningModule"
        )
    keys = [k for k in ckpt if isinstance(k, str)]
    if any(k.startswith("pretrained.") for k in keys) and any(k.startswith("depth_head.") for k in keys):
        return _load_official(ckpt, path, encoder, version, model_kwargs)
    if "cls_token" in ckpt and "pos_embed" in ckpt:
        return _load_dinov2(ckpt, path, encoder, version, model_kwargs)
    if any(k.startswith("backbone.embeddings.") for k in keys):
        raise CheckpointError(
            f"{path} holds transformers weights; pass the directory holding them and config.json"
        )
    raise CheckpointError(
        f"{path}: unknown checkpoint format (first keys: {keys[:5]}); expected an official Depth "
        "Anything .pth, a transformers directory, a DINOv2 backbone .pth or an anydepth checkpoint"
    )


# ---------------------------------------------------------------- writing


def anydepth_metadata(model: DepthAnything, prefix: str = LIGHTNING_PREFIX) -> dict[str, Any]:
    """The ``checkpoint["anydepth"]`` entry describing ``model`` stored under ``prefix``."""
    return {"format_version": ANYDEPTH_FORMAT_VERSION, "model": model.config.to_dict(), "prefix": prefix}


def add_anydepth_metadata(
    checkpoint: dict[str, Any], model: DepthAnything, prefix: str = LIGHTNING_PREFIX
) -> None:
    """Call from ``LightningModule.on_save_checkpoint`` so ``load_checkpoint`` can read the file."""
    checkpoint[ANYDEPTH_KEY] = anydepth_metadata(model, prefix)


def hf_config(config: DepthAnythingConfig) -> dict[str, Any]:
    """transformers ``DepthAnythingConfig`` JSON for a model of this architecture."""
    if config.use_bn or config.use_clstoken:
        raise CheckpointError("transformers' DepthAnything supports neither use_bn nor use_clstoken")
    stages = [i + 1 for i in config.layer_indices]
    return {
        "architectures": ["DepthAnythingForDepthEstimation"],
        "model_type": "depth_anything",
        "backbone_config": {
            "model_type": "dinov2",
            "hidden_size": config.embed_dim,
            "num_hidden_layers": config.depth,
            "num_attention_heads": config.num_heads,
            "mlp_ratio": 4,
            "use_swiglu_ffn": config.swiglu,
            "image_size": PRETRAIN_IMAGE_SIZE,
            "patch_size": PATCH_SIZE,
            "layerscale_value": 1.0,
            "layer_norm_eps": 1e-6,
            "qkv_bias": True,
            "hidden_act": "gelu",
            "out_indices": stages,
            "out_features": [f"stage{i}" for i in stages],
            "reshape_hidden_states": False,
            "apply_layernorm": True,
        },
        "patch_size": PATCH_SIZE,
        "reassemble_hidden_size": config.embed_dim,
        "reassemble_factors": [4, 2, 1, 0.5],
        "neck_hidden_sizes": list(config.out_channels),
        "fusion_hidden_size": config.features,
        "head_in_index": -1,
        "head_hidden_size": HEAD_HIDDEN_CHANNELS,
        "depth_estimation_type": "relative",
        "max_depth": 1,
    }


def hf_preprocessor_config(input_size: int = 518) -> dict[str, Any]:
    """transformers ``DPTImageProcessor`` settings equal to the official inference preprocessing."""
    return {
        "image_processor_type": "DPTImageProcessor",
        "do_resize": True,
        "size": {"height": input_size, "width": input_size},
        "keep_aspect_ratio": True,
        "ensure_multiple_of": PATCH_SIZE,
        "resample": 3,  # PIL bicubic
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(IMAGENET_MEAN),
        "image_std": list(IMAGENET_STD),
        "do_pad": False,
    }


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
