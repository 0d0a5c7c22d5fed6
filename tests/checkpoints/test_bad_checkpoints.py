"""A fuzz corpus of bad checkpoints: every one ends in one ``CheckpointError`` line (exit 2 from the CLI), never a
traceback, never a model that loads wrongly."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from anydepth import CheckpointError, DepthAnything
from anydepth.cli import main

from helpers import TINY


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("hf") / "model"
    DepthAnything(**TINY).save_checkpoint(directory, format="hf")
    return directory


def edited_config(hf_dir: Path, tmp_path: Path, edit: Callable[[dict], object]) -> Path:
    """A copy of the transformers directory whose config.json is ``edit(config)`` (or ``config`` edited in place)."""
    directory = tmp_path / "edited"
    directory.mkdir()
    for file in hf_dir.iterdir():
        (directory / file.name).write_bytes(file.read_bytes())
    config = json.loads((hf_dir / "config.json").read_text())
    edited = edit(config)
    (directory / "config.json").write_text(json.dumps(config if edited is None else edited))
    return directory


CONFIG_EDITS: dict[str, tuple[Callable[[dict], object], str]] = {
    "a list": (lambda c: [], "not a transformers DepthAnything config"),
    "a string": (lambda c: "depth_anything", "not a transformers DepthAnything config"),
    "backbone a list": (lambda c: c.update(backbone_config=[1]), "not a transformers DepthAnything config"),
    "no hidden_size": (lambda c: c["backbone_config"].pop("hidden_size") and None, "missing key 'hidden_size'"),
    "no fusion size": (lambda c: c.pop("fusion_hidden_size") and None, "missing key 'fusion_hidden_size'"),
    "width a string": (lambda c: c["backbone_config"].update(hidden_size="wide"), "wrong type"),
    "neck sizes a number": (lambda c: c.update(neck_hidden_sizes=8), "wrong type"),
    "out_indices out of range": (lambda c: c["backbone_config"].update(out_indices=[1, 2, 3, 99]), "cannot be built"),
    "three out_indices": (lambda c: c["backbone_config"].update(out_indices=[1, 2, 3]), "cannot be built"),
    "heads do not divide the width": (
        lambda c: c["backbone_config"].update(num_attention_heads=5), "cannot be built"),
}  # fmt: skip


@pytest.mark.parametrize("case", CONFIG_EDITS, ids=str)
def test_malformed_transformers_configs(case: str, hf_dir: Path, tmp_path: Path) -> None:
    edit, message = CONFIG_EDITS[case]
    directory = edited_config(hf_dir, tmp_path, edit)
    with pytest.raises(CheckpointError, match=message) as err:
        DepthAnything.from_checkpoint(directory)
    assert "config.json" in str(err.value) or str(directory) in str(err.value)


class Payload:
    """A pickled object whose unpickling would run code."""

    def __reduce__(self) -> tuple:
        return (print, ("pwned",))


def anydepth_file(path: Path, meta: object, state: object = None) -> Path:
    model = DepthAnything(**TINY)
    state = {f"model.{k}": v for k, v in model.state_dict().items()} if state is None else state
    torch.save({"state_dict": state, "anydepth": meta}, path)
    return path


def good_meta() -> dict:
    return {"format_version": 1, "model": DepthAnything(**TINY).config.to_dict(), "prefix": "model."}


def broken_model_entry() -> dict:
    meta = copy.deepcopy(good_meta())
    del meta["model"]["embed_dim"]
    return meta


BAD_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "empty": (lambda p: (p.write_bytes(b""), p)[1], "cannot read checkpoint"),
    "random bytes": (lambda p: (p.write_bytes(bytes(range(256)) * 40), p)[1], "cannot read checkpoint"),
    "truncated": (lambda p: (p.write_bytes(p.with_name("good.pth").read_bytes()[:5000]), p)[1], "cannot read"),
    "malicious pickle": (
        lambda p: (torch.save({"x": Payload()}, p), p)[1], "pickled Python objects that anydepth will not execute"),
    "plain pickle": (lambda p: (p.write_bytes(pickle.dumps([1, 2])), p)[1], "cannot read checkpoint"),
    "a tensor": (lambda p: (torch.save(torch.ones(3), p), p)[1], "not a state dict"),
    "metadata a list": (lambda p: anydepth_file(p, [1]), "unsupported anydepth checkpoint metadata"),
    "metadata version 7": (lambda p: anydepth_file(p, {**good_meta(), "format_version": 7}), "format_version 7"),
    "model entry broken": (lambda p: anydepth_file(p, broken_model_entry()), "malformed model entry"),
    "state_dict a list": (lambda p: anydepth_file(p, good_meta(), [1, 2]), "malformed anydepth checkpoint"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_FILES, ids=str)
def test_bad_checkpoint_files(case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    DepthAnything(**TINY).save_checkpoint(tmp_path / "good.pth", format="anydepth")
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
