"""``AtomicCheckpointIO``: a killed save never leaves a damaged checkpoint, and a damaged one is skipped on resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from anydepth.training.checkpoint_io import AtomicCheckpointIO

SAVER = """
import sys, torch
from anydepth.training.checkpoint_io import AtomicCheckpointIO
io, path, step = AtomicCheckpointIO(), sys.argv[1], 0
print("ready", flush=True)
while True:
    step += 1
    io.save_checkpoint({"step": step, "weights": torch.full((2_000_000,), float(step))}, path)
"""


def test_save_and_load_round_trip_leaves_no_temporary_file(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, tmp_path / "run" / "last.ckpt")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["last.ckpt"]
    assert io.load_checkpoint(tmp_path / "run" / "last.ckpt")["step"] == 1


def test_a_failing_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)

    def disk_full(obj: object, stream: object) -> None:
        stream.write(b"partial")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert io.load_checkpoint(path)["step"] == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_an_unreadable_checkpoint_falls_back_to_the_newest_readable_one(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 10}, tmp_path / "step-10.ckpt")
    io.save_checkpoint({"step": 20}, tmp_path / "step-20.ckpt")
    os.utime(tmp_path / "step-10.ckpt", (1, 1))  # older
    (tmp_path / "last.ckpt").write_bytes(b"")  # what a kill during a cross-file-system copy left
    with pytest.warns(UserWarning, match=r"last.ckpt is unreadable .*resuming from .*step-20.ckpt"):
        assert io.load_checkpoint(tmp_path / "last.ckpt")["step"] == 20
    (tmp_path / "step-10.ckpt").unlink()
    (tmp_path / "step-20.ckpt").write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="no other readable"):
        io.load_checkpoint(tmp_path / "last.ckpt")


@pytest.mark.slow
def test_sigkill_during_saves_never_damages_the_checkpoint(tmp_path: Path) -> None:
    """A real process saving 8 MB checkpoints in a loop, SIGKILLed at varied moments (``$TMPDIR`` on another file
    system where the machine has /dev/shm): every time, the checkpoint reads back whole and orphans are cleaned."""
    path = tmp_path / "last.ckpt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if Path("/dev/shm").is_dir():
        env["TMPDIR"] = "/dev/shm"
    io = AtomicCheckpointIO()
    for trial in range(5):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE, env=env)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(0.15 + 0.17 * trial)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if path.exists():
            checkpoint = io.load_checkpoint(path)
            assert torch.all(checkpoint["weights"] == checkpoint["step"])
    io.save_checkpoint({"step": 0}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
