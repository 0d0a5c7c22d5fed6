"""``anydepth eval`` fuzz corpus: every bad checkpoint, data root and option value is one error line, exit code 2,
no traceback (the evaluation itself is tested in tests/evaluation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from anydepth import DepthAnything
from anydepth.cli import main

from helpers import TINY
from helpers.fuzz import CASES, bad_checkpoint, error_line


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("eval") / "tiny.ckpt"
    DepthAnything(**TINY).save_checkpoint(path, format="anydepth")
    return path


def run_eval(checkpoint: Path, data_root: Path, *extra: str) -> int:
    args = ["eval", "--checkpoint", str(checkpoint), "--data-root", str(data_root), "--benchmarks", "nyuv2"]
    return main([*args, "--num-workers", "0", "--accelerator", "cpu", *extra])


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_checkpoints(case: str, hf_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint, message = bad_checkpoint(case, tmp_path, hf_dir)
    (tmp_path / "data").mkdir()
    assert run_eval(checkpoint, tmp_path / "data") == 2
    line = error_line(capsys.readouterr().err, "eval")
    assert checkpoint.name in line or "config.json" in line, line


@pytest.mark.parametrize(
    ("extra", "make", "named"),
    [
        ([], "missing", "nyuv2"),  # no data root at all
        ([], "empty", "nyuv2"),  # a data root without the benchmark's shards
        (["--benchmarks", "no-such-benchmark"], "empty", "no-such-benchmark"),
        (["--input-size", "0"], "empty", "input"),
        (["--batch-size", "0"], "empty", "batch"),
        (["--devices", "0"], "empty", "devices"),
        (["--protocols", "{tmp}/missing.yaml"], "empty", "missing.yaml"),
        (["--protocols", "{tmp}/bad.yaml"], "empty", "bad.yaml"),
    ],
)
def test_bad_data_and_options(
    extra: list[str], make: str, named: str, good_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "data"
    if make == "empty":
        root.mkdir()
    (tmp_path / "bad.yaml").write_text("protocols: [unclosed\n")
    assert run_eval(good_checkpoint, root, *(arg.format(tmp=tmp_path) for arg in extra)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and named in err.lower(), err
