"""``anydepth.shards.writer``: a shard is either complete (tar + completion record that match) or absent."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import numpy as np
import pytest

from anydepth.files import file_digest
from anydepth.shards.schema import Sample, encode_sample
from anydepth.shards.writer import ShardWriter, completed_shard, shard_name


def record(key: str) -> dict:
    rng = np.random.default_rng(0)
    image, depth = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), rng.random((16, 16), np.float32) + 0.1
    sample = Sample(key, image, depth, meta={"label_kind": "depth"})
    return {"__key__": key, **encode_sample(sample)}


def test_finished_shard_has_a_matching_record(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, 3)
    writer.write(record("a"))
    writer.write(record("b"))
    done = writer.finish(2, [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-000003.json", shard_name(3)]
    assert (done["samples"], done["bytes"], done["sha256"]) == (2, *file_digest(tmp_path / shard_name(3)))
    assert json.loads((tmp_path / "shard-000003.json").read_text()) == done
    assert completed_shard(tmp_path, 3) == done


def test_aborted_or_damaged_shards_count_as_not_done(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, 0)
    writer.write(record("a"))
    writer.abort()
    assert list(tmp_path.iterdir()) == []  # no .tmp, no shard, no record
    ShardWriter(tmp_path, 1).write(record("a"))  # a writer killed before finish leaves only its .tmp
    assert completed_shard(tmp_path, 1) is None
    writer = ShardWriter(tmp_path, 2)
    writer.write(record("a"))
    writer.finish(1, [])
    with open(tmp_path / shard_name(2), "r+b") as stream:  # same size, other bytes
        stream.seek(600)
        stream.write(b"\xff")
    assert completed_shard(tmp_path, 2, check_sha256=False) is not None  # the cheap check compares sizes only
    assert completed_shard(tmp_path, 2) is None
    assert not (tmp_path / shard_name(2)).exists() and not (tmp_path / "shard-000002.json").exists()


def test_a_shard_without_samples_writes_only_its_record(tmp_path: Path) -> None:
    done = ShardWriter(tmp_path, 5).finish(4, [{"input": "x", "reason": "unreadable"}])
    assert done["samples"] == 0 and done["sha256"] is None and not (tmp_path / shard_name(5)).exists()
    assert completed_shard(tmp_path, 5) == done


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_abort_closes_the_tar_stream_too(tmp_path: Path) -> None:
    """An aborted writer (a crash mid-shard) leaves nothing that writes to its closed file when collected."""
    writer = ShardWriter(tmp_path, 0)
    writer.write(record("a"))
    writer.abort()
    del writer
    gc.collect()
    assert list(tmp_path.iterdir()) == []
