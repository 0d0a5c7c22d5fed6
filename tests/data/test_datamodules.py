"""``anydepth.data.transforms`` and ``anydepth.data.datamodules``: shards written here with ``TarWriter``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from anydepth.data.datamodules import EvalDataModule, LabeledDataModule, MixedDataModule, UnlabeledDataModule
from anydepth.data.transforms import nearest_indices
from anydepth.shards.reader import ShardSpecError, Transform, resolve_shards
from anydepth.shards.schema import Sample

from helpers.shards import SIZES, write_broken_shard, write_shards

S = 28  # training crop in these tests (two patches)
WORKERS = (0, 2)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, list[str]]]:
    root = tmp_path_factory.mktemp("shards")
    return {
        name: (str(root / name), write_shards(root / name, prefix, kind, counts))
        for name, prefix, kind, counts in (
            ("labeled", "l", "depth", [6, 6, 6, 6]),
            ("pseudo", "p", "relative_disparity", [8, 8, 8]),
            ("unlabeled", "u", None, [5, 5]),
            ("uneven", "e", "disparity", [3, 7, 11]),
        )
    }


def keys_of(loader: object) -> list[str]:
    return [key for batch in loader for key in batch["key"]]  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------------------------
# Transforms
# --------------------------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------------------------
# DataModules
# --------------------------------------------------------------------------------------------------------------


def check_train_batch(batch: dict, batch_size: int, labeled: bool = True) -> None:
    assert batch["image"].shape == (batch_size, 3, S, S) and batch["image"].dtype == torch.uint8
    assert len(batch["key"]) == batch_size and all(isinstance(k, str) for k in batch["key"])
    if not labeled:
        assert "label" not in batch and batch["label_kind"] == [None] * batch_size
        return
    assert batch["label"].shape == (batch_size, S, S) and batch["label"].dtype == torch.float32
    assert batch["mask"].shape == (batch_size, S, S) and batch["mask"].dtype == torch.bool
    assert batch["label"].min() >= 0.0 and batch["label"].max() <= 1.0
    assert (batch["label"][~batch["mask"]] == 0).all()
    for label, mask in zip(batch["label"], batch["mask"]):
        assert label[mask].max() == 1.0 and label[mask].min() == 0.0  # per-map normalisation spans [0, 1]


@pytest.mark.parametrize("workers", WORKERS)
def test_labeled_datamodule(data: dict, workers: int) -> None:
    directory, keys = data["labeled"]
    dm = LabeledDataModule([directory], val_shards=[directory], batch_size=4, num_workers=workers, size=S)
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(batches) == len(loader) == len(keys) // 4  # one rank: num_samples // batch_size
    assert sorted(k for b in batches for k in b["key"]) == sorted(keys)  # an exact epoch: every sample once
    for batch in batches:
        check_train_batch(batch, 4)
        assert set(batch["key"]) <= set(keys) and batch["label_kind"] == ["depth"] * 4
    val = list(dm.val_dataloader())
    assert sorted(k for b in val for k in b["key"]) == sorted(keys)  # every sample once, at its own size
    assert {tuple(b["label"].shape[1:]) for b in val} == set(SIZES)


@pytest.mark.parametrize("workers", WORKERS)
def test_sky_pixels_are_valid_zero_disparity(data: dict, workers: int) -> None:
    """Samples with odd ``shard + index`` have sky over their top 3 rows, where the depth is invalid (inf); in the
    square ones the crop spans the whole height, so those rows (after the nearest resize) must be valid with
    disparity 0."""
    dm = LabeledDataModule([data["labeled"][0]], batch_size=2, num_workers=workers, size=S, resampled=False)
    seen = 0
    for batch in dm.train_dataloader():
        for key, label, mask in zip(batch["key"], batch["label"], batch["mask"]):
            shard, index = map(int, key[1:].split("_"))
            height, width = SIZES[(shard + index) % len(SIZES)]
            if (shard + index) % 2 and height == width:
                sky = torch.from_numpy(nearest_indices(height, S) < 3)
                assert mask[sky].all() and (label[sky] == 0).all() and (label[~sky][mask[~sky]] > 0).all()
                seen += 1
    assert seen > 0


@pytest.mark.parametrize("workers", WORKERS)
def test_unlabeled_datamodule(data: dict, workers: int) -> None:
    directory, keys = data["unlabeled"]
    loader = UnlabeledDataModule([directory], batch_size=2, num_workers=workers, size=S).train_dataloader()
    batches = list(loader)
    assert len(batches) == len(loader) == (5 if workers == 0 else 4)  # 2 shards of 5: 2 workers drop one sample each
    for batch in batches:
        check_train_batch(batch, 2, labeled=False)
    pseudo = UnlabeledDataModule([data["pseudo"][0]], batch_size=3, num_workers=workers, size=S)
    for batch in pseudo.train_dataloader():
        check_train_batch(batch, 3)
        assert batch["label_kind"] == ["relative_disparity"] * 3
    assert sorted(keys_of(pseudo.predict_dataloader())) == sorted(data["pseudo"][1])


@pytest.mark.parametrize("workers", WORKERS)
def test_mixed_datamodule_has_one_to_two_ratio(data: dict, workers: int) -> None:
    dm = MixedDataModule([data["labeled"][0]], [data["pseudo"][0]], labeled_batch_size=2, num_workers=workers, size=S)
    steps = list(dm.train_dataloader())
    assert len(steps) == len(data["pseudo"][1]) // (2 * 2)  # one sweep over the pseudo-labeled set per epoch
    for batch, _, _ in steps:
        check_train_batch(batch["labeled"], 2)
        check_train_batch(batch["unlabeled"], 4)
        assert batch["unlabeled"]["label_kind"] == ["relative_disparity"] * 4
    unlabeled = MixedDataModule(
        [data["labeled"][0]], [data["unlabeled"][0]], labeled_batch_size=1, ratio=2, num_workers=workers, size=S
    )
    for batch, _, _ in unlabeled.train_dataloader():
        check_train_batch(batch["labeled"], 1)
        check_train_batch(batch["unlabeled"], 2, labeled=False)


class Tag:
    """A real transform that also records which hook made it (``"hook"`` in every sample)."""

    def __init__(self, transform: Transform, hook: str) -> None:
        self.transform, self.hook = transform, hook

    def __call__(self, sample: Sample, rng: np.random.Generator) -> dict[str, Any]:
        return {**self.transform(sample, rng), "hook": self.hook}


class TaggedMixedDataModule(MixedDataModule):
    """The public transform hooks overridden, the defaults wrapped."""

    def train_transform(self) -> Transform:
        return Tag(super().train_transform(), "train")

    def eval_transform(self) -> Transform:
        return Tag(super().eval_transform(), "eval")


@pytest.mark.parametrize("workers", WORKERS)
def test_transform_hooks_feed_the_labeled_and_evaluation_streams(data: dict, workers: int) -> None:
    """``train_transform`` makes every labeled training sample (the pseudo-labeled stream keeps its own transform),
    ``eval_transform`` every validation sample; the defaults are the relative ones at ``size``."""
    labeled, keys = data["labeled"]
    dm = TaggedMixedDataModule(
        [labeled], [data["pseudo"][0]], labeled_batch_size=2, num_workers=workers, size=S, val_shards=[labeled]
    )
    for batch, _, _ in dm.train_dataloader():
        check_train_batch(batch["labeled"], 2)
        assert batch["labeled"]["hook"] == ["train"] * 2 and "hook" not in batch["unlabeled"]
    val = list(dm.val_dataloader())
    assert sorted(keys_of(val)) == sorted(keys) and all(b["hook"] == ["eval"] for b in val)
    assert {tuple(b["label"].shape[1:]) for b in val} == set(SIZES)


@pytest.mark.parametrize("workers", WORKERS)
def test_mixed_labeled_stream_cycles_through_its_own_exact_epochs(data: dict, workers: int) -> None:
    """The epoch is one sweep over the pseudo-labeled set (24 samples, 6 per step: 4 steps, 3 with two workers);
    the labeled stream (24 samples, 3 per step: labeled epochs of 8 batches) runs on across student epochs, every
    labeled epoch holding every labeled sample once."""
    labeled, pseudo = data["labeled"], data["pseudo"]
    dm = MixedDataModule([labeled[0]], [pseudo[0]], labeled_batch_size=3, num_workers=workers, size=S)
    loader = dm.train_dataloader()
    epochs = [list(loader) for _ in range(4)]
    steps = 4 if workers == 0 else 3  # two workers: 8 + 8 | 8 -> 16 // 6 + 8 // 6
    assert [len(epoch) for epoch in epochs] == [steps] * 4 == [len(loader)] * 4
    for epoch in epochs:  # an exact sweep over the pseudo-labeled set
        assert len({k for batch, _, _ in epoch for k in batch["unlabeled"]["key"]}) == steps * 6
    stream = [k for epoch in epochs for batch, _, _ in epoch for k in batch["labeled"]["key"]]
    assert len(loader.iterables["labeled"].dataset) == 8
    for start in range(0, len(stream), 8 * 3):  # labeled epochs, the last one possibly cut short
        chunk = stream[start : start + 8 * 3]
        assert len(set(chunk)) == len(chunk) and set(chunk) <= set(labeled[1])
    assert len(stream) == 4 * steps * 3 and len(set(stream)) == len(labeled[1])


def test_resampled_mixed_datamodule(data: dict) -> None:
    dm = MixedDataModule(
        [data["labeled"][0]],
        [data["pseudo"][0]],
        labeled_batch_size=2,
        num_workers=0,
        size=S,
        resampled=True,
        samples_per_epoch=40,
    )
    steps = list(dm.train_dataloader())
    assert len(steps) == 40 // 4
    unlabeled = [k for batch, _, _ in steps for k in batch["unlabeled"]["key"]]
    assert len(set(unlabeled)) < len(unlabeled) == 40  # drawn with replacement


@pytest.mark.parametrize("workers", WORKERS)
def test_ranks_read_disjoint_shards_in_exact_epochs(data: dict, workers: int) -> None:
    """Shards of 3, 7 and 11 samples over two ranks, dealt by counts: 11 | 7 + 3. Both ranks yield the batches of
    the poorer one (one worker: 5; two: 5 // 2 + ... over its workers), the rest is the documented remainder."""
    directory, keys = data["uneven"]
    seen, lengths = [], []
    for rank in (0, 1):
        dm = LabeledDataModule([directory], batch_size=2, num_workers=workers, size=S, rank=rank, world_size=2)
        loader = dm.train_dataloader()
        rank_keys = keys_of(loader)
        assert len(rank_keys) == len(set(rank_keys)) == 2 * len(loader)
        seen.append({k.split("_")[0] for k in rank_keys})  # shard ids
        lengths.append(len(loader))
    assert seen == [{"e2"}, {"e0", "e1"}]  # disjoint shards per rank
    assert lengths == [5, 5] if workers == 0 else lengths == [4, 4]  # two workers: 11 | 0 and 7 | 3 -> 5 | 0, 3 + 1


@pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")
@pytest.mark.parametrize("workers", (0, 2, 3))
def test_resampled_ranks_get_equal_batch_counts(data: dict, workers: int) -> None:
    """Shards of 3, 7 and 11 samples over two ranks, resampled: every rank gets 21 // (2 * 2) = 5 batches, whatever
    the number of workers."""
    directory, keys = data["uneven"]
    options = dict(batch_size=2, num_workers=workers, size=S, resampled=True)
    for rank in (0, 1):
        loader = LabeledDataModule([directory], rank=rank, world_size=2, **options).train_dataloader()
        assert len(list(loader)) == len(loader) == len(keys) // (2 * 2) == 5
    dm = LabeledDataModule([directory], samples_per_epoch=12, **options)
    assert len(list(dm.train_dataloader())) == 6


@pytest.mark.parametrize("workers", WORKERS)
def test_determinism_under_a_seed(data: dict, workers: int) -> None:
    def run(seed: int) -> tuple[list[list[str]], list[torch.Tensor]]:
        dm = LabeledDataModule([data["labeled"][0]], batch_size=3, num_workers=workers, size=S, seed=seed)
        loader = dm.train_dataloader()
        first, second = list(loader), list(loader)  # two epochs
        assert [b["key"] for b in first] != [b["key"] for b in second]  # the shuffle depends on the epoch
        batches = first + second
        return [b["key"] for b in batches], [torch.cat([b["image"].flatten(), b["label"].flatten()]) for b in batches]

    keys_a, tensors_a = run(0)
    keys_b, tensors_b = run(0)
    assert keys_a == keys_b and all(torch.equal(a, b) for a, b in zip(tensors_a, tensors_b))  # crops too
    assert run(1)[0] != keys_a


@pytest.mark.parametrize("workers", WORKERS)
def test_broken_samples_are_skipped_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture, workers: int) -> None:
    good = write_broken_shard(tmp_path / "broken-0.tar")
    (tmp_path / "broken-1.tar").write_bytes(b"this is not a tar file" * 100)
    dm = EvalDataModule([str(tmp_path / "broken-{0..1}.tar")], num_workers=workers, size=S)
    with caplog.at_level(logging.WARNING, logger="anydepth.data.datamodules"):
        loader = dm.test_dataloader()
        assert sorted(keys_of(loader)) == good  # the rest of the epoch is read
    if workers == 0:  # worker processes log in their own process, out of caplog's reach
        text = caplog.text
        for key in ("bad_image", "bad_label", "tiny"):
            assert f"'{key}'" in text
        assert "image.jpg" in text and "label.npy" in text and "broken-0.tar" in text and "broken-1.tar" in text
        assert loader.dataset.skipped == 4


