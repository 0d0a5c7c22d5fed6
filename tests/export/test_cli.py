"""``anydepth export`` end to end: a metric checkpoint to a fixed-size fp16 ONNX file with baked preprocessing, and
one-line errors (exit 2 for a request that cannot be exported, exit 1 for a file that fails its parity check)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from anydepth.cli import main
from anydepth.export import TOLERANCES, OnnxDepthModel
from anydepth.export.check import photo_batch, reference_photos
from anydepth.models import DepthAnything

from helpers import TINY, lift_output_, max_rel_diff, perturb_


def export(checkpoint: Path, output: Path, *options: str) -> int:
    return main(["export", "--checkpoint", str(checkpoint), "--output", str(output), *options])


def saved(model: DepthAnything, path: Path) -> Path:
    model.save_checkpoint(path, format="anydepth")
    return path


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("anydepth export: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_a_metric_checkpoint_exports_to_fixed_size_fp16_with_baked_preprocessing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(2)
    model = lift_output_(perturb_(DepthAnything(**TINY, version="v1", head="metric", max_depth=20.0))).eval()
    options = ("--format", "onnx", "--input-size", "140", "196", "--precision", "fp16", "--bake-preprocessing")
    assert export(saved(model, tmp_path / "metric.ckpt"), tmp_path / "metric.onnx", *options) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "wrote onnx fp16 export of a custom Depth Anything v1 metric (max 20 m)" in out
    onnx_model = OnnxDepthModel(tmp_path / "metric.onnx")
    spec = onnx_model.spec
    assert (spec.input_size, spec.precision, spec.bake_preprocessing) == ((140, 196), "fp16", True)
    assert spec.config.head == "metric" and spec.config.max_depth == 20.0
    assert "depth in metres (0..20)" in spec.contract()["output"]["meaning"]
    photo = photo_batch(reference_photos()[1:], (140, 196))[0]
    expected, got = model.infer_image(photo, 140), onnx_model.infer_image(photo, 140)
    assert max_rel_diff(torch.from_numpy(expected), torch.from_numpy(got)) <= TOLERANCES["fp16"]
    assert 0 < got.min() and got.max() < 20.0


def test_requests_that_cannot_be_exported_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = saved(DepthAnything(**TINY), tmp_path / "tiny.ckpt")
    assert export(checkpoint, tmp_path / "x.onnx", "--format", "onnx", "--input-size", "500", "700") == 2
    assert "input size 500 700 (H W): both sides must be positive multiples of 14" in one_line_error(capsys)
    foreign = tmp_path / "model.onnx"
    foreign.write_bytes(b"\x08\x07" * 32)  # an ONNX file is not a checkpoint
    assert export(foreign, tmp_path / "x.onnx", "--format", "onnx") == 2
    assert f"cannot read checkpoint {foreign}" in one_line_error(capsys)
    assert not (tmp_path / "x.onnx").exists()


def test_an_export_that_disagrees_with_pytorch_fails_loudly_and_is_removed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # disparities near 1e5 overflow fp16 (max 65504): the classic half-precision failure
    model = lift_output_(perturb_(DepthAnything(**TINY)), bias=1e5)
    output = tmp_path / "overflow.pt"
    options = ("--format", "torchscript", "--precision", "fp16", "--input-size", "140", "196")  # one small check
    assert export(saved(model, tmp_path / "big.ckpt"), output, *options) == 1
    err = one_line_error(capsys)
    assert "(torchscript, fp16) disagrees with the PyTorch model: max relative difference inf" in err
    assert "exceeds the fp16 tolerance 0.01; removed the file" in err and not output.exists()


def test_infer_backend_onnxruntime_reproduces_torch(tmp_path: Path) -> None:
    """``anydepth infer --backend onnxruntime`` on an exported file writes the maps ``--backend torch`` writes from
    the checkpoint (raw disparity within the export tolerance)."""
    torch.manual_seed(0)
    model = lift_output_(perturb_(DepthAnything(**TINY), std=0.1)).eval()
    model.save_checkpoint(tmp_path / "model.ckpt", format="anydepth")
    model.export(tmp_path / "model.onnx", format="onnx")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(pytest.importorskip("skimage.data").chelsea()).save(photos / "cat.png")
    common = ["--input", str(photos), "--input-size", "70", "--raw-npy", "--device", "cpu"]
    assert main(["infer", "--checkpoint", str(tmp_path / "model.ckpt"), "--output", str(tmp_path / "t"), *common]) == 0
    args = ["--checkpoint", str(tmp_path / "model.onnx"), "--backend", "onnxruntime", "--output", str(tmp_path / "o")]
    assert main(["infer", *args, *common]) == 0
    torch_map, onnx_map = np.load(tmp_path / "t" / "cat.npy"), np.load(tmp_path / "o" / "cat.npy")
    assert np.abs(torch_map - onnx_map).max() <= 1e-4 * np.abs(torch_map).max()


def test_infer_backend_onnxruntime_refuses_a_checkpoint_that_is_not_an_export(tmp_path: Path, capsys) -> None:
    DepthAnything(**TINY).save_checkpoint(tmp_path / "model.ckpt", format="anydepth")
    args = ["infer", "--checkpoint", str(tmp_path / "model.ckpt"), "--backend", "onnxruntime"]
    assert main([*args, "--input", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_infer_backend_tensorrt_without_tensorrt_is_one_line(tiny_onnx, tmp_path: Path, capsys) -> None:
    import onnxruntime

    if "TensorrtExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has TensorRT (the engine itself is tested in test_runtime.py)")
    Image.fromarray(reference_photos()[1]).save(tmp_path / "cat.png")
    args = ["infer", "--checkpoint", str(tiny_onnx.path), "--backend", "tensorrt", "--input", str(tmp_path / "cat.png")]
    assert main([*args, "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "install onnxruntime-gpu and tensorrt" in err, err
    assert main([*args, "--output", str(tmp_path / "o"), "--device", "cpu"]) == 2
    assert "--backend tensorrt runs on a CUDA GPU" in capsys.readouterr().err
