"""Semantic segmentation evaluation (paper Sec. 4.4, Tables 7-8: mIoU, single-scale "s.s." and multi-scale "m.s.")
and segmentation maps as palette PNGs.

- :class:`~anydepth.metrics.SegmentationMetrics` (re-exported): mIoU, per-class IoU, pixel accuracy (aAcc) and mean
  class accuracy (mAcc) from one torchmetrics confusion matrix, summed over ranks: a DDP evaluation equals a
  single-process one exactly.
- :class:`~anydepth.models.segmentation.InferenceSettings` and :func:`~anydepth.models.segmentation.segment`
  (re-exported): the prediction of a batch at ground-truth resolution, whole image or sliding windows, one scale
  or several with flips.
- :func:`evaluate_segmentation` (``anydepth eval --task seg``) runs :class:`SegmentationEvaluator` over shards with
  ``seg.png``; :func:`segment_images` and :func:`write_segmentation_png` serve ``anydepth infer --task seg``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from PIL import Image

from anydepth.data.segmentation import SegmentationDataModule, eval_image
from anydepth.files import written_atomically
from anydepth.metrics import SegmentationMetrics, segmentation_values
from anydepth.models.segmentation import InferenceSettings, SegmentationModel, segment
from anydepth.prediction import expected_warnings_ignored, offline_trainer
from anydepth.sources.segmentation import CLASS_SETS, IGNORE_INDEX, PALETTES

__all__ = [
    "InferenceSettings",
    "SegmentationEvaluator",
    "SegmentationMetrics",
    "evaluate_segmentation",
    "palette",
    "segment",
    "segment_images",
    "write_segmentation_png",
]


class SegmentationEvaluator(pl.LightningModule):
    """``trainer.test`` of a :class:`SegmentationModel` on :class:`~anydepth.data.segmentation.SegmentationDataModule`
    evaluation batches; ``results`` (after the run, on every rank) as :func:`~anydepth.metrics.segmentation_values`
    gives them."""

    def __init__(self, model: SegmentationModel, settings: InferenceSettings | None = None) -> None:
        super().__init__()
        self.model, self.settings = model, settings or InferenceSettings()
        self.metrics = SegmentationMetrics(model.config.num_classes, model.config.ignore_index)
        self.results: dict[str, Any] = {}

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        size = tuple(int(s) for s in batch["original_size"][0])
        self.metrics.update(segment(self.model, batch["image"], size, self.settings), batch["seg"])

    def on_test_epoch_end(self) -> None:
        self.results = segmentation_values(self.metrics.compute(), self.model.config.classes)  # all ranks' pixels
        self.metrics.reset()


def load_model(checkpoint_or_model: str | os.PathLike | SegmentationModel) -> SegmentationModel:
    """A :class:`SegmentationModel` as given, or read from a segmentation run's checkpoint."""
    if isinstance(checkpoint_or_model, SegmentationModel):
        return checkpoint_or_model
    return SegmentationModel.from_checkpoint(checkpoint_or_model)


def evaluate_segmentation(
    checkpoint_or_model: str | os.PathLike | SegmentationModel,
    shards: Sequence[str],
    size: int = 896,
    max_long_ratio: float = 4.0,
    settings: InferenceSettings | None = None,
    batch_size: int = 1,
    num_workers: int = 2,
    devices: int | str | Sequence[int] = 1,
    accelerator: str = "auto",
    strategy: str = "auto",
    precision: str | int | None = None,
    progress: bool = True,
    **trainer_kwargs: Any,
) -> dict[str, Any]:
    """mIoU, aAcc, mAcc and per-class IoU of a segmentation checkpoint (or model) on shards with ``seg.png`` (e.g.
    ``anydepth shards build --source ade20k --split validation``): every image once (dealt to ranks under DDP),
    resized to shorter side ``size`` (longer <= ``max_long_ratio * size``; paper: 896), predicted as ``settings``
    say (default single-scale, whole image) and scored at its original resolution.

    Returns :func:`~anydepth.metrics.segmentation_values` ``{"mIoU", "aAcc", "mAcc", "IoU": {class: IoU}, "images"}``
    (fractions in [0, 1]; the paper's tables print percentages)."""
    evaluator = SegmentationEvaluator(load_model(checkpoint_or_model), settings)
    data = SegmentationDataModule(
        val_shards=list(shards), val_batch_size=batch_size, num_workers=num_workers, size=size,
        max_long_ratio=max_long_ratio,
    )  # fmt: skip
    options = dict(accelerator=accelerator, devices=devices, strategy=strategy, precision=precision)
    trainer = offline_trainer(enable_progress_bar=progress, **{**options, **trainer_kwargs})
    with expected_warnings_ignored():
        trainer.test(evaluator, datamodule=data, verbose=False)
    return evaluator.results


@torch.no_grad()
def segment_images(
    model: SegmentationModel,
    images: Sequence[np.ndarray],
    size: int = 896,
    max_long_ratio: float = 4.0,
    settings: InferenceSettings | None = None,
) -> list[np.ndarray]:
    """Class ids (``H x W`` int64) of ``H x W x 3`` uint8 RGB images, each predicted at the evaluation size as
    :func:`evaluate_segmentation` does and returned at the image's own size."""
    settings = settings or InferenceSettings()
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        return [
            segment(model, eval_image(rgb, size, max_long_ratio)[None].to(device), rgb.shape[:2], settings)[0]
            .cpu()
            .numpy()
            for rgb in images
        ]
    finally:
        model.train(was_training)


def palette(classes: Sequence[str]) -> np.ndarray:
    """``K x 3`` uint8 colours: the dataset's official ones where :data:`~anydepth.sources.segmentation.PALETTES`
    has them (Cityscapes), else fixed pseudo-random colours (the same for the same class count)."""
    for name, names in CLASS_SETS.items():
        if tuple(classes) == names and name in PALETTES:
            return np.asarray(PALETTES[name], np.uint8)
    return np.random.default_rng(len(classes)).integers(0, 256, (len(classes), 3), dtype=np.uint8)


def write_segmentation_png(path: str | os.PathLike, ids: np.ndarray, colors: np.ndarray) -> None:
    """Write class ids (``H x W``, < 256) as an 8-bit palette PNG: pixel values are the ids (readable back as
    ``seg.png``), viewers show ``colors[id]``; the ignore value 255 shows black."""
    if ids.size and int(ids.max()) > 255:
        raise ValueError(f"a palette PNG holds ids up to 255, got {int(ids.max())}: write the ids with numpy instead")
    table = np.zeros((256, 3), np.uint8)
    table[: len(colors)] = colors[:256]
    table[IGNORE_INDEX] = 0
    image = Image.frombytes("P", (ids.shape[1], ids.shape[0]), ids.astype(np.uint8).tobytes())
    image.putpalette(table.ravel().tolist())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with written_atomically(Path(path)) as tmp:  # complete or absent after a kill
        image.save(tmp)
