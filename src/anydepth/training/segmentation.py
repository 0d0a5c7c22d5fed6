"""Fine-tuning an encoder to semantic segmentation: paper Sec. 4.4 (Tables 7-8, 10-11), supplementary Sec. 1.

Supplementary Sec. 1: "The training resolution is set as 896x896 on both ADE20K and Cityscapes. The encoder
learning rate is set as 3e-6 and the decoder learning rate is 10x larger. We use Mask2Former as our semantic
segmentation model. The model is trained for 160K iterations on ADE20K and 80K iterations on Cityscapes both with
batch size 16 [...]. Other training configurations are the same as the original codebase." The official configs
(Depth-Anything ``semseg/``, MMSegmentation) fill in the rest, all constructor arguments here: AdamW (weight decay
0.05, eps 1e-8; none on norms, position and query embeddings), a linear warm-up over 1,500 iterations from 1e-6 of
the rate, then poly decay (power 1.0) to 0; gradient norm clipped at 0.01 (``trainer.gradient_clip_val`` in the
recipes); the last four encoder blocks into the ``Feature2Pyramid`` neck.

The encoder starts from Meta's DINOv2 (``pretrained``, the Table 11 baseline) or from the encoder of any checkpoint
``DepthAnything.from_checkpoint`` reads (``init_encoder_from``: the paper's depth encoder, official ``.pth``,
transformers directory or anydepth run).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torch.optim import AdamW
from torch.optim.lr_scheduler import LambdaLR

from anydepth.checkpoints import load_dinov2_encoder
from anydepth.data.segmentation import AugmentationConfig, SegmentationAugmentation
from anydepth.data.transforms import image_to_unit_range
from anydepth.metrics import SegmentationMetrics, segmentation_values
from anydepth.models.depth_anything import DepthAnything
from anydepth.models.preprocess import normalize
from anydepth.models.segmentation import SEGMENTATION_KEY, InferenceSettings, SegmentationModel, segment
from anydepth.sources.segmentation import CLASS_SETS
from anydepth.training.base import load_trained_encoder
from anydepth.training.schedules import PolyDecay

__all__ = ["SegmentationModule", "WarmupPolyDecay"]

NO_DECAY = ("pos_embed", "cls_token", "queries_embedder", "queries_features", "level_embed")
"""Parameters kept out of weight decay besides every bias and norm weight (official configs: ``decay_mult=0`` for
norms, ``pos_embed``, ``query_embed``, ``query_feat``, ``level_embed``)."""


def decays(name: str, param: nn.Parameter) -> bool:
    """Whether AdamW's weight decay applies: not to biases, norm weights (1-d) and :data:`NO_DECAY` embeddings."""
    return param.ndim > 1 and not any(key in name for key in NO_DECAY)


class WarmupPolyDecay(PolyDecay):
    """``LambdaLR`` factor of the official schedule: linear warm-up from ``warmup_start_factor`` to 1 over
    ``warmup_steps`` (MMEngine ``LinearLR``), then :class:`~anydepth.training.schedules.PolyDecay` ``(1 - t / T) **
    power`` down to 0 at ``total_steps``, ``t`` and ``T`` counted from the end of the warm-up (MMEngine ``PolyLR``,
    ``eta_min=0``). Plain numbers only: ``LambdaLR`` saves the factor's ``__dict__`` into checkpoints, which must
    load with ``weights_only=True``."""

    def __init__(
        self, total_steps: int, warmup_steps: int = 1500, power: float = 1.0, warmup_start_factor: float = 1e-6
    ) -> None:
        self.warmup_steps, self.warmup_start_factor = max(0, int(warmup_steps)), warmup_start_factor
        super().__init__(total_steps - self.warmup_steps, power)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_start_factor + (1 - self.warmup_start_factor) * step / self.warmup_steps
        return super().__call__(step - self.warmup_steps)


