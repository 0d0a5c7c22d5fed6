"""``StudentModule``: stage 2 of Depth Anything, joint training on labeled and pseudo-labeled images.

Paper, Sec. 3.2-3.3 and 4.1: the student is re-initialised from DINOv2 (not from the teacher); each batch holds
labeled : unlabeled images = 1 : 2 (:class:`~anydepth.data.datamodules.MixedDataModule`); unlabeled images get strong
colour distortion and CutMix with probability 0.5, while their pseudo labels came from clean images (offline,
``anydepth pseudo-label``); the loss is the average of

- ``L_l``: the affine-invariant loss on labeled images (eq. 1-3),
- ``L_u``: the CutMix affine-invariant loss on pseudo-labeled images (eq. 6-8),
- ``L_feat``: the feature alignment loss to a frozen DINOv2 on unlabeled images only (eq. 9, margin alpha = 0.85).

Choices the paper leaves open (documented and configurable):

- ``f`` and ``f'`` are the last encoder block's patch tokens after the final norm, of the student and of the frozen
  DINOv2 (the features DINOv2 is evaluated on).
- The frozen DINOv2 sees the images the student sees (``feature_input="perturbed"``: colour-distorted and mixed),
  so ``f_i`` and ``f'_i`` describe the same pixels; ``"clean"`` gives it the same CutMix of the clean images.
- "An average combination" with configurable weights is ``(w_l L_l + w_u L_u + w_f L_feat) / (w_l + w_u + w_f)``:
  the plain mean for the default weights 1, 1, 1, and the mean of the rest when a weight is 0 (ablations).

The frozen encoder is a copy of the student's initial encoder, so it *is* the DINOv2 of ``pretrained``. It never
enters the optimiser. Checkpoints leave it out when it can be re-read from ``pretrained`` (its sha256 is recorded
and checked on load); with a random initialisation (no file to re-read), and under FSDP (which loads weights before
any hook could re-insert them), it is saved, so a checkpoint always restores the full module.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.strategies import FSDPStrategy
from torch import Tensor

from anydepth.augment import ColorPerturbationConfig, CutMixConfig, StrongColorPerturbation
from anydepth.augment import cutmix as apply_cutmix
from anydepth.checkpoints import CheckpointError
from anydepth.files import file_digest
from anydepth.losses import cutmix_affine_invariant_loss, feature_alignment_loss, normalized_gradient_matching_loss
from anydepth.models.depth_anything import DepthAnything
from anydepth.models.preprocess import normalize
from anydepth.training.base import DepthTrainingModule, require_labels

__all__ = ["FROZEN_ENCODER_KEY", "StudentModule"]

FROZEN_ENCODER_KEY = "anydepth_frozen_encoder"
"""Checkpoint entry ``{"pretrained": path, "sha256": ...}`` standing in for the frozen encoder's weights."""
_FROZEN_PREFIX = "frozen_encoder."


