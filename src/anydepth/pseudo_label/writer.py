"""The output side of pseudo-labelling: each input shard's pseudo labels written as one output shard, and the
manifest once every rank is done."""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor

from anydepth.data.transforms import normalize_per_map
from anydepth.pseudo_label.state import LABEL_DTYPE, LABEL_KIND, write_manifest
from anydepth.shards.manifest import Manifest
from anydepth.shards.schema import relabel_record
from anydepth.shards.writer import ShardWriter, shard_name

__all__ = ["PseudoLabelWriter", "pseudo_label_record"]

logger = logging.getLogger(__name__)

ENCODE_THREADS = min(4, os.cpu_count() or 1)
"""Threads encoding pseudo labels (normalisation, float16, mask PNG: numpy and zlib release the GIL) while the
model predicts the next batch; the records still reach the shards in input order, so the bytes do not depend on it."""


@dataclass
class _OpenShard:
    writer: ShardWriter
    url: str
    expected: int


def pseudo_label_record(record: dict[str, Any], disparity: np.ndarray) -> dict[str, Any]:
    """The output record of one input ``record``: its bytes, plus the teacher's ``disparity`` normalised to [0, 1]
    over its finite pixels as float16 ``label.npy``, ``mask.png`` = finite, and ``label_kind`` relative_disparity."""
    valid = np.isfinite(disparity)
    label = torch.from_numpy(normalize_per_map(disparity, valid)).to(getattr(torch, LABEL_DTYPE)).numpy()
    return relabel_record(record, label, LABEL_KIND, valid, LABEL_DTYPE)  # cast by torch: numpy's values, ~30x faster


class PseudoLabelWriter(BasePredictionWriter):
    """Writes this rank's predictions into ``out/shard-NNNNNN.tar`` (NNNNNN: the input shard's index), finishing each
    shard as soon as it holds its input shard's sample count. At ``teardown`` (reached by every rank, including one
    without any batch) the shards still open are finished, the completion records of all ranks are gathered on
    rank 0 (object broadcasts: a synchronisation point, like a barrier), which writes ``manifest.json``
    (:func:`write_manifest`); every rank then holds the manifest as :attr:`manifest`. On an exception, open shards
    are deleted (a resumed run redoes them). ``encode_threads`` threads encode the records (:data:`ENCODE_THREADS`
    by default; 0: in the predict loop's thread), at most two per thread waiting, written in input order."""

    def __init__(self, out: str | os.PathLike, encode_threads: int | None = None) -> None:
        super().__init__("batch")
        self.out = Path(out)
        self.encode_threads = ENCODE_THREADS if encode_threads is None else encode_threads
        if self.encode_threads < 0:
            raise ValueError(f"encode_threads must be >= 0 (0: encode in the predict loop), got {encode_threads}")
        self.manifest: Manifest | None = None
        self._open: dict[int, _OpenShard] = {}
        self._pending: deque[tuple[int, Future[dict[str, Any]]]] = deque()
        self._pool: ThreadPoolExecutor | None = None
        self._written: list[dict[str, Any]] = []
        self._rank = 0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._rank = trainer.global_rank
        self._written, self.manifest = [], None
        if self.encode_threads and self._pool is None:
            self._pool = ThreadPoolExecutor(self.encode_threads, thread_name_prefix="anydepth-encode")

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: list[Tensor],
        batch_indices: Sequence[int] | None,
        batch: dict[str, Any],
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        for disparity, record, index, expected in zip(
            prediction, batch["record"], batch["shard"], batch["shard_samples"]
        ):
            if index not in self._open:
                self._open[index] = _OpenShard(ShardWriter(self.out, index), record["__url__"], expected)
            self._pending.append((index, self._encode(record, disparity.numpy())))
        self._drain(keep=2 * self.encode_threads)

    def _encode(self, record: dict[str, Any], disparity: np.ndarray) -> Future[dict[str, Any]]:
        if self._pool is not None:
            return self._pool.submit(pseudo_label_record, record, disparity)
        done: Future[dict[str, Any]] = Future()
        done.set_result(pseudo_label_record(record, disparity))
        return done

    def _drain(self, keep: int) -> None:
        """Write the encoded records in input order: every one already encoded, then the oldest (waiting for it)
        until at most ``keep`` are pending; a shard is finished when it holds its input's sample count."""
        while self._pending and (len(self._pending) > keep or self._pending[0][1].done()):
            index, encoded = self._pending.popleft()
            shard = self._open[index]
            shard.writer.write(encoded.result())  # an encoding error surfaces here, as it would inline
            if shard.writer.samples == shard.expected:
                self._finish(index)

    def _finish(self, index: int) -> None:
        shard = self._open.pop(index)
        missing = shard.expected - shard.writer.samples
        reason = f"{missing} of its {shard.expected} samples unreadable (see the log)"
        record = shard.writer.finish(shard.expected, [{"input": shard.url, "reason": reason}] if missing else [])
        self._written.append(record)
        logger.info("rank %d: wrote %s (samples: %d)", self._rank, shard_name(index), shard.writer.samples)
        if missing:
            logger.warning("%s: %s", shard.url, reason)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._pending.clear()
        self._stop_pool()
        for shard in self._open.values():
            shard.writer.abort()
        self._open.clear()

    def _stop_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "predict":
            return
        try:
            self._drain(keep=0)
        except BaseException as err:  # an encoding error of the last records: delete the open shards, as on_exception
            self.on_exception(trainer, pl_module, err)
            raise
        self._stop_pool()
        for index in list(self._open):
            self._finish(index)
        strategy = trainer.strategy
        written = [record for src in range(trainer.world_size) for record in strategy.broadcast(self._written, src)]
        self.manifest = strategy.broadcast(write_manifest(self.out, written) if trainer.is_global_zero else None, 0)
