"""``anydepth.shards.schema``: a labeled sample needs one valid label pixel, in memory, in a shard and for verify."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from anydepth.pseudo_label.writer import pseudo_label_record
from anydepth.shards.manifest import Manifest, ShardRecord
from anydepth.shards.schema import Sample, SampleError, decode_sample, encode_sample, relabel_record, validate_sample
from anydepth.shards.verify import verify_shards
from anydepth.shards.writer import ShardWriter

from helpers.photos import photo_record

H, W = 16, 20
ALL, NONE = np.ones((H, W), bool), np.zeros((H, W), bool)


def labeled(key: str, label: np.ndarray, kind: str = "depth", mask: np.ndarray | None = None) -> Sample:
    image = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    return Sample(key, image, label.astype(np.float32), mask, meta={"label_kind": kind})


@pytest.mark.parametrize(
    ("label", "kind", "mask"),
    [
        (np.full((H, W), np.nan), "depth", None),
        (np.zeros((H, W)), "depth", None),
        (np.full((H, W), -2.0), "disparity", None),
        (np.ones((H, W)), "depth", NONE),  # masked out
        (np.full((H, W), np.inf), "disparity", ALL),  # the mask keeps pixels whose value is not finite
        (np.zeros((H, W)), "depth", ALL),  # depth 0 is never a depth
    ],
    ids=["nan", "zero", "negative-disparity", "masked-out", "inf-under-mask", "zero-depth-under-mask"],
)
def test_a_label_without_a_valid_pixel_is_rejected(label: np.ndarray, kind: str, mask: np.ndarray | None) -> None:
    sample = labeled("k", label, kind, mask)
    with pytest.raises(SampleError, match="sample 'k': label has no valid pixel"):
        validate_sample(sample)
    with pytest.raises(SampleError, match="label has no valid pixel"):
        encode_sample(sample)


def test_one_valid_pixel_a_constant_pseudo_label_and_unlabeled_samples_pass() -> None:
    one = np.full((H, W), np.nan)
    one[3, 4] = 2.0
    validate_sample(labeled("one", one))
    validate_sample(labeled("zero-disparity", np.zeros((H, W)), "relative_disparity", ALL))  # 0 = farthest
    unlabeled = Sample("u", np.zeros((H, W, 3), np.uint8), meta={"label_kind": None})
    assert decode_sample(encode_sample(unlabeled)).label is None
    # the pseudo-label writer normalises a constant prediction to zeros under an all-valid mask: still decodable
    record = {**encode_sample(unlabeled), "__url__": "in.tar"}
    pseudo = decode_sample(pseudo_label_record(record, np.full((H, W), 5.0, np.float32)))
    assert pseudo.label_kind == "relative_disparity" and not pseudo.label.any() and pseudo.mask.all()


def test_verify_reports_a_shard_sample_without_a_valid_pixel(tmp_path: Path) -> None:
    """Shards written before the check (here: a record relabelled with an all-NaN depth) fail ``shards verify``."""
    good = encode_sample(labeled("good", np.ones((H, W))))
    bad = relabel_record({**good, "__key__": "bad"}, np.full((H, W), np.nan, np.float32), "depth")
    writer = ShardWriter(tmp_path, 0)
    writer.write(good)
    writer.write(bad)
    done = writer.finish(2, [])
    Manifest("test", "0", [ShardRecord(done["name"], done["samples"], done["bytes"], done["sha256"])]).save(tmp_path)
    report = verify_shards(tmp_path)
    assert (report.ok, report.samples) == (False, 1)
    assert report.problems == [
        "sample 'bad' in shard shard-000000.tar: label has no valid pixel (all non-finite, out of range or masked out)"
    ]


def test_decode_sample_at_a_reduced_scale_keeps_labels_at_the_stored_size() -> None:
    record = photo_record("chelsea", (600, 900))
    sample = decode_sample(record, needed=lambda h, w: (h // 2, w // 2))
    assert sample.image.shape == (300, 450, 3) and sample.full_size == sample.size == (600, 900)
    assert sample.label is not None and sample.label.shape == (600, 900) and sample.valid_mask().shape == (600, 900)
    full = decode_sample(record)
    assert full.full_size is None and full.size == (600, 900)
    png = encode_sample(replace(full, record=None), image_format="png")
    assert decode_sample(png, needed=lambda h, w: (h // 2, w // 2)).full_size is None  # only JPEGs decode reduced
    with pytest.raises(SampleError, match=r"image is \(600, 900\), larger than its full_size \(300, 450\)"):
        validate_sample(replace(full, full_size=(300, 450)))
