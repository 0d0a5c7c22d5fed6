"""Writing shards: one shard at a time, atomically (``.tmp``, fsync, rename), then its completion record.

Every stage that writes shards (the builder, pseudo-labeling) goes through :class:`ShardWriter`; a stage resumes by
asking :func:`completed_shard` which shards are intact. Shard ``i`` of a directory is ``shard-{i:06d}.tar`` with
its record ``shard-{i:06d}.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any

from webdataset import TarWriter

from anydepth.files import atomic_write_json, file_digest

SHARD_PATTERN = re.compile(r"^shard-(\d{6})\.(tar|json|tar\.tmp|json\.tmp)$")
_TAR_OPTIONS = dict(user="anydepth", group="anydepth", mode=0o444, mtime=0, encoder=False, format="PAX_FORMAT")


def shard_name(index: int) -> str:
    """``shard-000042.tar`` for chunk 42."""
    return f"shard-{index:06d}.tar"


class ShardWriter:
    """Shard ``index`` of ``out_dir``, written atomically: ``write`` appends webdataset records to
    ``shard-NNNNNN.tar.tmp``; ``finish`` closes, fsyncs and renames it to ``shard-NNNNNN.tar`` (or deletes it when
    nothing was written) and then writes the completion record ``shard-NNNNNN.json`` (``name``, ``index``,
    ``inputs``, ``samples``, ``bytes``, ``sha256``, ``skipped``; what :func:`completed_shard` checks); ``abort``
    deletes the temporary file. A shard file is never half-written."""

    def __init__(self, out_dir: Path, index: int) -> None:
        self.out_dir, self.index, self.name = Path(out_dir), index, shard_name(index)
        self.tmp = self.out_dir / f"{self.name}.tmp"
        self.samples = 0
        self._stream = open(self.tmp, "wb")
        self._writer = TarWriter(self._stream, **_TAR_OPTIONS)

    def write(self, record: dict[str, Any]) -> None:
        self._writer.write(record)
        self.samples += 1

    def finish(self, inputs: int, skipped: list[dict[str, str]]) -> dict[str, Any]:
        """Complete the shard; ``inputs`` items were meant for it, ``skipped`` (``{"input", "reason"}``) were not
        written. Returns the completion record."""
        final = self.out_dir / self.name
        try:
            self._writer.close()  # end-of-archive blocks; the stream stays open
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()
            if self.samples:
                os.replace(self.tmp, final)
            else:
                self.tmp.unlink()
        except BaseException:
            self.abort()
            raise
        size, sha256 = file_digest(final) if self.samples else (0, None)
        completion = {
            "name": self.name,
            "index": self.index,
            "inputs": inputs,
            "samples": self.samples,
            "bytes": size,
            "sha256": sha256,
            "skipped": skipped,
        }
        atomic_write_json(self.out_dir / f"shard-{self.index:06d}.json", completion)
        return completion

    def abort(self) -> None:
        """Close and delete the temporary file; no shard and no completion record are written."""
        with contextlib.suppress(Exception):  # the error that aborts may have broken the tar stream too
            self._writer.close()  # else the tar stream writes to the closed file when garbage-collected
        self._stream.close()
        self.tmp.unlink(missing_ok=True)


def completed_shard(out_dir: Path, index: int, check_sha256: bool = True) -> dict[str, Any] | None:
    """The completion record of shard ``index`` (a :class:`ShardWriter` record) if its shard is intact (size and,
    with ``check_sha256``, sha256 match; no tar for 0 samples), else None (and its files removed). Without
    ``check_sha256`` only the size is compared: cheap enough for terabytes of shards."""
    record_path, tar_path = out_dir / f"shard-{index:06d}.json", out_dir / shard_name(index)
    try:
        record = json.loads(record_path.read_text())
        if record["samples"] == 0:
            tar_path.unlink(missing_ok=True)
            return record
        if check_sha256 and file_digest(tar_path) == (record["bytes"], record["sha256"]):
            return record
        if not check_sha256 and tar_path.stat().st_size == record["bytes"]:
            return record
    except (OSError, ValueError, KeyError, TypeError):
        pass
    record_path.unlink(missing_ok=True)
    tar_path.unlink(missing_ok=True)
    return None
