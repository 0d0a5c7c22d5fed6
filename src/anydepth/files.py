"""File helpers every stage shares: one atomic, durable JSON write and one sha256 digest."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def file_digest(path: Path) -> tuple[int, str]:
    """(size, sha256 hex) of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return path.stat().st_size, digest.hexdigest()


def atomic_write_json(path: Path, data: dict[str, Any], sort_keys: bool = True) -> None:
    """Atomic, durable JSON write (temporary file, fsync, rename); keys sorted unless ``sort_keys`` is False."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as stream:
        stream.write(json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(tmp, path)


def tree_digest(path: str | os.PathLike) -> str:
    """sha256 of a file, or of a directory's files (relative names and contents, sorted)."""
    path = Path(path)
    if not path.is_dir():
        return file_digest(path)[1]
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{file_digest(file)[1]}\n".encode())
    return digest.hexdigest()
