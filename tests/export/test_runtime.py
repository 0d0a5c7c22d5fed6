"""``OnnxDepthModel``: the onnxruntime twin of ``DepthAnything.infer_images``, usable by ``run_inference``, refusing
ONNX files that are not anydepth exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from PIL import Image

from anydepth.export import ExportError, ExportReport, OnnxDepthModel
from anydepth.export.check import reference_photos
from anydepth.export.runtime import tensorrt_providers
from anydepth.inference import run_inference
from anydepth.models import DepthAnything

from helpers import max_rel_diff

INPUT_SIZE = 140  # small network sizes keep the tiny model fast: 140 x 140 and 140 x 210


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    astronaut, cat = reference_photos()
    return [astronaut, cat, cat[::-1].copy()]  # two sizes, two images of one size (one batch)


def test_infer_images_matches_the_pytorch_model(
    tiny_onnx: ExportReport, tiny_model: DepthAnything, photos: list[np.ndarray]
) -> None:
    model = OnnxDepthModel(tiny_onnx.path)
    assert model.config == tiny_model.config
    expected = tiny_model.infer_images(photos, INPUT_SIZE, batch_size=2)
    got = model.infer_images(photos, INPUT_SIZE, batch_size=2)
    for photo, e, g in zip(photos, expected, got):
        assert g.shape == photo.shape[:2] and g.dtype == np.float32
        assert max_rel_diff(torch.from_numpy(e), torch.from_numpy(g)) <= 1e-4
    single = model.infer_image(photos[1], INPUT_SIZE)
    assert max_rel_diff(torch.from_numpy(expected[1]), torch.from_numpy(single)) <= 1e-4


def test_run_inference_takes_the_onnx_model_in_place_of_the_pytorch_one(
    tiny_onnx: ExportReport, tiny_model: DepthAnything, photos: list[np.ndarray], tmp_path: Path
) -> None:
    inputs = tmp_path / "photos"
    inputs.mkdir()
    for i, photo in enumerate(photos):
        Image.fromarray(photo).save(inputs / f"{i}.png")
    for name, model in (("torch", tiny_model), ("onnx", OnnxDepthModel(tiny_onnx.path))):
        summary = run_inference(model, inputs, tmp_path / name, input_size=INPUT_SIZE, batch_size=2, raw_npy=True)
        assert summary.written == len(photos) and not summary.skipped
    for i in range(len(photos)):
        expected, got = (torch.from_numpy(np.load(tmp_path / name / f"{i}.npy")) for name in ("torch", "onnx"))
        assert max_rel_diff(expected, got) <= 1e-4


def test_an_onnx_file_that_is_not_an_anydepth_export_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["depth"])],
        "foreign",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 14, 14])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 3, 14, 14])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), tmp_path / "foreign.onnx")
    with pytest.raises(ExportError, match=r"foreign.onnx is not an anydepth export: its ONNX metadata has no"):
        OnnxDepthModel(tmp_path / "foreign.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x00junk" * 16)
    with pytest.raises(ExportError, match="onnxruntime cannot load it as an ONNX model"):
        OnnxDepthModel(tmp_path / "junk.onnx")
    with pytest.raises(ExportError, match="does not exist"):
        OnnxDepthModel(tmp_path / "missing.onnx")


def _has_tensorrt() -> bool:
    import onnxruntime

    return "TensorrtExecutionProvider" in onnxruntime.get_available_providers()


@pytest.mark.skipif(_has_tensorrt(), reason="this onnxruntime has TensorRT: the refusal cannot happen")
def test_tensorrt_without_its_provider_is_one_clear_error(tiny_onnx: ExportReport) -> None:
    with pytest.raises(
        ExportError,
        match="TensorRT backend needs onnxruntime-gpu built with TensorRT.*this onnxruntime "
        "offers .*CPUExecutionProvider",
    ):
        tensorrt_providers(tiny_onnx.path)


def test_tensorrt_providers_cache_the_engine_beside_the_file(tiny_onnx: ExportReport) -> None:
    if not _has_tensorrt():
        pytest.skip("needs onnxruntime-gpu with TensorRT")
    (name, options), *fallback = tensorrt_providers(tiny_onnx.path)
    assert name == "TensorrtExecutionProvider" and options["trt_engine_cache_path"] == f"{tiny_onnx.path}.trt"
    assert fallback == ["CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.gpu
def test_tensorrt_engine_matches_the_pytorch_model(
    tiny_onnx: ExportReport, tiny_model: DepthAnything, photos: list[np.ndarray]
) -> None:
    if not _has_tensorrt():
        pytest.skip("needs onnxruntime-gpu with TensorRT")
    model = OnnxDepthModel(tiny_onnx.path, providers=tensorrt_providers(tiny_onnx.path))
    assert model.session.get_providers()[0] == "TensorrtExecutionProvider"
    expected = tiny_model.infer_images(photos, INPUT_SIZE, batch_size=2)
    for e, g in zip(expected, model.infer_images(photos, INPUT_SIZE, batch_size=2)):
        assert max_rel_diff(torch.from_numpy(e), torch.from_numpy(g)) <= 1e-3  # TensorRT's fp32 kernels (TF32 off)
    assert Path(f"{tiny_onnx.path}.trt").is_dir()  # the engine is cached for the next run