class SegmentationModule(pl.LightningModule):
    """Segmentation fine-tuning of a DINOv2 / Depth Anything encoder (the network: ``self.model``, a
    :class:`~anydepth.models.segmentation.SegmentationModel`; its checkpoint entry lets
    ``SegmentationModel.from_checkpoint``, ``anydepth eval --task seg`` and ``anydepth infer --task seg`` read runs).

    Args:
        model: a :class:`DepthAnything` whose encoder (sizes and ``layer_indices``, e.g. the model presets with
            ``version: v1``: the last four blocks, as the official configs) is fine-tuned; its DPT head is unused.
        classes: class names, or a set of :data:`~anydepth.sources.segmentation.CLASS_SETS` (``ade20k``,
            ``cityscapes``, ``demo``); their number is the classifier's width.
        head: ``mask2former`` (the paper's) or ``light`` (small budgets).
        pretrained: Meta's DINOv2 weights (local ``.pth``) for the encoder, the DINOv2 baseline of Table 11.
        init_encoder_from: a depth model whose encoder starts the run instead (Tables 7-8, 10-11); ``pretrained``
            is then not read. Neither: a random encoder (warned).
        freeze_encoder: train the neck and head only.
        rescales, light_channels, mask2former, ignore_index: as :class:`SegmentationModel`.
        encoder_lr, decoder_lr_multiplier: AdamW rates of the encoder and of neck + head (paper: 3e-6, 10x).
        weight_decay, betas, eps: AdamW's (official: 0.05, (0.9, 0.999), 1e-8).
        warmup_steps, warmup_start_factor, poly_power: :class:`WarmupPolyDecay` over the run's optimiser steps.
        augmentation: the flip and photometric distortion (:class:`~anydepth.data.segmentation.AugmentationConfig`;
            default: the official configs').
        val_scales, val_flip, val_crop, val_stride: validation inference
            (:class:`~anydepth.models.segmentation.InferenceSettings`).
    """

    def __init__(
        self,
        model: DepthAnything,
        classes: str | list[str],
        head: Literal["mask2former", "light"] = "mask2former",
        pretrained: str | None = None,
        init_encoder_from: str | None = None,
        freeze_encoder: bool = False,
        rescales: tuple[float, ...] = (4, 2, 1, 0.5),
        light_channels: int = 256,
        mask2former: dict[str, Any] | None = None,
        ignore_index: int = 255,
        encoder_lr: float = 3e-6,
        decoder_lr_multiplier: float = 10.0,
        weight_decay: float = 0.05,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        warmup_steps: int = 1500,
        warmup_start_factor: float = 1e-6,
        poly_power: float = 1.0,
        augmentation: AugmentationConfig | None = None,
        val_scales: tuple[float, ...] = (1.0,),
        val_flip: bool = False,
        val_crop: int | None = None,
        val_stride: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model", "augmentation"])
        if not isinstance(model, DepthAnything):
            raise TypeError(
                f"model must be an anydepth.DepthAnything (its encoder is used), got {type(model).__name__}"
            )
        if isinstance(classes, str) and classes not in CLASS_SETS:
            raise ValueError(f"classes must be a list of names or one of {sorted(CLASS_SETS)}, got {classes!r}")
        names = CLASS_SETS[classes] if isinstance(classes, str) else tuple(classes)
        self.model = SegmentationModel.from_depth_model(
            model, names, head=head, rescales=rescales, light_channels=light_channels, mask2former=mask2former,
            ignore_index=ignore_index,
        )  # fmt: skip
        if init_encoder_from is not None:
            load_trained_encoder(self.model, init_encoder_from, self.model.config.backbone)
        elif pretrained is not None:
            load_dinov2_encoder(self.model.pretrained, pretrained)
        else:
            rank_zero_warn(
                f"{type(self).__name__}: neither `pretrained` (DINOv2) nor `init_encoder_from` (a depth model) given: "
                "the encoder starts from RANDOM weights; only for smoke tests and the offline demo"
            )
        if freeze_encoder:
            self.model.pretrained.requires_grad_(False)
        self.augment = SegmentationAugmentation(augmentation)
        self.hparams["augmentation"] = asdict(self.augment.config)  # plain values: checkpoints load weights-only
        self.inference = InferenceSettings(tuple(val_scales), val_flip, val_crop, val_stride)
        self.val_metrics = SegmentationMetrics(len(names), ignore_index)

    def _training(self) -> bool:
        return self._trainer is not None and self.trainer.training

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """Training batches: uint8 -> [0, 1], then the flip and photometric distortion on the device."""
        if not self._training():
            return batch
        images, seg = self.augment(image_to_unit_range(batch["image"]), batch["seg"])
        return {**batch, "image": images, "seg": seg}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        losses = self.model.loss(normalize(batch["image"]), batch["seg"].long())
        size = batch["image"].shape[0]
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, prog_bar=True, batch_size=size)
        rates = {f"train/lr_{g['name']}": g["lr"] for g in self.trainer.optimizers[0].param_groups}
        self.log_dict({k: v for k, v in rates.items() if not k.endswith("no_decay")}, batch_size=size)
        return losses["loss"]

    def on_fit_start(self) -> None:
        for logger in self.loggers:
            logger.log_hyperparams({"architecture": self.model.config.to_dict()})

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW: the encoder at ``encoder_lr``, neck and head at ``decoder_lr_multiplier`` times that, biases, norms
        and embeddings (:data:`NO_DECAY`) without weight decay; :class:`WarmupPolyDecay` over the run's steps."""
        hp = self.hparams
        parts = {"encoder": self.model.pretrained, "decoder": nn.ModuleList([self.model.neck, self.model.head])}
        groups = []
        for name, module in parts.items():
            lr = hp.encoder_lr * (1.0 if name == "encoder" else hp.decoder_lr_multiplier)
            params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
            groups += [
                {"name": name, "params": [p for n, p in params if decays(n, p)], "lr": lr},
                {"name": f"{name}_no_decay", "params": [p for n, p in params if not decays(n, p)], "lr": lr,
                 "weight_decay": 0.0},
            ]  # fmt: skip
        groups = [group for group in groups if group["params"]]  # a frozen encoder has none
        optimizer = AdamW(groups, weight_decay=hp.weight_decay, betas=tuple(hp.betas), eps=hp.eps)
        steps = self.trainer.estimated_stepping_batches
        decay = WarmupPolyDecay(steps, hp.warmup_steps, hp.poly_power, hp.warmup_start_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": LambdaLR(optimizer, decay), "interval": "step"}}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        size = tuple(int(s) for s in batch["original_size"][0])
        self.val_metrics.update(segment(self.model, batch["image"], size, self.inference), batch["seg"])

    def on_validation_epoch_end(self) -> None:
        values = segmentation_values(self.val_metrics.compute(), self.model.config.classes)  # synchronised over ranks
        self.log_dict({f"val/{k}": values[k] for k in ("mIoU", "aAcc", "mAcc")}, sync_dist=False)
        self.val_metrics.reset()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[SEGMENTATION_KEY] = self.model.checkpoint_metadata()
