"""Batching at scale: images of mixed sizes share forward passes by network size and give the maps one-by-one
inference gives (PyTorch and onnxruntime), reads run ahead in threads in order, ``--compile`` keeps the maps."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import lightning.pytorch  # noqa: F401  (before the CLI's stderr is captured)
import numpy as np
import pytest
import torch
from PIL import Image

from anydepth.batching import bucketed, network_size, predict_batch, read_ahead
from anydepth.cli import main
from anydepth.export import OnnxDepthModel
from anydepth.inference import SkippedInputWarning, run_inference
from anydepth.models import DepthAnything
from anydepth.models.preprocess import lower_bound_size

from helpers import TINY, lift_output_, max_rel_diff, perturb_
from helpers.fabricate import tiny_checkpoint
from helpers.fuzz import error_line

INPUT_SIZE = 56
# (H, W) -> network size at 56: three sizes resize to 56 x 84, two to 84 x 56, one to 56 x 56
SIZES = [(60, 90), (70, 105), (64, 100), (90, 60), (100, 64), (56, 56), (60, 90)]


@pytest.fixture(scope="module")
def model() -> DepthAnything:
    torch.manual_seed(4)
    return lift_output_(perturb_(DepthAnything(**TINY, version="v2"))).eval()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Smooth random photos of ``SIZES`` (PNG, lossless) and one file that is not an image."""
    root = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(SIZES):
        coarse = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((w, h), Image.BICUBIC).save(root / f"{i}.png")
    (root / "3b.png").write_bytes(b"not a png")
    return root


def test_the_sizes_make_mixed_buckets(model: DepthAnything) -> None:
    keys = [network_size(model, h, w, INPUT_SIZE) for h, w in SIZES]
    assert keys == [lower_bound_size(h, w, INPUT_SIZE) for h, w in SIZES]
    assert keys.count((56, 84)) == 4 and keys.count((84, 56)) == 2 and keys.count((56, 56)) == 1


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_mixed_sizes_batch_by_network_size_and_match_one_by_one(
    backend: str, model: DepthAnything, folder: Path, tmp_path: Path
) -> None:
    runner = model if backend == "torch" else OnnxDepthModel(model.export(tmp_path / "tiny.onnx").path)
    forwards: list[int] = []
    hook = model.register_forward_hook(lambda _m, args, _o: forwards.append(args[0].shape[0]))
    try:
        with pytest.warns(SkippedInputWarning, match="3b.png"):
            batched = run_inference(runner, folder, tmp_path / "b", INPUT_SIZE, batch_size=4, raw_npy=True)
        one_by_one = run_inference(
            runner, folder, tmp_path / "s", INPUT_SIZE, batch_size=1, raw_npy=True, num_workers=0
        )
    finally:
        hook.remove()
    assert batched.written == one_by_one.written == len(SIZES)
    assert [p.name for p, _ in batched.skipped] == [p.name for p, _ in one_by_one.skipped] == ["3b.png"]
    if backend == "torch":  # 4 at 56 x 84 (three image sizes) in one pass, then the partial buckets
        assert forwards[:1] == [4] and sorted(forwards) == [1, 1, 1, 1, 1, 1, 1, 1, 2, 4]
    for i, (h, w) in enumerate(SIZES):
        got, expected = (np.load(tmp_path / run / f"{i}.npy") for run in ("b", "s"))
        assert got.shape == (h, w) and got.dtype == np.float32
        assert max_rel_diff(torch.from_numpy(expected), torch.from_numpy(got)) <= 1e-5, i
        assert (tmp_path / "b" / f"{i}.png").is_file()


def test_predict_batch_equals_infer_image_per_image(model: DepthAnything) -> None:
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in SIZES[:3]]
    model.train()
    together = predict_batch(model, images, INPUT_SIZE)
    assert model.training  # the mode is restored
    model.eval()
    for image, got in zip(images, together):
        expected = model.infer_image(image, INPUT_SIZE)
        assert max_rel_diff(torch.from_numpy(expected), torch.from_numpy(got)) <= 1e-5
    with pytest.raises(ValueError, match="image 1: expected an H x W x 3 uint8"):
        predict_batch(model, [images[0], images[1].astype(np.float32)], INPUT_SIZE)


