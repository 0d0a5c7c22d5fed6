"""The graph that gets exported: a ``DepthAnything`` behind its input contract, with the example input and the
dynamic dimensions the exporters trace it with."""

from __future__ import annotations

import copy

import torch
from torch import nn

from anydepth.export.spec import ExportSpec
from anydepth.models.depth_anything import DepthAnything
from anydepth.models.encoder import PATCH_SIZE
from anydepth.models.preprocess import normalize

MIN_PATCHES, MAX_PATCHES = 4, 1024
"""Dynamic exports accept sides of 4 to 1024 patches (56 to 14,336 px): ``torch.export`` needs the DPT head's
stride-2 stage to keep more than one row, and the position-embedding resampling is exact below 2,048 patches."""
EXAMPLE_BATCH, EXAMPLE_PATCHES = 2, (20, 27)  # traced with sizes > 1: torch.export specialises dimensions of 0 or 1


class DeployModule(nn.Module):
    """``model`` as exported: float32 ``B x 3 x H x W`` normalised input, or uint8 ``B x H x W x 3`` RGB with the
    official normalisation inside (``bake_preprocessing``); fp16 weights and activations for ``precision="fp16"``
    (input and output stay float32 / uint8); output float32 ``B x H x W``."""

    def __init__(self, model: DepthAnything, precision: str, bake_preprocessing: bool) -> None:
        super().__init__()
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.model = copy.deepcopy(model).to(self.dtype) if self.dtype != torch.float32 else model
        self.bake_preprocessing = bake_preprocessing
        self.eval()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.bake_preprocessing:
            image = normalize(image.permute(0, 3, 1, 2).float() / 255.0)
        return self.model(image.to(self.dtype)).float()


def example_input(spec: ExportSpec) -> torch.Tensor:
    """A batch in the export's input layout and dtype to trace with."""
    height, width = spec.input_size or (p * PATCH_SIZE for p in EXAMPLE_PATCHES)
    if spec.bake_preprocessing:
        return torch.randint(0, 256, (EXAMPLE_BATCH, height, width, 3), dtype=torch.uint8)
    return torch.randn(EXAMPLE_BATCH, 3, height, width)


def dynamic_shapes(spec: ExportSpec) -> tuple[dict[int, object]]:
    """``torch.export`` dimensions of the one input: the batch always, height and width (multiples of 14) unless the
    size is fixed."""
    dims: dict[int, object] = {0: torch.export.Dim("batch", min=1)}
    if spec.input_size is None:
        height_axis = 1 if spec.bake_preprocessing else 2
        for axis, name in ((height_axis, "height"), (height_axis + 1, "width")):
            dims[axis] = PATCH_SIZE * torch.export.Dim(f"{name}_patches", min=MIN_PATCHES, max=MAX_PATCHES)
    return (dims,)
