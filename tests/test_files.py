"""``anydepth.files``: the one atomic JSON write and the one digest every stage uses."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from anydepth.files import atomic_write_json, file_digest, tree_digest


def test_atomic_write_json_replaces_whole_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.json"
    atomic_write_json(path, {"b": 1, "a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1} and path.read_text().endswith("\n")
    fsynced = []
    monkeypatch.setattr("os.fsync", lambda fd: fsynced.append(fd))
    atomic_write_json(path, {"c": 3})
    assert json.loads(path.read_text()) == {"c": 3} and fsynced  # durable before the rename
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # no temporary file left


def test_digests(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.bin").write_bytes(b"x" * 3_000_000)
    (tmp_path / "d" / "sub" / "b.txt").write_text("hello")
    assert file_digest(tmp_path / "d" / "a.bin") == (3_000_000, hashlib.sha256(b"x" * 3_000_000).hexdigest())
    assert tree_digest(tmp_path / "d" / "a.bin") == file_digest(tmp_path / "d" / "a.bin")[1]
    before = tree_digest(tmp_path / "d")
    (tmp_path / "d" / "sub" / "b.txt").rename(tmp_path / "d" / "b.txt")  # same bytes, other name
    assert tree_digest(tmp_path / "d") != before