def test_bucketed_fills_batches_and_bounds_the_waiting_items() -> None:
    items = ["a1", "b1", "a2", "c1", "a3", "b2", "b3", "c2"]
    first = lambda s: s[0]  # noqa: E731
    assert list(bucketed(items, first, 3, max_waiting=100)) == [["a1", "a2", "a3"], ["b1", "b2", "b3"], ["c1", "c2"]]
    # at most 2 waiting: the bucket holding the oldest item leaves early
    early = list(bucketed(items, first, 3, max_waiting=2))
    assert early == [["a1", "a2"], ["b1"], ["c1"], ["a3"], ["b2", "b3"], ["c2"]]
    assert list(bucketed(items, first, 1, max_waiting=0)) == [[i] for i in items]
    assert list(bucketed([], first, 2, max_waiting=4)) == []
    with pytest.raises(ValueError, match="batch_size >= 1"):
        list(bucketed(items, first, 0, max_waiting=4))


def test_read_ahead_keeps_order_runs_in_threads_and_stays_bounded() -> None:
    threads: set[str] = set()
    started: list[int] = []

    def read(i: int) -> int:
        started.append(i)
        threads.add(threading.current_thread().name)
        time.sleep(0.01 * (i % 3))  # later items may finish first
        if i == 7:
            raise OSError("disk gone")
        return i * i

    ahead = read_ahead(read, range(10), workers=3, depth=4)
    assert [next(ahead) for _ in range(3)] == [(0, 0), (1, 1), (2, 4)]
    assert max(started) <= 2 + 4  # never more than depth items beyond the consumed ones
    assert [next(ahead) for _ in range(4)] == [(3, 9), (4, 16), (5, 25), (6, 36)]
    with pytest.raises(OSError, match="disk gone"):
        next(ahead)
    assert threads and all(name.startswith("anydepth-read") for name in threads)
    threads.clear()
    assert list(read_ahead(lambda i: -i, range(3), workers=0, depth=1)) == [(0, 0), (1, -1), (2, -2)]


def test_infer_option_errors_are_one_line(tmp_path: Path, folder: Path, capsys: pytest.CaptureFixture) -> None:
    tiny_checkpoint(tmp_path / "tiny.pth")
    base = ["infer", "--checkpoint", str(tmp_path / "tiny.pth"), "--input", str(folder), "--output", str(tmp_path)]
    assert main([*base, "--num-workers", "-1"]) == 2
    assert "--num-workers must be 0" in error_line(capsys.readouterr().err, "infer")
    assert main([*base, "--compile", "--backend", "onnxruntime"]) == 2
    assert "--compile compiles the PyTorch model" in error_line(capsys.readouterr().err, "infer")


@pytest.mark.slow
def test_compile_gives_the_same_maps(tmp_path: Path, folder: Path) -> None:
    """``--compile`` (torch.compile, inductor on CPU: about a minute for one network size here) writes the maps eager
    PyTorch writes."""
    dynamo = pytest.importorskip("torch._dynamo")
    if not dynamo.is_dynamo_supported():
        pytest.skip("torch.compile is not supported on this Python / PyTorch")
    tiny_checkpoint(tmp_path / "tiny.pth")
    same_size = tmp_path / "in"  # one network size, one batch: one compilation
    same_size.mkdir()
    for i in (0, 1, 2):
        (same_size / f"{i}.png").write_bytes((folder / f"{i}.png").read_bytes())
    common = ["--checkpoint", str(tmp_path / "tiny.pth"), "--input", str(same_size), "--device", "cpu", "--raw-npy"]
    common += ["--input-size", str(INPUT_SIZE), "--batch-size", "3"]
    assert main(["infer", *common, "--output", str(tmp_path / "eager")]) == 0
    assert main(["infer", *common, "--output", str(tmp_path / "compiled"), "--compile"]) == 0
    for i in (0, 1, 2):
        eager, compiled = (np.load(tmp_path / run / f"{i}.npy") for run in ("eager", "compiled"))
        assert max_rel_diff(torch.from_numpy(eager), torch.from_numpy(compiled)) <= 1e-4
