"""WebDataset pipelines: the seeded per-rank, per-worker stream of batches that training and evaluation read.

Shards are named by ``list[str]`` specs (:mod:`anydepth.shards.specs`: directories with ``manifest.json``, brace
patterns, globs, tar paths), resolved to paths and the manifests' sample counts, hence the epoch length.

One pipeline per DataLoader worker (:class:`ShardDataset`), rebuilt at every pass for (seed, epoch, rank, worker)::

    exact (training default): epoch-seeded shard order (the same on every rank) -> dealt to ranks, then to the
                              rank's workers, balanced by sample counts (dealing.deal_balanced)
    resampled:                wds.ResampledShards per rank and worker (draws with replacement, endless)
    read once (evaluation):   shards dealt round-robin to ranks, then to workers (dealing.deal)
    -> wds.tarfile_to_samples -> wds.shuffle (raw records, seeded buffer) -> skip consumed records (undecoded)
    -> decode_sample + transform -> collate batches, up to this worker's batch quota

Exact epochs (``resampled=False, drop_last=True``) read every sample once per epoch across all ranks and workers,
except a remainder dropped at the end of each worker's stream (as ``DistributedSampler(drop_last=True)``), so that
every rank yields the same ``B`` full batches (DDP needs it: a rank that ran out first would hang the others'
all-reduce). A worker whose shards hold ``n`` samples (manifest counts, required) forms ``n // batch_size`` batches,
a rank the sum over its workers, and ``B`` is the minimum over ranks; the DataLoader takes its workers' batches
round-robin, and each worker yields its share of the first ``B`` (:func:`~anydepth.shards.dealing.round_robin_split`).
The remainder is under one batch per worker plus the ranks' imbalance (at most the largest shard), another random
set every epoch. ``B`` is the same every epoch (the dealt totals depend only on the counts). If broken samples leave a
worker short of its quota, it reads its shards again from the start rather than end its rank's epoch early.
Resampled epochs (``resampled=True``; for very large or tiny sets) draw shards with replacement, ``B =
samples_per_epoch // (world_size * batch_size)`` batches per rank (at least 1; ``samples_per_epoch`` defaults to the
manifests' total, ``batches_per_epoch`` sets ``B``). Read-once passes (``resampled=False, drop_last=False``) read each
shard of the rank once, with partial batches and per-rank batch counts that may differ: validation and evaluation.

Determinism. Every random choice (shard order and draws, shuffle buffer, crops: per sample, by its position in the
worker's stream) is seeded by ``SeedSequence([seed, stream, epoch, rank, worker, ...])``, never by torch's worker
seeds or global RNGs: the same seed, world size and ``num_workers`` give the same batches, crops included.
:class:`ShardLoader` sets the epoch before each pass, from ``trainer.current_epoch`` when a Trainer is attached,
else its pass count (workers are therefore not persistent).

Exact resume. :class:`ShardLoader` is stateful for Lightning: its ``state_dict`` ``{"epoch", "batches"}`` goes into
the checkpoint (the same on every rank, all having handed out the same count, so rank 0's serves all). Resumed
mid-epoch, the pass continues the same stream: since the DataLoader's round-robin over workers is deterministic, the
batch count says how many batches each worker had handed out and whose turn is next; the workers' turns are rotated
to match and each skips its consumed raw records without decoding them. No sample is repeated or lost but the
batches trained after the last checkpoint (repeated); broken samples in the skipped part shift the stream by as many
(the skip counts raw records).

Broken data never kills an epoch: a sample whose decoding (``decode_sample``) or transform raises ``SampleError``
(or an I/O error) and an unreadable tar member or shard are logged (``logging`` warning with the key and the shard)
and counted (``ShardDataset.skipped``, per process), and the stream goes on. ``max_consecutive_errors`` failures in a
row abort instead, so a wrong path or a broken transform cannot spin an endless stream silently.
"""

from __future__ import annotations

import itertools
import logging
import random
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from anydepth.shards.dealing import deal_shards, round_robin_split
from anydepth.shards.schema import Sample, SampleError, decode_sample
from anydepth.shards.specs import ShardList, ShardSpecError, resolve_shards

