"""``MetricDepthModule``: fine-tune a Depth Anything encoder to metric depth (paper Sec. 4.3).

Paper, Sec. 4.3: "We initialize the encoder of downstream MDE models with our pre-trained encoder parameters and leave
the decoder randomly initialized. The model is fine-tuned with corresponding metric depth information." The network
is the official Depth Anything V2 ``metric_depth`` model (``DepthAnything(head="metric", max_depth=M)``: the DPT head
ends in ``M * sigmoid``, so a prediction never leaves ``(0, M)`` metres), trained as the official
``metric_depth/train.py`` does:

- the encoder from a relative model (``init_encoder_from``: the trainer's ``--pretrained-from``, keys containing
  ``pretrained``), from DINOv2 (``pretrained``), or every weight from a metric checkpoint (``init_checkpoint``);
- ``SiLogLoss(lambd=0.5)`` (``util/loss.py``) on the valid pixels whose depth lies in ``[min_depth, max_depth]``
  (``--min-depth 0.001``, ``--max-depth`` 20 Hypersim / 80 Virtual KITTI 2);
- AdamW, encoder ``5e-6`` and everything else 10x (``--lr 0.000005``, ``lr * 10.0``), ``weight_decay=0.01``;
- the poly decay ``lr * (1 - iters / total_iters) ** 0.9`` per iteration;
- a horizontal flip with probability 0.5 (the official code flips whole batches; here each sample);
- validation on depth in metres, nothing aligned, inside the same depth range.

The paper's own NYUv2/KITTI fine-tuning (supplementary Sec. 1) used the ZoeDepth codebase and its metric-bins head.
Given a :class:`~anydepth.models.zoedepth.ZoeDepthMetric` (the overlay ``configs/recipes/metric/zoedepth/nyu.yaml``
after ``nyu.yaml``), this module trains it as the official ``metric_depth/zoedepth`` trainer does: the relative core
(DINOv2 + DPT, from ``init_encoder_from``) at ``lr / 50`` and the bins head at ``lr`` (``get_lr_params``), with
ZoeDepth's ``SILogLoss`` ``10 * sqrt(var(g) + 0.15 * mean(g)^2)`` (``trainers/loss.py``), that is
``silog_lambda=0.85, silog_scale=10`` (up to ``torch.var``'s ``n / (n - 1)``). The V2 metric DPT head takes the
paper's other settings (crops, batch, epochs, encoder rate 1/50 of the decoder's, ZoeDepth's one-cycle schedule) where
a recipe asks for them (``configs/recipes/metric/{nyu,kitti}.yaml``).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from anydepth.losses import silog_loss
from anydepth.models.depth_anything import DepthAnything
from anydepth.training.base import DepthNetwork, DepthTrainingModule
from anydepth.training.schedules import Schedule

__all__ = ["MetricDepthModule"]


class MetricDepthModule(DepthTrainingModule):
    """Labeled batches of depth in metres (:class:`~anydepth.data.metric.MetricDataModule`) -> the SiLog loss.

    On the device (``on_after_batch_transfer``): uint8 images to [0, 1] floats and, for training batches, the joint
    horizontal flip; ImageNet normalisation in ``forward``. Validation (the base's) scores depth in metres with no
    alignment (:class:`~anydepth.metrics.RelativeDepthMetrics` with ``align="none"``: AbsRel, RMSE, delta_1 ...)
    on ground truth in ``[min_depth, max_depth)``, and logs ``RGB | prediction | ground truth`` panels on one
    colour scale in metres.

    Args (besides :class:`DepthTrainingModule`'s; its ``encoder_lr`` 5e-6, ``decoder_lr_multiplier`` 10,
    ``weight_decay`` 0.01 and ``flip_p`` 0.5 are the official V2 metric trainer's):
        model: a metric ``DepthAnything`` (``head="metric"``) or a ``ZoeDepthMetric``; its ``max_depth`` bounds the
            loss and the metrics.
        min_depth: smallest depth in metres that is supervised and scored (official ``--min-depth 0.001``).
        silog_lambda: the SiLog loss's lambda (official V2 ``SiLogLoss(lambd=0.5)``; ZoeDepth's beta 0.15 is 0.85).
        silog_scale: factor on the loss (V2: 1; ZoeDepth: ``10 * torch.sqrt(Dg)``); it matters with gradient
            clipping.
        head_bias_init: the base's option; None keeps PyTorch's initialisation, as the official code (the sigmoid
            output has no closed final ReLU to open).
        schedule: ``poly`` (official V2: ``(1 - step / total) ** 0.9``), ``linear`` or ``one_cycle`` (ZoeDepth's).
    """

    def __init__(
        self,
        model: DepthNetwork,
        min_depth: float = 1e-3,
        silog_lambda: float = 0.5,
        silog_scale: float = 1.0,
        head_bias_init: float | None = None,
        schedule: Schedule = "poly",
        **kwargs: Any,
    ) -> None:
        if isinstance(model, DepthAnything) and model.config.head != "metric":
            raise ValueError(
                f"MetricDepthModule trains a metric head: set model.init_args.model.init_args.head: metric and its "
                f"max_depth (metres; official V2: 20 indoor, 80 outdoor), got {model.config.head!r} (with "
                "configs/recipes/metric/zoedepth/*.yaml: no model preset may follow it, a preset replaces its model)"
            )
        max_depth = float(model.config.max_depth)
        if not 0 < min_depth < max_depth:
            raise ValueError(f"model.init_args.min_depth must be in (0, max_depth = {max_depth}), got {min_depth}")
        if not 0 <= silog_lambda <= 1:
            raise ValueError(f"model.init_args.silog_lambda must be in [0, 1] (a real sqrt), got {silog_lambda}")
        if silog_scale <= 0:
            raise ValueError(f"model.init_args.silog_scale must be > 0, got {silog_scale}")
        super().__init__(
            model,
            head_bias_init=head_bias_init,
            schedule=schedule,
            val_min_depth=min_depth,  # the official validation scores the trained depth range
            val_max_depth=max_depth,
            gradient_weight=0.0,  # L_gm is a relative-depth loss
            **kwargs,
        )
        self.min_depth, self.max_depth, self.silog_lambda = min_depth, max_depth, silog_lambda
        self.silog_scale = silog_scale

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        batch = self.unit_images(batch)
        return self.flip_labeled(batch) if self._training() else batch

    def supervised(self, label: Tensor, mask: Tensor) -> Tensor:
        """Pixels the loss sees: valid, with depth in ``[min_depth, max_depth]`` (official ``valid_mask == 1 &
        depth >= min_depth & depth <= max_depth``)."""
        return mask & (label >= self.min_depth) & (label <= self.max_depth)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        depth = self(batch["image"])  # metres (the V2 head: in (0, max_depth); ZoeDepth's: unbounded)
        mask = self.supervised(batch["label"], batch["mask"])
        loss = self.silog_scale * silog_loss(depth, batch["label"], mask, lambd=self.silog_lambda)
        self.log_losses({"loss": loss}, batch_size=batch["image"].shape[0])
        return loss
