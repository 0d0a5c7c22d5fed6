"""``AtomicCheckpointIO``: a killed save never leaves a damaged checkpoint, and a damaged one is skipped on resume."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from anydepth.checkpoints import CheckpointError
from anydepth.training.checkpoint_io import AtomicCheckpointIO

from helpers import REPO_ROOT

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
    with pytest.raises(CheckpointError, match="no other readable"):
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


def fit_command(run: Path, max_steps: int) -> list[str]:
    """``anydepth fit`` of the tiny helper module with the shipped CPU trainer config (AtomicCheckpointIO), a 16 MB
    ballast and a step checkpoint plus last.ckpt after every step, resuming from ``last``."""
    checkpoint = (
        "{class_path: lightning.pytorch.callbacks.ModelCheckpoint, init_args: "
        f"{{dirpath: {run / 'checkpoints'}, every_n_train_steps: 1, save_last: true, save_top_k: 2, "
        "monitor: step, mode: max}}"
    )
    return [
        *("fit", "--config", str(REPO_ROOT / "configs/trainer/cpu.yaml")),
        *("--model", "helpers.lightning_modules.TinyDepthModule", "--model.init_args.ballast_mb", "16"),
        *("--data", "helpers.lightning_modules.RandomImages", "--trainer.callbacks", checkpoint),
        *("--trainer.max_epochs", "1000", "--trainer.max_steps", str(max_steps), "--trainer.logger", "false"),
        *("--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(run), "--ckpt_path", "last"),
    ]


def wait_for_saves(directory: Path, count: int, proc: subprocess.Popen, timeout: float = 120.0) -> bool:
    """Poll until the ``count``-th checkpoint save of this run is in flight (its staged ``.*.tmp`` file exists;
    orphans of earlier kills are not counted); False if the run ended first."""
    orphans, seen = set(directory.glob(".*.tmp")), set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        seen |= set(directory.glob(".*.tmp")) - orphans
        if len(seen) >= count:
            return True
        time.sleep(0.0005)
    return False


@pytest.mark.slow
def test_sigkill_of_a_training_run_during_checkpoint_writes_always_resumes(tmp_path: Path) -> None:
    """A real ``anydepth fit`` SIGKILLed while a checkpoint is being written, four times, with ``$TMPDIR`` on another
    file system (/dev/shm where the machine has it): every checkpoint left on disk reads back, every restart
    resumes from ``last.ckpt`` once it exists, nothing is left in ``$TMPDIR``, and the last run finishes (orphans
    removed)."""
    run = tmp_path / "run"
    scratch = Path(tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else tmp_path))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(scratch), "CUDA_VISIBLE_DEVICES": ""}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "tests"), env.get("PYTHONPATH", "")])
    checkpoints, killed_at = run / "checkpoints", []
    try:
        for trial in range(4):
            resumable, log = (checkpoints / "last.ckpt").exists(), tmp_path / f"trial{trial}.log"
            with open(log, "w") as stderr:
                command = [sys.executable, "-m", "anydepth.cli", *fit_command(run, max_steps=10_000)]
                proc = subprocess.Popen(command, env=env, stderr=stderr, stdout=subprocess.DEVNULL)
                # saves alternate step checkpoint, last.ckpt: the 3rd leaves a complete last.ckpt behind, later
                # trials hit last.ckpt's own save and a step checkpoint's in turn
                assert wait_for_saves(checkpoints, 3 + trial, proc), log.read_text()[-3000:]
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            if resumable:
                assert "Restoring states from the checkpoint path" in log.read_text(), log.read_text()[-3000:]
            for path in checkpoints.glob("*.ckpt"):  # complete files only: staged ones are hidden .tmp files
                torch.load(path, map_location="cpu", weights_only=False)
            if (checkpoints / "last.ckpt").exists():
                killed_at.append(torch.load(checkpoints / "last.ckpt", weights_only=False)["global_step"])
        final = subprocess.run(
            [sys.executable, "-m", "anydepth.cli", *fit_command(run, max_steps=killed_at[-1] + 2)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert final.returncode == 0, final.stderr[-3000:]
        assert torch.load(checkpoints / "last.ckpt", weights_only=False)["global_step"] == killed_at[-1] + 2
        assert not list(checkpoints.glob(".*.tmp"))
        staged = [p for p in scratch.rglob("*") if p.is_file() and p.stat().st_size > 2**20]  # wandb leaves empty dirs
        assert not staged
        assert killed_at == sorted(killed_at)  # every restart continued, none went back to step 0
    finally:
        shutil.rmtree(scratch)
