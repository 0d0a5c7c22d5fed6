"""A training run that logs the sample keys of every step and of every decoded sample, for the exact-epoch and resume
tests: ``python -m helpers.key_log OUT LABELED PSEUDO [--kill-at STEP] [--resume] [--devices N]`` (``tests`` on the
path) trains a one-parameter module on :class:`~anydepth.data.datamodules.MixedDataModule` batches, checkpointing
every step, and writes ``OUT/steps-<rank>.jsonl`` (one line per step: epoch, step, labeled and unlabeled keys) and
``OUT/decoded-<pid>.txt`` (one key per decoded sample, per process). ``--kill-at`` SIGKILLs the process at that
step, after training it and before its checkpoint is written."""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from anydepth.data.datamodules import MixedDataModule
from anydepth.shards.reader import ShardDataset, Transform

from helpers.shards import CountingTransform


class CountingMixedDataModule(MixedDataModule):
    """:class:`MixedDataModule` with every transform wrapped in a :class:`~helpers.shards.CountingTransform`."""

    def __init__(self, *args: Any, out: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.out = out

    def _dataset(self, shards: Any, transform: Transform, batch_size: int, **kwargs: Any) -> ShardDataset:
        return super()._dataset(shards, CountingTransform(transform, self.out), batch_size, **kwargs)


class KeyLogger(pl.LightningModule):
    """One parameter, trained on the batches' mean pixel; every step appends its keys to ``OUT/steps-<rank>.jsonl``."""

    def __init__(self, out: str) -> None:
        super().__init__()
        self.out = out
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        line = dict(
            epoch=self.current_epoch,
            step=self.global_step + 1,
            labeled=batch["labeled"]["key"],
            unlabeled=batch["unlabeled"]["key"],
        )
        with open(Path(self.out) / f"steps-{self.global_rank}.jsonl", "a") as log:
            log.write(json.dumps(line) + "\n")
        return (self.weight * batch["unlabeled"]["image"].float().mean()).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class Kill(Callback):
    """SIGKILL at the end of global step ``step`` (before ModelCheckpoint, which Lightning runs last, saves it)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("labeled")
    parser.add_argument("pseudo")
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    data = CountingMixedDataModule(
        [args.labeled],
        [args.pseudo],
        labeled_batch_size=1,
        num_workers=args.workers,
        size=28,
        shuffle_buffer=4,
        out=args.out,
    )
    checkpoint = ModelCheckpoint(dirpath=Path(args.out) / "checkpoints", save_last=True, every_n_train_steps=1)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=args.devices,
        strategy="ddp" if args.devices > 1 else "auto",
        max_epochs=args.epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=args.out,
        callbacks=[checkpoint, *([Kill(args.kill_at)] if args.kill_at else [])],
    )
    trainer.fit(KeyLogger(args.out), datamodule=data, ckpt_path="last" if args.resume else None)


if __name__ == "__main__":
    main()
