"""ONNX files: written by ``torch.onnx.export`` (the ``torch.export``-based exporter), opset 18, the spec in
``metadata_props``.

Opset 18 is the exporter's own default and is read by every onnxruntime since 1.14 and by TensorRT 10 (all ops used
here exist in opset 18; LayerNormalization needs 17); the TorchScript-based exporter (``dynamo=False``) is not used:
it is deprecated and cannot trace the DINOv2 position-embedding scale factor.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import torch

from anydepth.export.module import DeployModule, dynamic_shapes, example_input
from anydepth.export.spec import INPUT_NAME, METADATA_KEY, OUTPUT_NAME, ExportError, ExportSpec

OPSET = 18


def import_optional(name: str) -> ModuleType:
    """Import one of the ``export`` extra's packages, or say how to install them."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ExportError(
            f"{name} is not installed; install the export extras: pip install 'anydepth[export]'"
        ) from err


def write_onnx(module: DeployModule, spec: ExportSpec, path: Path) -> None:
    """Export ``module`` to ``path`` (weights over 2 GB go to ``path.data`` beside it, ONNX external data)."""
    import_optional("onnxscript")  # the exporter's op library
    program = torch.onnx.export(
        module,
        (example_input(spec),),
        dynamo=True,
        dynamic_shapes=dynamic_shapes(spec),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        opset_version=spec.opset,
        verbose=False,
    )
    program.model.metadata_props[METADATA_KEY] = spec.to_json()
    program.model.doc_string = (
        f"anydepth Depth Anything {spec.config.version} {spec.config.encoder} ({spec.config.head} head); "
        f"see the '{METADATA_KEY}' metadata entry for the input and output contract"
    )
    program.save(path)


def read_onnx_spec(metadata: dict[str, str], path: Path) -> ExportSpec:
    """The spec in an ONNX file's custom metadata; ``ExportError`` when the file is not an anydepth export."""
    if METADATA_KEY not in metadata:
        raise ExportError(
            f"{path} is not an anydepth export: its ONNX metadata has no '{METADATA_KEY}' entry "
            "(write one with: anydepth export --format onnx)"
        )
    return ExportSpec.from_json(metadata[METADATA_KEY], str(path))