class StudentModule(DepthTrainingModule):
    """Mixed batches ``{"labeled": ..., "unlabeled": ...}`` -> the average of ``L_l``, ``L_u`` and ``L_feat``.

    On the device (``on_after_batch_transfer``, training only; uint8 images become [0, 1] floats first): the
    labeled part gets the joint flip; the pseudo-labeled part the strong colour perturbation (``color``) and then
    CutMix (``cutmix``, p = 0.5). One student pass over both parts gives the disparities and the encoder tokens; the
    frozen DINOv2 runs without gradients.

    Args (besides :class:`DepthTrainingModule`'s):
        color: the strong colour perturbation (Sec. 3.2; UniMatch recipe defaults).
        cutmix: CutMix settings (Sec. 3.2: p = 0.5).
        feature_margin: tolerance margin alpha of eq. 9 (Sec. 4.1: 0.85).
        feature_input: what the frozen DINOv2 sees, ``"perturbed"`` or ``"clean"`` (see the module docstring).
        labeled_weight, unlabeled_weight, feature_weight: weights of ``L_l``, ``L_u`` and ``L_feat`` in the
            weighted average (paper: equal).
        unlabeled_trim: fraction of each pseudo-labeled image's pixels with the largest loss left out of ``L_u``
            (V1: 0; Depth Anything V2: 0.1, "the top-n-largest-loss regions ... n is set as 10%").

    Batches without a ``"labeled"`` part (a plain pseudo-labeled stream, e.g.
    :class:`~anydepth.data.datamodules.UnlabeledDataModule`: Depth Anything V2's student) train on ``L_u`` and
    ``L_feat`` only, averaged with their weights.
    """

    def __init__(
        self,
        model: DepthAnything,
        color: ColorPerturbationConfig | None = None,
        cutmix: CutMixConfig | None = None,
        feature_margin: float = 0.85,
        feature_input: Literal["perturbed", "clean"] = "perturbed",
        labeled_weight: float = 1.0,
        unlabeled_weight: float = 1.0,
        feature_weight: float = 1.0,
        unlabeled_trim: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        if not 0.0 <= unlabeled_trim < 1.0:
            raise ValueError(f"model.init_args.unlabeled_trim must be in [0, 1), got {unlabeled_trim}")
        if feature_input not in ("perturbed", "clean"):
            raise ValueError(f"feature_input must be 'perturbed' or 'clean', got {feature_input!r}")
        weights = (labeled_weight, unlabeled_weight, feature_weight)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"loss weights must be >= 0 with a positive sum, got {weights}")
        self.frozen_encoder = copy.deepcopy(self.model.pretrained).requires_grad_(False).eval()
        self.perturb = StrongColorPerturbation(color)
        self.cutmix_config = cutmix if cutmix is not None else CutMixConfig()
        self.feature_margin, self.feature_input = feature_margin, feature_input
        self.loss_weights, self.unlabeled_trim = weights, unlabeled_trim
        self._pretrained_sha256: str | None = None

    def train(self, mode: bool = True) -> StudentModule:
        """The frozen DINOv2 stays in eval mode."""
        super().train(mode)
        self.frozen_encoder.eval()
        return self

    # ---------------------------------------------------------------- data on the device

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if not self._training():
            return self.unit_images(batch)
        if "unlabeled" not in batch:  # a pseudo-labeled stream alone (V2)
            batch = {"unlabeled": batch}
        unlabeled = self.unit_images(batch["unlabeled"])
        require_labels(unlabeled, "unlabeled (pseudo-labeled)")
        clean = unlabeled["image"]
        mixed = apply_cutmix(self.perturb(clean), self.cutmix_config)  # Sec. 3.2: colour first, then CutMix
        unlabeled = {**unlabeled, "image": mixed.images, "clean": clean, "box": mixed.mask, "partner": mixed.partner}
        if "labeled" not in batch:
            return {"unlabeled": unlabeled}
        return {"labeled": self.flip_labeled(self.unit_images(batch["labeled"])), "unlabeled": unlabeled}

    # ---------------------------------------------------------------- losses

    def frozen_features(self, unlabeled: dict[str, Any]) -> Tensor:
        """``f'`` of eq. 9: the frozen DINOv2's last-block patch tokens of the unlabeled images."""
        images = unlabeled["image"]
        if self.feature_input == "clean":
            clean, box = unlabeled["clean"], unlabeled["box"]
            images = torch.where(box[:, None], clean, clean[unlabeled["partner"]])
        with torch.no_grad():
            last = self.model.config.depth - 1
            return self.frozen_encoder.forward_features(normalize(images), (last,))[0][0]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        labeled, unlabeled = batch.get("labeled"), batch["unlabeled"]
        n = 0 if labeled is None else labeled["image"].shape[0]
        images = unlabeled["image"] if labeled is None else torch.cat([labeled["image"], unlabeled["image"]])
        pred, tokens = self.model.forward_with_features(normalize(images))
        losses = {"unlabeled": self.pseudo_label_loss(pred[n:], unlabeled)}  # eq. 6-8
        if labeled is not None:
            losses["labeled"] = self.depth_loss(pred[:n], labeled["label"], labeled["mask"])  # eq. 1-3
        weights = dict(zip(("labeled", "unlabeled", "feature"), self.loss_weights))
        if weights["feature"] > 0:  # an ablation without L_feat skips the frozen encoder's pass
            losses["feature"] = feature_alignment_loss(  # eq. 9
                tokens[n:], self.frozen_features(unlabeled), self.feature_margin
            )
        total_weight = sum(weights[k] for k in losses)
        loss = sum(weights[k] * v for k, v in losses.items()) / total_weight  # Sec. 3.3: the average
        self.log_losses({"loss": loss, **losses}, batch_size=images.shape[0])
        return loss

    def pseudo_label_loss(self, pred: Tensor, unlabeled: dict[str, Any]) -> Tensor:
        """``L_u``: the CutMix affine-invariant loss (eq. 6-8; each image's ``unlabeled_trim`` largest residuals
        left out), plus ``gradient_weight`` times L_gm against the mixed pseudo labels (V2)."""
        partner, box = unlabeled["partner"], unlabeled["box"]
        label, mask = unlabeled["label"], unlabeled["mask"]
        loss = cutmix_affine_invariant_loss(
            pred, label, label[partner], box, mask, mask[partner], trim=self.unlabeled_trim
        )
        if self.gradient_weight > 0:
            mixed_label = torch.where(box, label, label[partner])
            mixed_mask = torch.where(box, mask, mask[partner])
            loss = loss + self.gradient_weight * normalized_gradient_matching_loss(pred, mixed_label, mixed_mask)
        return loss

    # ---------------------------------------------------------------- checkpoints

    def _frozen_source_sha256(self) -> str:
        if self._pretrained_sha256 is None:
            self._pretrained_sha256 = file_digest(Path(self.pretrained))[1]
        return self._pretrained_sha256

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Leave out the frozen encoder when ``pretrained`` can restore it (record the file and its sha256)."""
        super().on_save_checkpoint(checkpoint)
        if self.pretrained is None or isinstance(self.trainer.strategy, FSDPStrategy):
            return  # FSDP restores weights before on_load_checkpoint can put the frozen encoder back: keep it
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(_FROZEN_PREFIX)]:
            del state[key]
        checkpoint[FROZEN_ENCODER_KEY] = {"pretrained": str(self.pretrained), "sha256": self._frozen_source_sha256()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Put the frozen encoder (re-read from ``pretrained`` at construction) back into a checkpoint that left it
        out, after checking that ``pretrained`` is the file the checkpoint was trained with. (FSDP has loaded the
        weights, which it always saves with the frozen encoder, before this hook, and removed ``state_dict``.)"""
        state = checkpoint.get("state_dict")
        if state is None:
            return
        if any(k.startswith(_FROZEN_PREFIX) for k in state):
            return
        record = checkpoint.get(FROZEN_ENCODER_KEY)
        if record is None:
            raise CheckpointError(
                "the checkpoint has neither the student's frozen DINOv2 weights nor a record of their file: it was "
                "not written by a StudentModule"
            )
        if self.pretrained is None or self._frozen_source_sha256() != record["sha256"]:
            raise CheckpointError(
                f"the checkpoint's frozen DINOv2 came from {record['pretrained']} (sha256 {record['sha256'][:12]}...), "
                f"but this StudentModule's pretrained is {self.pretrained}: set model.init_args.pretrained to that "
                "file (the same bytes) to resume"
            )
        state.update({_FROZEN_PREFIX + k: v for k, v in self.frozen_encoder.state_dict().items()})