__all__ = ["ShardDataset", "ShardList", "ShardLoader", "ShardSpecError", "Transform", "collate", "resolve_shards"]

logger = logging.getLogger(__name__)

Transform = Callable[[Sample, np.random.Generator], dict[str, Any]]
"""``(sample, rng) -> dict`` (:mod:`anydepth.data.transforms`); a ``decode_size`` is ``decode_sample``'s ``needed``."""


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


def _worker() -> tuple[int, int]:
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


class ShardDataset(IterableDataset):
    """A WebDataset pipeline yielding collated batches of ``batch_size``: resampled, exact (``drop_last``) or read
    once (see the module docstring); ``shuffle`` shuffles the shard order and samples through a ``shuffle_buffer``
    of raw records; ``name`` labels log lines and separates the random streams of datasets sharing a seed."""

    def __init__(
        self,
        shards: ShardList,
        transform: Transform,
        batch_size: int,
        *,
        resampled: bool = False,
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
        self.epoch, self.start, self.stop = 0, 0, None
        self.num_workers = 0  # set by ShardLoader: the epoch's length depends on it
        self.skipped = 0
        self._consecutive_errors = 0
        self._quotas: dict[int, list[int] | None] = {}
        self._batches = batches_per_epoch
        if not resampled and (samples_per_epoch is not None or batches_per_epoch is not None):
            raise ValueError(
                f"{name}: samples_per_epoch and batches_per_epoch size resampled epochs; an exact epoch reads "
                "every shard once (shorten it with trainer.limit_train_batches, or set resampled)"
            )
        total = samples_per_epoch if samples_per_epoch is not None else shards.num_samples
        if total is None and (self.exact or (resampled and batches_per_epoch is None)):
            missing = [u for u, c in zip(shards.urls, shards.counts) if c is None][:3]
            raise ValueError(
                f"{name}: {'exact' if self.exact else 'resampled'} epochs need sample counts, but no manifest.json "
                f"lists {missing}...; name shard directories (or patterns beside their manifest.json), or set "
                "resampled and samples_per_epoch"
            )
        if resampled and batches_per_epoch is None:
            self._batches = max(1, (total or 0) // (world_size * batch_size))

    @property
    def exact(self) -> bool:
        """Exact epochs: every sample once per epoch (minus the remainder), the same batch count on every rank."""
        return not self.resampled and self.drop_last

    def set_pass(self, epoch: int, start: int = 0, stop: int | None = None) -> None:
        """The next pass yields batches ``start`` to ``stop`` (default: the end) of this rank's ``epoch``."""
        if start and self.quotas(max(1, self.num_workers)) is None:
            raise ValueError(f"{self.name}: a read-once pass cannot start mid-way")
        self.epoch, self.start, self.stop = epoch, start, stop

    def _seed(self, *parts: int) -> np.random.SeedSequence:
        return np.random.SeedSequence([self.seed, self.stream, self.epoch, *parts])

    def _samples(self, shards: list[int]) -> int | None:
        counts = [self.shards.counts[i] for i in shards]
        return None if None in counts else sum(c for c in counts if c is not None)

    def layout(self, workers: int) -> list[list[list[int]]]:
        """This epoch's shards of every rank's every worker: the epoch-seeded shard order (the same on every rank),
        dealt by sample counts in exact epochs, else round-robin (:func:`~anydepth.shards.dealing.deal_shards`)."""
        order = list(range(len(self.shards.urls)))
        if self.shuffle:
            random.Random(int(self._seed().generate_state(1)[0])).shuffle(order)
        counts = [c or 0 for c in self.shards.counts] if self.exact else None
        return deal_shards(order, self.world_size, workers, counts)

    def quotas(self, workers: int) -> list[int] | None:
        """Batches each of this rank's ``workers`` yields per epoch, the same every epoch (None: read once, each
        worker to its end). Raises ``ValueError`` if an exact epoch would hold no batch."""
        if workers not in self._quotas:
            self._quotas[workers] = None
            if self.resampled:
                assert self._batches is not None
                self._quotas[workers] = round_robin_split([self._batches] * workers, self._batches)[0]  # even split
            elif self.exact:
                full = [[(self._samples(s) or 0) // self.batch_size for s in r] for r in self.layout(workers)]
                if not (batches := min(sum(rank) for rank in full)):
                    raise ValueError(
                        f"{self.name}: {self.shards.num_samples} samples in {len(self.shards.urls)} shards leave a "
                        f"rank of {self.world_size} without a full batch of {self.batch_size} over {workers} "
                        "worker(s); use a smaller batch_size or fewer workers, write smaller shards, or set resampled"
                    )
                self._quotas[workers] = round_robin_split(full[self.rank], batches)[0]
        return self._quotas[workers]

    def __len__(self) -> int:
        """Batches this rank yields per epoch (a read-once pass: from the manifest counts, minus skipped samples)."""
        workers = max(1, self.num_workers)
        if (quotas := self.quotas(workers)) is not None:
            return sum(quotas)
        samples = [self._samples(shards) for shards in self.layout(workers)[self.rank]]
        if None in samples:
            raise TypeError(f"{self.name}: length unknown (shards without manifest counts)")
        return sum(-(-(n or 0) // self.batch_size) for n in samples)

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

    def _decode_and_transform(self, records: Iterator[dict[str, Any]], worker: int, first: int) -> Iterator[Any]:
        """Decode and transform records, the ``i``-th of the worker's stream (from ``first``) with crops drawn from
        its own seeded generator (so a resumed stream crops as the uninterrupted one)."""
        for index, record in enumerate(records, start=first):
            rng = np.random.default_rng(self._seed(self.rank, worker, index))
            try:
                item = self.transform(decode_sample(record, needed=getattr(self.transform, "decode_size", None)), rng)
            except (SampleError, OSError, ValueError) as err:
                self._skip(f"sample {record.get('__key__')!r} of shard {record.get('__url__')}", err)
                continue
            self._consecutive_errors = 0
            yield item

    def _read(self, urls: Iterator[dict[str, str]], seed: np.random.SeedSequence) -> Iterator[dict[str, Any]]:
        """Raw (undecoded) records of the shards ``urls`` yields, through the seeded shuffle buffer."""
        records = wds.tarfile_to_samples(handler=self._tar_error)(urls)
        if not (self.shuffle and self.shuffle_buffer > 1):
            return records
        initial = min(100, self.shuffle_buffer)
        return wds.shuffle(self.shuffle_buffer, initial=initial, seed=int(seed.generate_state(1)[0]))(records)

    def _records(self, worker: int, workers: int) -> Iterator[dict[str, Any]]:
        """Logical ``worker``'s raw records this epoch: endless (resampled); its shards once (read once); or its
        shards, read again from the start (an identical pass) while broken samples leave an exact quota short."""
        shard_seed, shuffle_seed = self._seed(self.rank, worker).spawn(2)
        if self.resampled:
            seed = int(shard_seed.generate_state(1)[0])
            source = wds.ResampledShards(list(self.shards.urls), seed=seed, worker_seed=lambda: 0, deterministic=True)
            yield from self._read(iter(source), shuffle_seed)
            return
        urls = [{"url": self.shards.urls[i]} for i in self.layout(workers)[self.rank][worker]]
        for _ in itertools.count() if self.exact else range(1):
            read = 0
            for record in self._read(iter(urls), shuffle_seed):
                read += 1
                yield record
            if not read and self.exact:
                raise RuntimeError(f"{self.name}: shards {urls[:3]}... hold no readable sample")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker, workers = _worker()
        quotas = self.quotas(workers)
        skip, count = 0, None
        if quotas is not None:  # resume: worker turns rotated to the next one's, consumed batches skipped
            done, turn = round_robin_split(quotas, self.start)
            stop = round_robin_split(quotas, sum(quotas) if self.stop is None else self.stop)[0]
            worker = (turn + worker) % workers
            skip, count = done[worker], stop[worker] - done[worker]
        records = itertools.islice(self._records(worker, workers), skip * self.batch_size, None)  # never decoded
        samples = self._decode_and_transform(records, worker, skip * self.batch_size)
        for _ in itertools.count() if count is None else range(count):
            batch = list(itertools.islice(samples, self.batch_size))  # not wds.batched: it decodes one sample ahead
            if not batch or (self.drop_last and len(batch) < self.batch_size):
                return
            yield collate(batch)


class ShardLoader(DataLoader):
    """DataLoader over a :class:`ShardDataset`: batches arrive collated from the workers (``batch_size=None``).

    A pass (``iter``) is the epoch ``epoch_fn()`` (else the number of earlier passes) of the dataset; with
    ``batches_per_pass``, it is instead the next ``batches_per_pass`` batches of the dataset's epochs 0, 1, 2, ...
    back to back (pass ``e`` starting at batch ``e * batches_per_pass`` of that stream): a stream that cycles through
    its own exact epochs beside a longer or shorter one (the labeled stream of :class:`MixedDataModule`).

    Stateful for Lightning (``state_dict`` / ``load_state_dict``, saved in checkpoints): a run resumed from a
    mid-epoch checkpoint continues the pass where the checkpoint left it (see the module docstring)."""

    def __init__(
        self,
        dataset: ShardDataset,
        num_workers: int = 0,
        pin_memory: bool = False,
        epoch_fn: Callable[[], int | None] | None = None,
        batches_per_pass: int | None = None,
        **kwargs: Any,
    ) -> None:
        dataset.num_workers = num_workers
        kwargs.setdefault("batch_size", None)
        kwargs["persistent_workers"] = False
        super().__init__(dataset, num_workers=num_workers, pin_memory=pin_memory, **kwargs)
        self.epoch_fn, self.batches_per_pass = epoch_fn, batches_per_pass
        self.passes = self.epoch = 0
        self.yielded = 0  # batches of the current pass handed out, from its start
        self._restored: dict[str, int] | None = None
        self._shards, self._workers = dataset, max(1, num_workers)
        dataset.quotas(self._workers)  # an exact epoch without a batch fails here, not in a worker

    def __len__(self) -> int:
        return len(self._shards) if self.batches_per_pass is None else self.batches_per_pass

    def state_dict(self) -> dict[str, int]:
        """``{"epoch", "batches"}``: the current pass's epoch and the batches it has handed out (and the ranks and
        workers whose order that is)."""
        return dict(epoch=self.epoch, batches=self.yielded, ranks=self._shards.world_size, workers=self._workers)

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume: if the next pass is of the saved epoch, it starts after the saved batch count (a pass saved
        complete is followed by the next epoch's)."""
        self._restored = dict(state)

    def __iter__(self) -> Any:
        epoch_now = self.epoch_fn() if self.epoch_fn is not None else None
        self.epoch = self.passes if epoch_now is None else epoch_now
        restored, self._restored = self._restored, None
        self.yielded = 0
        if restored is not None and restored["epoch"] == self.epoch:
            self.yielded = restored["batches"]
            saved, now = (restored.get("ranks"), restored.get("workers")), (self._shards.world_size, self._workers)
            if saved != now:  # another layout: its batch k is not the saved order's
                warning = "%s: %s (ranks, workers) resume what %s saved: samples may repeat or go missing this epoch"
                logger.warning(warning, self._shards.name, now, saved)
            if self.yielded >= len(self):  # saved after the epoch's last batch: Lightning, restoring, asks for the
                self.epoch, self.yielded = self.epoch + 1, 0  # next pass before it advances its epoch
        self.passes += 1
        return self._batches(self._spans(self.epoch, self.yielded))

    def _spans(self, epoch: int, start: int) -> list[tuple[int, int, int | None]]:
        """The dataset passes ``(epoch, first batch, stop)`` that make up pass ``epoch`` from batch ``start``."""
        if self.batches_per_pass is None:
            return [(epoch, start, None)]
        spans, per_epoch = [], len(self._shards)
        position, end = epoch * self.batches_per_pass + start, (epoch + 1) * self.batches_per_pass
        while position < end:
            data_epoch, first = divmod(position, per_epoch)
            spans.append((data_epoch, first, min(per_epoch, first + end - position)))
            position += spans[-1][2] - first
        return spans

    def _batches(self, spans: list[tuple[int, int, int | None]]) -> Iterator[Any]:
        for epoch, start, stop in spans:
            self._shards.set_pass(epoch, start, stop)
            for batch in super().__iter__():
                self.yielded += 1
                yield batch
