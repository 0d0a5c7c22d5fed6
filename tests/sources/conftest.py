"""Fixtures for the reader tests: ``check`` runs the contract every ``Source`` keeps."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from anydepth.shards.schema import Sample, decode_sample, encode_sample, validate_sample
from anydepth.sources import Source

KEY = re.compile(r"^[A-Za-z0-9_\-/]+$")


def check_source(source: Source, n: int) -> dict[str, Sample]:
    """items() deterministic/unique/sorted/dot-free; every load() schema-valid with the common meta; the samples by
    key, in item order."""
    items = source.items()
    keys = [item.key for item in items]
    assert len(items) == n
    assert keys == sorted(keys) and len(set(keys)) == n
    assert all(KEY.match(key) and "." not in key for key in keys)
    assert [item.key for item in source.items()] == keys
    samples = [source.load(item) for item in items]
    for sample, key in zip(samples, keys):
        validate_sample(sample)
        assert sample.key == key
        assert sample.image.dtype == np.uint8 and sample.image.ndim == 3 and sample.image.shape[2] == 3
        meta = sample.meta
        assert meta["source"] == source.name
        assert meta["label_kind"] == source.label_kind
        assert meta["original_size"] == list(sample.image.shape[:2])
        assert meta["scale"] == 1.0
        assert "image" in meta["files"] and not Path(meta["files"]["image"]).is_absolute()
        if sample.label is not None:
            assert sample.label.dtype == np.float32 and sample.label.shape == sample.image.shape[:2]
    roundtrip = decode_sample(encode_sample(samples[0], image_format="png"))  # meta is JSON, arrays survive
    assert roundtrip.meta == samples[0].meta and np.array_equal(roundtrip.image, samples[0].image)
    return {sample.key: sample for sample in samples}


@pytest.fixture
def check() -> Callable[[Source, int], dict[str, Sample]]:
    """``check(source, n)``: ``check_source`` (``n`` = the expected number of items)."""
    return check_source
