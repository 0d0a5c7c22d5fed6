"""What the teacher, the student and the metric module share: the encoder's initialisation (DINOv2, a trained
model's encoder, or a whole trained model), the optimiser and schedule of Sec. 4.1, validation (zero-shot relative
metrics, or metric ones without alignment for a metric head), logged depth visualisations and the anydepth
checkpoint entry.

Paper, Sec. 4.1: "In both stages, the base learning rate of the pre-trained encoder is set as 5e-6, while the randomly
initialized decoder uses a 10x larger learning rate. We use the AdamW optimizer and decay the learning rate with a
linear schedule. We only apply horizontal flipping as our data augmentation for labeled images."

Choices the paper leaves open (all constructor arguments, so YAML can change them): the linear decay goes from the
base rates to 0 over ``trainer.estimated_stepping_batches`` (every optimiser step, no warm-up); AdamW keeps torch's
``weight_decay=0.01`` and betas; the flip probability is 0.5. Other schedules (``schedule``): ``poly``, the official
V2 ``metric_depth/train.py`` decay ``lr * (1 - step / total) ** 0.9``, and ``one_cycle``, torch's ``OneCycleLR`` as
the ZoeDepth codebase (the paper's metric fine-tuning, supplementary Sec. 1) runs it.

The network is a :class:`DepthAnything` or, for the paper's metric fine-tuning, a
:class:`~anydepth.models.zoedepth.ZoeDepthMetric`, whose "encoder" is then its whole relative core (DINOv2 + DPT), as
the official ZoeDepth ``DepthAnythingCore.build`` loads ``depth_anything_vitl14.pth`` into it and
``ZoeDepth.get_lr_params`` trains it at ``lr / encoder_lr_factor`` (``midas_lr_factor``) beside the bins head at ``lr``.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.strategies import FSDPStrategy
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torch.optim import AdamW

from anydepth.augment import joint_hflip
from anydepth.checkpoints import CheckpointError, add_anydepth_metadata, load_dinov2_encoder
from anydepth.data.transforms import image_to_unit_range
from anydepth.losses import affine_invariant_loss, normalized_gradient_matching_loss
from anydepth.metrics import RelativeDepthMetrics, depth_from_label
from anydepth.models.depth_anything import DepthAnything, DepthAnythingConfig
from anydepth.models.metric_bins import resize_like
from anydepth.models.preprocess import normalize, upsample_prediction
from anydepth.models.zoedepth import ZoeDepthMetric
from anydepth.training.schedules import Schedule, build_schedule, schedule_settings
from anydepth.visualize import colorize, side_by_side

__all__ = [
    "DepthNetwork",
    "DepthTrainingModule",
    "encoder_of",
    "freeze_unused_parameters",
    "load_trained_encoder",
    "load_trained_model",
    "relative_of",
]

DepthNetwork = DepthAnything | ZoeDepthMetric
"""What the depth modules train: a Depth Anything, or the paper's ZoeDepth metric model around one."""


def relative_of(model: DepthNetwork) -> DepthAnything:
    """The DINOv2 + DPT network: ``model`` itself, or a ``ZoeDepthMetric``'s relative core (``core.core``)."""
    return model.relative if isinstance(model, ZoeDepthMetric) else model


def encoder_of(model: DepthNetwork) -> nn.Module:
    """The part trained at the encoder rate: DINOv2 (``pretrained``), or a ``ZoeDepthMetric``'s whole core (official
    ``get_lr_params``: encoder and ``core.core.depth_head`` at ``lr / 50``, the bins head at ``lr``)."""
    return model.core if isinstance(model, ZoeDepthMetric) else model.pretrained


def freeze_unused_parameters(model: DepthAnything) -> None:
    """Stop gradients of the parameters the depth forward never uses, DINOv2's ``mask_token`` and the official DPT's
    ``refinenet4.resConfUnit1`` (the coarsest fusion block has no coarser input to refine); they stay in the state
    dict (official checkpoints hold them). DDP then runs with ``find_unused_parameters=False``."""
    model.pretrained.mask_token.requires_grad_(False)
    model.depth_head.scratch.refinenet4.resConfUnit1.requires_grad_(False)  # also unused by ZoeDepth's core


