"""File helpers every stage shares: atomic writes (JSON, or any file through a temporary path) and sha256 digests."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
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


@contextlib.contextmanager
def written_atomically(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (hidden name, same suffix, so writers infer the format) to write ``path``'s
    content to: renamed onto ``path`` when the block ends without an exception, removed otherwise, so ``path`` is
    complete or absent (an interrupted run never leaves a truncated file under the final name)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def tree_digest(path: str | os.PathLike) -> str:
    """sha256 of a file, or of a directory's files (relative names and contents, sorted)."""
    path = Path(path)
    if not path.is_dir():
        return file_digest(path)[1]
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{file_digest(file)[1]}\n".encode())
    return digest.hexdigest()
