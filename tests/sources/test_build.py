"""``anydepth.sources.build``: shard building (determinism, workers, downscaling, skips, resume) and verification,
plus ``anydepth shards build|verify``. Uses a test-local reader of tiny ``.npz`` samples, registered by monkeypatch."""

from __future__ import annotations

import hashlib
import json
import logging
import tarfile
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

import anydepth
from anydepth.cli import main
from anydepth.locks import LOCK_NAME
from anydepth.shards.manifest import Manifest, ManifestError
from anydepth.shards.schema import Sample, decode_sample
from anydepth.shards.verify import verify_shards
from anydepth.shards.writer import shard_name
from anydepth.sources import ROOTLESS, SOURCES, Source, SourceError, SourceItem
from anydepth.sources.build import BuildError, build_shards, downscale_sample

LABEL_VALUES = np.array([0.0, 1.5, 2.5, 7.0], np.float32)  # 0 = invalid
N = 10


class FakeSource(Source):
    """Test reader: ``ROOT/<key>.npz`` with ``image`` (uint8 H x W x 3) and ``label`` (float32 depth, 0 = invalid).
    Every ``load`` appends the key to ``ROOT/loads.log``, so tests can count loads across processes."""

    name = "fake"
    label_kind = "depth"

    def items(self) -> list[SourceItem]:
        return [SourceItem(p.stem, {"npz": str(p)}) for p in sorted(self.root.glob("*.npz"))]

    def load(self, item: SourceItem) -> Sample:
        with (self.root / "loads.log").open("a") as log:
            log.write(item.key + "\n")
        with np.load(item.paths["npz"]) as data:
            return Sample(key=item.key, image=data["image"], label=data["label"], meta={"label_kind": "depth"})


class SyntheticFakeSource(FakeSource):
    synthetic = True


def write_sample(root: Path, key: str, label: np.ndarray, seed: int = 0) -> None:
    """``root/<key>.npz`` with ``label`` and a random image of its size."""
    image = np.random.default_rng(seed).integers(0, 256, (*label.shape, 3), dtype=np.uint8)
    np.savez(root / f"{key}.npz", image=image, label=label.astype(np.float32))


