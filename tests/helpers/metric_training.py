"""Metric depth training test helpers: synthetic RGB-D shards in metres, tiny metric models, their data module, a
callback recording each step, and relative checkpoints to start from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from anydepth import DepthAnything
from anydepth.data.metric import MetricDataModule
from anydepth.sources.build import build_shards

from helpers import TINY

CROP = (28, 42)  # 2 x 3 patches of the 36 x 48 test scenes (scaled by 0.875, so the crop is the whole scene)
MAX_DEPTH = 80.0


def metric_shards(tmp: Path) -> dict[str, Path]:
    """Synthetic RGB-D scenes with exact z-depth in metres: 4 training scenes in 2 shards, 2 held-out scenes (one
    shard per DDP rank)."""
    scenes = dict(num_scenes=4, size=(36, 48))
    build_shards("demo-train", tmp, tmp / "train", samples_per_shard=2, source_kwargs=scenes)
    build_shards(
        "demo-train", tmp, tmp / "val", split="val", samples_per_shard=1, source_kwargs=dict(scenes, num_scenes=2)
    )
    return {"train": tmp / "train", "val": tmp / "val"}


def metric_model(seed: int = 0, max_depth: float = MAX_DEPTH, **sizes: Any) -> DepthAnything:
    torch.manual_seed(seed)
    return DepthAnything(**{**TINY, **sizes}, head="metric", max_depth=max_depth)


def metric_data(shards: dict[str, Path], **kwargs: Any) -> MetricDataModule:
    return MetricDataModule(
        [str(shards["train"])], [str(shards["val"])], crop=CROP, batch_size=4, num_workers=0, shuffle_buffer=4, **kwargs
    )


class Record(Callback):
    """Loss, learning rates and the largest predicted depth of every training step (the module's own forward on the
    step's batch, after the step)."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.rates: list[list[float]] = []
        self.deepest: list[float] = []

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.losses.append(float(outputs["loss"]))
        self.rates.append([group["lr"] for group in trainer.optimizers[0].param_groups])
        with torch.no_grad():
            self.deepest.append(float(module(batch["image"]).max()))


def relative_checkpoint(path: Path, seed: int = 3, **sizes: Any) -> DepthAnything:
    """A relative Depth Anything (as a teacher, a student or a release) saved as anydepth or transformers."""
    torch.manual_seed(seed)
    model = DepthAnything(**{**TINY, **sizes})
    model.save_checkpoint(path, format="hf" if path.suffix == "" else "anydepth")
    return model
