"""``anydepth.shards.manifest``: saving is atomic (temporary file, fsync, rename) and reads back."""

from __future__ import annotations

import json
from pathlib import Path

from anydepth.shards.manifest import MANIFEST_NAME, Manifest, ShardRecord


def test_save_leaves_only_the_manifest_and_reads_back(tmp_path: Path) -> None:
    manifest = Manifest(
        source="images",
        builder_version="0.1.0",
        shards=[ShardRecord("shard-000000.tar", 3, 1024, "ab" * 32)],
        settings={"max_side": None, "min_side": 14},
        skipped=[{"input": "a", "reason": "SampleError: sample 'a': label has no valid pixel"}],
    )
    path = manifest.save(tmp_path)
    assert path == tmp_path / MANIFEST_NAME and [p.name for p in tmp_path.iterdir()] == [MANIFEST_NAME]
    assert Manifest.load(tmp_path) == manifest and Manifest.load(path) == manifest
    assert json.loads(path.read_text())["num_samples"] == 3

    manifest.shards.append(ShardRecord("shard-000002.tar", 2, 512, "cd" * 32))
    manifest.save(tmp_path)  # replaces the old manifest in place
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST_NAME]
    assert Manifest.load(tmp_path).num_samples == 5
