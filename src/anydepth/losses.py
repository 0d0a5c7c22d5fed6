"""Training losses of Depth Anything (Yang et al., CVPR 2024), batched and mask-aware.

All losses take ``B x H x W`` maps (``B x N x C`` tokens for feature alignment) and a boolean
``B x H x W`` mask of valid pixels, run in fp32 even under autocast (inputs are cast and autocast
is disabled inside), never loop over samples in Python, and return a 0-dim tensor. Where nothing
is valid they return an exact zero that still depends on the prediction, so ``backward()`` works
and gives zero gradients instead of NaN.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

SCALE_EPS = 1e-6  # guard for s(d) of a constant map (eq. 3)
LOG_EPS = 1e-6  # guard for log(0) and sqrt(0) in the SILog loss

FloatFn = TypeVar("FloatFn", bound=Callable[..., Tensor])


def fp32(fn: FloatFn) -> FloatFn:
    """Run ``fn`` with autocast disabled and floating tensor arguments cast to float32."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        cast = [a.float() if isinstance(a, Tensor) and a.is_floating_point() else a for a in args]
        kw = {k: v.float() if isinstance(v, Tensor) and v.is_floating_point() else v for k, v in kwargs.items()}
        device = next((a.device.type for a in cast if isinstance(a, Tensor)), "cpu")
        with torch.autocast(device_type=device, enabled=False):
            return fn(*cast, **kw)

    return wrapper  # type: ignore[return-value]


def _zero_like(pred: Tensor) -> Tensor:
    """An exact 0 that keeps ``pred`` in the graph (backward gives zero gradients, not NaN)."""
    return pred.sum() * 0.0


def _mean_over_valid(per_sample: Tensor, valid: Tensor, pred: Tensor) -> Tensor:
    """Mean of ``per_sample`` over samples with ``valid``; a graph-connected 0 if there are none."""
    count = valid.sum()
    return torch.where(count > 0, (per_sample * valid).sum() / count.clamp_min(1), _zero_like(pred))


def normalize_disparity(d: Tensor, mask: Tensor, eps: float = SCALE_EPS) -> Tensor:
    """Eq. 2-3 per sample over valid pixels: (d - t(d)) / s(d), t = median, s = mean |d - t|.

    The median is torch's *lower* median (``nanmedian``: for an even count, the smaller of the
    two middle values), as ``torch.median`` in MiDaS' reference loss. ``s`` is clamped at ``eps``
    so a constant map gives finite values. Invalid pixels are returned as 0.
    """
    flat, valid = d.flatten(1), mask.flatten(1)
    count = valid.sum(1, keepdim=True)
    shift = torch.nanmedian(torch.where(valid, flat, torch.nan), dim=1, keepdim=True).values
    shift = torch.nan_to_num(shift, nan=0.0)  # samples without valid pixels
    centred = torch.where(valid, flat - shift, 0.0)
    scale = (centred.abs().sum(1, keepdim=True) / count.clamp_min(1)).clamp_min(eps)
    return (centred / scale).view_as(d)


