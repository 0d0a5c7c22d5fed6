"""``TeacherModule``: stage 1 of Depth Anything, a DINOv2 + DPT model trained on labeled images only.

Paper, Sec. 4.1: "In the first stage, we train a teacher model on labeled images for 20 epochs [...] We only apply
horizontal flipping as our data augmentation for labeled images." The loss is the affine-invariant loss of
eq. 1-3 on disparity normalised to [0, 1] per map (the data pipeline's labels), plus ``gradient_weight`` times the
gradient matching loss (Depth Anything V2: 2; V1: 0). Configured by the recipes
``configs/recipes/{v1,v2,finetune}/`` composed with a ``configs/model/vit?.yaml`` preset
(``anydepth fit --config configs/trainer/<hw>.yaml --config configs/recipes/v1/teacher.yaml --config ...``).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from anydepth.training.base import DepthTrainingModule

__all__ = ["TeacherModule"]


class TeacherModule(DepthTrainingModule):
    """Labeled batches (:class:`~anydepth.data.datamodules.LabeledDataModule`) -> eq. 1-3 affine-invariant loss.

    On the device, in ``on_after_batch_transfer``: uint8 images to [0, 1] floats, and the joint horizontal flip
    (training batches only); ImageNet normalisation in ``forward``. Arguments: see :class:`DepthTrainingModule`.
    """

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        batch = self.unit_images(batch)
        return self.flip_labeled(batch) if self._training() else batch

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        loss = self.depth_loss(self(batch["image"]), batch["label"], batch["mask"])  # eq. 1-3 (+ V2's L_gm)
        self.log_losses({"loss": loss}, batch_size=batch["image"].shape[0])
        return loss
