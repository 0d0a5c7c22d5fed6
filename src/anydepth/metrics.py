"""Depth evaluation: scale-and-shift alignment and the standard depth metrics, batched and mask-aware.

Zero-shot relative evaluation follows the Depth Anything paper (supplementary: "Following MiDaS, in zero-shot
evaluation, the scale and shift of our prediction are manually aligned with the ground truth"), i.e. the MiDaS
protocol (Ranftl et al., "Towards Robust Monocular Depth Estimation", TPAMI 2022): the predicted relative disparity
is aligned to the ground-truth disparity by per-image least squares, inverted to depth, and scored with AbsRel and
delta_1. Metric definitions match the Monodepth / BTS / ZoeDepth evaluation code. Ground truth stored as disparity
is turned into depth up to scale by :func:`depth_from_label` first.

Semantic segmentation (Sec. 4.4, Tables 7-8) is scored by :class:`SegmentationMetrics`: mIoU, per-class IoU and
pixel accuracy from a confusion matrix, as MMSegmentation's ``IoUMetric``.

Everything runs on whole batches (no Python loop over samples) in at least float32: half-precision inputs are
upcast, float64 inputs stay float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.classification import MulticlassJaccardIndex

from anydepth.shards.schema import LABEL_KINDS

__all__ = [
    "HIGHER_IS_BETTER",
    "METRIC_NAMES",
    "RelativeDepthMetrics",
    "SegmentationMetrics",
    "align_scale_shift",
    "aligned_depth",
    "depth_from_label",
    "depth_metrics",
    "per_image_depth_metrics",
    "segmentation_values",
]

METRIC_NAMES: tuple[str, ...] = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog", "d1", "d2", "d3")
"""Keys of the dicts returned by :func:`depth_metrics` and :meth:`RelativeDepthMetrics.compute`."""

HIGHER_IS_BETTER: dict[str, bool] = {name: name in ("d1", "d2", "d3") for name in METRIC_NAMES}
"""Direction of each metric (e.g. for a checkpoint callback's ``mode``): only the delta accuracies go up."""

AlignMode = Literal["disparity", "depth", "none"]


def _compute_dtype(x: Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)


def _check_inputs(pred: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
    """Validate shapes (B x H x W, or any B x ...) and return a bool mask (all True when ``mask`` is None)."""
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.ndim < 3:
        raise ValueError(f"expected batched maps B x H x W, got shape {tuple(pred.shape)}")
    if mask is None:
        return torch.ones(pred.shape, dtype=torch.bool, device=pred.device)
    if mask.shape != pred.shape:
        raise ValueError(f"mask must have the shape of pred {tuple(pred.shape)}, got {tuple(mask.shape)}")
    return mask.to(torch.bool)


def _per_image_sum(x: Tensor) -> Tensor:
    return x.flatten(1).sum(dim=1)


def _bcast(v: Tensor, like: Tensor) -> Tensor:
    """Reshape a B-vector so it broadcasts against the B x ... map ``like``."""
    return v.reshape(v.shape[0], *([1] * (like.ndim - 1)))


def align_scale_shift(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample least-squares scale and shift: ``argmin_{s,t} sum_mask (s * pred + t - target)^2``.

    The MiDaS protocol (Ranftl et al., TPAMI 2022) used for Depth Anything's zero-shot evaluation, where it is
    applied in disparity space. The 2x2 normal equations are solved in closed form per sample from masked sums, in
    their centred form ``s = cov(p, g) / var(p)``, ``t = mean(g) - s * mean(p)`` (same solution, no catastrophic
    cancellation in float32). Pixels outside ``mask`` never enter the sums (they may even hold NaN/inf).

    Degenerate samples (fewer than 2 valid pixels, or a prediction that is constant over the valid pixels) get
    ``scale = 0`` and ``shift = mean of the valid target`` (``0`` when no pixel is valid) -- still a least-squares
    minimiser, and never NaN.

    Args:
        pred: B x H x W (or any B x ...) prediction.
        target: same shape, the values to align to.
        mask: same shape, bool; True marks pixels used for the fit. None: all pixels.

    Returns:
        ``(aligned, scale, shift)``: ``aligned = scale * pred + shift`` (computed at every pixel, shape of ``pred``),
        and the B-vectors ``scale`` and ``shift``.
    """
    mask = _check_inputs(pred, target, mask)
    dtype = _compute_dtype(pred)
    p = torch.where(mask, pred.to(dtype), 0.0)
    g = torch.where(mask, target.to(dtype), 0.0)
    n = _per_image_sum(mask.to(dtype))
    n_safe = n.clamp(min=1.0)
    p_mean = _per_image_sum(p) / n_safe
    g_mean = _per_image_sum(g) / n_safe
    pc = torch.where(mask, p - _bcast(p_mean, p), 0.0)
    gc = torch.where(mask, g - _bcast(g_mean, g), 0.0)
    var_p = _per_image_sum(pc * pc)
    cov = _per_image_sum(pc * gc)
    # Constant prediction: centred values are rounding noise, |p - mean| <~ a few ulps of max|p|.
    p_max = torch.where(mask, p.abs(), 0.0).flatten(1).amax(dim=1)
    tol = n * (8.0 * torch.finfo(dtype).eps * p_max) ** 2
    ok = (n >= 2) & (var_p > tol) & (var_p > 0)
    scale = torch.where(ok, cov / torch.where(ok, var_p, 1.0), 0.0)
    shift = g_mean - scale * p_mean
    aligned = _bcast(scale, pred) * pred.to(dtype) + _bcast(shift, pred)
    return aligned, scale, shift


def _valid_mask(gt: Tensor, mask: Tensor, min_depth: float, max_depth: float | None) -> Tensor:
    valid = mask & torch.isfinite(gt) & (gt > min_depth)
    if max_depth is not None:
        valid = valid & (gt < max_depth)
    return valid


def depth_from_label(label: Tensor, mask: Tensor, kinds: Sequence[str | None]) -> Tensor:
    """Ground-truth depth for :meth:`RelativeDepthMetrics.update` from raw ``B x H x W`` labels of kind ``kinds[i]``
    (as :class:`~anydepth.data.transforms.EvalTransform` returns them) and their bool ``mask``.

    - ``"depth"``: the label, unchanged.
    - ``"disparity"`` / ``"relative_disparity"``: depth up to scale, ``median(d) / d`` on the masked pixels with a
      finite ``d > 0`` (``0``, i.e. invalid, elsewhere: zero disparity is infinitely far), the median taken over
      those pixels, so the sample's median depth is 1 and a benchmark's depth range is in units of it. The unknown
      scale of a disparity (pixels, or normalised) is harmless: zero-shot alignment fits scale and shift in
      disparity space, so AbsRel and the deltas do not depend on it; plain ``1 / d`` would tie the depth range to
      the disparity's unit (a disparity of 40 px is a "depth" of 0.025, below e.g. DIODE's 0.6 m minimum).

    Raises:
        ValueError: a kind outside :data:`~anydepth.shards.schema.LABEL_KINDS` (e.g. None: an unlabeled sample), or
            not one kind per sample.
    """
    if len(kinds) != label.shape[0]:
        raise ValueError(f"expected one label kind per sample ({label.shape[0]}), got {len(kinds)}")
    unknown = sorted({repr(k) for k in kinds if k not in LABEL_KINDS})
    if unknown:
        raise ValueError(f"unknown label kind {', '.join(unknown)}; expected one of {', '.join(LABEL_KINDS)}")
    if all(k == "depth" for k in kinds):
        return label
    is_disparity = torch.tensor([k != "depth" for k in kinds], device=label.device)
    d = label.to(_compute_dtype(label))
    positive = mask.to(torch.bool) & torch.isfinite(d) & (d > 0)
    median = torch.where(positive, d, torch.nan).flatten(1).nanmedian(dim=1).values  # NaN: no valid pixel
    depth = torch.where(positive, _bcast(median, d) / torch.where(positive, d, 1.0), 0.0)
    return torch.where(_bcast(is_disparity, d), depth, d)


def per_image_depth_metrics(
    pred: Tensor,
    gt: Tensor,
    mask: Tensor | None = None,
    min_depth: float = 1e-3,
    max_depth: float | None = None,
) -> dict[str, Tensor]:
    """Standard depth metrics for each image (Monodepth / BTS / ZoeDepth definitions), as B-vectors.

    ``pred`` is clamped to ``[min_depth, max_depth]``; valid pixels are
    ``mask & isfinite(gt) & (gt > min_depth) & (gt < max_depth)`` (upper bound only when ``max_depth`` is given).
    With ``e = log p - log g``, over the valid pixels of each image:

    - ``abs_rel = mean |p - g| / g``, ``sq_rel = mean (p - g)^2 / g``, ``rmse = sqrt(mean (p - g)^2)``
    - ``rmse_log = sqrt(mean e^2)``, ``log10 = mean |log10 p - log10 g|``
    - ``silog = 100 * sqrt(mean(e^2) - mean(e)^2)`` (BTS / ZoeDepth eval convention, i.e. lambda = 1; evaluated as
      the equal ``100 * sqrt(mean((e - mean e)^2))``, which avoids float32 cancellation)
    - ``d{k} = mean(max(p / g, g / p) < 1.25^k)`` for k = 1, 2, 3

    Returns:
        dict with the keys of :data:`METRIC_NAMES` (float B-vectors) and ``valid_images`` (bool B-vector: the image
        has at least one valid pixel). Images without valid pixels get 0 in every metric (never NaN) and must be
        ignored via ``valid_images``.
    """
    mask = _check_inputs(pred, gt, mask)
    dtype = _compute_dtype(pred)
    valid = _valid_mask(gt, mask, min_depth, max_depth)
    p = pred.to(dtype).clamp(min=min_depth, max=max_depth)
    # Invalid pixels are set to 1 (finite logs and ratios) and removed from every sum by `valid`.
    p = torch.where(valid, p, 1.0)
    g = torch.where(valid, gt.to(dtype), 1.0)
    w = valid.to(dtype)
    n = _per_image_sum(w)
    valid_images = n > 0
    n_safe = n.clamp(min=1.0)

    def mean(x: Tensor) -> Tensor:
        return _per_image_sum(torch.where(valid, x, 0.0)) / n_safe

    diff = p - g
    err_log = torch.log(p) - torch.log(g)
    ratio = torch.maximum(p / g, g / p)
    centred_log = err_log - _bcast(mean(err_log), err_log)
    out = {
        "abs_rel": mean(diff.abs() / g),
        "sq_rel": mean(diff * diff / g),
        "rmse": mean(diff * diff).sqrt(),
        "rmse_log": mean(err_log * err_log).sqrt(),
        "log10": mean((torch.log10(p) - torch.log10(g)).abs()),
        # mean(e^2) - mean(e)^2 evaluated in the centred form mean((e - mean e)^2): same value, no cancellation.
        "silog": mean(centred_log * centred_log).sqrt() * 100.0,
    }
    for k in (1, 2, 3):
        out[f"d{k}"] = mean((ratio < 1.25**k).to(dtype))
    out = {name: torch.where(valid_images, value, 0.0) for name, value in out.items()}
    out["valid_images"] = valid_images
    return out


def depth_metrics(
    pred: Tensor,
    gt: Tensor,
    mask: Tensor | None = None,
    min_depth: float = 1e-3,
    max_depth: float | None = None,
) -> dict[str, Tensor]:
    """Depth metrics of a batch: each computed per image (see :func:`per_image_depth_metrics`), then averaged over
    the images that have valid pixels -- the standard protocol (not pooling pixels across images).

    Returns:
        dict with the keys of :data:`METRIC_NAMES`, scalar tensors; NaN when no image has a valid pixel (the mean of
        an empty set is undefined).
    """
    per_image = per_image_depth_metrics(pred, gt, mask, min_depth=min_depth, max_depth=max_depth)
    valid_images = per_image.pop("valid_images")
    count = valid_images.sum()
    return {name: value.sum() / count for name, value in per_image.items()}


def aligned_depth(
    pred: Tensor,
    target_depth: Tensor,
    mask: Tensor | None = None,
    align: AlignMode = "disparity",
    min_depth: float = 1e-3,
    max_depth: float | None = None,
    min_disparity: float = 1e-6,
) -> Tensor:
    """Turn a prediction into depth aligned to ``target_depth`` (the step before :func:`depth_metrics`).

    - ``"disparity"`` (MiDaS / Depth Anything zero-shot protocol): ``pred`` is relative disparity; it is aligned by
      :func:`align_scale_shift` to ``1 / target_depth`` over the valid pixels (same validity rule as the metrics),
      clamped below at ``1 / max_depth`` (``min_disparity`` when ``max_depth`` is None) so depth stays finite and
      positive, then inverted.
    - ``"depth"``: ``pred`` is treated as depth and aligned to ``target_depth`` directly.
    - ``"none"``: ``pred`` is returned as is (already metric depth).

    The result is not yet clamped to ``[min_depth, max_depth]``; the metric functions do that.
    """
    mask = _check_inputs(pred, target_depth, mask)
    if align == "none":
        return pred.to(_compute_dtype(pred))
    valid = _valid_mask(target_depth, mask, min_depth, max_depth)
    dtype = _compute_dtype(pred)
    if align == "depth":
        return align_scale_shift(pred, target_depth.to(dtype), valid)[0]
    if align == "disparity":
        target_disp = torch.where(valid, 1.0 / torch.where(valid, target_depth.to(dtype), 1.0), 0.0)
        disp = align_scale_shift(pred, target_disp, valid)[0]
        floor = 1.0 / max_depth if max_depth is not None else min_disparity
        return 1.0 / disp.clamp(min=floor)
    raise ValueError(f"align must be 'disparity', 'depth' or 'none', got {align!r}")


class RelativeDepthMetrics(Metric):
    """Zero-shot depth metrics (AbsRel, delta_1, ... see :data:`METRIC_NAMES`) accumulated over batches and DDP ranks.

    ``update(pred, target_depth, mask)`` aligns ``pred`` with :func:`aligned_depth` (default ``"disparity"``: the
    Depth Anything / MiDaS protocol, per-image least-squares scale and shift in disparity space), computes the metrics
    per image and adds their sums and the number of images with valid pixels to the state. ``compute()`` returns
    the per-image means (images without valid pixels are excluded; NaN if there were none). Sums reduce by ``sum``
    across ranks, so the result is exact whatever the batching or sharding.

    Args:
        align: ``"disparity"`` (pred is relative disparity), ``"depth"`` (pred is relative depth) or ``"none"``
            (pred is metric depth).
        min_depth: lower bound for valid ground truth and for the clamped prediction.
        max_depth: upper bound (exclusive for ground truth), or None for none.
        min_disparity: floor on aligned disparity when ``max_depth`` is None (else ``1 / max_depth`` is used).
    """

    is_differentiable = False
    higher_is_better: bool | None = None  # mixed: see HIGHER_IS_BETTER
    full_state_update = False

    def __init__(
        self,
        align: AlignMode = "disparity",
        min_depth: float = 1e-3,
        max_depth: float | None = None,
        min_disparity: float = 1e-6,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if align not in ("disparity", "depth", "none"):
            raise ValueError(f"align must be 'disparity', 'depth' or 'none', got {align!r}")
        if max_depth is not None and max_depth <= min_depth:
            raise ValueError(f"max_depth ({max_depth}) must be greater than min_depth ({min_depth})")
        self.align = align
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.min_disparity = min_disparity
        for name in METRIC_NAMES:
            self.add_state(f"sum_{name}", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target_depth: Tensor, mask: Tensor | None = None) -> None:
        """Add a batch: ``pred`` B x H x W model output, ``target_depth`` B x H x W ground-truth depth, bool mask."""
        depth = aligned_depth(
            pred.detach(),
            target_depth.detach(),
            mask,
            align=self.align,
            min_depth=self.min_depth,
            max_depth=self.max_depth,
            min_disparity=self.min_disparity,
        )
        per_image = per_image_depth_metrics(
            depth, target_depth, mask, min_depth=self.min_depth, max_depth=self.max_depth
        )
        valid_images = per_image.pop("valid_images")
        for name, value in per_image.items():
            state = getattr(self, f"sum_{name}")
            setattr(self, f"sum_{name}", state + value.sum().to(state.dtype))
        self.count = self.count + valid_images.sum()

    def compute(self) -> dict[str, Tensor]:
        """Mean of each metric over all images with valid pixels seen so far."""
        count = self.count.to(self.sum_abs_rel.dtype)
        return {name: getattr(self, f"sum_{name}") / count for name in METRIC_NAMES}


class SegmentationMetrics(MulticlassJaccardIndex):
    """Segmentation metrics of predicted class ids against ground truth (``B x H x W`` each; ``ignore_index`` pixels
    left out) from the confusion matrix torchmetrics' ``MulticlassJaccardIndex`` keeps; its counts (and the image
    count) sum over ranks, so the result is exact whatever the batching or sharding. ``compute()`` returns
    ``{"mIoU", "aAcc", "mAcc": 0-d tensors, "IoU": K per-class IoUs, "images": images seen}``: IoU = TP / (TP + FP +
    FN) per class (NaN for a class absent from prediction and ground truth, left out of mIoU), aAcc = correct /
    labeled pixels, mAcc = the mean over classes present in the ground truth of TP / their pixels
    (MMSegmentation's ``IoUMetric``)."""

    def __init__(self, num_classes: int, ignore_index: int = 255, **kwargs: Any) -> None:
        super().__init__(num_classes, average="none", ignore_index=ignore_index, **kwargs)
        self.add_state("images", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        super().update(preds, target)
        self.images += preds.shape[0]

    def compute(self) -> dict[str, Tensor]:
        confmat = self.confmat.double()  # rows: ground truth, columns: prediction
        hits, truth = confmat.diagonal(), confmat.sum(1)
        union = truth + confmat.sum(0) - hits
        iou = hits / union  # 0 / 0 = NaN: the class is nowhere
        return {
            "mIoU": iou[union > 0].mean(),
            "aAcc": hits.sum() / confmat.sum(),
            "mAcc": (hits / truth)[truth > 0].mean(),
            "IoU": iou,
            "images": self.images.clone(),
        }


def segmentation_values(values: dict[str, Tensor], classes: Sequence[str]) -> dict[str, Any]:
    """:meth:`SegmentationMetrics.compute` output as plain numbers: ``{"mIoU", "aAcc", "mAcc": float, "IoU":
    {class name: float}, "images": int}``."""
    scalars = {name: float(values[name]) for name in ("mIoU", "aAcc", "mAcc")}
    per_class = dict(zip(classes, values["IoU"].tolist()))
    return {**scalars, "IoU": per_class, "images": int(values["images"])}
