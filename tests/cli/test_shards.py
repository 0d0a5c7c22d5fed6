"""``anydepth shards build`` on broken command lines and broken data, run in-process: every usage error is exit 2
and one ``anydepth shards build: error: ...`` line naming the option or path; unusable inputs are skipped with a
warning naming each (exit 0), or exit 1 when nothing was usable; never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from anydepth.cli import main
from anydepth.locks import LOCK_NAME, OutputLock
from anydepth.shards.manifest import Manifest
from anydepth.shards.verify import verify_shards

from helpers import REPO_ROOT
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


# ---------------------------------------------------------------- builds split into parts


def rgbd(root: Path, n: int, depth: float | None = None) -> Path:
    """``rgbd-folder`` of ``n`` images with ``.npy`` depths (``ramp`` by default, else all ``depth``)."""
    for i in range(n):
        write_image(root / "images" / f"k{i}.png", i)
        write_npy(root / "depth" / f"k{i}.npy", ramp(1.0 + i) if depth is None else np.full_like(ramp(), depth))
    return root


def merge(capsys: pytest.CaptureFixture[str], directory: Path) -> tuple[int, str, str]:
    """``anydepth shards merge DIRECTORY``: (exit code, stdout, stderr)."""
    code = main(["shards", "merge", str(directory)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def test_split_build_and_merge(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Each part exits 0 with its own counts; the last one writes manifest.json; ``shards merge`` names a missing
    part in one error line (exit 2), merges complete parts (exit 0), and exits 1 when no input was usable."""
    out, args = tmp_path / "out", ("--source", "rgbd-folder", "--samples-per-shard", "2", "--num-parts", "2")
    args += ("--root", str(rgbd(tmp_path / "rgbd", 6)))
    assert build(capsys, out, *args, "--part", "0")[:2] == (0, f"part 0 of 2: wrote 2 shards (4 samples) to {out}\n")
    assert merge(capsys, out) == (
        2,
        "",
        f"anydepth shards merge: error: cannot merge {out}: part 1 of 2 has not finished (no parts/part-1-of-2.json): "
        "run anydepth shards build ... --num-parts 2 --part 1 --resume\n",
    )
    with OutputLock(out, "shards build"):
        assert "in use by a single-node shards build (pid" in usage_error(capsys, out, *args, "--part", "1")
    code, stdout, stderr = build(capsys, out, *args, "--part", "1")
    assert (code, stdout) == (0, f"part 1 of 2: wrote 1 shard (2 samples) to {out}\n")
    assert f"anydepth shards build: INFO: all 2 parts done: wrote {out / 'manifest.json'}\n" in stderr
    assert merge(capsys, out) == (0, f"merged the parts of {out}: manifest.json lists 3 shards (6 samples)\n", "")
    assert verify_shards(out).ok

    assert "part must be in 0..1 for num_parts 2, got 2" in usage_error(capsys, tmp_path / "x", *args, "--part", "2")
    code, _, stderr = merge(capsys, tmp_path / "rgbd")
    assert code == 2 and "holds no part builds (no parts/part-I-of-N.json)" in stderr
    nan = ("--root", str(rgbd(tmp_path / "nan", 2, depth=np.nan)), "--num-parts", "2")
    for part in ("0", "1"):
        assert build(capsys, tmp_path / "empty", "--source", "rgbd-folder", *nan, "--part", part)[0] == 0
    code, stdout, stderr = merge(capsys, tmp_path / "empty")
    assert code == 1 and stdout.startswith(f"merged the parts of {tmp_path / 'empty'}: manifest.json lists 0 shards")
    assert stderr == "anydepth shards merge: error: no input was usable; see the skipped inputs above\n"


@pytest.mark.slow
def test_three_part_processes_at_once_write_the_single_node_build(tmp_path: Path) -> None:
    """Three ``anydepth shards build --num-parts 3 --part I`` processes in one directory at once: all succeed, one
    merges, and the directory holds the single-node build's shard files and manifest."""
    common = ["--source", "rgbd-folder", "--root", str(rgbd(tmp_path / "rgbd", 9)), "--samples-per-shard", "2"]
    single, split = tmp_path / "single", tmp_path / "split"
    assert main(["shards", "build", *common, "--out", str(single)]) == 0
    command = [
        sys.executable,
        "-m",
        "anydepth.cli",
        "shards",
        "build",
        *common,
        "--out",
        str(split),
        "--num-parts",
        "3",
    ]
    runs = [
        subprocess.Popen([*command, "--part", str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(3)
    ]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    assert sum("INFO: all 3 parts done" in stderr for _, stderr in outputs) == 1
    assert Manifest.load(split).to_dict() == Manifest.load(single).to_dict()
    shards = sorted(p.name for p in single.glob("shard-*"))
    assert len(shards) == 10 and sorted(p.name for p in split.glob("shard-*")) == shards
    assert all((single / name).read_bytes() == (split / name).read_bytes() for name in shards)


def test_slurm_array_script_builds_its_part_with_resume(tmp_path: Path) -> None:
    """configs/slurm/shards.sbatch: task I of an N-task array runs part I of N with --resume, the script's arguments
    last; outside an array it stops with a message."""
    script = REPO_ROOT / "configs" / "slurm" / "shards.sbatch"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "#SBATCH --array=0-7" in text and "#SBATCH --requeue" in text and "anydepth shards merge" in text
    fake = tmp_path / "anydepth"
    fake.write_text('#!/bin/bash\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "SLURM_SUBMIT_DIR": str(tmp_path), "SLURM_CPUS_PER_TASK": "16"}
    env.update(SOURCE="images", ROOT="/data/photos", NAME="photos", ANYDEPTH=str(fake))
    array = {"SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4"}
    run = subprocess.run(
        ["bash", str(script), "--max-side", "1024"], env={**env, **array}, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "job 7_2 (restart 0): part 2 of 4, images /data/photos -> data_shards/photos",
        *("shards", "build", "--source", "images", "--out", "data_shards/photos", "--workers", "16"),
        *("--root", "/data/photos", "--num-parts", "4", "--part", "2", "--resume", "--max-side", "1024"),
    ]
    run = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert run.returncode != 0 and "submit as an array job" in run.stderr
