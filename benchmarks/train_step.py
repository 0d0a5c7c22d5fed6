"""Student training throughput: images/s of ``StudentModule`` steps and the share of step time spent waiting for data.

A real ``Trainer.fit`` of the student (default ViT-S, 518 x 518 crops, 4 labeled + 8 pseudo-labeled images per step,
random weights: speed does not depend on them) on shards of synthetic RGB-D scenes built into a temporary directory
(``demo-train``, one set for each stream; or ``--labeled``/``--pseudo`` shard directories of your own). A callback
times every step from one ``on_train_batch_start`` to the next and the data wait from ``on_train_batch_end`` to the
next ``on_train_batch_start`` (the loader's ``next()`` plus the host-to-device copy), synchronising CUDA at both
points; the first ``--warmup`` steps are left out. Prints JSON: images/s, the data-wait share, the step time and the
device. bf16-mixed on CUDA, 32-bit on CPU (``--precision`` to choose).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from anydepth.data.datamodules import MixedDataModule
from anydepth.models import DepthAnything
from anydepth.sources.build import build_shards
from anydepth.training import StudentModule


class StepTimer(Callback):
    """Wall time of each training step and of the data wait before it."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.waits: list[float] = []
        self._end: float | None = None

    @staticmethod
    def _now() -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, batch: Any, idx: int) -> None:
        now = self._now()
        if self._end is not None:
            self.waits.append(now - self._end)
        self.starts.append(now)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self._end = self._now()


def synthetic_shards(root: Path, name: str, count: int, seed: int) -> str:
    out = root / name
    build_shards(
        "demo-train",
        root,
        out,
        samples_per_shard=16,
        workers=2,
        seed=seed,
        source_kwargs={"num_scenes": count, "size": (540, 720), "seed": seed},
    )
    return str(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="vits", choices=("vits", "vitb", "vitl"))
    parser.add_argument("--size", type=int, default=518)
    parser.add_argument("--labeled-batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--num-workers", type=int, default=4, help="loader workers per stream")
    parser.add_argument("--precision", default=None, help="default: bf16-mixed on CUDA, 32-true on CPU")
    parser.add_argument("--labeled", default=None, help="labeled shard directory (default: synthetic)")
    parser.add_argument("--pseudo", default=None, help="pseudo-labeled shard directory (default: synthetic)")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as tmp:
        scenes = 3 * args.labeled_batch_size * (args.steps + 1)
        labeled = args.labeled or synthetic_shards(Path(tmp), "labeled", scenes // 3, seed=0)
        pseudo = args.pseudo or synthetic_shards(Path(tmp), "pseudo", 2 * scenes // 3, seed=10_000)
        data = MixedDataModule(
            [labeled],
            [pseudo],
            labeled_batch_size=args.labeled_batch_size,
            num_workers=args.num_workers,
            size=args.size,
            shuffle_buffer=64,
            resampled=True,  # as many steps as asked, whatever the synthetic set's size
            samples_per_epoch=2 * args.labeled_batch_size * (args.steps + 1),
        )
        module = StudentModule(DepthAnything(args.encoder), num_visualizations=0)
        timer = StepTimer()
        trainer = pl.Trainer(
            accelerator="gpu" if cuda else "cpu",
            devices=1,
            max_steps=args.steps,
            logger=False,
            precision=args.precision or ("bf16-mixed" if cuda else "32-true"),
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            callbacks=[timer],
        )
        trainer.fit(module, datamodule=data)
    steps = [b - a for a, b in zip(timer.starts, timer.starts[1:])][args.warmup :]
    waits = timer.waits[args.warmup :]
    step = statistics.mean(steps)
    images = args.labeled_batch_size * (1 + data.ratio)
    print(
        json.dumps(
            {
                "benchmark": "student_train_step",
                "device": torch.cuda.get_device_name() if cuda else "cpu",
                "encoder": args.encoder,
                "size": args.size,
                "labeled": args.labeled_batch_size,
                "unlabeled": args.labeled_batch_size * data.ratio,
                "precision": trainer.precision,
                "images_per_s": round(images / step, 2),
                "step_s": round(step, 4),
                "data_wait_share": round(sum(waits) / sum(steps), 4),
                "timed_steps": len(steps),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
