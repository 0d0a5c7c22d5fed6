"""End to end for every registered source kind: a tiny fabricated dataset -> ``build_shards`` -> ``verify_shards`` ->
every sample read back exactly once through the DataModules with 2 DataLoader workers.

Labeled kinds go through ``LabeledDataModule`` (train crops, non-resampled) and ``EvalDataModule`` (labels at the
original size, compared with the reader's own samples); unlabeled kinds through ``UnlabeledDataModule`` (train
crops and ``predict_dataloader``). A kind registered in ``SOURCES`` without a fabricator in ``fabricate.py`` fails.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from anydepth.data.datamodules import EvalDataModule, LabeledDataModule, UnlabeledDataModule
from anydepth.data.transforms import valid_pixels
from anydepth.models.preprocess import lower_bound_size
from anydepth.shards.manifest import Manifest
from anydepth.shards.reader import ShardLoader
from anydepth.shards.schema import Sample
from anydepth.shards.verify import verify_shards
from anydepth.sources import SOURCES, get_source
from anydepth.sources.build import build_shards

from helpers.fabricate import FABRICATORS, SOURCE_KWARGS, fabricate

KINDS = list(SOURCES)
SIZE = 28  # train crop / eval shorter side: two patches
WORKERS = 2
PER_SHARD = 2


@dataclass(frozen=True)
class Built:
    """One kind's build: its shard directory, manifest, and the reader's label kind and own samples by key (the
    expected data)."""

    kind: str
    out: Path
    manifest: Manifest
    label_kind: str | None
    samples: dict[str, Sample]

    @property
    def labeled(self) -> bool:
        return self.manifest.label_kind is not None


@pytest.fixture(scope="module", params=KINDS)
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Built:
    kind = request.param
    root, out = tmp_path_factory.mktemp(f"{kind}-data"), tmp_path_factory.mktemp(f"{kind}-shards")
    count = fabricate(kind, root)
    kwargs = SOURCE_KWARGS.get(kind, {})
    manifest = build_shards(kind, root, out, samples_per_shard=PER_SHARD, workers=1, source_kwargs=kwargs)
    source = get_source(kind)(root, **kwargs)
    samples = {item.key: source.load(item) for item in source.items()}
    assert len(samples) == count, f"{kind}: the reader lists {sorted(samples)}, the fabricator promised {count}"
    return Built(kind, out, manifest, source.label_kind, samples)


def read_once(loader: ShardLoader, built: Built) -> list[dict]:
    """One pass of ``loader`` (batch size 1): every sample of the build seen exactly once; the batches."""
    assert loader.num_workers == WORKERS
    batches = list(loader)
    seen = Counter(key for batch in batches for key in batch["key"])
    assert sorted(seen) == sorted(built.samples) and set(seen.values()) == {1}, seen
    for batch in batches:
        assert batch["label_kind"] == [built.manifest.label_kind]
        assert {"label", "mask"} & set(batch) == ({"label", "mask"} if built.labeled else set())
    return batches


def test_every_registered_kind_has_a_fabricator() -> None:
    assert KINDS == list(SOURCES) and set(FABRICATORS) == set(SOURCES)
    assert set(SOURCE_KWARGS) <= set(SOURCES)


def test_build_and_verify(built: Built) -> None:
    manifest, count = built.manifest, len(built.samples)
    assert manifest.source == built.kind and not manifest.skipped
    assert manifest.label_kind == built.label_kind and manifest.split is None
    assert manifest.synthetic == (built.kind in ("demo-train", "demo-seg"))
    assert [s.samples for s in manifest.shards] == [min(PER_SHARD, count - i) for i in range(0, count, PER_SHARD)]
    assert Manifest.load(built.out).shards == manifest.shards
    report = verify_shards(built.out)
    assert report.ok, report.summary()
    assert (report.shards, report.samples) == (len(manifest.shards), count)


def test_train_loader_reads_every_sample_once(built: Built) -> None:
    common = dict(batch_size=1, num_workers=WORKERS, size=SIZE, resampled=False, pin_memory=False)
    module = LabeledDataModule if built.labeled else UnlabeledDataModule
    for batch in read_once(module([str(built.out)], **common).train_dataloader(), built):
        image = batch["image"]
        assert image.shape == (1, 3, SIZE, SIZE) and image.dtype == torch.uint8
        if built.labeled:
            label, mask = batch["label"], batch["mask"]
            assert label.shape == mask.shape == (1, SIZE, SIZE)
            assert label.dtype == torch.float32 and mask.dtype == torch.bool and mask.any()
            assert 0 <= label.min() and label.max() <= 1 and not label[~mask].any()


def test_eval_loader_keeps_original_resolution(built: Built) -> None:
    if built.labeled:
        loader = EvalDataModule([str(built.out)], num_workers=WORKERS, size=SIZE, pin_memory=False).eval_dataloader()
    else:
        loader = UnlabeledDataModule(
            [str(built.out)], num_workers=WORKERS, size=SIZE, pin_memory=False
        ).predict_dataloader()
    for batch in read_once(loader, built):
        expected = built.samples[batch["key"][0]]
        height, width = expected.image.shape[:2]
        assert batch["original_size"].tolist() == [[height, width]]
        h, w = batch["image"].shape[2:]
        assert batch["image"].shape[:2] == (1, 3) and batch["image"].dtype == torch.float32
        assert (h, w) == lower_bound_size(height, width, SIZE) and h % 14 == w % 14 == 0 and min(h, w) >= SIZE
        if built.labeled:
            label, mask = batch["label"][0].numpy(), batch["mask"][0].numpy()
            assert label.dtype == np.float32 and mask.dtype == bool and label.shape == (height, width)
            np.testing.assert_array_equal(mask, valid_pixels(expected))
            np.testing.assert_array_equal(label, np.where(mask, expected.label, 0))
