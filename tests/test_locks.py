"""``anydepth.locks``: a second writer of an output directory stops with one line naming the holder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from anydepth.locks import LOCK_NAME, OutputLock, OutputLockedError

HOLD = "import sys, time; from anydepth.locks import OutputLock\nwith OutputLock(sys.argv[1], 'test'):\n" \
       "    print('held', flush=True); time.sleep(60)\n"  # fmt: skip


def test_second_holder_is_refused_while_the_first_lives(tmp_path: Path) -> None:
    with OutputLock(tmp_path / "out", "shards build"):
        with pytest.raises(OutputLockedError, match=rf"in use by another shards build \(pid {os.getpid()} on "
                                                    rf"{socket.gethostname()} since "):  # fmt: skip
            with OutputLock(tmp_path / "out", "shards build"):
                pass
    with OutputLock(tmp_path / "out", "shards build"):  # released on exit
        pass


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"held"
    with pytest.raises(OutputLockedError, match=f"pid {proc.pid}"):
        OutputLock(tmp_path, "test").__enter__()
    proc.kill()
    proc.wait()
    with OutputLock(tmp_path, "test"):  # no manual cleanup needed
        assert (tmp_path / LOCK_NAME).is_file()
