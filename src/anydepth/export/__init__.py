"""Deployment: export a ``DepthAnything`` to ONNX, TorchScript or ``torch.export``, checked against the model, and
run ONNX exports with onnxruntime.

- :func:`export_model` (also ``DepthAnything.export``, ``anydepth export``): write and check one file;
- :class:`OnnxDepthModel`: an ONNX export as a drop-in for ``DepthAnything.infer_images`` / ``infer_image``;
- :class:`ExportSpec`: what a file records about itself (model, precision, size, input contract).

onnx, onnxruntime and onnxscript come with the ``export`` extra (``pip install 'anydepth[export]'``) and are
imported only when used.
"""

from anydepth.export.check import ParityError
from anydepth.export.exporter import ExportReport, export_model
from anydepth.export.runtime import OnnxDepthModel
from anydepth.export.spec import FORMATS, PRECISIONS, TOLERANCES, ExportError, ExportSpec

__all__ = [
    "FORMATS",
    "PRECISIONS",
    "TOLERANCES",
    "ExportError",
    "ExportReport",
    "ExportSpec",
    "OnnxDepthModel",
    "ParityError",
    "export_model",
]
