"""``anydepth.sources.parts``: a build split into parts (``build_shards(..., num_parts=N, part=I)``) writes the
single-node build's shard files byte for byte and, merged, its manifest; missing, unfinished, damaged or mismatched
parts are named; the locks keep a single-node build and a split build out of each other's directory. Real
``rgbd-folder`` datasets and tar shards throughout."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from anydepth.locks import OutputLock, OutputLockedError
from anydepth.shards.manifest import Manifest
from anydepth.shards.schema import Sample
from anydepth.shards.verify import verify_shards
from anydepth.sources import SourceItem
from anydepth.sources.build import BuildError, build_shards
from anydepth.sources.folders import RGBDFolderSource
from anydepth.sources.parts import MergeError, Part, build_lock, merge_parts

from helpers.fabricate import ramp, write_image, write_npy

N, SEED, BROKEN = 10, 16, ("k03", "k07")
ORDER = [f"k{i:02d}" for i in np.random.default_rng(SEED).permutation(N)]
CHUNKS = [ORDER[i : i + 2] for i in range(0, N, 2)]  # seed 16: chunk 2 is both broken inputs, so part 2 of 3 is empty


def dataset(root: Path) -> Path:
    """``rgbd-folder`` of ``N`` PNG images with ``.npy`` depths; the ``BROKEN`` keys' depths are not npy files."""
    for i in range(N):
        key = f"k{i:02d}"
        write_image(root / "images" / f"{key}.png", i)
        if key in BROKEN:
            (root / "depth" / f"{key}.npy").write_bytes(b"\x93NUMPY garbage")
        else:
            write_npy(root / "depth" / f"{key}.npy", ramp(1.0 + i))
    return root


def build(data: Path, out: Path, **options: object) -> Manifest:
    return build_shards("rgbd-folder", data, out, samples_per_shard=2, seed=SEED, image_format="png", **options)


def files(directory: Path) -> dict[str, bytes]:
    """Every shard and completion record of ``directory`` by name."""
    return {p.name: p.read_bytes() for p in sorted(directory.glob("shard-*"))}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return dataset(tmp_path / "data")


@pytest.fixture
def single(data: Path, tmp_path: Path) -> Path:
    """The single-node build."""
    assert sorted(CHUNKS[2]) == list(BROKEN)
    build(data, tmp_path / "single")
    return tmp_path / "single"


def test_three_parts_merge_into_the_single_node_build(data: Path, single: Path, tmp_path: Path) -> None:
    out, reference = tmp_path / "split", Manifest.load(single)
    assert [s.name for s in reference.shards] == [f"shard-00000{i}.tar" for i in (0, 1, 3, 4)]  # chunk 2: a gap
    parts = {}
    for part in (2, 0, 1):  # in any order: the last to finish merges
        assert not (out / "manifest.json").exists()
        parts[part] = build(data, out, num_parts=3, part=part)
    assert Manifest.load(out).to_dict() == reference.to_dict()
    assert files(out) == files(single)  # every tar (and completion record) byte for byte
    for part, manifest in parts.items():  # round robin: part I has the shards I, I + 3, ...
        assert Manifest.load(out / f"parts/part-{part}-of-3.json").to_dict() == manifest.to_dict()
        assert {k: manifest.extra[k] for k in ("part", "num_parts", "complete")} == {
            "part": part,
            "num_parts": 3,
            "complete": True,
        }
        assert [s.name for s in manifest.shards] == [s.name for s in reference.shards if int(s.name[6:12]) % 3 == part]
    assert parts[2].shards == [] and [s["input"] for s in parts[2].skipped] == ["k03", "k07"]
    assert verify_shards(out).ok and not (out / "build.json").exists() and not list(out.glob("*.tmp"))
    assert merge_parts(out).to_dict() == reference.to_dict()  # merging again changes nothing


def test_one_part_is_a_single_node_build_and_parts_may_outnumber_shards(
    data: Path, single: Path, tmp_path: Path
) -> None:
    assert build(data, tmp_path / "one", num_parts=1, part=0).to_dict() == Manifest.load(single).to_dict()
    assert (tmp_path / "one" / "build.json").is_file() and not (tmp_path / "one" / "parts").exists()
    for part in range(7):  # 5 chunks: parts 5 and 6 build nothing
        manifest = build(data, tmp_path / "seven", num_parts=7, part=part)
        assert len(manifest.shards) == (part in (0, 1, 3, 4))
    assert Manifest.load(tmp_path / "seven").to_dict() == Manifest.load(single).to_dict()
    for num_parts, part, message in ((0, 0, "num_parts must be at least 1, got 0"), (3, 3, r"part must be in 0\.\.2")):
        with pytest.raises(BuildError, match=message):
            build(data, tmp_path / "bad", num_parts=num_parts, part=part)
    assert not (tmp_path / "bad").exists()


