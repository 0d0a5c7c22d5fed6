"""One writer per output directory: an advisory file lock held for the whole run.

Two jobs writing one shard directory, pseudo-label directory or training run directory interleave their files
silently; :class:`OutputLock` makes the second one stop at once with one line naming the holder. The lock is
``fcntl.flock`` on ``<directory>/.anydepth.lock``: the operating system releases it when the holder exits or dies
(SIGKILL, node failure on a local file system), so a crash never needs manual cleanup; the file itself stays and
records the last holder (pid, host, command). On network file systems ``flock`` is as reliable as the mount
(NFSv4 and Lustre with ``flock`` enabled support it).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = ["LOCK_NAME", "OutputLock", "OutputLockedError"]

LOCK_NAME = ".anydepth.lock"


class OutputLockedError(RuntimeError):
    """Another live process holds the output directory."""


class OutputLock:
    """``with OutputLock(directory, "shards build"):`` creates ``directory`` if needed and holds it exclusively;
    raises :class:`OutputLockedError` (naming the holder's pid and host) if another process holds it."""

    def __init__(self, directory: str | os.PathLike, purpose: str) -> None:
        self.path = Path(directory) / LOCK_NAME
        self.purpose = purpose
        self._stream: IO[str] | None = None

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        stream = open(self.path, "a+")
        try:
            fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            stream.seek(0)
            holder = stream.read().strip()
            stream.close()
            raise OutputLockedError(
                f"{self.path.parent} is in use by another {self.purpose} ({_describe(holder)}); wait for it to end, "
                "or write into another directory"
            ) from None
        stream.seek(0)
        stream.truncate()
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose,
                  "command": " ".join(sys.argv), "since": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
        stream.write(json.dumps(holder) + "\n")
        stream.flush()
        self._stream = stream
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._stream is not None:
            fcntl.flock(self._stream.fileno(), fcntl.LOCK_UN)
            self._stream.close()
            self._stream = None


def _describe(holder: str) -> str:
    try:
        info = json.loads(holder)
        return f"pid {info['pid']} on {info['host']} since {info['since']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
