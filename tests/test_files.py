"""``anydepth.files``: the atomic writes and the digests every stage uses."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from anydepth.files import atomic_write_json, file_digest, tree_digest, written_atomically


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


def test_written_atomically_replaces_on_success_and_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "map.png"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="killed"):
        with written_atomically(path) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".png" and tmp.name.startswith(".")
            tmp.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["map.png"]
    with written_atomically(path) as tmp:
        tmp.write_bytes(b"new")
        assert path.read_bytes() == b"old"  # the final name changes only at the end
    assert path.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["map.png"]
