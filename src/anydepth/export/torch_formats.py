"""TorchScript (``torch.jit.trace``) and ``torch.export`` (``.pt2``) archives, the spec as ``anydepth.json`` inside.

Tracing records the position-embedding resampling and the DPT sizes as shape arithmetic, so a TorchScript file
serves other input sizes too; PyTorch deprecates TorchScript, so prefer ``torch-export`` (load with
``torch.export.load(path).module()``) where the consumer runs PyTorch 2.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from anydepth.export.check import Runner
from anydepth.export.module import DeployModule, dynamic_shapes, example_input
from anydepth.export.spec import METADATA_KEY, ExportError, ExportSpec

SPEC_FILE = f"{METADATA_KEY}.json"


def write_torchscript(module: DeployModule, spec: ExportSpec, path: Path) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        # the model's shape checks become constants of the trace; they hold for every valid input
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
        traced = torch.jit.trace(module, (example_input(spec),), check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={SPEC_FILE: spec.to_json()})


def write_torch_export(module: DeployModule, spec: ExportSpec, path: Path) -> None:
    program = torch.export.export(module, (example_input(spec),), dynamic_shapes=dynamic_shapes(spec))
    torch.export.save(program, str(path), extra_files={SPEC_FILE: spec.to_json()})


def _spec(files: dict[str, str | bytes], path: Path) -> ExportSpec:
    text = files[SPEC_FILE]
    if not text:
        raise ExportError(f"{path} is not an anydepth export: no {SPEC_FILE} inside")
    return ExportSpec.from_json(text.decode() if isinstance(text, bytes) else text, str(path))


def _runner(module: Callable[[torch.Tensor], torch.Tensor]) -> Runner:
    def run(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(batch)).numpy()

    return run


def load_torchscript(path: Path) -> tuple[ExportSpec, Runner]:
    """The spec and a numpy-in, numpy-out runner of a TorchScript export."""
    files: dict[str, str | bytes] = {SPEC_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), _extra_files=files)
    return _spec(files, path), _runner(module)


def load_torch_export(path: Path) -> tuple[ExportSpec, Runner]:
    """The spec and a numpy-in, numpy-out runner of a ``torch.export`` archive."""
    files: dict[str, str | bytes] = {SPEC_FILE: ""}
    program = torch.export.load(str(path), extra_files=files)
    return _spec(files, path), _runner(program.module())
