""":func:`export_model`: write a ``DepthAnything`` as ONNX, TorchScript or a ``torch.export`` archive, then prove the
file on disk matches the model (:mod:`anydepth.export.check`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from anydepth import __version__
from anydepth.export.check import ParityError, Runner, parity, reference_photos, require_parity
from anydepth.export.module import DeployModule
from anydepth.export.onnx import OPSET, write_onnx
from anydepth.export.runtime import OnnxDepthModel
from anydepth.export.spec import ExportError, ExportSpec
from anydepth.export.torch_formats import load_torch_export, load_torchscript, write_torch_export, write_torchscript
from anydepth.models.depth_anything import DepthAnything
from anydepth.models.preprocess import evaluating


def load_onnx(path: Path) -> tuple[ExportSpec, Runner]:
    model = OnnxDepthModel(path, providers=["CPUExecutionProvider"])
    return model.spec, model


WRITERS: dict[str, Callable[[DeployModule, ExportSpec, Path], None]] = {
    "onnx": write_onnx,
    "torchscript": write_torchscript,
    "torch-export": write_torch_export,
}
LOADERS: dict[str, Callable[[Path], tuple[ExportSpec, Runner]]] = {
    "onnx": load_onnx,
    "torchscript": load_torchscript,
    "torch-export": load_torch_export,
}


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_model` wrote (``path``, ``spec``) and the check's max relative difference per network
    size (H, W)."""

    path: Path
    spec: ExportSpec
    differences: dict[tuple[int, int], float]


def export_model(
    model: DepthAnything,
    path: str | os.PathLike,
    format: str = "onnx",
    precision: str = "fp32",
    input_size: tuple[int, int] | None = None,
    bake_preprocessing: bool = False,
) -> ExportReport:
    """Write ``model`` (fp32, on the CPU) to ``path`` and check the written file against it.

    ``format``: ``onnx`` (opset 18), ``torchscript`` or ``torch-export``; ``precision``: ``fp32`` or ``fp16``
    (weights and activations; inputs and outputs stay float32 / uint8); ``input_size``: fixed (H, W), multiples of
    14, or ``None`` for dynamic height and width (the batch is always dynamic); ``bake_preprocessing``: uint8 RGB
    ``B x H x W x 3`` in, /255 and ImageNet normalisation inside the graph. The file records the spec
    (:class:`~anydepth.export.spec.ExportSpec`). It is then loaded back and run on two photos at two sizes
    (:mod:`~anydepth.export.check`); above the precision's tolerance the file is removed and ``ParityError``
    raised. ``ExportError`` for a request that cannot be exported.
    """
    if next(model.parameters()).device.type != "cpu":
        raise ExportError("export a model on the CPU (model.cpu()); the exported file runs anywhere")
    spec = ExportSpec(
        format=format,
        precision=precision,
        config=model.config,
        input_size=input_size,
        bake_preprocessing=bake_preprocessing,
        opset=OPSET if format == "onnx" else None,
        anydepth_version=__version__,
    )
    photos = reference_photos()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with evaluating(model):
        WRITERS[format](DeployModule(model, precision, bake_preprocessing), spec, path)
        written, run = LOADERS[format](path)
        differences = parity(model, run, written, photos)
    try:
        require_parity(differences, written, str(path))
    except ParityError as err:
        for leftover in (path, path.with_name(path.name + ".data")):  # ONNX external data of models over 2 GB
            leftover.unlink(missing_ok=True)
        raise ParityError(f"{err}; removed the file") from None
    return ExportReport(path, written, differences)
