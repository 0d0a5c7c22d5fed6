"""ONNX export + onnxruntime parity: a tiny model and vits-shaped V1 / V2 models (random weights, perturbed), dynamic
batch, height and width, checked on real photos at two sizes; fp16; baked preprocessing; the recorded spec."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from anydepth.export import TOLERANCES, ExportReport, ExportSpec, OnnxDepthModel
from anydepth.export.check import CHECK_SIZES, photo_batch, reference_photos
from anydepth.models import DepthAnything
from anydepth.models.preprocess import lower_bound_size

from helpers import lift_output_, max_rel_diff, perturb_


def vits(version: str) -> DepthAnything:
    return lift_output_(perturb_(DepthAnything("vits", version), std=0.01)).eval()


def test_tiny_export_is_dynamic_and_matches_pytorch_at_both_check_sizes(tiny_onnx: ExportReport) -> None:
    assert set(tiny_onnx.differences) == set(CHECK_SIZES)
    assert max(tiny_onnx.differences.values()) <= TOLERANCES["fp32"]
    graph = onnx.load(tiny_onnx.path).graph
    (image,), (depth,) = graph.input, graph.output
    assert image.name == "image" and depth.name == "depth"
    dims = [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(d, str) for d in (dims[0], dims[2], dims[3])), dims


def test_the_file_records_model_version_and_input_contract(tiny_onnx: ExportReport, tiny_model: DepthAnything) -> None:
    model = onnx.load(tiny_onnx.path)
    assert model.opset_import[0].version == 18
    metadata = {p.key: p.value for p in model.metadata_props}
    spec = ExportSpec.from_json(metadata["anydepth"], "test")
    assert spec == tiny_onnx.spec and spec.config == tiny_model.config and spec.input_size is None
    recorded = json.loads(metadata["anydepth"])
    assert recorded["config"]["encoder"] == "custom" and recorded["config"]["head"] == "relative"
    assert recorded["anydepth_version"] and recorded["input"]["layout"] == "B x 3 x H x W (RGB)"
    assert "relative disparity" in recorded["output"]["meaning"]


@pytest.mark.parametrize(
    "version,precision,bake",
    [("v1", "fp32", False), ("v2", "fp16", True)],
    ids=["vits-v1-fp32", "vits-v2-fp16-baked"],
)
def test_vits_exports_match_pytorch_on_photos(version: str, precision: str, bake: bool, tmp_path: Path) -> None:
    model = vits(version)
    report = model.export(tmp_path / "vits.onnx", "onnx", precision, bake_preprocessing=bake)
    assert set(report.differences) == set(CHECK_SIZES) and max(report.differences.values()) <= TOLERANCES[precision]
    print(f"vits {version} {precision} baked={bake}: {report.differences}")
    onnx_model = OnnxDepthModel(report.path)
    assert onnx_model.spec.bake_preprocessing == bake and onnx_model.spec.precision == precision
    if precision == "fp16":  # fp16 weights in the file, not an fp32 graph with a cast
        weights = onnx.load(report.path).graph.initializer
        assert {w.data_type for w in weights if np.prod(w.dims) > 1000} == {onnx.TensorProto.FLOAT16}
        assert max(report.differences.values()) > TOLERANCES["fp32"]
    # a photo already at its network size passes through unchanged, so the runtime reproduces infer_image
    photo = photo_batch(reference_photos()[:1], CHECK_SIZES[1])[0]
    assert lower_bound_size(*photo.shape[:2], CHECK_SIZES[1][0]) == photo.shape[:2]
    expected = model.infer_image(photo, CHECK_SIZES[1][0])
    got = onnx_model.infer_image(photo, CHECK_SIZES[1][0])
    assert got.dtype == np.float32
    assert max_rel_diff(torch.from_numpy(expected), torch.from_numpy(got)) <= TOLERANCES[precision]
