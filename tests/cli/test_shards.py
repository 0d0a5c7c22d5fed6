"""``anydepth shards build`` on broken command lines and broken data, run in-process: every usage error is exit 2
and one ``anydepth shards build: error: ...`` line naming the option or path; unusable inputs are skipped with a
warning naming each (exit 0), or exit 1 when nothing was usable; never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from anydepth.cli import main
from anydepth.locks import LOCK_NAME, OutputLock
from anydepth.shards.manifest import Manifest
from anydepth.shards.verify import verify_shards

from helpers.fabricate import ramp, write_image, write_npy

PREFIX = "anydepth shards build: error: "


def build(capsys: pytest.CaptureFixture[str], out: Path, *args: str) -> tuple[int, str, str]:
    """``anydepth shards build ARGS --out OUT``: (exit code, stdout, stderr)."""
    code = main(["shards", "build", *args, "--out", str(out)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def usage_error(capsys: pytest.CaptureFixture[str], out: Path, *args: str) -> str:
    """The one error line of a build that must fail with exit code 2 (and create no ``out``)."""
    existed = out.exists()
    code, stdout, stderr = build(capsys, out, *args)
    assert (code, stdout) == (2, "") and stderr.startswith(PREFIX) and stderr.count("\n") == 1, stderr
    assert out.exists() == existed
    return stderr


def photos(root: Path) -> Path:
    """``images`` root: a 20 x 30 photo, random bytes named .jpg, and a 10 x 12 photo."""
    write_image(root / "good.png", 1)
    (root / "bad.jpg").write_bytes(np.random.default_rng(0).bytes(2048))
    write_image(root / "small.png", 2, h=10, w=12)
    return root


def test_missing_or_empty_root_unknown_source_and_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out, missing, empty = tmp_path / "out", tmp_path / "missing", tmp_path / "empty"
    empty.mkdir()
    err = usage_error(capsys, out, "--source", "images", "--root", str(missing))
    assert f"dataset root {missing} does not exist" in err
    err = usage_error(capsys, out, "--source", "images", "--root", str(empty))
    assert f"{empty}: expected image files" in err and err.endswith("found an empty folder\n")
    assert "unknown source kind 'nope'" in usage_error(capsys, out, "--source", "nope", "--root", str(empty))
    root = photos(tmp_path / "photos")
    for value in ("0", "-3"):
        assert f"min_side must be at least 1, got {value}" in usage_error(
            capsys, out, "--source", "images", "--root", str(root), "--min-side", value
        )
    assert "max_side 8 is below min_side 14" in usage_error(
        capsys, out, "--source", "images", "--root", str(root), "--max-side", "8"
    )
    out.write_text("a file")
    assert f"{out} exists and is not a directory" in usage_error(capsys, out, "--source", "images", "--root", str(root))
    assert out.read_text() == "a file"


def test_root_is_required_except_for_demo_sources(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    err = usage_error(capsys, tmp_path / "out", "--source", "rgbd-folder")
    assert err == f"{PREFIX}--source rgbd-folder reads a dataset root: pass --root DIR\n"
    code, stdout, _ = build(capsys, tmp_path / "demo", "--source", "demo-eval")
    assert code == 0 and stdout == f"wrote 1 shard (1 sample) to {tmp_path / 'demo'}\n"
    assert Manifest.load(tmp_path / "demo").extra["root"] is None and verify_shards(tmp_path / "demo").ok


def test_corrupt_and_too_small_images_are_skipped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = photos(tmp_path / "photos")
    code, stdout, stderr = build(capsys, tmp_path / "out", "--source", "images", "--root", str(root))
    assert code == 0 and stdout.startswith(f"wrote 1 shard (1 sample) to {tmp_path / 'out'}; skipped 2 unusable")
    warnings = sorted(line for line in stderr.splitlines() if "WARNING" in line)
    assert len(warnings) == 2
    assert warnings[0].startswith("anydepth shards build: WARNING: skipped bad_jpg: UnidentifiedImageError: ")
    assert str(root / "bad.jpg") in warnings[0]
    assert warnings[1] == (
        "anydepth shards build: WARNING: skipped small_png: SampleError: sample 'small_png': "
        "image 10x12 (H x W) is smaller than --min-side 14"
    )
    assert [s["input"] for s in Manifest.load(tmp_path / "out").skipped] == ["bad_jpg", "small_png"]

    code, _, _ = build(capsys, tmp_path / "low", "--source", "images", "--root", str(root), "--min-side", "10")
    assert code == 0 and Manifest.load(tmp_path / "low").num_samples == 2

    (root / "good.png").unlink()
    code, _, stderr = build(capsys, tmp_path / "none", "--source", "images", "--root", str(root))
    assert code == 1 and stderr.endswith(f"{PREFIX}no input was usable; see the reasons above\n")


def test_corrupt_and_all_nan_labels_are_skipped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "rgbd"
    for key in ("good", "nan", "broken"):
        write_image(root / "images" / f"{key}.png")
    write_npy(root / "depth" / "good.npy", ramp())
    write_npy(root / "depth" / "nan.npy", np.full_like(ramp(), np.nan))
    (root / "depth" / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    code, stdout, stderr = build(capsys, tmp_path / "out", "--source", "rgbd-folder", "--root", str(root))
    assert code == 0 and "wrote 1 shard (1 sample)" in stdout and "skipped 2 unusable inputs: broken (" in stdout
    assert "skipped nan: SampleError: sample 'nan': label has no valid pixel" in stderr
    assert "WARNING: skipped broken: " in stderr
    manifest = Manifest.load(tmp_path / "out")
    assert [s["input"] for s in manifest.skipped] == ["broken", "nan"] and verify_shards(tmp_path / "out").ok


def test_a_second_build_into_the_same_directory_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """While one build holds its output directory, another (``make shards-demo`` run twice at once) stops with one
    line naming the holder, and touches nothing."""
    out = tmp_path / "out"
    with OutputLock(out, "shards build"):
        err = usage_error(capsys, out, "--source", "demo-eval", "--root", str(tmp_path), "--resume", "--workers", "1")
    assert f"in use by another shards build (pid {os.getpid()}" in err
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]


def test_unusable_sky_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A missing, empty or non-segmentation (a BERT with a "sky" label) ``--sky-model`` directory is one error line
    naming it, before any output."""
    from transformers import BertConfig

    root, out = photos(tmp_path / "photos"), tmp_path / "out"
    missing, empty, bert = tmp_path / "missing", tmp_path / "empty", tmp_path / "bert"
    empty.mkdir()
    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, id2label={0: "sky"}).save_pretrained(bert)
    args = ("--source", "images", "--root", str(root), "--sky-model")
    assert usage_error(capsys, out, *args, str(missing)) == (
        f"{PREFIX}--sky-model {missing}: not a directory (expected a transformers model folder)\n"
    )
    for directory in (empty, bert):
        err = usage_error(capsys, out, *args, str(directory))
        assert err.startswith(f"{PREFIX}--sky-model {directory}: cannot load a semantic segmentation model (")
    assert "sky batch size must be at least 1, got 0" in usage_error(
        capsys, out, *args, str(bert), "--sky-batch-size", "0"
    )
