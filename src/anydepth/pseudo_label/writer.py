"""The output side of pseudo-labelling: each input shard's pseudo labels written as one output shard, and the
manifest once every rank is done."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
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
    are deleted (a resumed run redoes them)."""

    def __init__(self, out: str | os.PathLike) -> None:
        super().__init__("batch")
        self.out = Path(out)
        self.manifest: Manifest | None = None
        self._open: dict[int, _OpenShard] = {}
        self._written: list[dict[str, Any]] = []
        self._rank = 0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._rank = trainer.global_rank
        self._written, self.manifest = [], None

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
            shard = self._open[index]
            shard.writer.write(pseudo_label_record(record, disparity.numpy()))
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
        for shard in self._open.values():
            shard.writer.abort()
        self._open.clear()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "predict":
            return
        for index in list(self._open):
            self._finish(index)
        strategy = trainer.strategy
        written = [record for src in range(trainer.world_size) for record in strategy.broadcast(self._written, src)]
        self.manifest = strategy.broadcast(write_manifest(self.out, written) if trainer.is_global_zero else None, 0)
