"""Tiny LightningModules and DataModules that subprocess tests name by class path (``helpers.lightning_modules.X``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, TensorDataset

from anydepth.models import DepthAnything
from anydepth.training import DepthTrainingModule

from helpers import TINY


class TinyDepthModule(DepthTrainingModule):
    """A tiny module on the training modules' base (unused parameters frozen, gradient clipping through the FSDP
    root, the anydepth checkpoint entry) beside a frozen encoder copy (as the student's DINOv2), trained on random
    images with a plain mean loss. ``ballast_mb`` adds a buffer of that many MB to every checkpoint (slow saves,
    for kill-during-save tests)."""

    def __init__(self, ballast_mb: int = 0) -> None:
        super().__init__(DepthAnything(**TINY), encoder_lr=1e-3, num_visualizations=0)
        self.frozen_encoder = DepthAnything(**TINY).pretrained.requires_grad_(False)
        self.register_buffer("ballast", torch.zeros(ballast_mb * 2**18))  # float32: 2**18 per MB

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self(batch[0]).mean()
        self.log("train/loss", loss)
        return loss


class RandomImages(LightningDataModule):
    """Eight random 28 x 28 images, two per batch."""

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.rand(8, 3, 28, 28)), batch_size=2)


def trainer(tmp_path: Path, **kwargs: Any) -> pl.Trainer:
    """A quiet one-device CPU Trainer in ``tmp_path`` (no logger, checkpoints, progress bar or sanity check);
    ``kwargs`` override."""
    options = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
    )
    return pl.Trainer(**{**options, **kwargs})
