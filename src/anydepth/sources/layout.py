"""Layout helpers shared by the dataset readers: deterministic listing, keys, error messages and samples.

- ``find_files``, ``listdir``, ``is_image``: deterministic listing (hidden entries skipped).
- ``strip_ext``, ``sanitize_key``, ``unique_keys``, ``stem_index``, ``keyed_items``: keys and items.
- ``examples``, ``describe_dir``, ``layout_error``, ``missing_labels_error``, ``require_found``: ``SourceError``
  messages naming what was expected and what was found.
- ``make_sample``: size checks and the common ``meta`` (source, label_kind, original_size, scale, files).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from anydepth.images import IMAGE_EXTENSIONS
from anydepth.shards.schema import Sample
from anydepth.sources.base import Source, SourceError, SourceItem

Entry = tuple[str, dict[str, str], dict[str, Any]]  # (name, paths, extra) of one item, before keying
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-/]")


# ----------------------------------------------------------------------------------------------- listing


def find_files(directory: str | Path, extensions: Iterable[str], recursive: bool = True) -> list[str]:
    """Files under ``directory`` whose extension (case-insensitive) is in ``extensions``, as sorted POSIX
    paths relative to ``directory``; hidden files and folders (leading ``.``) are skipped."""
    directory = Path(directory)
    wanted = tuple(ext.lower() for ext in extensions)
    found: list[str] = []
    for current, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        rel = Path(current).relative_to(directory)
        for name in files:
            if not name.startswith(".") and name.lower().endswith(wanted):
                found.append((rel / name).as_posix())
    return sorted(found)


def listdir(directory: Path) -> list[str]:
    """Sorted non-hidden entry names of ``directory`` ([] if it does not exist)."""
    if not directory.is_dir():
        return []
    return sorted(name for name in os.listdir(directory) if not name.startswith("."))


def is_image(name: str) -> bool:
    """Whether ``name`` has one of ``IMAGE_EXTENSIONS`` (case-insensitive)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def strip_ext(rel: str) -> str:
    """``a/b/c.jpg`` -> ``a/b/c`` (only the last extension)."""
    suffix = PurePosixPath(rel).suffix
    return rel[: -len(suffix)] if suffix else rel


def sanitize_key(name: str) -> str:
    """Replace every character outside ``[A-Za-z0-9_-/]`` (dots, spaces, non-ASCII) with ``_``."""
    key = _UNSAFE.sub("_", name.replace("\\", "/")).strip("/")
    return re.sub(r"/+", "/", key) or "_"


def unique_keys(names: Sequence[str]) -> list[str]:
    """Sanitized keys for distinct ``names``; names whose sanitized forms collide get a short hash suffix
    of the original name, so keys stay unique and deterministic."""
    keys = [sanitize_key(name) for name in names]
    counts = Counter(keys)
    return [
        key if counts[key] == 1 else f"{key}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"
        for key, name in zip(keys, names)
    ]


def stem_index(rel_paths: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Map extension-less relative path -> relative path; also returns stems present with several extensions."""
    index: dict[str, str] = {}
    clashes: list[str] = []
    for rel in rel_paths:
        stem = strip_ext(rel)
        if stem in index:
            clashes.append(f"{index[stem]} / {rel}")
        else:
            index[stem] = rel
    return index, clashes


def keyed_items(entries: Iterable[Entry]) -> list[SourceItem]:
    """``SourceItem``s from ``(name, paths, extra)`` entries with distinct names (relative paths without
    extension), keyed by ``unique_keys(names)`` and sorted by key."""
    entries = list(entries)
    keys = unique_keys([name for name, _, _ in entries])
    items = [SourceItem(key=key, paths=paths, extra=extra) for key, (_, paths, extra) in zip(keys, entries)]
    return sorted(items, key=lambda item: item.key)


# ----------------------------------------------------------------------------------------------- messages


def examples(names: Sequence[str], limit: int = 5) -> str:
    """``a, b, c (+7 more)``."""
    shown = ", ".join(str(name) for name in names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def describe_dir(path: str | Path, limit: int = 8) -> str:
    """A short listing of a folder's entries for error messages."""
    path = Path(path)
    if not path.exists():
        return f"no folder {path.name}"
    if not path.is_dir():
        return f"{path.name} is a file, not a folder"
    entries = sorted(e.name + ("/" if e.is_dir() else "") for e in path.iterdir() if not e.name.startswith("."))
    if not entries:
        return "an empty folder"
    return f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}: {examples(entries, limit)}"


def layout_error(source: str, root: str | Path, expected: str, found: str | None = None) -> SourceError:
    """A ``SourceError`` naming the source, the root, the expected layout and what was found."""
    found = describe_dir(root) if found is None else found
    return SourceError(f"{source}: dataset root {root}: expected {expected}; found {found}")


def missing_labels_error(source: str, root: Path, expected: str, missing: list[str], total: int) -> SourceError:
    """A ``layout_error`` for ``missing`` of ``total`` images without their label (``expected`` names it)."""
    return layout_error(source, root, expected, f"{len(missing)} of {total} images without one: {examples(missing)}")


def require_found(
    source: Source, root: Path, entries: list[Entry], missing: list[str], total: int, expected: str, nothing: str
) -> list[SourceItem]:
    """``keyed_items(entries)``; a ``SourceError`` if some inputs miss their label or there are none."""
    if missing:
        raise missing_labels_error(source.name, root, expected, missing, total)
    if not entries:
        raise layout_error(source.name, root, nothing)
    return keyed_items(entries)


# ----------------------------------------------------------------------------------------------- samples


def _relative(path: str, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def _hw(array: np.ndarray) -> str:
    return f"{array.shape[0]}x{array.shape[1]} (HxW)"


def make_sample(
    source: Source,
    item: SourceItem,
    image: np.ndarray,
    label: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    sky: np.ndarray | None = None,
    label_kind: str | None = None,
    base: Path | None = None,
    **meta: Any,
) -> Sample:
    """Build a ``Sample``: check that label/mask/sky have the image size (``ValueError`` naming the files
    otherwise) and fill ``meta`` with source, label_kind, original_size, scale 1.0, ``files`` (paths relative
    to ``base``, default the source root), the item's ``extra`` and ``meta``."""
    for field, array in (("label", label), ("mask", mask), ("sky", sky)):
        if array is not None and array.shape[:2] != image.shape[:2]:
            raise ValueError(
                f"{source.name} {item.key}: {field} {item.paths.get(field, '?')} is {_hw(array)} but the image "
                f"{item.paths.get('image', '?')} is {_hw(image)}; labels must match the image size"
            )
    base = source.root if base is None else base
    info: dict[str, Any] = {
        "source": source.name,
        "label_kind": label_kind if label is not None else None,
        "original_size": [int(image.shape[0]), int(image.shape[1])],
        "scale": 1.0,
        "files": {name: _relative(path, base) for name, path in item.paths.items()},
    }
    info.update(item.extra)
    info.update(meta)
    return Sample(key=item.key, image=image, label=label, mask=mask, sky=sky, meta=info)
