"""Fuzzing the command line: a corpus of bad checkpoints for every command that reads one (``convert``, ``infer``,
``pseudo-label``), and :func:`error_line`, the check that a failure is one error line and no traceback.

``BAD_FILES[case] = (make, message)``: ``make(path)`` writes a bad checkpoint file at ``path`` and returns it; loading
it must raise one ``CheckpointError`` matching ``message`` and naming the file. ``CONFIG_EDITS[case] = (edit,
message)``: ``edited_config(hf_dir, tmp_path, edit)`` copies a transformers directory written by anydepth with its
``config.json`` edited; loading the copy must raise one ``CheckpointError`` matching ``message`` naming the directory
or its config.json. :func:`bad_checkpoint` writes any case of either (:data:`CASES`).
"""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from pathlib import Path

import torch

from anydepth import DepthAnything
from anydepth.cli.common import PROG

from helpers import TINY


class Payload:
    """A pickled object whose unpickling would run code (``print("pwned")``)."""

    def __reduce__(self) -> tuple:
        return (print, ("pwned",))


def anydepth_file(path: Path, meta: object, state: object = None) -> Path:
    """An anydepth-format file with the tiny model's weights (or ``state``) and the metadata ``meta``."""
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


def truncated(path: Path, size: int) -> Path:
    """``path`` cut to its first ``size`` bytes."""
    path.write_bytes(path.read_bytes()[:size])
    return path


def written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def saved(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


BAD_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "empty": (lambda p: written(p, b""), "cannot read checkpoint"),
    "random bytes": (lambda p: written(p, bytes(range(256)) * 40), "cannot read checkpoint"),
    "truncated": (lambda p: truncated(anydepth_file(p, good_meta()), 5000), "cannot read"),
    "malicious pickle": (lambda p: saved(p, {"x": Payload()}), "pickled Python objects that anydepth will not execute"),
    "plain pickle": (lambda p: written(p, pickle.dumps([1, 2])), "cannot read checkpoint"),
    "a tensor": (lambda p: saved(p, torch.ones(3)), "not a state dict"),
    "metadata a list": (lambda p: anydepth_file(p, [1]), "unsupported anydepth checkpoint metadata"),
    "metadata version 7": (lambda p: anydepth_file(p, {**good_meta(), "format_version": 7}), "format_version 7"),
    "model entry broken": (lambda p: anydepth_file(p, broken_model_entry()), "malformed model entry"),
    "state_dict a list": (lambda p: anydepth_file(p, good_meta(), [1, 2]), "malformed anydepth checkpoint"),
}


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


CASES = (*BAD_FILES, *(f"config.json: {case}" for case in CONFIG_EDITS))
"""Every case of both corpora, for ``pytest.mark.parametrize`` with :func:`bad_checkpoint`."""


def bad_checkpoint(case: str, tmp_path: Path, hf_dir: Path) -> tuple[Path, str]:
    """The checkpoint of ``case`` (one of :data:`CASES`) written under ``tmp_path``, and its expected message."""
    if case.startswith("config.json: "):
        edit, message = CONFIG_EDITS[case.removeprefix("config.json: ")]
        return edited_config(hf_dir, tmp_path, edit), message
    make, message = BAD_FILES[case]
    return make(tmp_path / "bad.pth"), message


def error_line(err: str, command: str) -> str:
    """The last line of ``err``, after checking that it is ``anydepth <command>: error: ...``, the only such line, and
    that ``err`` holds no traceback (argparse prints its usage before the error line)."""
    assert "Traceback" not in err and err.endswith("\n"), err
    *before, line = err.splitlines()
    assert line.startswith(f"{PROG} {command}: error: "), err
    assert not any(other.startswith(f"{PROG} {command}: error") for other in before), err
    return line
