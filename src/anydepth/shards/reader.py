"""WebDataset pipelines and the LightningDataModules that feed training, validation and evaluation.

Shards are named by ``list[str]`` specs, each a shard directory holding ``manifest.json`` (or the manifest file
itself), a brace pattern (``data/nyu/shard-{000000..000009}.tar``), a glob (``data/nyu/*.tar``) or one tar path.
The manifest gives each shard's sample count, hence the epoch length, without reading the shards; shards named by
a pattern take their counts from a ``manifest.json`` beside them when there is one.

One pipeline per DataLoader worker (:class:`ShardDataset`), rebuilt at every pass for (seed, epoch, rank, worker)::

    shards --[resampled: wds.ResampledShards(seed, deterministic=True), per rank and worker]
           --[or:        epoch-seeded shard shuffle (same on every rank) -> split by rank -> wds.split_by_worker]
           -> wds.tarfile_to_samples -> wds.shuffle (raw records, seeded buffer) -> decode_sample + transform
           -> wds.batched(collate) [-> .with_epoch(nbatches=this worker's share)]

Epoch length. ``resampled=True`` (the default for training) draws shards with replacement, an endless stream, cut by
``.with_epoch``. It is applied *after* ``wds.batched``, so it counts batches (before batching it would count
samples), and it counts them per DataLoader worker (each worker runs its own copy of the pipeline). Each rank gets
``B = samples_per_epoch // (world_size * batch_size)`` batches per epoch (at least 1; ``samples_per_epoch`` defaults
to the manifests' total); worker ``w`` of ``W`` yields ``B // W`` batches plus one if ``w < B % W``, so the rank gets
exactly ``B`` for any ``W`` (``W = 1`` with ``num_workers=0``). Every rank therefore runs the same number of steps,
which DDP needs (a rank that runs out first would hang the others' all-reduce). ``len(loader) == B``.
``resampled=False`` reads each shard of the rank once per epoch (rank ``r`` of ``R`` takes shards ``r, r + R, ...``,
and each worker a disjoint share of those): exact coverage, disjoint across ranks, but the batch count may differ
between ranks, so use it for validation and evaluation, not DDP training.

Determinism. Every random choice (shard draws, the shard order, the shuffle buffer, crop offsets) comes from
generators seeded by ``numpy.random.SeedSequence([seed, stream, epoch, rank, worker])``; nothing depends on torch's
worker seeds or global RNGs. The same seed, world size and ``num_workers`` give the same batches, crops included;
``num_workers=0`` and ``2`` give different (each reproducible) orders. The epoch is set on the dataset by
:class:`ShardLoader` before each pass, from ``trainer.current_epoch`` when a Trainer is attached (so a resumed run
continues the sequence) or its own pass counter otherwise; workers are therefore not persistent (a persistent
worker would keep its first epoch's copy of the dataset). A run resumed from a mid-epoch checkpoint continues
that epoch with a stream seeded by the number of batches already handed out (``ShardLoader`` is stateful for
Lightning), so it does not replay the batches it had trained on before the interruption.

Broken data never kills an epoch: a sample whose decoding (``decode_sample``) or transform raises ``SampleError``
(or an I/O error) and an unreadable tar member or shard are logged (``logging`` warning with the key and the shard)
and counted (``ShardDataset.skipped``, per process: with workers each worker counts and logs its own), and the
stream goes on. ``max_consecutive_errors`` failures in a row abort instead, so a wrong path or a broken transform
cannot spin an endless resampled stream silently.
"""

from __future__ import annotations

import glob
import logging
import random
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import braceexpand
import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from anydepth.shards.dealing import deal
from anydepth.shards.manifest import MANIFEST_NAME, Manifest
from anydepth.shards.schema import Sample, SampleError, decode_sample

__all__ = ["ShardDataset", "ShardList", "ShardLoader", "ShardSpecError", "Transform", "collate", "resolve_shards"]

logger = logging.getLogger(__name__)

Transform = Callable[[Sample, np.random.Generator], dict[str, Any]]
"""A per-sample transform: ``(sample, rng) -> dict of tensors and values`` (see :mod:`anydepth.data.transforms`)."""