def test_shard_specs_and_epoch_lengths(data: dict, tmp_path: Path) -> None:
    directory, keys = data["uneven"]
    by_dir = resolve_shards([directory])
    by_glob = resolve_shards(f"{directory}/shard-*.tar")
    by_brace = resolve_shards([f"{directory}/shard-{{000000..000002}}.tar", f"{directory}/manifest.json"])
    assert by_dir.urls == by_glob.urls and by_dir.counts == by_glob.counts == (3, 7, 11)
    assert by_brace.num_samples == 2 * len(keys) == 42
    with pytest.raises(ShardSpecError, match="matches no file"):
        resolve_shards(f"{directory}/nothing-*.tar")
    write_shards(tmp_path / "bare", "b", "depth", [4], manifest=False)
    with pytest.raises(ValueError, match="exact epochs need sample counts.*or set resampled and samples_per_epoch"):
        LabeledDataModule([str(tmp_path / "bare/*.tar")], num_workers=0).train_dataloader()
    with pytest.raises(ValueError, match="samples_per_epoch sizes resampled epochs: set data.init_args.resampled"):
        LabeledDataModule([str(tmp_path / "bare/*.tar")], samples_per_epoch=4)
    options = dict(batch_size=2, num_workers=0, size=S, resampled=True, samples_per_epoch=4)
    assert len(list(LabeledDataModule([str(tmp_path / "bare/*.tar")], **options).train_dataloader())) == 2


