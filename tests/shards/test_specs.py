"""``anydepth.shards.specs``: every spec form resolves to the same shard paths and manifest counts, and a spec that
names nothing readable is one error naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anydepth.shards.manifest import ManifestError
from anydepth.shards.specs import ShardSpecError, resolve_shards

from helpers.shards import write_shards


@pytest.fixture()
def shards(tmp_path: Path) -> Path:
    write_shards(tmp_path / "set", "s", "depth", [2, 3, 4])
    return tmp_path / "set"


def test_directory_manifest_glob_brace_and_path_agree(shards: Path) -> None:
    forms = [
        [str(shards)],
        [str(shards / "manifest.json")],
        [f"{shards}/shard-*.tar"],
        [f"{shards}/shard-{{000000..000002}}.tar"],
        [str(shards / f"shard-{i:06d}.tar") for i in range(3)],
    ]
    resolved = [resolve_shards(form) for form in forms]
    assert all(r == resolved[0] for r in resolved) and resolved[0].counts == (2, 3, 4)
    assert resolved[0].num_samples == 9 and resolve_shards(str(shards)).urls == resolved[0].urls  # a bare string


def test_shards_without_a_manifest_have_no_count(tmp_path: Path) -> None:
    write_shards(tmp_path / "bare", "b", "depth", [2, 2], manifest=False)
    bare = resolve_shards(f"{tmp_path}/bare/*.tar")
    assert bare.counts == (None, None) and bare.num_samples is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nothing-*.tar", "shard pattern .*nothing-\\*.tar.* matches no file"),
        ("missing.tar", "shard .*missing.tar does not exist .*give a shard directory \\(with manifest.json\\)"),
    ],
)
def test_a_spec_naming_nothing_is_one_error_naming_it(shards: Path, spec: str, message: str) -> None:
    with pytest.raises(ShardSpecError, match=message):
        resolve_shards([str(shards), str(shards.parent / spec)])


def test_empty_lists_and_manifests_are_refused(shards: Path, tmp_path: Path) -> None:
    with pytest.raises(ShardSpecError, match="no shards given"):
        resolve_shards([])
    manifest = json.loads((shards / "manifest.json").read_text())
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "manifest.json").write_text(json.dumps({**manifest, "shards": []}))
    with pytest.raises(ShardSpecError, match="empty/manifest.json lists no shards"):
        resolve_shards(str(tmp_path / "empty"))
    (tmp_path / "nomanifest").mkdir()
    with pytest.raises(ManifestError, match="nomanifest"):
        resolve_shards(str(tmp_path / "nomanifest"))
