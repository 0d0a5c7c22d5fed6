"""``MetricDataModule``: labeled shards of depth in metres for metric fine-tuning (Depth Anything Sec. 4.3).

The :class:`~anydepth.data.datamodules.LabeledDataModule` pipeline (shard dealing per rank and worker, exact or
resampled epochs, seeding, resume, validation loaders) with the metric transforms in its ``train_transform`` and
``eval_transform`` hooks: training crops of any (h, w) through :class:`~anydepth.data.transforms.MetricTrainTransform`,
validation through :class:`~anydepth.data.transforms.MetricEvalTransform`, labels in metres as stored.
"""

from __future__ import annotations

from typing import Any

from anydepth.data.datamodules import LabeledDataModule
from anydepth.data.transforms import MetricEvalTransform, MetricTrainTransform, check_crop
from anydepth.shards.reader import Transform

__all__ = ["MetricDataModule"]


class MetricDataModule(LabeledDataModule):
    """Metric training: ``train_shards`` (labels ``depth`` in metres) cropped to ``crop`` = (h, w), ``val_shards``
    (optional) scaled alike, uncropped, scored at ground-truth resolution.

    Train batches: ``{"image": B x 3 x h x w uint8 RGB, "label": B x h x w float32 depth in metres (0 where invalid),
    "mask": B x h x w bool, "key", "label_kind"}``; validation batches as :class:`LabeledDataModule`'s, with the
    label in metres and sky invalid. Samples whose label is not ``depth`` are skipped and logged (a disparity has
    no metric scale).

    Args: ``crop`` (h, w), both multiples of 14: 518 x 518 in the official V2 metric trainer, 392 x 518 (NYUv2) in the
    paper (supplementary Sec. 1); everything else as :class:`LabeledDataModule` (batch size, workers, seed, shuffle
    buffer, exact or resampled epochs, validation batch size ...), whose ``size`` this module sets from the crop.
    """

    def __init__(
        self,
        train_shards: list[str],
        val_shards: list[str] | None = None,
        crop: tuple[int, int] = (518, 518),
        **kwargs: Any,
    ) -> None:
        self.crop = check_crop(crop)
        super().__init__(train_shards, val_shards, size=min(self.crop), **kwargs)

    def train_transform(self) -> Transform:
        """:class:`MetricTrainTransform`: scaled to cover ``crop``, randomly cropped to it, labels in metres."""
        return MetricTrainTransform(self.crop)

    def eval_transform(self) -> Transform:
        """:class:`MetricEvalTransform`: the training scale, uncropped, ground truth in metres at full resolution."""
        return MetricEvalTransform(self.crop)
