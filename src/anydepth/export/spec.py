"""What an exported file holds and promises: :class:`ExportSpec`, stored as JSON inside every export.

The JSON lives in the ONNX ``metadata_props`` under ``anydepth`` and in the ``anydepth.json`` extra file of
TorchScript and ``torch.export`` archives. Besides the fields needed to read the file back (format, precision,
the model's :class:`~anydepth.models.DepthAnythingConfig`, fixed or dynamic size, baked preprocessing) it spells out
the input and output contract for people and other runtimes (:meth:`ExportSpec.contract`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from anydepth.models.depth_anything import DepthAnythingConfig
from anydepth.models.encoder import PATCH_SIZE
from anydepth.models.preprocess import IMAGENET_MEAN, IMAGENET_STD

FORMATS: tuple[str, ...] = ("onnx", "torchscript", "torch-export")
PRECISIONS: tuple[str, ...] = ("fp32", "fp16")
TOLERANCES: dict[str, float] = {"fp32": 1e-4, "fp16": 1e-2}
"""Largest accepted ``max |exported - PyTorch fp32| / max |PyTorch fp32|`` of the check run on every export."""
METADATA_KEY = "anydepth"
SPEC_VERSION = 1
INPUT_NAME, OUTPUT_NAME = "image", "depth"


class ExportError(ValueError):
    """An export cannot be made, read or trusted (bad request, not an anydepth export, failed parity check)."""


def check_input_size(size: tuple[int, int] | None) -> tuple[int, int] | None:
    """``size`` (H, W) as ints, or ``None`` (dynamic); ``ExportError`` unless both are positive multiples of 14."""
    if size is None:
        return None
    height, width = (int(s) for s in size)
    if min(height, width) < PATCH_SIZE or height % PATCH_SIZE or width % PATCH_SIZE:
        nearest = " ".join(str(max(PATCH_SIZE, round(s / PATCH_SIZE) * PATCH_SIZE)) for s in (height, width))
        raise ExportError(
            f"input size {height} {width} (H W): both sides must be positive multiples of {PATCH_SIZE} "
            f"(the ViT patch size), e.g. {nearest}"
        )
    return height, width


@dataclass(frozen=True)
class ExportSpec:
    """One export: ``format``, ``precision``, the model ``config``, ``input_size`` (H, W) or ``None`` for dynamic
    height and width (multiples of 14), ``bake_preprocessing`` (uint8 RGB in, normalisation inside the graph)."""

    format: str
    precision: str
    config: DepthAnythingConfig
    input_size: tuple[int, int] | None = None
    bake_preprocessing: bool = False
    opset: int | None = None
    anydepth_version: str = ""

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ExportError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.precision not in PRECISIONS:
            raise ExportError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        object.__setattr__(self, "input_size", check_input_size(self.input_size))

    @property
    def tolerance(self) -> float:
        return TOLERANCES[self.precision]

    def contract(self) -> dict[str, Any]:
        """The input and output of the exported graph, in words a deployer can follow."""
        height, width = self.input_size or (f"any multiple of {PATCH_SIZE}",) * 2
        if self.bake_preprocessing:
            image = {
                "layout": "B x H x W x 3 (RGB)",
                "dtype": "uint8",
                "preprocessing": "none: resize to the network size yourself; the graph converts to float, divides by "
                "255 and normalises with the ImageNet mean and std",
            }
        else:
            image = {
                "layout": "B x 3 x H x W (RGB)",
                "dtype": "float32",
                "preprocessing": f"RGB / 255, then (x - {list(IMAGENET_MEAN)}) / {list(IMAGENET_STD)} per channel",
            }
        metric = self.config.head == "metric"
        return {
            "input": {"name": INPUT_NAME, "height": height, "width": width, "batch": "any", **image},
            "output": {
                "name": OUTPUT_NAME,
                "layout": "B x H x W",
                "dtype": "float32",
                "meaning": f"depth in metres (0..{self.config.max_depth:g})"
                if metric
                else "relative disparity (affine-invariant, larger = nearer)",
            },
        }

    def to_json(self) -> str:
        data = {
            "spec_version": SPEC_VERSION,
            "anydepth_version": self.anydepth_version,
            "format": self.format,
            "precision": self.precision,
            "opset": self.opset,
            "input_size": list(self.input_size) if self.input_size else None,
            "bake_preprocessing": self.bake_preprocessing,
            "config": self.config.to_dict(),
            **self.contract(),
        }
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str, source: str) -> ExportSpec:
        """Parse :meth:`to_json`'s output; ``ExportError`` naming ``source`` when it is not one."""
        try:
            data = json.loads(text)
            if data.get("spec_version") != SPEC_VERSION:
                raise ExportError(f"{source}: anydepth export spec version {data.get('spec_version')!r}, expected 1")
            return cls(
                format=data["format"],
                precision=data["precision"],
                config=DepthAnythingConfig.from_dict(data["config"]),
                input_size=data["input_size"],
                bake_preprocessing=data["bake_preprocessing"],
                opset=data["opset"],
                anydepth_version=data["anydepth_version"],
            )
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
            raise ExportError(f"{source}: unreadable anydepth export metadata ({type(err).__name__}: {err})") from err
