"""Crash-safe checkpoint files: a checkpoint on disk is always either the previous complete one or the new one.

Lightning's default save stages the file in ``$TMPDIR`` and moves it; when ``$TMPDIR`` is on another file system
(node-local ``/tmp`` beside a shared run directory, common on clusters) the move becomes truncate-and-copy without
fsync, and a kill during it leaves a 0-byte ``last.ckpt`` that a requeued job cannot resume from.
:class:`AtomicCheckpointIO` writes beside the target instead (``.<name>.<random>.tmp`` in the checkpoint's own
directory), fsyncs the file, renames it over the target (atomic on POSIX within one file system) and fsyncs the
directory, so the rename survives a power cut. Temporary files of saves killed earlier (of any checkpoint name) are
removed by the next save.

Reading: when the requested checkpoint cannot be read (truncated by a pre-anydepth save or a damaged disk), the
newest readable ``*.ckpt`` in the same directory is used instead, with one warning naming both files, so
``--ckpt_path last`` resumes after any crash. Used by every shipped trainer config (``configs/trainer/*.yaml``,
``plugins``). Under FSDP with ``state_dict_type: full`` (configs/trainer/fsdp.yaml) rank 0 writes the full state
through this class; FSDP's sharded format writes a directory through torch.distributed.checkpoint instead, which
this class does not cover.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_warn

from anydepth.checkpoints import CheckpointError

__all__ = ["AtomicCheckpointIO"]


_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")
"""The name of a file :meth:`AtomicCheckpointIO.save_checkpoint` stages: ``.<target name>.<mkstemp's 8>.tmp``."""


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with atomic, durable saves and a fallback to the newest readable checkpoint on load."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        for orphan in path.parent.glob(".*.tmp"):  # left by saves that were killed (the run directory is locked)
            if _TEMPORARY.match(orphan.name):
                orphan.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as stream:
                torch.save(checkpoint, stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_directory(path.parent)

    def load_checkpoint(
        self, path: str | os.PathLike, map_location: Any = None, weights_only: bool | None = None
    ) -> Any:
        path = Path(path)
        kwargs = {} if map_location is None else {"map_location": map_location}
        try:
            return super().load_checkpoint(path, weights_only=weights_only, **kwargs)
        except FileNotFoundError:
            raise CheckpointError(
                f"checkpoint {path} does not exist: give an existing --ckpt_path, or --ckpt_path last to resume "
                "from the run's last.ckpt when it has one"
            ) from None
        except Exception as err:  # torch.load fails on a damaged file with many types (EOFError, RuntimeError ...)
            candidates = sorted(
                (p for p in path.parent.glob("*.ckpt") if p != path), key=lambda p: p.stat().st_mtime, reverse=True
            )
            for candidate in candidates:
                try:
                    checkpoint = super().load_checkpoint(candidate, weights_only=weights_only, **kwargs)
                except Exception:
                    continue
                rank_zero_warn(f"checkpoint {path} is unreadable ({type(err).__name__}); resuming from {candidate}")
                return checkpoint
            text = str(err).strip()
            reason = f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__
            raise CheckpointError(
                f"checkpoint {path} is unreadable ({reason}) and no other readable *.ckpt is in {path.parent}; "
                "start the run without --ckpt_path"
            ) from err
