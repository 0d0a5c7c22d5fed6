"""A fuzz corpus of bad checkpoints: every one ends in one ``CheckpointError`` line (exit 2 from the CLI), never a
traceback, never a model that loads wrongly."""

from __future__ import annotations

from pathlib import Path

import pytest

from anydepth import CheckpointError, DepthAnything
from anydepth.cli import main

from helpers.fuzz import BAD_FILES, CONFIG_EDITS, edited_config


@pytest.mark.parametrize("case", CONFIG_EDITS, ids=str)
def test_malformed_transformers_configs(case: str, hf_dir: Path, tmp_path: Path) -> None:
    edit, message = CONFIG_EDITS[case]
    directory = edited_config(hf_dir, tmp_path, edit)
    with pytest.raises(CheckpointError, match=message) as err:
        DepthAnything.from_checkpoint(directory)
    assert "config.json" in str(err.value) or str(directory) in str(err.value)


@pytest.mark.parametrize("case", BAD_FILES, ids=str)
def test_bad_checkpoint_files(case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make, message = BAD_FILES[case]
    path = make(tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=message):
        DepthAnything.from_checkpoint(path, version="v2")
    capsys.readouterr()
    assert main(["convert", "--checkpoint", str(path), "--version", "v2", "--format", "anydepth",
                 "--output", str(tmp_path / "out.ckpt")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("anydepth convert: error: ") and "Traceback" not in err and "pwned" not in err
    assert err.count("\n") == 1 and not (tmp_path / "out.ckpt").exists()