# --------------------------------------------------------------------------------------------------------------
# Shard lists
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardList:
    """Shard paths and their sample counts (None where no manifest names the shard)."""

    urls: tuple[str, ...]
    counts: tuple[int | None, ...]

    @property
    def num_samples(self) -> int | None:
        return None if any(c is None for c in self.counts) else sum(c for c in self.counts if c is not None)


def _manifest_counts(directory: Path, cache: dict[Path, dict[str, int]]) -> dict[str, int]:
    if directory not in cache:
        manifest_path = directory / MANIFEST_NAME
        cache[directory] = (
            {s.name: s.samples for s in Manifest.load(manifest_path).shards} if manifest_path.is_file() else {}
        )
    return cache[directory]


class ShardSpecError(ValueError):
    """Shard specs that name no readable shards (a missing file, a pattern matching nothing, an empty list)."""


def resolve_shards(specs: str | Sequence[str]) -> ShardList:
    """Expand shard specs (see the module docstring) in order into paths and manifest sample counts; raises
    ``ShardSpecError`` (or ``ManifestError`` for a directory without a valid manifest) naming the spec."""
    specs = [specs] if isinstance(specs, str | Path) else list(specs)
    if not specs:
        raise ShardSpecError("no shards given")
    urls: list[str] = []
    counts: list[int | None] = []
    cache: dict[Path, dict[str, int]] = {}
    for spec in map(str, specs):
        path = Path(spec)
        if path.is_dir() or path.name == MANIFEST_NAME:
            directory = path if path.is_dir() else path.parent
            manifest = Manifest.load(path)
            if not manifest.shards:
                raise ShardSpecError(f"{directory / MANIFEST_NAME} lists no shards")
            urls += [str(p) for p in manifest.shard_paths(directory)]
            counts += [s.samples for s in manifest.shards]
            continue
        for pattern in braceexpand.braceexpand(spec):
            matched = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
            if not matched:
                raise ShardSpecError(f"shard pattern {pattern!r} matches no file")
            for name in matched:
                if "://" not in name and not name.startswith("pipe:") and not Path(name).is_file():
                    raise ShardSpecError(
                        f"shard {name} does not exist (from {spec!r}): give a shard directory (with manifest.json), "
                        "a .tar file, a glob or a brace pattern"
                    )
                urls.append(name)
                counts.append(_manifest_counts(Path(name).parent, cache).get(Path(name).name))
    return ShardList(tuple(urls), tuple(counts))