def test_eval_datamodule_batches(data: dict) -> None:
    directory, keys = data["labeled"]
    batches = list(EvalDataModule([directory], num_workers=2, size=S).test_dataloader())
    assert sorted(k for b in batches for k in b["key"]) == sorted(keys)
    for batch in batches:
        h, w = batch["image"].shape[2:]
        assert h % 14 == 0 and w % 14 == 0 and batch["label"].shape[1:] == tuple(batch["original_size"][0].tolist())
    with pytest.raises(ValueError, match="batch_size=1"):
        list(EvalDataModule([directory], batch_size=4, num_workers=0, size=S).test_dataloader())


class _Recorder(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.steps: list[tuple[int, list[str], list[str]]] = []

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.steps.append((self.current_epoch, batch["labeled"]["key"], batch["unlabeled"]["key"]))
        return (self.weight * batch["labeled"]["image"].float().mean()).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_trainer_fit_with_mixed_datamodule(data: dict, tmp_path: Path) -> None:
    """The Trainer drives the epoch (trainer.current_epoch seeds each pass) and sizes epochs from len()."""
    dm = MixedDataModule([data["labeled"][0]], [data["pseudo"][0]], labeled_batch_size=2, num_workers=0, size=S)
    module = _Recorder()
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=dm)
    per_epoch = len(data["pseudo"][1]) // 4
    assert trainer.num_training_batches == per_epoch and len(module.steps) == 2 * per_epoch
    epoch0 = [s[1:] for s in module.steps if s[0] == 0]
    epoch1 = [s[1:] for s in module.steps if s[0] == 1]
    assert len(epoch0) == len(epoch1) == per_epoch and epoch0 != epoch1
    fresh = MixedDataModule([data["labeled"][0]], [data["pseudo"][0]], labeled_batch_size=2, num_workers=0, size=S)
    standalone = [(b["labeled"]["key"], b["unlabeled"]["key"]) for b, _, _ in fresh.train_dataloader()]
    assert standalone == epoch0  # same seed, epoch 0: the same stream outside the Trainer


class _Keys(pl.LightningModule):
    def predict_step(self, batch: dict, batch_idx: int) -> list[str]:
        assert batch["image"].shape[2] % 14 == 0 and batch["image"].shape[3] % 14 == 0
        return batch["key"]


def test_trainer_predict_with_eval_datamodule(data: dict, tmp_path: Path) -> None:
    """Lightning re-creates predict loaders (to track indices): the ShardLoader survives that, with workers."""
    directory, keys = data["pseudo"]
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    predictions = trainer.predict(_Keys(), datamodule=EvalDataModule([directory], num_workers=2, size=S))
    assert sorted(k for batch in predictions for k in batch) == sorted(keys)
