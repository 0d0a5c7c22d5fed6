"""Key conversion between the official, native and transformers layouts, and the transformers config files.

Pure functions over state dicts and configs (timm's ``checkpoint_filter_fn`` habit): no file I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch

from anydepth.checkpoints.formats import CheckpointError, StateDict
from anydepth.models.depth_anything import DECODERS, DepthAnythingConfig, default_layer_indices
from anydepth.models.dpt import HEAD_HIDDEN_CHANNELS
from anydepth.models.encoder import ENCODERS, PATCH_SIZE, PRETRAIN_IMAGE_SIZE
from anydepth.models.preprocess import IMAGENET_MEAN, IMAGENET_STD


def official_to_native(state_dict: StateDict) -> StateDict:
    """Official names -> this package's (only vitg differs: SwiGLU ``w12``/``w3`` -> ``fc1``/``fc2``)."""
    return {
        re.sub(r"\.mlp\.w12\.", ".mlp.fc1.", re.sub(r"\.mlp\.w3\.", ".mlp.fc2.", k)): v for k, v in state_dict.items()
    }


def native_to_official(state_dict: StateDict, swiglu: bool) -> StateDict:
    """Inverse of ``official_to_native`` for a model with (``swiglu=True``) or without SwiGLU FFNs."""
    if not swiglu:
        return dict(state_dict)
    return {
        re.sub(r"\.mlp\.fc1\.", ".mlp.w12.", re.sub(r"\.mlp\.fc2\.", ".mlp.w3.", k)): v for k, v in state_dict.items()
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
                out[f"backbone.encoder.layer.{qkv[1]}.attention.attention.{name}.{qkv[2]}"] = part.contiguous()
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


KEEP_ANYDEPTH = "keep the anydepth checkpoint format (--format anydepth), which stores the architecture"


def official_differences(config: DepthAnythingConfig) -> list[str]:
    """What of ``config`` the official Depth Anything code (V1 and V2) would build differently; empty when it rebuilds
    ``config`` exactly. That code knows only the standard ViT-S/B/L/G (width, depth, heads, FFN), builds their DPT
    with fixed sizes (``DECODERS``, no batch norm, no class-token readout) and feeds it fixed blocks (V1 the last
    four, V2 ``V2_LAYER_INDICES``); an official ``.pth`` stores none of these, so its readers assume them."""
    spec = ENCODERS.get(config.encoder)
    if spec is None:
        return [f"encoder is {config.encoder!r}, not one of the official {', '.join(ENCODERS)}"]
    features, out_channels = DECODERS[config.encoder]
    official: dict[str, Any] = {
        "embed_dim": spec.embed_dim,
        "depth": spec.depth,
        "num_heads": spec.num_heads,
        "swiglu": spec.swiglu,
        "features": features,
        "out_channels": out_channels,
        "layer_indices": default_layer_indices(config.encoder, config.version, spec.depth),
        "use_bn": False,
        "use_clstoken": False,
    }
    where = f"the official {config.encoder} {config.version.upper()}"
    differences = [
        f"{name} is {getattr(config, name)} where {where} has {value}"
        for name, value in official.items()
        if getattr(config, name) != value
    ]
    if config.head == "metric" and config.version != "v2":
        differences.append("a V1 model with a metric DPT head: the official V1 metric models are ZoeDepth")
    return differences


def check_official(config: DepthAnythingConfig) -> None:
    """Raise one :class:`CheckpointError` listing :func:`official_differences` unless there are none."""
    differences = official_differences(config)
    if differences:
        raise CheckpointError(
            f"the official Depth Anything format cannot represent this model: {'; '.join(differences)}; an official "
            f".pth stores weights only, so it would load as a different model; {KEEP_ANYDEPTH}"
        )


def hf_config(config: DepthAnythingConfig) -> dict[str, Any]:
    """transformers ``DepthAnythingConfig`` JSON for a model of this architecture; a :class:`CheckpointError` for what
    transformers' DepthAnything cannot build: batch norm or class-token readout in the DPT head, or encoder blocks
    not in strictly increasing order (its backbone's ``out_indices`` must be; sizes, blocks, heads and the
    reassemble factors 4, 2, 1, 0.5 of every Depth Anything are all in its config)."""
    unsupported = [name for name in ("use_bn", "use_clstoken") if getattr(config, name)]
    if config.head == "metric" and not float(config.max_depth).is_integer():  # type: ignore[arg-type]
        unsupported.append(f"max_depth {config.max_depth}: its config types max_depth as an integer")
    indices = list(config.layer_indices)
    if indices != sorted(set(indices)):
        unsupported.append(f"layer_indices {indices} not strictly increasing")
    if unsupported:
        raise CheckpointError(
            f"transformers' DepthAnything cannot represent this model ({', '.join(unsupported)}); {KEEP_ANYDEPTH}"
        )
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
        "depth_estimation_type": config.head,
        "max_depth": int(config.max_depth) if config.head == "metric" else 1,  # type: ignore[arg-type]
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