# --------------------------------------------------------------------------------------------------------------
# Batching
# --------------------------------------------------------------------------------------------------------------


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensor fields into a batch (``image`` B x 3 x H x W, ``label`` B x H x W, ``mask`` B x H x W ...);
    other fields (``key``, ``label_kind``) become lists. Raises ``ValueError`` if the samples disagree."""
    fields = list(samples[0])
    keys = [s.get("key") for s in samples]
    batch: dict[str, Any] = {}
    for sample in samples[1:]:
        if list(sample) != fields:
            raise ValueError(
                f"cannot batch samples with different fields ({fields} vs {list(sample)}; keys {keys}): "
                "labeled and unlabeled samples need separate shard sets"
            )
    for name in fields:
        values = [s[name] for s in samples]
        if isinstance(values[0], torch.Tensor):
            shapes = sorted({tuple(v.shape) for v in values})
            if len(shapes) > 1:
                raise ValueError(
                    f"cannot stack {name!r} of shapes {shapes} (keys {keys}): evaluate images of different "
                    "sizes with batch_size=1"
                )
            batch[name] = torch.stack(values)
        else:
            batch[name] = values
    return batch


# --------------------------------------------------------------------------------------------------------------
# The per-worker pipeline
# --------------------------------------------------------------------------------------------------------------


def _worker() -> tuple[int, int]:
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


class ShardDataset(IterableDataset):
    """A WebDataset pipeline yielding collated batches (see the module docstring for order, length, seeding).

    ``batch_size`` samples per batch; ``resampled`` endless shard resampling cut to ``batches_per_epoch`` per rank
    (default ``samples_per_epoch // (world_size * batch_size)``, ``samples_per_epoch`` defaulting to the manifests'
    total) or one pass over the rank's shards; ``shuffle`` shuffles shard order (non-resampled) and samples through a
    ``shuffle_buffer`` of raw records; ``drop_last`` drops a final partial batch (non-resampled only);
    ``name`` labels log lines and separates the random streams of datasets sharing a seed.
    """

    def __init__(
        self,
        shards: ShardList,
        transform: Transform,
        batch_size: int,
        *,
        resampled: bool = True,
        shuffle: bool = True,
        shuffle_buffer: int = 1000,
        seed: int = 0,
        samples_per_epoch: int | None = None,
        batches_per_epoch: int | None = None,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        name: str = "data",
        max_consecutive_errors: int = 100,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.shards, self.transform, self.batch_size = shards, transform, batch_size
        self.resampled, self.shuffle, self.shuffle_buffer = resampled, shuffle, shuffle_buffer
        self.seed, self.drop_last, self.rank, self.world_size = seed, drop_last, rank, world_size
        self.name, self.max_consecutive_errors = name, max_consecutive_errors
        self.stream = zlib.crc32(name.encode())
        self.epoch, self.resumed_after = 0, 0
        self.num_workers = 0  # set by ShardLoader; only the non-resampled length needs it
        self.skipped = 0
        self._consecutive_errors = 0
        self._batches = batches_per_epoch
        if resampled and batches_per_epoch is None:
            total = samples_per_epoch if samples_per_epoch is not None else shards.num_samples
            if total is None:
                missing = [u for u, c in zip(shards.urls, shards.counts) if c is None][:3]
                raise ValueError(
                    f"{name}: the epoch length of resampled shards needs sample counts, but no manifest.json lists "
                    f"{missing}...; name shard directories, or set samples_per_epoch"
                )
            self._batches = max(1, total // (world_size * batch_size))

    def set_epoch(self, epoch: int, resumed_after: int = 0) -> None:
        """The epoch of the next pass; ``resumed_after > 0``: a pass resuming that epoch after so many batches, which
        draws its own random stream (see :meth:`ShardLoader.load_state_dict`)."""
        self.epoch, self.resumed_after = epoch, resumed_after

    def _seed(self, *parts: int) -> np.random.SeedSequence:
        resumed = [self.resumed_after] if self.resumed_after else []
        return np.random.SeedSequence([self.seed, self.stream, self.epoch, *resumed, *parts])

    def rank_shards(self) -> list[int]:
        """Non-resampled mode: indices of this rank's shards this epoch (shuffled identically on every rank,
        then rank ``r`` takes positions ``r, r + world_size, ...``)."""
        order = list(range(len(self.shards.urls)))
        if self.shuffle:
            random.Random(int(self._seed().generate_state(1)[0])).shuffle(order)
        return deal(order, self.rank, self.world_size)

    @property
    def batches_per_rank(self) -> int | None:
        """Batches this rank yields per epoch: exact when resampled, from the manifest counts otherwise (minus any
        skipped samples; None when a shard has no count)."""
        if self.resampled:
            return self._batches
        workers = max(1, self.num_workers)
        mine = self.rank_shards()
        total = 0
        for worker in range(workers):
            counts = [self.shards.counts[i] for i in mine[worker::workers]]
            if any(c is None for c in counts):
                return None
            samples = sum(c for c in counts if c is not None)
            total += samples // self.batch_size if self.drop_last else -(-samples // self.batch_size)
        return total

    def __len__(self) -> int:
        batches = self.batches_per_rank
        if batches is None:
            raise TypeError(f"{self.name}: length unknown (shards without manifest counts)")
        return batches

    def _skip(self, what: str, err: BaseException) -> None:
        self.skipped += 1
        self._consecutive_errors += 1
        logger.warning("%s: skipped %s: %s (%d skipped in this process)", self.name, what, err, self.skipped)
        if self._consecutive_errors >= self.max_consecutive_errors:
            raise RuntimeError(
                f"{self.name}: {self._consecutive_errors} consecutive unreadable samples or shards; the last: {err}"
            ) from err

    def _tar_error(self, exn: Exception) -> bool:
        """webdataset handler for unreadable shards and tar members: log, count, continue."""
        self._skip("unreadable shard data", exn)
        return True

    def _decode_and_transform(self, records: Iterator[dict[str, Any]], rng: np.random.Generator) -> Iterator[Any]:
        for record in records:
            try:
                item = self.transform(decode_sample(record), rng)
            except (SampleError, OSError, ValueError) as err:
                self._skip(f"sample {record.get('__key__')!r} of shard {record.get('__url__')}", err)
                continue
            self._consecutive_errors = 0
            yield item

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker, workers = _worker()
        seeds = self._seed(self.rank, worker).spawn(3)
        if self.resampled:
            share = self._batches // workers + (worker < self._batches % workers)
            if share == 0:
                return
            source = wds.ResampledShards(
                list(self.shards.urls),
                seed=int(seeds[0].generate_state(1)[0]),
                worker_seed=lambda: self.rank * 1000 + worker,
                deterministic=True,
            )
            source.epoch = self.epoch - 1  # ResampledShards increments its epoch when iterated
            stages: list[Any] = [source]
        else:
            urls = [self.shards.urls[i] for i in self.rank_shards()]
            if len(urls) <= worker:
                return  # more workers than shards on this rank: this one has nothing to read
            stages = [wds.SimpleShardList(urls), wds.split_by_worker]
        stages.append(wds.tarfile_to_samples(handler=self._tar_error))
        if self.shuffle and self.shuffle_buffer > 1:
            rng = random.Random(int(seeds[1].generate_state(1)[0]))
            stages.append(wds.shuffle(self.shuffle_buffer, initial=min(100, self.shuffle_buffer), rng=rng))
        transform_rng = np.random.default_rng(seeds[2])
        stages.append(lambda records: self._decode_and_transform(records, transform_rng))
        stages.append(wds.batched(self.batch_size, collation_fn=collate, partial=self.resampled or not self.drop_last))
        pipeline = wds.DataPipeline(*stages)
        if self.resampled:
            pipeline = pipeline.with_epoch(nbatches=share)  # after batched(): counts this worker's batches
        yield from pipeline


class ShardLoader(DataLoader):
    """DataLoader over a :class:`ShardDataset`: batches arrive collated from the workers (``batch_size=None``),
    and each pass first sets the dataset's epoch (``epoch_fn()``, else the number of earlier passes).

    Stateful for Lightning (``state_dict`` / ``load_state_dict``, saved in checkpoints): a run resumed from a
    mid-epoch checkpoint continues that epoch with a fresh random stream instead of replaying the batches it had
    already trained on, and Lightning ends the epoch at its usual length."""

    def __init__(
        self,
        dataset: ShardDataset,
        num_workers: int = 0,
        pin_memory: bool = False,
        epoch_fn: Callable[[], int | None] | None = None,
        **kwargs: Any,
    ) -> None:
        dataset.num_workers = num_workers
        kwargs.setdefault("batch_size", None)
        kwargs["persistent_workers"] = False
        super().__init__(dataset, num_workers=num_workers, pin_memory=pin_memory, **kwargs)
        self.epoch_fn = epoch_fn
        self.passes = 0
        self.yielded = 0  # batches of the current pass handed out
        self._restored: dict[str, int] | None = None

    def state_dict(self) -> dict[str, int]:
        """``{"epoch", "batches"}``: the current pass's epoch and the batches it has handed out."""
        return {"epoch": self.dataset.epoch, "batches": self.yielded}  # type: ignore[attr-defined]

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume: if the next pass is of the saved epoch, it draws the stream seeded with the saved batch count
        (every random choice differs from the interrupted pass's), not the epoch's stream from its start."""
        self._restored = dict(state)

    def __iter__(self) -> Any:
        epoch_now = self.epoch_fn() if self.epoch_fn is not None else None
        epoch = self.passes if epoch_now is None else epoch_now
        restored, self._restored = self._restored, None
        resumed_after = restored["batches"] if restored is not None and restored["epoch"] == epoch else 0
        self.dataset.set_epoch(epoch, resumed_after)  # type: ignore[attr-defined]
        self.passes += 1
        self.yielded = 0
        return self._counted(super().__iter__())

    def _counted(self, batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            self.yielded += 1
            yield batch