def _trim_largest(residual: Tensor, mask: Tensor, trim: float) -> Tensor:
    """``mask`` without each sample's ``trim`` fraction of valid pixels with the largest ``residual`` (the smallest
    ``ceil((1 - trim) * count)`` are kept; ties at the cut are kept in index order)."""
    flat, valid = residual.flatten(1), mask.flatten(1)
    keep = torch.ceil((1.0 - trim) * valid.sum(1, keepdim=True)).long()
    order = torch.where(valid, flat, torch.inf).argsort(dim=1, stable=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return (valid & (rank < keep)).view_as(mask)


def _affine_invariant_per_sample(
    pred: Tensor, target: Tensor, mask: Tensor, trim: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Per-sample eq. 1 loss (B,) and whether each sample has valid pixels (B,); with ``trim`` > 0 the mean leaves
    out each sample's ``trim`` fraction of largest residuals (after the normalisation over all valid pixels)."""
    mask = mask.bool()
    residual = (normalize_disparity(pred, mask) - normalize_disparity(target, mask)).abs()  # 0 where invalid
    if trim > 0:
        mask = _trim_largest(residual.detach(), mask, trim)
    count = mask.flatten(1).sum(1)
    return (residual * mask).flatten(1).sum(1) / count.clamp_min(1), count > 0


def _check_trim(trim: float) -> None:
    if not 0.0 <= trim < 1.0:
        raise ValueError(f"trim must be in [0, 1), got {trim}")


@fp32
def affine_invariant_loss(pred: Tensor, target: Tensor, mask: Tensor, trim: float = 0.0) -> Tensor:
    """Eq. 1-3: mean over valid pixels of |d̂ - d̂*|, each map normalised per sample by its
    median and mean absolute deviation over its own valid pixels (see ``normalize_disparity``);
    averaged over the samples that have valid pixels. Invariant to ``a * pred + b`` for a > 0.

    ``trim`` (default 0, V1) leaves out each sample's ``trim`` fraction of valid pixels with the largest residual:
    Depth Anything V2 ignores "the top-n-largest-loss regions of each pseudo-labeled sample" with n = 10%.
    """
    _check_trim(trim)
    per_sample, valid = _affine_invariant_per_sample(pred, target, mask, trim)
    return _mean_over_valid(per_sample, valid, pred)


@fp32
def cutmix_affine_invariant_loss(
    pred: Tensor,
    target_a: Tensor,
    target_b: Tensor,
    box: Tensor,
    mask_a: Tensor | None = None,
    mask_b: Tensor | None = None,
    trim: float = 0.0,
) -> Tensor:
    """Eq. 6-8: the student's prediction on u_ab against T(u_a) inside the CutMix box M and
    against T(u_b) outside it, each region normalised on its own (its own median and scale),
    combined per sample with the area weights sum(M)/HW and sum(1 - M)/HW, then averaged over
    samples. ``box`` is M (B x H x W, 1/True inside); ``mask_a``/``mask_b`` (optional) restrict
    each target to its valid pixels. A region without valid pixels contributes 0. ``trim`` leaves out each
    region's largest residuals as in :func:`affine_invariant_loss`.
    """
    _check_trim(trim)
    inside = box.bool()
    valid_a = inside if mask_a is None else inside & mask_a.bool()
    valid_b = ~inside if mask_b is None else ~inside & mask_b.bool()
    # both regions in one batched pass: rows [0, B) are the box, rows [B, 2B) the rest
    per_region, has_pixels = _affine_invariant_per_sample(
        torch.cat([pred, pred]), torch.cat([target_a, target_b]), torch.cat([valid_a, valid_b]), trim
    )
    area_in = inside.flatten(1).float().mean(1)
    weights = torch.cat([area_in, 1.0 - area_in])
    batch = pred.shape[0]
    per_sample = (weights * per_region).view(2, batch).sum(0)
    return _mean_over_valid(per_sample, has_pixels.view(2, batch).any(0), pred)


@fp32
def feature_alignment_loss(
    student: Tensor, frozen: Tensor, margin: float = 0.85, reduction: Literal["kept", "all"] = "kept"
) -> Tensor:
    """Eq. 9 with the tolerance margin alpha (Sec. 3.3): 1 - cos(f_i, f'_i) per patch token,
    leaving out tokens whose cosine already exceeds ``margin`` (default alpha = 0.85).

    ``student`` and ``frozen`` are ``B x N x C`` tokens (or ``B x C x h x w`` maps, compared
    along C). The mean is pooled over all kept tokens of the batch (``reduction="kept"``, the
    paper's "this pixel will not be considered"); ``"all"`` divides by every token instead.
    The frozen features never receive gradients; no kept token gives a graph-connected 0.
    """
    dim = 1 if student.dim() == 4 else -1
    cosine = F.cosine_similarity(student, frozen.detach(), dim=dim)
    kept = cosine <= margin
    total = ((1.0 - cosine) * kept).sum()
    count = kept.sum() if reduction == "kept" else torch.tensor(cosine.numel(), device=cosine.device)
    return torch.where(count > 0, total / count.clamp_min(1), _zero_like(student))


@fp32
def silog_loss(pred: Tensor, target: Tensor, mask: Tensor, lambd: float = 0.5) -> Tensor:
    """Scale-invariant log loss for metric fine-tuning (Eigen et al. 2014, lambda = 0.5):
    sqrt(mean(e^2) - lambd * mean(e)^2) with e = log(target) - log(pred), pooled over all valid
    pixels of the batch as in the official Depth Anything V2 metric-depth code. Depths are clamped
    at 1e-6 before the log and the radicand at 1e-6, so gradients stay finite.
    """
    mask = mask.bool()
    count = mask.sum()
    err = (torch.log(target.clamp_min(LOG_EPS)) - torch.log(pred.clamp_min(LOG_EPS))) * mask
    mean, mean_sq = err.sum() / count.clamp_min(1), err.square().sum() / count.clamp_min(1)
    loss = torch.sqrt((mean_sq - lambd * mean.square()).clamp_min(LOG_EPS))
    return torch.where(count > 0, loss, _zero_like(pred))


def _gradient_residual(diff: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Sum per sample of |x- and y-gradients| of ``diff`` where both neighbours are valid; valid count."""
    diff = diff * mask
    grad_x = (diff[:, :, 1:] - diff[:, :, :-1]).abs() * (mask[:, :, 1:] & mask[:, :, :-1])
    grad_y = (diff[:, 1:, :] - diff[:, :-1, :]).abs() * (mask[:, 1:, :] & mask[:, :-1, :])
    return grad_x.flatten(1).sum(1) + grad_y.flatten(1).sum(1), mask.flatten(1).sum(1)


@fp32
def gradient_matching_loss(pred: Tensor, target: Tensor, mask: Tensor, scales: int = 4) -> Tensor:
    """Multi-scale gradient matching (MiDaS, Ranftl et al. 2020, eq. 11; Depth Anything V2's L_gm, off in the V1
    recipe): at scales 1, 1/2, 1/4, 1/8 (every 2^k-th pixel),
    the L1 norm of the x/y gradients of ``pred - target`` over valid neighbour pairs, divided by
    the batch's valid pixel count (MiDaS' batch-based reduction), summed over scales. Apply it to
    normalised maps (``normalize_disparity``) to keep it affine-invariant.
    """
    mask = mask.bool()
    total = _zero_like(pred)
    for k in range(scales):  # over scales, not samples
        step = 2**k
        residual, count = _gradient_residual((pred - target)[:, ::step, ::step], mask[:, ::step, ::step])
        total = total + torch.where(count.sum() > 0, residual.sum() / count.sum().clamp_min(1), 0.0)
    return total


@fp32
def normalized_gradient_matching_loss(pred: Tensor, target: Tensor, mask: Tensor, scales: int = 4) -> Tensor:
    """:func:`gradient_matching_loss` of the maps normalised per sample as in eq. 2-3 (``normalize_disparity``), so
    it is affine-invariant like the loss it accompanies (Depth Anything V2: L_ssi + 2 L_gm)."""
    mask = mask.bool()
    return gradient_matching_loss(normalize_disparity(pred, mask), normalize_disparity(target, mask), mask, scales)
