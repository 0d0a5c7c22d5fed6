"""Exact epochs and exact resume of the training streams, through real Trainers in subprocesses
(:mod:`helpers.key_log`): a 2-process DDP fit sweeps every pseudo-labeled sample once per epoch with the same step
count on both ranks, and a run SIGKILLed mid-epoch (or right after an epoch's last step) resumes with ``--ckpt_path
last`` on the very stream the uninterrupted run trains on, decoding only what it trains on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from helpers import REPO_ROOT
from helpers.shards import decoded_keys, write_shards

PSEUDO, LABELED = [6, 6, 5, 7], [3, 4, 2]  # samples per shard
STEPS = 12  # one process, two workers, 2 pseudo-labeled samples per step: 7 + 5 | 6 + 6 -> 12 // 2 + 12 // 2
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    root = tmp_path_factory.mktemp("exact")
    return {
        str(root / "labeled"): write_shards(root / "labeled", "l", "depth", LABELED),
        str(root / "pseudo"): write_shards(root / "pseudo", "p", "relative_disparity", PSEUDO),
    }


def fit(out: Path, shards: dict[str, list[str]], *args: str) -> subprocess.CompletedProcess:
    """``python -m helpers.key_log out labeled pseudo *args`` (2 epochs, 2 workers per stream, batches of 1 + 2)."""
    out.mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO_ROOT / "tests")}
    env.pop("MASTER_PORT", None)
    command = [sys.executable, "-m", "helpers.key_log", str(out), *shards, *args]
    return subprocess.run(command, cwd=out, env=env, capture_output=True, text=True, timeout=300)


def steps(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(shards: dict[str, list[str]], tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """The uninterrupted run: two epochs of ``STEPS`` steps, decoding exactly what it trains on."""
    out = tmp_path_factory.mktemp("reference")
    proc = fit(out, shards)
    assert proc.returncode == 0, proc.stderr[-4000:]
    logged = steps(out / "steps-0.jsonl")
    assert [line["step"] for line in logged] == list(range(1, 2 * STEPS + 1))
    assert decoded_keys(out) == sorted(k for line in logged for k in line["labeled"] + line["unlabeled"])
    return logged


def test_ddp_epoch_sweeps_every_sample_once_with_equal_steps_per_rank(shards: dict, tmp_path: Path) -> None:
    """Two ranks: pseudo-labeled shards dealt 7 + 5 | 6 + 6, each rank's to its two workers, 2 samples per step:
    5 | 6 batches, so both ranks run 5 steps and the 7 | 5 split leaves the remainder (one sample, and one batch of
    rank 1). Labeled shards (4 | 3 + 2, one sample per step) give labeled epochs of 4 batches per rank."""
    proc = fit(tmp_path, shards, "--devices", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [steps(tmp_path / f"steps-{rank}.jsonl") for rank in (0, 1)]
    labeled_keys, pseudo_keys = shards.values()
    for epoch in (0, 1):
        per_rank = [[line for line in rank if line["epoch"] == epoch] for rank in ranks]
        assert [len(lines) for lines in per_rank] == [5, 5]
        swept = [k for lines in per_rank for line in lines for k in line["unlabeled"]]
        assert len(swept) == len(set(swept)) == 2 * 5 * 2 and set(swept) <= set(pseudo_keys)
    for start in (0, 4):  # the labeled stream's first two labeled epochs: each sample at most once across ranks
        chunk = [k for rank in ranks for line in rank[start : start + 4] for k in line["labeled"]]
        assert len(chunk) == len(set(chunk)) == 8 and set(chunk) <= set(labeled_keys)


def test_run_killed_twice_resumes_the_same_stream(shards: dict, reference: list[dict], tmp_path: Path) -> None:
    """SIGKILLed after training step 9 (mid-epoch), resumed, SIGKILLed again after step 13 (its last checkpoint the
    one after epoch 0's last step), resumed: each run retrains the step after its last checkpoint, then trains
    exactly the uninterrupted run's steps (labeled and pseudo-labeled keys); the last decodes only what it trains."""
    start = 0
    for run, kill_at in enumerate([9, STEPS + 1, None]):
        args = [*(["--resume"] if start else []), *(["--kill-at", str(kill_at)] if kill_at else [])]
        proc = fit(tmp_path, shards, *args)
        assert proc.returncode == (-9 if kill_at else 0), proc.stderr[-4000:]
        logged = steps(tmp_path / "steps-0.jsonl")
        assert logged == reference[start : kill_at or len(reference)], run
        (tmp_path / f"run-{run}").mkdir()
        for path in [tmp_path / "steps-0.jsonl", *tmp_path.glob("decoded-*.txt")]:
            path.rename(tmp_path / f"run-{run}" / path.name)
        start = (kill_at or 0) - 1  # checkpointed every step but the killed one
    trained = Counter(k for line in logged for k in line["labeled"] + line["unlabeled"])
    assert Counter(decoded_keys(tmp_path / f"run-{run}")) == trained  # the skipped records were never decoded
