"""Tiny LightningModules and DataModules that subprocess tests name by class path (``helpers.lightning_modules.X``)."""

from __future__ import annotations

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