def make_dataset(root: Path, n: int = N, corrupt: tuple[str, ...] = (), size: tuple[int, int] = (18, 24)) -> Path:
    """``n`` samples ``s00``.. of ``size`` (H, W) with random images and labels from LABEL_VALUES;
    the keys in ``corrupt`` get a file that is not an npz."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(123)
    for i in range(n):
        key = f"s{i:02d}"
        if key in corrupt:
            (root / f"{key}.npz").write_bytes(b"this is not an npz file")
            continue
        write_sample(root, key, rng.choice(LABEL_VALUES, size=size), seed=i)
    return root


def loads(root: Path) -> list[str]:
    log = root / "loads.log"
    return log.read_text().split() if log.exists() else []


def shard_keys(directory: Path) -> list[list[str]]:
    manifest = Manifest.load(directory)
    keys = []
    for path in manifest.shard_paths(directory):
        with tarfile.open(path) as tar:
            keys.append(list(dict.fromkeys(m.name.split(".")[0] for m in tar.getmembers())))
    return keys


def flip_byte(path: Path, offset: int = 700) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SOURCES, "fake", f"{__name__}:FakeSource")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data")


def test_build_writes_shards_and_manifest(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    manifest = build_shards("fake", data, out, samples_per_shard=4, seed=3, image_format="png")
    assert [s.name for s in manifest.shards] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert [s.samples for s in manifest.shards] == [4, 4, 2] and manifest.num_samples == N
    assert (manifest.source, manifest.label_kind, manifest.synthetic, manifest.skipped) == ("fake", "depth", False, [])
    assert manifest.builder_version == anydepth.__version__
    assert manifest.settings == {
        "source": "fake",
        "split": None,
        "max_side": None,
        "min_side": 14,
        "samples_per_shard": 4,
        "seed": 3,
        "image_format": "png",
        "label_dtype": "float32",
        "source_kwargs": {},
        "sky_model": None,
    }
    assert Manifest.load(out).to_dict() == manifest.to_dict()
    assert not list(out.glob("*.tmp"))
    # order: sorted keys shuffled by the seed, cut into shards
    order = [f"s{i:02d}" for i in np.random.default_rng(3).permutation(N)]
    assert sum(shard_keys(out), []) == order
    # webdataset reads the shards; every sample decodes to exactly what the source holds (png: lossless)
    dataset = wds.WebDataset([str(p) for p in manifest.shard_paths(out)], shardshuffle=False)
    decoded = {s.key: s for s in (decode_sample(record) for record in dataset)}
    assert sorted(decoded) == sorted(order)
    for key, sample in decoded.items():
        with np.load(data / f"{key}.npz") as raw:
            np.testing.assert_array_equal(sample.image, raw["image"])
            np.testing.assert_array_equal(sample.label, raw["label"])
        assert sample.meta == {"label_kind": "depth", "source": "fake", "original_size": [18, 24], "scale": 1.0}
    assert verify_shards(out).ok


def test_same_seed_same_shards_other_seed_other_order(data: Path, tmp_path: Path) -> None:
    first = build_shards("fake", data, tmp_path / "a", samples_per_shard=4, seed=0)
    second = build_shards("fake", data, tmp_path / "b", samples_per_shard=4, seed=0)
    other = build_shards("fake", data, tmp_path / "c", samples_per_shard=4, seed=1)
    assert first.to_dict() == second.to_dict()  # including every shard's sha256
    assert (tmp_path / "a" / "shard-000000.tar").read_bytes() == (tmp_path / "b" / "shard-000000.tar").read_bytes()
    assert shard_keys(tmp_path / "a") != shard_keys(tmp_path / "c")
    assert [s.sha256 for s in first.shards] != [s.sha256 for s in other.shards]


def test_two_workers_write_the_same_shards(data: Path, tmp_path: Path) -> None:
    serial = build_shards("fake", data, tmp_path / "serial", samples_per_shard=3, workers=1)
    parallel = build_shards("fake", data, tmp_path / "parallel", samples_per_shard=3, workers=2)  # spawn
    assert parallel.to_dict() == serial.to_dict()
    assert sorted(loads(data)) == sorted(2 * [f"s{i:02d}" for i in range(N)])  # every item loaded once per build


def test_source_class_or_instance_and_synthetic_flag(data: Path, tmp_path: Path) -> None:
    by_kind = build_shards("fake", data, tmp_path / "kind", samples_per_shard=4)
    by_class = build_shards(FakeSource, data, tmp_path / "class", samples_per_shard=4)
    by_instance = build_shards(FakeSource(data), None, tmp_path / "instance", samples_per_shard=4)
    assert [s.sha256 for s in by_class.shards] == [s.sha256 for s in by_kind.shards]
    assert [s.sha256 for s in by_instance.shards] == [s.sha256 for s in by_kind.shards]
    assert not by_kind.synthetic
    synthetic = build_shards(SyntheticFakeSource, data, tmp_path / "synthetic", samples_per_shard=4)
    assert synthetic.synthetic and Manifest.load(tmp_path / "synthetic").synthetic
    with pytest.raises(BuildError, match="source_kwargs"):
        build_shards(FakeSource(data), None, tmp_path / "x", source_kwargs={"a": 1})


def test_max_side_downscales_image_and_label_nearest(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", n=3, size=(30, 40))
    out = tmp_path / "shards"
    manifest = build_shards("fake", data, out, max_side=20, image_format="png")
    assert manifest.settings["max_side"] == 20
    for record in wds.WebDataset(str(out / "shard-000000.tar"), shardshuffle=False):
        sample = decode_sample(record)
        assert sample.image.shape == (15, 20, 3) and sample.label.shape == (15, 20)
        assert sample.meta["original_size"] == [30, 40] and sample.meta["scale"] == pytest.approx(0.5)
        assert set(np.unique(sample.label)) <= set(LABEL_VALUES.tolist())  # nearest: no blended depths
        with np.load(data / f"{sample.key}.npz") as raw:
            np.testing.assert_array_equal(sample.label, raw["label"][1::2, 1::2])  # exactly every other pixel
            expected = np.asarray(Image.fromarray(raw["image"]).resize((20, 15), Image.Resampling.LANCZOS))
            np.testing.assert_array_equal(sample.image, expected)
    # samples already within max_side are untouched
    small = build_shards("fake", data, tmp_path / "big-enough", max_side=40, image_format="png")
    record = next(iter(wds.WebDataset(str(small.shard_paths(tmp_path / "big-enough")[0]), shardshuffle=False)))
    assert decode_sample(record).image.shape == (30, 40, 3)


def test_downscale_sample_masks_and_existing_scale() -> None:
    rng = np.random.default_rng(0)
    mask = rng.random((9, 6)) > 0.5
    sample = Sample(
        key="k",
        image=rng.integers(0, 256, (9, 6, 3), dtype=np.uint8),
        label=rng.random((9, 6)).astype(np.float32),
        mask=mask,
        sky=~mask,
        meta={"label_kind": "depth", "scale": 0.5, "original_size": [18, 12]},
    )
    small = downscale_sample(sample, 3)
    assert small.image.shape == (3, 2, 3) and small.mask.dtype == bool and small.sky.shape == (3, 2)
    np.testing.assert_array_equal(small.mask, mask[1::3, 1::3])
    np.testing.assert_array_equal(small.sky, ~small.mask)
    assert small.meta["scale"] == pytest.approx(0.5 / 3) and small.meta["original_size"] == [18, 12]
    assert sample.meta["scale"] == 0.5  # the input is not modified


def test_corrupt_input_is_skipped_with_its_reason(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = make_dataset(tmp_path / "data", corrupt=("s03",))
    with caplog.at_level(logging.WARNING, logger="anydepth.sources.build"):
        manifest = build_shards("fake", data, tmp_path / "shards", samples_per_shard=4)
    assert manifest.num_samples == N - 1
    assert len(manifest.skipped) == 1 and manifest.skipped[0]["input"] == "s03"
    assert manifest.skipped[0]["reason"].startswith(("BadZipFile", "ValueError", "OSError", "UnpicklingError"))
    assert "s03" in caplog.text
    assert verify_shards(tmp_path / "shards").ok


def test_chunk_with_only_skipped_inputs_leaves_a_gap(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", n=4, corrupt=("s01",))
    out = tmp_path / "shards"
    manifest = build_shards("fake", data, out, samples_per_shard=1, seed=0)
    gap = [f"s{i:02d}" for i in np.random.default_rng(0).permutation(4)].index("s01")
    names = [shard_name(i) for i in range(4) if i != gap]
    assert [s.name for s in manifest.shards] == names and manifest.num_samples == 3
    assert not (out / shard_name(gap)).exists()
    assert json.loads((out / f"shard-{gap:06d}.json").read_text())["samples"] == 0
    assert verify_shards(out).ok


def test_labels_without_a_valid_pixel_and_too_small_images_are_skipped(tmp_path: Path) -> None:
    """A label with no valid pixel (all NaN, all 0, or none left after --max-side) or an image whose stored shorter
    side is below min_side never reaches a shard: it is skipped with its reason, like an unreadable input."""
    data = make_dataset(tmp_path / "data", n=3, size=(30, 40))
    write_sample(data, "nan", np.full((30, 40), np.nan))
    write_sample(data, "zero", np.zeros((30, 40)))
    sparse = np.zeros((30, 40))
    sparse[0, 0] = 3.0  # halving by nearest neighbour keeps the odd rows and columns only
    write_sample(data, "sparse", sparse)
    write_sample(data, "thin", np.full((26, 40), 2.0))  # 13 x 20 after max_side 20
    out = tmp_path / "shards"
    manifest = build_shards("fake", data, out, max_side=20)
    reasons = {skip["input"]: skip["reason"] for skip in manifest.skipped}
    assert sorted(reasons) == ["nan", "sparse", "thin", "zero"] and manifest.num_samples == 3
    for key in ("nan", "zero", "sparse"):
        assert reasons[key].startswith(f"SampleError: sample {key!r}: label has no valid pixel")
    assert reasons["thin"] == (
        "SampleError: sample 'thin': image 13x20 (H x W) (downscaled from 26x40 by --max-side) "
        "is smaller than --min-side 14"
    )
    assert sorted(sum(shard_keys(out), [])) == ["s00", "s01", "s02"] and verify_shards(out).ok
    lower = build_shards("fake", data, tmp_path / "lower", max_side=20, min_side=13)  # a setting, recorded
    assert sorted(skip["input"] for skip in lower.skipped) == ["nan", "sparse", "zero"]
    assert lower.settings["min_side"] == 13 and lower.num_samples == 4


def test_root_is_optional_only_for_rootless_sources(tmp_path: Path) -> None:
    assert ROOTLESS <= set(SOURCES)
    with pytest.raises(BuildError, match="--source fake reads a dataset root: pass --root DIR"):
        build_shards("fake", None, tmp_path / "fake")
    manifest = build_shards("demo-train", None, tmp_path / "demo", source_kwargs={"num_scenes": 2, "size": (24, 32)})
    assert manifest.num_samples == 2 and manifest.extra["root"] is None


def test_verify_reports_flipped_byte_missing_shard_and_corrupt_label(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    build_shards("fake", data, out, samples_per_shard=4)
    report = verify_shards(out)
    assert report.ok and (report.shards, report.samples) == (3, N) and report.summary().startswith("OK: 3 shards")

    flip_byte(out / "shard-000001.tar")
    (out / "shard-000002.tar").unlink()
    report = verify_shards(out)
    assert not report.ok
    assert any("shard-000001.tar: sha256" in p for p in report.problems)
    assert any("shard-000002.tar: missing" in p for p in report.problems)
    assert "problems in" in report.summary()

    # a shard whose hashes match the manifest but one sample's label.npy is garbage
    path = out / "shard-000000.tar"
    with tarfile.open(path) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    records: dict[str, dict[str, object]] = {}
    for name, payload in members:
        key, field = name.split(".", 1)
        records.setdefault(key, {"__key__": key})[field] = payload
    bad = next(iter(records))
    records[bad]["label.npy"] = b"\x93NUMPY garbage"
    with open(path, "wb") as stream, wds.TarWriter(stream, encoder=False) as writer:
        for record in records.values():
            writer.write(record)
    manifest = Manifest.load(out)
    manifest.shards[0].bytes = path.stat().st_size
    manifest.shards[0].sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest.save(out)
    problems = verify_shards(out).problems
    label_problems = [p for p in problems if "label.npy" in p]
    assert len(label_problems) == 1 and repr(bad) in label_problems[0] and "shard-000000.tar" in label_problems[0]
    assert not any(p.startswith("shard-000000.tar: sha256") for p in problems)

    with pytest.raises(ManifestError):
        verify_shards(tmp_path / "nothing")


def test_resume_after_a_crash_reuses_complete_shards(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = build_shards("fake", data, tmp_path / "reference", samples_per_shard=3, seed=5)  # 4 shards
    chunks = shard_keys(tmp_path / "reference")
    assert [len(c) for c in chunks] == [3, 3, 3, 1]
    out = tmp_path / "shards"

    original = FakeSource.load

    def crash_in_shard_2(self: FakeSource, item: SourceItem) -> Sample:
        if item.key == chunks[2][1]:
            raise KeyboardInterrupt  # killed while writing shard 2
        return original(self, item)

    monkeypatch.setattr(FakeSource, "load", crash_in_shard_2)
    with pytest.raises(KeyboardInterrupt):
        build_shards("fake", data, out, samples_per_shard=3, seed=5)
    monkeypatch.setattr(FakeSource, "load", original)
    assert {p.name for p in out.iterdir()} == {
        LOCK_NAME,  # released by the exit, kept as the record of the last holder
        "build.json",
        "shard-000000.tar",
        "shard-000000.json",
        "shard-000001.tar",
        "shard-000001.json",
    }  # no manifest, no half shard
    # what a hard kill (SIGKILL) can leave on top: a temporary file, a renamed tar without its record
    (out / "shard-000002.tar.tmp").write_bytes(b"half a shard")
    (out / "shard-000003.tar").write_bytes(b"renamed, but no completion record")
    flip_byte(out / "shard-000001.tar")  # and a complete shard damaged later: rebuilt
    mtime = (out / "shard-000000.tar").stat().st_mtime_ns
    (data / "loads.log").unlink()

    with pytest.raises(BuildError, match="already holds a build"):
        build_shards("fake", data, out, samples_per_shard=3, seed=5)
    with pytest.raises(BuildError, match=r"seed: 5 -> 6"):
        build_shards("fake", data, out, samples_per_shard=3, seed=6, resume=True)

    resumed = build_shards("fake", data, out, samples_per_shard=3, seed=5, resume=True)
    assert resumed.to_dict() == reference.to_dict()  # same shards, hashes, skips and settings
    assert sorted(loads(data)) == sorted(chunks[1] + chunks[2] + chunks[3])  # shard 0 was not rebuilt
    assert (out / "shard-000000.tar").stat().st_mtime_ns == mtime
    assert not list(out.glob("*.tmp")) and verify_shards(out).ok

    (data / "loads.log").unlink()
    again = build_shards("fake", data, out, samples_per_shard=3, seed=5, resume=True)  # finished: nothing to do
    assert again.to_dict() == resumed.to_dict() and loads(data) == []
    with pytest.raises(BuildError, match="max_side"):
        build_shards("fake", data, out, samples_per_shard=3, seed=5, max_side=8, resume=True)
    make_dataset(data, n=N + 1)
    with pytest.raises(BuildError, match="inputs changed"):
        build_shards("fake", data, out, samples_per_shard=3, seed=5, resume=True)


def test_bad_settings_and_sources(data: Path, tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="samples_per_shard"):
        build_shards("fake", data, tmp_path / "x", samples_per_shard=0)
    with pytest.raises(BuildError, match="image_format"):
        build_shards("fake", data, tmp_path / "x", image_format="webp")
    with pytest.raises(BuildError, match="min_side must be at least 1, got 0"):
        build_shards("fake", data, tmp_path / "x", min_side=0)
    with pytest.raises(BuildError, match="max_side 8 is below min_side 14"):
        build_shards("fake", data, tmp_path / "x", max_side=8)
    with pytest.raises(SourceError, match="unknown source kind"):
        build_shards("nope", data, tmp_path / "x")
    with pytest.raises(SourceError, match="does not exist"):
        build_shards("fake", tmp_path / "missing", tmp_path / "x")
    with pytest.raises(SourceError, match="no inputs"):
        build_shards("fake", tmp_path, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_cli_build_and_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_dataset(tmp_path / "data", corrupt=("s03",))
    out = tmp_path / "shards"
    argv = ["shards", "build", "--source", "fake", "--root", str(data), "--out", str(out), "--samples-per-shard", "4"]
    assert main([*argv, "--max-side", "20", "--label-dtype", "float16", "--seed", "2"]) == 0
    captured = capsys.readouterr()
    assert f"wrote 3 shards (9 samples) to {out}; skipped 1 unusable input: s03 (" in captured.out
    assert "anydepth shards build: WARNING: skipped s03" in captured.err
    manifest = Manifest.load(out)
    assert manifest.settings["max_side"] == 20 and manifest.settings["label_dtype"] == "float16"

    assert main(["shards", "verify", str(out)]) == 0
    assert capsys.readouterr().out.startswith("OK: 3 shards, 9 samples")

    assert main(argv) == 2  # an existing build without --resume
    assert "anydepth shards build: error:" in capsys.readouterr().err
    assert main([*argv, "--max-side", "20", "--label-dtype", "float16", "--seed", "2", "--resume"]) == 0
    assert main([*argv, "--resume"]) == 2  # other settings
    assert "anydepth shards build: error: cannot resume" in capsys.readouterr().err

    flip_byte(out / "shard-000000.tar")
    assert main(["shards", "verify", str(out)]) == 1
    assert "shard-000000.tar: sha256" in capsys.readouterr().err

    assert main(["shards", "verify", str(tmp_path / "data")]) == 2  # no manifest
    assert "anydepth shards verify: error:" in capsys.readouterr().err
    assert main(["shards", "build", "--source", "nope", "--root", str(data), "--out", str(tmp_path / "o")]) == 2
    assert "unknown source kind 'nope'" in capsys.readouterr().err
    assert main([*argv[:-2], "--samples-per-shard", "0"]) == 2
    assert main(["shards"]) == 2  # argparse: a sub-command is required
