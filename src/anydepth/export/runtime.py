"""Run an anydepth ONNX export with onnxruntime: :class:`OnnxDepthModel`, a drop-in for ``DepthAnything`` wherever
only ``infer_images`` / ``infer_image`` / ``config`` are used (``anydepth.inference.run_inference``)."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from anydepth.export.onnx import import_optional, read_onnx_spec
from anydepth.export.spec import INPUT_NAME, OUTPUT_NAME, ExportError
from anydepth.models.preprocess import check_image, lower_bound_size, normalize, upsample_prediction

DEFAULT_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
TENSORRT_PROVIDER = "TensorrtExecutionProvider"
Provider = str | tuple[str, dict[str, str]]
"""An onnxruntime execution provider: its name, or its name and options."""


def tensorrt_providers(onnx_path: str | os.PathLike) -> list[Provider]:
    """onnxruntime's TensorRT execution provider for an anydepth ONNX export (CUDA, then CPU, for any node TensorRT
    does not take): the TensorRT engine is built from the ONNX file on first use (minutes) and cached in
    ``<file>.trt/`` beside it, so later runs start at once; the engine keeps the file's precision (an fp16 export
    gives an fp16 engine), and each new input size builds a new profile (dynamic exports). Raises ``ExportError``
    when this onnxruntime has no TensorRT provider (CPU builds, or onnxruntime-gpu without TensorRT libraries)."""
    available = import_optional("onnxruntime").get_available_providers()
    if TENSORRT_PROVIDER not in available:
        raise ExportError(
            f"the TensorRT backend needs onnxruntime-gpu built with TensorRT, the TensorRT libraries and a CUDA GPU; "
            f"this onnxruntime offers {', '.join(available)}: install onnxruntime-gpu and tensorrt, or use "
            "--backend onnxruntime"
        )
    cache = Path(f"{onnx_path}.trt")
    options = {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": "True",
    }
    return [(TENSORRT_PROVIDER, options), "CUDAExecutionProvider", "CPUExecutionProvider"]


def same_size_batches(images: Sequence[np.ndarray], batch_size: int) -> Iterator[list[int]]:
    """Indices of ``images`` in batches of at most ``batch_size`` images of one size, in order of first appearance."""
    by_size: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, image in enumerate(images):
        by_size[image.shape[:2]].append(i)
    for indices in by_size.values():
        for start in range(0, len(indices), batch_size):
            yield indices[start : start + batch_size]


class OnnxDepthModel:
    """An ``anydepth export --format onnx`` file in an onnxruntime session (``providers``: default CUDA when
    available, else CPU; :func:`tensorrt_providers` for TensorRT). ``spec`` is the file's
    :class:`~anydepth.export.spec.ExportSpec`, ``config`` the model's ``DepthAnythingConfig``. Refuses
    (``ExportError``) a file onnxruntime cannot load or that is not an anydepth export."""

    def __init__(self, path: str | os.PathLike, providers: Sequence[Provider] | None = None) -> None:
        ort = import_optional("onnxruntime")
        errors = ort.capi.onnxruntime_pybind11_state
        self.path = Path(path)
        if not self.path.is_file():
            raise ExportError(f"ONNX file {self.path} does not exist")
        available = ort.get_available_providers()
        try:
            self.session = ort.InferenceSession(
                str(self.path), providers=providers or [p for p in DEFAULT_PROVIDERS if p in available]
            )
        except (errors.InvalidProtobuf, errors.InvalidGraph, errors.Fail, errors.NotImplemented) as err:
            raise ExportError(f"{self.path}: onnxruntime cannot load it as an ONNX model ({err})") from err
        self.spec = read_onnx_spec(self.session.get_modelmeta().custom_metadata_map, self.path)
        self.config = self.spec.config

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """The graph on one batch in the file's input contract (``spec.contract()``) -> ``B x h x w`` float32."""
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]

    def network_input(self, images: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
        """Same-sized uint8 RGB images resized to ``size`` (bicubic, as ``prepare_images``) in the file's input
        contract: normalised float32 ``B x 3 x h x w``, or for baked preprocessing the resized image rounded to
        uint8 ``B x h x w x 3`` (unchanged pixels when the images already have the network size)."""
        batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
        batch = F.interpolate(batch, size=size, mode="bicubic", align_corners=False)
        if self.spec.bake_preprocessing:
            return (batch * 255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return normalize(batch).numpy()

    def infer_images(self, images: list[np.ndarray], input_size: int = 518, batch_size: int = 4) -> list[np.ndarray]:
        """``DepthAnything.infer_images`` on onnxruntime: relative disparity (or metres, metric head) H x W float32
        per H x W x 3 uint8 RGB image. The network size is ``lower_bound_size(H, W, input_size)`` for a dynamic
        export, the file's fixed size otherwise (``input_size`` unused); the prediction is upsampled back as the
        model's version does officially."""
        for i, image in enumerate(images):
            check_image(image, f"image {i}")
        results: list[np.ndarray] = [np.empty(0, np.float32)] * len(images)
        for chunk in same_size_batches(images, batch_size):
            height, width = images[chunk[0]].shape[:2]
            size = self.spec.input_size or lower_bound_size(height, width, input_size)
            depth = torch.from_numpy(self(self.network_input([images[i] for i in chunk], size)))
            for i, d in zip(chunk, upsample_prediction(depth, (height, width), self.config.version).numpy()):
                results[i] = d
        return results

    def infer_image(self, rgb: np.ndarray, input_size: int = 518) -> np.ndarray:
        """Depth of one H x W x 3 uint8 RGB image (see :meth:`infer_images`)."""
        return self.infer_images([rgb], input_size, batch_size=1)[0]