def test_merge_names_every_unfinished_or_damaged_part_and_resume_completes_it(
    data: Path, single: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "split"
    build(data, out, num_parts=3, part=0)
    original = RGBDFolderSource.load

    def killed_in_chunk_4(self: RGBDFolderSource, item: SourceItem) -> Sample:
        if item.key == CHUNKS[4][0]:
            raise KeyboardInterrupt  # part 1 is killed while writing its second shard
        return original(self, item)

    monkeypatch.setattr(RGBDFolderSource, "load", killed_in_chunk_4)
    with pytest.raises(KeyboardInterrupt):
        build(data, out, num_parts=3, part=1)
    monkeypatch.setattr(RGBDFolderSource, "load", original)
    assert (out / "shard-000001.tar").is_file() and not (out / "shard-000004.tar").exists()
    (out / "shard-000004.tar.tmp").write_bytes(b"what a hard kill leaves")

    with pytest.raises(MergeError) as error:
        merge_parts(out)
    assert str(error.value) == (
        f"cannot merge {out}: "
        "part 1 of 3 has not finished (parts/part-1-of-3.json records an unfinished build): "
        "run anydepth shards build ... --num-parts 3 --part 1 --resume; "
        "part 2 of 3 has not finished (no parts/part-2-of-3.json): "
        "run anydepth shards build ... --num-parts 3 --part 2 --resume"
    )
    with pytest.raises(BuildError, match="already holds a build .*pass --resume"):
        build(data, out, num_parts=3, part=1)
    mtime = (out / "shard-000001.tar").stat().st_mtime_ns
    build(data, out, num_parts=3, part=1, resume=True)
    assert (out / "shard-000001.tar").stat().st_mtime_ns == mtime  # kept; only shard 4 was built
    assert not (out / "shard-000004.tar.tmp").exists() and not (out / "manifest.json").exists()
    build(data, out, num_parts=3, part=2)
    assert Manifest.load(out).to_dict() == Manifest.load(single).to_dict() and files(out) == files(single)

    (out / "shard-000003.tar").unlink()  # lost after the build
    with pytest.raises(MergeError, match=r"part 0 of 3 lost shard-000003\.tar .*--num-parts 3 --part 0 --resume$"):
        merge_parts(out)
    build(data, out, num_parts=3, part=0, resume=True)  # rebuilds it, and merges again
    assert files(out) == files(single) and verify_shards(out).ok


def test_parts_with_other_settings_or_another_part_count_are_refused(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "split"
    build(data, out, num_parts=3, part=0)
    with pytest.raises(BuildError, match=r"its parts/part-0-of-3\.json was built with other settings \(max_side"):
        build(data, out, num_parts=3, part=1, max_side=20)
    with pytest.raises(BuildError, match=r"split into 3 parts; pass --num-parts 3"):
        build(data, out, num_parts=4, part=1)
    with pytest.raises(BuildError, match="cannot resume .*other settings"):
        build(data, out, resume=True, label_dtype="float16")  # nor a single-node build with other settings

    # a part built elsewhere with other options and copied in is refused at merge time
    odd, link = tmp_path / "odd", tmp_path / "link"
    link.symlink_to(data)
    build(link, odd, num_parts=3, part=1, max_side=28)
    build(data, out, num_parts=3, part=2)
    for path in [*odd.glob("shard-*"), odd / "parts" / "part-1-of-3.json"]:
        shutil.copy(path, out / path.relative_to(odd))
    with pytest.raises(MergeError) as error:
        merge_parts(out)
    message = str(error.value)
    assert message.startswith(f"cannot merge {out}: part 1 of 3 was built with other settings than part 0 of 3 (")
    assert f"extra.root: '{data}' -> '{link}'" in message and "settings.max_side: None -> 28" in message
    assert "part 2 of 3" not in message


def test_locks_keep_single_node_and_split_builds_apart(data: Path, single: Path, tmp_path: Path) -> None:
    out = tmp_path / "split"
    with OutputLock(out, "shards build"):  # a single-node build runs there
        with pytest.raises(OutputLockedError, match=rf"in use by a single-node shards build \(pid {os.getpid()} on "):
            build(data, out, num_parts=3, part=1)
    with build_lock(out, Part(1, 3)):  # part 1 of 3 runs there
        with pytest.raises(OutputLockedError, match="in use by part builds .* a single-node build cannot run beside"):
            build(data, out)
        with pytest.raises(OutputLockedError, match="in use by another shards build of part 1 of 3"):
            build(data, out, num_parts=3, part=1)
        build(data, out, num_parts=3, part=0)  # the other parts run beside it
        build(data, out, num_parts=3, part=2)
    build(data, out, num_parts=3, part=1)
    assert files(out) == files(single) and Manifest.load(out).to_dict() == Manifest.load(single).to_dict()
    assert build(data, out, resume=True).to_dict() == Manifest.load(single).to_dict()  # a single node may resume it
