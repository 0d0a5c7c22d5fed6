"""Layout helpers: keys, listing and the ``SourceError`` messages the readers share."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from anydepth.sources import SourceError
from anydepth.sources.folders import ImageFolderSource
from anydepth.sources.layout import is_image, listdir, missing_labels_error, require_found, sanitize_key, unique_keys

KEY = re.compile(r"^[A-Za-z0-9_\-/]+$")


def test_keys_are_sanitized_and_unique() -> None:
    assert sanitize_key("a b/c.d-e.jpg") == "a_b/c_d-e_jpg"
    keys = unique_keys(["x.jpg", "x_jpg", "y.png"])
    assert len(set(keys)) == 3 and keys[2] == "y_png" and all(KEY.match(k) for k in keys)
    assert unique_keys(["x.jpg", "x_jpg"]) == unique_keys(["x.jpg", "x_jpg"])


def test_listing_skips_hidden_entries(tmp_path: Path) -> None:
    for name in ("b.JPG", "a.png", ".hidden.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert listdir(tmp_path) == ["a.png", "b.JPG", "notes.txt"]
    assert listdir(tmp_path / "absent") == []
    assert [name for name in listdir(tmp_path) if is_image(name)] == ["a.png", "b.JPG"]


def test_missing_labels_and_nothing_found_messages(tmp_path: Path) -> None:
    error = missing_labels_error("kind", tmp_path, "a label per image", ["a.png", "b.png"], 3)
    found = "2 of 3 images without one: a.png, b.png"
    assert str(error) == f"kind: dataset root {tmp_path}: expected a label per image; found {found}"
    source = ImageFolderSource(tmp_path)
    with pytest.raises(SourceError, match=r"expected images; found an empty folder"):
        require_found(source, tmp_path, [], [], 0, "a label per image", "images")
    entries = [("b", {"image": "b.png"}, {}), ("a.x", {"image": "a.x.png"}, {})]
    assert [item.key for item in require_found(source, tmp_path, entries, [], 2, "", "")] == ["a_x", "b"]