class DepthTrainingModule(pl.LightningModule):
    """Base of :class:`~anydepth.training.TeacherModule`, :class:`~anydepth.training.StudentModule` and
    :class:`~anydepth.training.MetricDepthModule`.

    The network lives at ``self.model`` (a :class:`DepthAnything` or a ``ZoeDepthMetric``), so every checkpoint this
    module writes carries the ``checkpoint["anydepth"]`` entry and ``DepthAnything.from_checkpoint`` / ``anydepth
    infer`` / ``anydepth eval`` / ``anydepth pseudo-label`` read it directly.

    Args:
        model: the network; its encoder is overwritten with ``pretrained`` when given. A ``ZoeDepthMetric``'s
            "encoder" (rate, ``init_encoder_from``, ``freeze_encoder``) is its relative core, DINOv2 + DPT.
        pretrained: local path of Meta's DINOv2 backbone weights (``dinov2_vits14_pretrain.pth``; nothing is
            downloaded). None trains from a random encoder, with a loud warning: only for smoke tests.
        encoder_lr: AdamW learning rate of the encoder (Sec. 4.1: 5e-6).
        decoder_lr_multiplier: the DPT decoder's rate relative to the encoder's (Sec. 4.1: 10).
        weight_decay, betas: AdamW's (the paper gives none; torch's defaults).
        flip_p: probability of the joint horizontal flip of labeled samples (Sec. 4.1; 0.5).
        num_visualizations: validation samples logged per validation as ``RGB | prediction | ground truth``
            images to loggers that have ``log_image`` (wandb); 0 logs none.
        val_min_depth, val_max_depth: ground-truth depth range counted by the validation metrics
            (:class:`RelativeDepthMetrics`; disparity labels are scored as depth up to scale).
        head_bias_init: initial bias of the (relative) DPT's last convolution (the paper is silent on
            initialisation). A fresh head's output is nearly constant, about that bias, so with PyTorch's default
            (uniform around 0) the final ReLU starts closed for about half the seeds: an all-zero map through which
            no gradient flows. A positive value starts it open; None keeps PyTorch's initialisation.
        gradient_weight: weight of the gradient matching loss L_gm (on the normalised maps) beside the
            affine-invariant loss on labeled images: 0 in Depth Anything (V1), 2 in V2 ("L_ssi : L_gm = 1 : 2").
        init_checkpoint: a trained model whose encoder *and* head start this run (fine-tuning a released model):
            an official V1/V2 ``.pth``, a transformers directory or an anydepth checkpoint, of the same architecture
            as ``model``; ``pretrained`` is then not read (a model preset may still name it).
        init_encoder_from: a trained model whose encoder only starts this run, the head staying fresh (Sec. 4.3:
            "We initialize the encoder of downstream MDE models with our pre-trained encoder parameters and leave
            the decoder randomly initialized"): any checkpoint ``DepthAnything.from_checkpoint`` reads, relative or
            metric, with ``model``'s encoder size; ``pretrained`` is then not read. Not together with
            ``init_checkpoint``. A ``ZoeDepthMetric`` takes the whole relative model (DINOv2 + DPT) of a relative
            checkpoint of its core's architecture (official ``DepthAnythingCore.build``).
        freeze_encoder: train the head only (the encoder never enters the optimiser).
        schedule, schedule_options: the per-step learning-rate schedule, ``linear`` (Sec. 4.1), ``poly`` or
            ``one_cycle``, and options overriding its defaults (:mod:`anydepth.training.schedules`).

    A metric head (``model.config.head == "metric"``) is validated without alignment, on depth in metres.
    """

    def __init__(
        self,
        model: DepthNetwork,
        pretrained: str | None = None,
        encoder_lr: float = 5e-6,
        decoder_lr_multiplier: float = 10.0,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.999),
        flip_p: float = 0.5,
        num_visualizations: int = 4,
        val_min_depth: float = 1e-3,
        val_max_depth: float | None = None,
        head_bias_init: float | None = 1.0,
        gradient_weight: float = 0.0,
        init_checkpoint: str | None = None,
        init_encoder_from: str | None = None,
        freeze_encoder: bool = False,
        schedule: Schedule = "linear",
        schedule_options: dict[str, float | bool] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        if not isinstance(model, DepthAnything | ZoeDepthMetric):
            raise TypeError(f"model must be an anydepth DepthAnything or ZoeDepthMetric, got {type(model).__name__}")
        if encoder_lr <= 0 or decoder_lr_multiplier <= 0:
            raise ValueError(
                "model.init_args.encoder_lr and decoder_lr_multiplier must be > 0, "
                f"got {encoder_lr}, {decoder_lr_multiplier}"
            )
        self.model = model
        relative = relative_of(model)
        freeze_unused_parameters(relative)
        if head_bias_init is not None:
            torch.nn.init.constant_(relative.depth_head.scratch.output_conv2[2].bias, head_bias_init)
        self.pretrained = pretrained
        if gradient_weight < 0:
            raise ValueError(f"model.init_args.gradient_weight must be >= 0, got {gradient_weight}")
        self.gradient_weight = gradient_weight
        if init_checkpoint is not None and init_encoder_from is not None:
            raise ValueError(
                "give model.init_args.init_checkpoint (every weight) or init_encoder_from (the encoder only), not both"
            )
        if init_checkpoint is not None:  # every weight comes from it: a model preset's DINOv2 file is not read
            self.pretrained = None
            load_trained_model(self.model, init_checkpoint)
        elif init_encoder_from is not None:  # the encoder comes from it: neither is the DINOv2 file read
            self.pretrained = None
            if isinstance(model, ZoeDepthMetric):
                load_trained_core(model, init_encoder_from)
            else:
                load_trained_encoder(model, init_encoder_from)
        elif pretrained is None:
            rank_zero_warn(
                "\n" + "!" * 100 + f"\n{type(self).__name__}: no `pretrained` DINOv2 weights given: the encoder "
                "starts from RANDOM weights. Depth Anything fine-tunes DINOv2; set model.init_args.pretrained to a "
                "local dinov2_vit?14_pretrain.pth for real training.\n" + "!" * 100
            )
        else:
            load_dinov2_encoder(relative.pretrained, pretrained)
        if freeze_encoder:
            encoder_of(model).requires_grad_(False)
        self.encoder_lr, self.decoder_lr_multiplier = encoder_lr, decoder_lr_multiplier
        self.weight_decay, self.betas, self.flip_p = weight_decay, tuple(betas), flip_p
        self.num_visualizations = num_visualizations
        schedule_settings(schedule, schedule_options)  # bad settings fail here, before any data is read
        self.schedule, self.schedule_options = schedule, schedule_options
        self.metric = model.config.head == "metric"
        align = "none" if self.metric else "disparity"  # metric evaluation aligns nothing
        self.val_metrics = RelativeDepthMetrics(align=align, min_depth=val_min_depth, max_depth=val_max_depth)
        self._visualizations: list[np.ndarray] = []

    # ---------------------------------------------------------------- shared steps

    def forward(self, images: Tensor) -> Tensor:
        """``B x 3 x h x w`` RGB in [0, 1] (sides multiples of 14) -> ``B x h x w`` relative disparity (a metric
        head: depth in metres)."""
        return self.model(normalize(images))

    def _training(self) -> bool:
        return self._trainer is not None and self.trainer.training

    @staticmethod
    def unit_images(batch: dict[str, Any]) -> dict[str, Any]:
        """The batch with its ``image`` as float32 in [0, 1] (training batches arrive as uint8)."""
        return {**batch, "image": image_to_unit_range(batch["image"])}

    def flip_labeled(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The labeled augmentation: one joint horizontal flip of image, label and mask per sample."""
        require_labels(batch, "labeled")
        flipped = joint_hflip(batch["image"], batch["label"], batch["mask"], p=self.flip_p)
        return {**batch, "image": flipped.image, "label": flipped.label, "mask": flipped.mask}

    def depth_loss(self, pred: Tensor, label: Tensor, mask: Tensor, trim: float = 0.0) -> Tensor:
        """The loss on labeled (or pseudo-labeled) images: the affine-invariant loss of eq. 1-3 (leaving out each
        map's ``trim`` fraction of largest residuals) plus ``gradient_weight`` times L_gm (V2)."""
        loss = affine_invariant_loss(pred, label, mask, trim=trim)
        if self.gradient_weight > 0:
            loss = loss + self.gradient_weight * normalized_gradient_matching_loss(pred, label, mask)
        return loss

    def log_losses(self, losses: dict[str, Tensor], batch_size: int) -> None:
        """Log ``train/<loss>`` and the learning rates ``train/lr_encoder``, ``train/lr_decoder`` (no
        LearningRateMonitor needed, so runs without a logger work with the same callbacks)."""
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, prog_bar=True, batch_size=batch_size)
        rates = {f"train/lr_{g['name']}": g["lr"] for g in self.trainer.optimizers[0].param_groups}
        self.log_dict(rates, batch_size=batch_size)

    def on_fit_start(self) -> None:
        """Log the network's architecture (:class:`~anydepth.models.DepthAnythingConfig`: encoder, version, block
        indices, head sizes) as the ``architecture`` hyperparameters, so logged runs can be filtered by encoder."""
        params = {"architecture": relative_of(self.model).config.to_dict()}
        if isinstance(self.model, ZoeDepthMetric):
            params["metric_bins"] = self.model.config.to_dict()
        for logger in self.loggers:
            logger.log_hyperparams(params)

    # ---------------------------------------------------------------- optimisation

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW with the encoder at ``encoder_lr`` and the decoder at ``decoder_lr_multiplier`` times that, decayed
        by ``schedule`` (Sec. 4.1: linearly to 0) over the run's optimiser steps. Frozen parameters never enter the
        optimiser."""
        encoder = {id(p) for p in encoder_of(self.model).parameters()}
        trained = [p for p in self.model.parameters() if p.requires_grad]
        groups = [
            {"name": "encoder", "params": [p for p in trained if id(p) in encoder], "lr": self.encoder_lr},
            {
                "name": "decoder",
                "params": [p for p in trained if id(p) not in encoder],
                "lr": self.encoder_lr * self.decoder_lr_multiplier,
            },
        ]
        groups = [group for group in groups if group["params"]]  # a frozen encoder has none
        optimizer = AdamW(groups, weight_decay=self.weight_decay, betas=self.betas)
        total = self.trainer.estimated_stepping_batches
        schedule = build_schedule(optimizer, self.schedule, total, self.schedule_options)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def configure_gradient_clipping(
        self, optimizer: Any, gradient_clip_val: float | None = None, gradient_clip_algorithm: str | None = None
    ) -> None:
        """``trainer.gradient_clip_val`` as usual; under FSDP (where Lightning cannot clip by norm) through the FSDP
        root's ``clip_grad_norm_``, which reduces the norm over the shards."""
        if isinstance(self.trainer.strategy, FSDPStrategy):
            if gradient_clip_val:
                self.trainer.strategy.model.clip_grad_norm_(gradient_clip_val)
            return
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    # ---------------------------------------------------------------- validation

    def on_validation_epoch_start(self) -> None:
        self.val_metrics.reset()
        self._visualizations = []

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        """Evaluation batches (:class:`~anydepth.data.transforms.EvalTransform`): predict at the network size,
        upsample to the ground truth's, align scale and shift in disparity space and accumulate the metrics."""
        require_labels(batch, "validation")
        size = tuple(int(s) for s in batch["original_size"][0])
        pred = self(batch["image"])
        if isinstance(self.model, ZoeDepthMetric):  # official ZoeDepth evaluate.py: bilinear, align_corners=True
            pred = resize_like(pred[:, None].float(), size)[:, 0]
        else:
            pred = upsample_prediction(pred, size, self.model.config.version)
        depth = depth_from_label(batch["label"], batch["mask"], batch["label_kind"])
        self.val_metrics.update(pred, depth, batch["mask"])
        if self.trainer.is_global_zero and len(self._visualizations) < self.num_visualizations:
            panels = visualization(batch["image"][0], pred[0], depth[0], batch["mask"][0], metric=self.metric)
            self._visualizations.append(panels)

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()  # synchronised across ranks
        self.log_dict({f"val/{name}": value for name, value in values.items()}, sync_dist=False)
        self.val_metrics.reset()
        if self._visualizations and not self.trainer.sanity_checking:
            for logger in self.loggers:
                if hasattr(logger, "log_image"):
                    logger.log_image(key="val/depth", images=list(self._visualizations), step=self.global_step)
        self._visualizations = []

    # ---------------------------------------------------------------- checkpoints

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        add_anydepth_metadata(checkpoint, self.model)


def architecture(model: DepthNetwork) -> dict[str, Any]:
    """The settings that fix ``model``'s weights (``pos_embed_interpolation`` is inference-time resampling); a
    ``ZoeDepthMetric``'s core's, and its bins head's under ``metric_bins.``."""
    arch = {k: v for k, v in relative_of(model).config.to_dict().items() if k != "pos_embed_interpolation"}
    if isinstance(model, ZoeDepthMetric):
        arch.update({f"metric_bins.{k}": v for k, v in model.config.to_dict().items()})
    return arch


def _differences(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    return [f"{k}: {theirs.get(k)} (checkpoint) vs {v} (model)" for k, v in ours.items() if theirs.get(k) != v]


def load_trained_model(model: DepthNetwork, path: str) -> None:
    """Load every weight of the model at ``path`` (any checkpoint ``DepthAnything.from_checkpoint`` reads) into
    ``model``; ``CheckpointError`` naming the differing settings when its architecture is not ``model``'s."""
    source = DepthAnything.from_checkpoint(path)
    if type(source) is not type(model):
        raise CheckpointError(
            f"model.init_args.init_checkpoint {path} holds a {type(source).__name__}, but model.init_args.model is a "
            f"{type(model).__name__}: give a checkpoint of the model's class"
        )
    differing = _differences(architecture(model), architecture(source))
    if differing:
        raise CheckpointError(
            f"model.init_args.init_checkpoint {path} is another architecture than model.init_args.model ("
            + "; ".join(differing)
            + "): set the model's encoder/version/sizes to the checkpoint's"
        )
    model.load_state_dict(source.state_dict())


def load_trained_core(model: ZoeDepthMetric, path: str) -> None:
    """Load the relative Depth Anything model at ``path`` (encoder *and* DPT) into ``model``'s core, the bins head
    staying fresh, as the official ZoeDepth ``DepthAnythingCore.build`` loads ``depth_anything_vitl14.pth``;
    ``CheckpointError`` when it is no relative model of the core's architecture."""
    source = DepthAnything.from_checkpoint(path)
    if not isinstance(source, DepthAnything) or source.config.head != "relative":
        found = source.config.head if isinstance(source, DepthAnything) else type(source).__name__
        raise CheckpointError(
            f"model.init_args.init_encoder_from {path} is a {found!r} model: a ZoeDepthMetric's core starts from a "
            "relative Depth Anything checkpoint (official: depth_anything_vitl14.pth)"
        )
    differing = _differences(architecture(model.relative), architecture(source))
    if differing:
        raise CheckpointError(
            f"model.init_args.init_encoder_from {path} is another architecture than the ZoeDepthMetric's core ("
            + "; ".join(differing)
            + "): set model.init_args.model.init_args.relative to the checkpoint's"
        )
    model.relative.load_state_dict(source.state_dict())


ENCODER_FIELDS = ("embed_dim", "depth", "num_heads", "swiglu")
"""The :class:`~anydepth.models.DepthAnythingConfig` fields that fix the encoder's weights' shapes."""


def load_trained_encoder(model: DepthAnything, path: str, config: DepthAnythingConfig | None = None) -> None:
    """Load the encoder weights (``pretrained.*``) of the Depth Anything model at ``path`` (any checkpoint
    ``DepthAnything.from_checkpoint`` reads: official V1/V2 ``.pth``, transformers, anydepth; relative or metric)
    into ``model.pretrained`` (a ``DepthAnything``, or any network with that encoder, e.g. a segmentation model, whose
    encoder sizes ``config`` gives), leaving the rest as it is; ``CheckpointError`` naming both sizes when the
    encoders differ. As the official V2 metric trainer's ``--pretrained-from``, which keeps the keys containing
    ``pretrained`` of a relative model."""
    source = DepthAnything.from_checkpoint(path)
    if not isinstance(source, DepthAnything):
        raise CheckpointError(
            f"model.init_args.init_encoder_from {path} is a {type(source).__name__}, not a Depth Anything "
            "(DINOv2 + DPT) model: give a Depth Anything checkpoint"
        )
    ours, theirs = config or model.config, source.config
    if any(getattr(ours, k) != getattr(theirs, k) for k in ENCODER_FIELDS):
        raise CheckpointError(
            f"model.init_args.init_encoder_from {path} holds {describe_encoder(theirs)}, but the model has "
            f"{describe_encoder(ours)}: take the checkpoint of the model preset's size, or the preset "
            f"(configs/model/{theirs.encoder}.yaml) of the checkpoint's"
        )
    model.pretrained.load_state_dict(source.pretrained.state_dict())


def describe_encoder(config: DepthAnythingConfig) -> str:
    """``a vits encoder (width 384, 12 blocks, 6 heads)``."""
    return f"a {config.encoder} encoder (width {config.embed_dim}, {config.depth} blocks, {config.num_heads} heads)"


def require_labels(batch: dict[str, Any], what: str) -> None:
    """Raise one clear error when a batch that needs labels has none."""
    if "label" not in batch or "mask" not in batch:
        keys = batch.get("key", [])[:3]
        raise ValueError(
            f"{what} batch without labels (samples {keys}...): give labeled shards (a `label.npy` per sample) here; "
            "unlabeled shards must be pseudo-labeled first (anydepth pseudo-label)"
        )


def visualization(image: Tensor, pred: Tensor, depth: Tensor, mask: Tensor, metric: bool = False) -> np.ndarray:
    """``RGB | prediction | ground truth`` (H x W' x 3 uint8, ground-truth resolution; pixels without ground truth
    black). Relative: predicted and ground-truth disparity, each on its own colour scale. ``metric``: depth in
    metres on one colour scale shared by both panels, so equal colours are equal distances (near red, far blue)."""
    size = tuple(depth.shape[-2:])
    rgb = F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    rgb = (rgb.clamp(0, 1).permute(1, 2, 0) * 255).round().byte().cpu().numpy()
    valid = mask.cpu().numpy()
    if metric:  # -depth: colorize's near-is-high convention; invalid pixels NaN, out of the shared range
        both = -np.concatenate([pred.float().cpu().numpy(), np.where(valid, depth.float().cpu().numpy(), np.nan)], 1)
        pred_vis, truth_vis = np.split(colorize(both), 2, axis=1)
    else:
        pred_vis = colorize(pred.float().cpu().numpy())
        truth_vis = colorize(torch.where(mask, 1.0 / depth.clamp_min(1e-12), 0.0).float().cpu().numpy())
    truth_vis[~valid] = 0  # no ground truth: black
    return side_by_side(side_by_side(rgb, pred_vis), truth_vis)
