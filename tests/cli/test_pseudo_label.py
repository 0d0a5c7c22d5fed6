"""``anydepth pseudo-label`` as a user meets it, in process: one writer per output directory (the output lock), and
every bad checkpoint, input or option is exit 2 with one error line naming it, no traceback, nothing written."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from anydepth.cli import main
from anydepth.locks import LOCK_NAME, OutputLock
from anydepth.shards.manifest import Manifest
from anydepth.sources.build import build_shards

from helpers.fabricate import tiny_checkpoint, write_image
from helpers.fuzz import CASES, bad_checkpoint, error_line

FAST = ["--input-size", "28", "--num-workers", "0", "--accelerator", "cpu", "--devices", "1"]


@pytest.fixture(scope="module")
def teacher_and_shards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny teacher checkpoint and unlabeled shards of two small images (one per shard)."""
    tmp = tmp_path_factory.mktemp("pseudo-cli")
    for i in range(2):
        write_image(tmp / "images" / f"img{i}.png", seed=i, h=30, w=42)
    build_shards("images", tmp / "images", tmp / "unlabeled", samples_per_shard=1)
    tiny_checkpoint(tmp / "teacher.ckpt")
    return tmp / "teacher.ckpt", tmp / "unlabeled"


def pseudo_label(checkpoint: Path, inputs: Path, out: Path) -> int:
    return main(["pseudo-label", *FAST, *options(checkpoint, inputs, out)])


# ---------------------------------------------------------------- the output lock


def test_a_locked_output_directory_is_refused_and_a_run_releases_its_lock(
    teacher_and_shards: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher, shards = teacher_and_shards
    out = tmp_path / "pseudo"
    with OutputLock(out, "pseudo-label"):  # another open file description: flock conflicts even in this process
        assert pseudo_label(teacher, shards, out) == 2
        line = error_line(capsys.readouterr().err, "pseudo-label")
        assert f"{out} is in use by another pseudo-label (pid {os.getpid()} on " in line
        assert [p.name for p in out.iterdir()] == [LOCK_NAME]  # refused before writing anything
    assert pseudo_label(teacher, shards, out) == 0
    with OutputLock(out, "check"):  # released at the end of the run
        pass
    assert pseudo_label(teacher, shards, out) == 0  # a resume: nothing left to do
    assert "wrote 2 pseudo-labeled samples in 2 shards" in capsys.readouterr().err
    assert Manifest.load(out).num_samples == 2


# ---------------------------------------------------------------- fuzz


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_checkpoints(
    case: str, teacher_and_shards, hf_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint, message = bad_checkpoint(case, tmp_path, hf_dir)
    assert pseudo_label(checkpoint, teacher_and_shards[1], tmp_path / "out") == 2
    captured = capsys.readouterr()
    line = error_line(captured.err, "pseudo-label")
    assert re.search(message, line) and str(checkpoint) in line and "pwned" not in captured.out
    assert not (tmp_path / "out").exists()


def folder(path: Path, **files: str) -> Path:
    path.mkdir()
    for name, content in files.items():
        (path / name).write_text(content)
    return path


def loose(tmp_path: Path, shards: Path) -> str:
    """A pattern of copies of the shards without their manifest (so without sample counts)."""
    directory = folder(tmp_path / "loose")
    for shard in shards.glob("*.tar"):
        (directory / shard.name).write_bytes(shard.read_bytes())
    return f"{directory}/*.tar"


def options(checkpoint: Path | None, inputs: Path | str, out: Path, *extra: str) -> list[str]:
    return [
        *(["--checkpoint", str(checkpoint)] if checkpoint else []),
        "--input",
        str(inputs),
        "--out",
        str(out),
        *extra,
    ]


# case -> (options(tmp_path, teacher, shards), message); the output directory tmp_path / "out" must not appear
USAGE_ERRORS: dict[str, tuple[Callable[[Path, Path, Path], list[str]], str]] = {
    "missing checkpoint": (lambda t, c, s: options(t / "missing.pth", s, t / "out"), "missing.pth does not exist"),
    "no checkpoint option": (lambda t, c, s: options(None, s, t / "out"), "required: --checkpoint"),
    "missing shard directory": (lambda t, c, s: options(c, t / "missing", t / "out"), "missing does not exist"),
    "empty shard directory": (lambda t, c, s: options(c, folder(t / "e"), t / "out"), "e/manifest.json"),
    "garbage manifest": (
        lambda t, c, s: options(c, folder(t / "bad", **{"manifest.json": "{oops"}), t / "out"), "bad/manifest.json"),
    "shards without a manifest": (lambda t, c, s: options(c, loose(t, s), t / "out"), "have no sample count"),
    "pattern matching nothing": (lambda t, c, s: options(c, f"{t}/*.tar", t / "out"), "matches no file"),
    "input size 0": (lambda t, c, s: options(c, s, t / "out", "--input-size", "0"), "input_size must be at least"),
    "input size abc": (lambda t, c, s: options(c, s, t / "out", "--input-size", "abc"), "argument --input-size"),
    "batch size 0": (lambda t, c, s: options(c, s, t / "out", "--batch-size", "0"), "batch_size must be at least 1"),
    "negative workers": (lambda t, c, s: options(c, s, t / "out", "--num-workers", "-1"), "num_workers must be >= 0"),
    "zero devices": (lambda t, c, s: options(c, s, t / "out", "--devices", "0"), "argument --devices"),
    "zero nodes": (lambda t, c, s: options(c, s, t / "out", "--num-nodes", "0"), "num_nodes"),
    "unknown strategy": (lambda t, c, s: options(c, s, t / "out", "--strategy", "bogus"), "strategy='bogus'"),
    "output a file": (lambda t, c, s: options(c, s, s / "manifest.json"), "manifest.json exists and is not"),
    "output the input": (lambda t, c, s: options(c, s, s), "holds shards not written by anydepth pseudo-label"),
}  # fmt: skip


@pytest.mark.parametrize("case", USAGE_ERRORS, ids=str)
def test_usage_errors(case: str, teacher_and_shards, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make, message = USAGE_ERRORS[case]
    assert main(["pseudo-label", *FAST, *make(tmp_path, *teacher_and_shards)]) == 2
    line = error_line(capsys.readouterr().err, "pseudo-label")
    assert message in line, line
    assert not (tmp_path / "out").exists()
