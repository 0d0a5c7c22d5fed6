"""``anydepth.shards.reader``: exact epochs (every sample once, the same batch count on every rank, workers without
overlap), seeded orders, exact resume without decoding what it skips, cycling passes, and resampled epochs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import webdataset as wds

from anydepth.data.transforms import TrainTransform
from anydepth.shards.manifest import Manifest, ShardRecord
from anydepth.shards.reader import ShardDataset, ShardLoader, resolve_shards

from helpers.photos import PHOTOS, photo_record
from helpers.shards import CountingTransform, decoded_keys, key_and_draw, write_broken_shard, write_shards

COUNTS = [3, 7, 11, 5, 9, 2, 6]  # 43 samples in uneven shards
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")


@pytest.fixture(scope="module")
def uneven(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    directory = tmp_path_factory.mktemp("reader") / "uneven"
    return directory, write_shards(directory, "u", None, COUNTS)


def loader(directory: Path, workers: int = 0, out: Path | None = None, **kwargs: Any) -> ShardLoader:
    """An exact-epoch loader (unless ``kwargs`` say otherwise) of key-and-draw samples, batches of 2, a small shuffle
    buffer; with ``out``, every decoded sample is listed there."""
    transform = key_and_draw if out is None else CountingTransform(key_and_draw, out)
    options = {"drop_last": True, "shuffle_buffer": 4, **kwargs}
    return ShardLoader(ShardDataset(resolve_shards(str(directory)), transform, 2, **options), num_workers=workers)


def batches(loader: ShardLoader) -> list[tuple[list[str], list[int]]]:
    return [(batch["key"], batch["draw"].tolist()) for batch in loader]


def keys(passes: list[tuple[list[str], list[int]]]) -> list[str]:
    return [key for batch_keys, _ in passes for key in batch_keys]


@pytest.mark.parametrize("workers", [0, 2, 3])
@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_exact_epoch_reads_every_sample_once_with_equal_batches_per_rank(
    uneven: tuple[Path, list[str]], workers: int, world_size: int
) -> None:
    """Each worker forms full batches of its shards; ``B``, the least of the ranks' sums, is every rank's batch
    count; what is left over (under a batch per worker plus the ranks' imbalance) is the remainder."""
    directory, all_keys = uneven
    per_rank = [batches(loader(directory, workers, rank=r, world_size=world_size)) for r in range(world_size)]
    dataset = loader(directory, workers, world_size=world_size).dataset
    layout = dataset.layout(max(1, workers))  # type: ignore[attr-defined]
    full = [sum(sum(COUNTS[i] for i in shards) // 2 for shards in rank) for rank in layout]
    assert [len(b) for b in per_rank] == [min(full)] * world_size == [len(dataset)] * world_size
    seen = [key for rank in per_rank for key in keys(rank)]
    assert len(seen) == len(set(seen)) == world_size * min(full) * 2 and set(seen) <= set(all_keys)
    remainder = len(all_keys) - len(seen)
    assert remainder < world_size * max(1, workers) * 2 + (world_size - 1) * max(COUNTS)
    for rank, rank_layout in zip(per_rank, layout):  # a rank reads its own shards only
        assert {key.split("_")[0] for key in keys(rank)} <= {f"u{i}" for shards in rank_layout for i in shards}


@pytest.mark.parametrize("workers", [0, 2])
def test_the_order_is_a_function_of_seed_and_epoch(uneven: tuple[Path, list[str]], workers: int) -> None:
    directory, _ = uneven
    first = loader(directory, workers)
    epoch0, epoch1 = batches(first), batches(first)  # two passes: epochs 0 and 1
    assert batches(loader(directory, workers)) == epoch0  # the same (seed, epoch): the same keys and draws
    assert keys(epoch1) != keys(epoch0) and len(epoch1) == len(epoch0)
    assert keys(batches(loader(directory, workers, seed=1))) != keys(epoch0)
    shard_orders = {tuple(loader(directory, workers, seed=s).dataset.layout(1)[0][0]) for s in range(4)}
    assert len(shard_orders) > 1  # the shard order is seeded too, not only the shuffle buffer


@pytest.mark.parametrize("resampled", [False, True])
@pytest.mark.parametrize("workers", [0, 2, 3])
def test_resume_continues_the_stream_and_never_decodes_what_it_skips(
    uneven: tuple[Path, list[str]], tmp_path: Path, workers: int, resampled: bool
) -> None:
    """Resumed after ``k`` batches, a pass yields exactly the rest of the uninterrupted one (keys and per-sample
    draws), decoding nothing else: worker turns and per-worker skips follow from the round-robin. A pass saved
    complete is followed by the next epoch's."""
    directory, _ = uneven
    options = dict(resampled=True, samples_per_epoch=40) if resampled else {}
    uninterrupted = loader(directory, workers, **options)
    epoch0, epoch1 = batches(uninterrupted), batches(uninterrupted)
    layout = dict(ranks=1, workers=max(1, workers))
    for k in sorted({1, 2, 3, len(epoch0) // 2, len(epoch0) - 1, len(epoch0)}):
        out = tmp_path / f"k{k}"
        out.mkdir()
        resumed = loader(directory, workers, out=out, **options)
        resumed.load_state_dict(dict(epoch=0, batches=k, **layout))
        rest = batches(resumed)
        assert rest == (epoch0[k:] if k < len(epoch0) else epoch1), k
        assert decoded_keys(out) == sorted(keys(rest))  # the k skipped batches were read, never decoded
        assert resumed.state_dict() == dict(epoch=int(k == len(epoch0)), batches=len(epoch0), **layout)


def test_resuming_with_other_workers_warns(uneven: tuple[Path, list[str]], caplog: pytest.LogCaptureFixture) -> None:
    """Another worker count deals the shards otherwise: the saved batch count no longer marks the same samples."""
    resumed = loader(uneven[0])
    resumed.load_state_dict(dict(epoch=0, batches=3, ranks=1, workers=2))
    with caplog.at_level("WARNING", logger="anydepth.shards.reader"):
        assert len(batches(resumed)) == len(resumed) - 3
    assert "(1, 1) (ranks, workers) resume what (1, 2) saved: samples may repeat or go missing" in caplog.text


@pytest.mark.parametrize("workers", [0, 2])
def test_cycling_passes_run_the_epochs_back_to_back_and_resume(uneven: tuple[Path, list[str]], workers: int) -> None:
    """``batches_per_pass``: pass ``e`` is batches ``e * P`` to ``(e + 1) * P`` of the epochs' concatenated stream."""
    directory, _ = uneven
    plain = loader(directory, workers)
    stream = [batch for _ in range(3) for batch in batches(plain)]
    per_pass = len(plain) - 3  # passes straddle the dataset's epochs
    dataset = loader(directory, workers).dataset
    cycling = ShardLoader(dataset, num_workers=workers, batches_per_pass=per_pass)  # type: ignore[arg-type]
    assert len(cycling) == per_pass
    passes = [batches(cycling) for _ in range(3)]
    assert [b for p in passes for b in p] == stream[: 3 * per_pass]
    resumed = ShardLoader(dataset, num_workers=workers, batches_per_pass=per_pass)  # type: ignore[arg-type]
    resumed.load_state_dict(dict(epoch=0, batches=2, ranks=1, workers=max(1, workers)))
    assert batches(resumed) == stream[2:per_pass]
    assert batches(resumed) == stream[per_pass : 2 * per_pass]


def test_broken_samples_do_not_shorten_an_exact_epoch(tmp_path: Path) -> None:
    """A worker whose broken samples leave it short of its quota reads its shards again from the start, so its rank
    still yields ``len(loader)`` batches (a short rank would hang DDP)."""
    write_broken_shard(tmp_path / "shard-000000.tar")  # good_a, bad_image, bad_label, tiny (fine here), good_b
    size = (tmp_path / "shard-000000.tar").stat().st_size
    record = ShardRecord(name="shard-000000.tar", samples=5, bytes=size, sha256="")
    Manifest(source="t", builder_version="0", shards=[record]).save(tmp_path)
    exact = loader(tmp_path, shuffle=False)
    assert len(exact) == 2 and keys(batches(exact)) == ["good_a", "tiny", "good_b", "good_a"]
    assert exact.dataset.skipped == 2  # type: ignore[attr-defined]
    (tmp_path / "shard-000000.tar").write_bytes(b"")  # the manifest's count, but nothing to read
    with pytest.raises(RuntimeError, match="hold no readable sample"):
        batches(loader(tmp_path))


def test_exact_epochs_refuse_what_they_cannot_honour(uneven: tuple[Path, list[str]], tmp_path: Path) -> None:
    directory, _ = uneven
    with pytest.raises(ValueError, match="samples_per_epoch and batches_per_epoch size resampled epochs"):
        loader(directory, samples_per_epoch=10)
    with pytest.raises(ValueError, match=r"leave a rank of 8 without a full batch of 2 over 1 worker"):
        loader(directory, rank=0, world_size=8)  # 7 shards for 8 ranks
    write_shards(tmp_path / "bare", "b", None, [4], manifest=False)
    with pytest.raises(ValueError, match="exact epochs need sample counts, but no manifest.json lists"):
        loader(tmp_path / "bare" / "shard-000000.tar")
    with pytest.raises(ValueError, match="resampled epochs need sample counts.*or set resampled and samples_per_epoch"):
        loader(tmp_path / "bare" / "shard-000000.tar", resampled=True)
    assert len(loader(tmp_path / "bare" / "shard-000000.tar", resampled=True, samples_per_epoch=4)) == 2


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_resampled_epochs_still_draw_with_replacement(uneven: tuple[Path, list[str]], workers: int) -> None:
    directory, all_keys = uneven
    per_rank = [
        batches(loader(directory, workers, resampled=True, rank=r, world_size=2, samples_per_epoch=60))
        for r in range(2)
    ]
    assert [len(b) for b in per_rank] == [60 // (2 * 2)] * 2  # the same count on both ranks, for any workers
    seen = [key for rank in per_rank for key in keys(rank)]
    assert set(seen) <= set(all_keys) and len(set(seen)) < len(seen)  # with replacement: repeats


def test_the_reader_decodes_jpegs_at_the_transforms_decode_size(tmp_path: Path) -> None:
    """A real shard of 1500 x 2250 photos: with the transform's ``decode_size`` the images come out within one grey
    level of full decoding but not identical (decoded at half scale), the labels and masks identical."""
    with wds.TarWriter(str(tmp_path / "shard-000000.tar")) as writer:
        for name in PHOTOS[:2]:
            writer.write(photo_record(name))
    shards = resolve_shards(str(tmp_path / "shard-000000.tar"))
    batches = [
        next(iter(ShardDataset(shards, TrainTransform(518, reduced), 2, shuffle=False))) for reduced in (True, False)
    ]
    reduced, full = (b["image"].double() for b in batches)
    assert not torch.equal(reduced, full) and (reduced - full).abs().mean() < 1.0
    assert torch.equal(batches[0]["label"], batches[1]["label"]) and torch.equal(batches[0]["mask"], batches[1]["mask"])
