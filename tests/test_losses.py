"""Losses: hand-computed cases, invariances, CutMix regions, margin, empty masks, fp32."""

from __future__ import annotations

import math

import pytest
import torch

from anydepth.losses import (
    affine_invariant_loss,
    cutmix_affine_invariant_loss,
    feature_alignment_loss,
    gradient_matching_loss,
    normalize_disparity,
    normalized_gradient_matching_loss,
    silog_loss,
)


def maps(*rows: list[float]) -> torch.Tensor:
    """1 x 1 x N maps from value lists, stacked into a B x 1 x N batch."""
    return torch.tensor([[r] for r in rows], dtype=torch.float32)


def test_affine_invariant_hand_computed() -> None:
    pred, target = maps([1, 2, 3, 10]), maps([2, 4, 6, 8])
    # pred: lower median 2, s = (1+0+1+8)/4 = 2.5 -> [-0.4, 0, 0.4, 3.2]
    # target: lower median 4, s = (2+0+2+4)/4 = 2 -> [-1, 0, 1, 2]; |diff| mean = (0.6+0+0.6+1.2)/4
    loss = affine_invariant_loss(pred, target, torch.ones_like(pred, dtype=torch.bool))
    assert loss.item() == pytest.approx(0.6, abs=1e-6)


def test_invalid_pixels_are_ignored_in_median_scale_and_mean() -> None:
    pred, target = maps([1, 2, 3, 1000]), maps([2, 4, 6, -50])
    mask = torch.tensor([[[True, True, True, False]]])
    assert affine_invariant_loss(pred, target, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_average_is_over_samples_with_valid_pixels() -> None:
    pred, target = maps([1, 2, 3, 10], [5, 5, 5, 5]), maps([2, 4, 6, 8], [1, 2, 3, 4])
    mask = torch.tensor([[[True] * 4], [[False] * 4]])
    assert affine_invariant_loss(pred, target, mask).item() == pytest.approx(0.6, abs=1e-6)


def test_affine_invariance() -> None:
    pred, target = torch.rand(3, 16, 20), torch.rand(3, 16, 20)
    mask = torch.rand(3, 16, 20) > 0.3
    base = affine_invariant_loss(pred, target, mask)
    for a, b in [(2.5, -1.0), (0.01, 7.0), (1e3, 0.0)]:
        torch.testing.assert_close(affine_invariant_loss(a * pred + b, target, mask), base, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(affine_invariant_loss(pred, a * target + b, mask), base, rtol=1e-5, atol=1e-6)
    assert affine_invariant_loss(target, target, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_normalised_map_has_zero_median_and_unit_mean_deviation() -> None:
    d, mask = torch.rand(2, 9, 9), torch.rand(2, 9, 9) > 0.2
    n = normalize_disparity(d, mask)
    for i in range(2):
        valid = n[i][mask[i]]
        assert valid.median().abs().item() < 1e-6 and valid.abs().mean().item() == pytest.approx(1.0, abs=1e-5)
        assert (n[i][~mask[i]] == 0).all()


def manual_cutmix(pred, ta, tb, box, ma, mb):
    """Eq. 6-8 the long way: each region through the plain loss, one sample at a time."""
    losses = []
    for i in range(pred.shape[0]):
        inside, outside = box[i] & ma[i], ~box[i] & mb[i]
        area = box[i].float().mean()
        l_in = affine_invariant_loss(pred[i : i + 1], ta[i : i + 1], inside[None]) if inside.any() else 0.0
        l_out = affine_invariant_loss(pred[i : i + 1], tb[i : i + 1], outside[None]) if outside.any() else 0.0
        losses.append(area * l_in + (1 - area) * l_out)
    return torch.stack([torch.as_tensor(v) for v in losses]).mean()


def box_masks(batch: int, h: int, w: int) -> torch.Tensor:
    box = torch.zeros(batch, h, w, dtype=torch.bool)
    box[0, 2:6, 3:9] = True
    box[1, 0:4, 0:4] = True
    if batch > 2:
        box[2:] = True  # CutMix not applied: the whole image is u_a
    return box


def test_cutmix_loss_equals_the_two_region_computation() -> None:
    pred, ta, tb = torch.rand(3, 10, 12), torch.rand(3, 10, 12), torch.rand(3, 10, 12)
    ma, mb = torch.rand(3, 10, 12) > 0.2, torch.rand(3, 10, 12) > 0.2
    box = box_masks(3, 10, 12)
    loss = cutmix_affine_invariant_loss(pred, ta, tb, box, ma, mb)
    torch.testing.assert_close(loss, manual_cutmix(pred, ta, tb, box, ma, mb), rtol=1e-5, atol=1e-6)
    # hand weights for sample 0: the box covers 24 of 120 pixels
    assert box[0].float().mean().item() == pytest.approx(0.2)


def test_cutmix_loss_ignores_the_other_region_of_each_target() -> None:
    pred, ta, tb = torch.rand(2, 10, 12), torch.rand(2, 10, 12), torch.rand(2, 10, 12)
    box = box_masks(2, 10, 12)
    base = cutmix_affine_invariant_loss(pred, ta, tb, box)
    noisy_a = torch.where(box, ta, torch.randn_like(ta) * 100)  # T(u_a) outside M is irrelevant
    noisy_b = torch.where(~box, tb, torch.randn_like(tb) * 100)  # T(u_b) inside M is irrelevant
    torch.testing.assert_close(cutmix_affine_invariant_loss(pred, noisy_a, noisy_b, box), base)
    changed = cutmix_affine_invariant_loss(pred, torch.where(box, ta.flip(-1), ta), tb, box)
    assert not torch.isclose(changed, base)


def test_cutmix_regions_are_normalised_separately() -> None:
    # each region of the target is an affine copy of pred with a different scale and shift:
    # a joint normalisation would see an error, separate normalisations see none
    pred = torch.rand(2, 10, 12)
    box = box_masks(2, 10, 12)
    ta, tb = 3 * pred + 1, 0.2 * pred - 4
    assert cutmix_affine_invariant_loss(pred, ta, tb, box).item() == pytest.approx(0.0, abs=1e-5)
    assert affine_invariant_loss(pred, torch.where(box, ta, tb), torch.ones_like(box)).item() > 0.1


def unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def test_feature_alignment_hand_computed_and_margin() -> None:
    frozen = torch.tensor([[unit(0), unit(0), unit(0)]])
    student = torch.tensor([[unit(10), unit(60), unit(90)]], requires_grad=True)  # cos 0.985, 0.5, 0
    loss = feature_alignment_loss(student, frozen, margin=0.85)
    assert loss.item() == pytest.approx(((1 - 0.5) + (1 - 0.0)) / 2, abs=1e-6)
    assert feature_alignment_loss(student, frozen, reduction="all").item() == pytest.approx(1.5 / 3, abs=1e-6)
    assert feature_alignment_loss(student, frozen, margin=1.0).item() == pytest.approx(
        ((1 - math.cos(math.radians(10))) + 0.5 + 1) / 3, abs=1e-6
    )
    loss.backward()
    assert (student.grad[0, 0] == 0).all()  # above the margin: no gradient
    assert (student.grad[0, 1:] != 0).any(dim=-1).all()


def test_feature_alignment_accepts_feature_maps_and_never_updates_the_frozen_side() -> None:
    student = torch.randn(2, 8, 3, 4, requires_grad=True)
    frozen = torch.randn(2, 8, 3, 4, requires_grad=True)
    tokens = feature_alignment_loss(student.flatten(2).transpose(1, 2), frozen.flatten(2).transpose(1, 2))
    torch.testing.assert_close(feature_alignment_loss(student, frozen), tokens)
    tokens.backward()
    assert frozen.grad is None and student.grad is not None


def test_silog_hand_computed() -> None:
    pred, target = torch.tensor([[[1.0, math.e]]]), torch.tensor([[[math.e, math.e]]])
    # e = log t - log p = [1, 0]: mean 0.5, mean of squares 0.5 -> sqrt(0.5 - 0.5 * 0.25)
    loss = silog_loss(pred, target, torch.ones(1, 1, 2, dtype=torch.bool), lambd=0.5)
    assert loss.item() == pytest.approx(math.sqrt(0.375), abs=1e-6)
    assert silog_loss(2 * target, target, torch.ones(1, 1, 2, dtype=torch.bool), lambd=1.0).item() < 1e-2


def test_gradient_matching_hand_computed() -> None:
    pred = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]])
    target, mask = torch.zeros(1, 2, 2), torch.ones(1, 2, 2, dtype=torch.bool)
    # |dx| row 0 = 1, |dy| column 1 = 1 -> 2 / 4 valid pixels; the 1 x 1 coarser scale adds nothing
    assert gradient_matching_loss(pred, target, mask, scales=1).item() == pytest.approx(0.5)
    assert gradient_matching_loss(pred, target, mask, scales=2).item() == pytest.approx(0.5)
    mask[0, 0, 1] = False  # the differing pixel is invalid: no valid pair sees it
    assert gradient_matching_loss(pred, target, mask, scales=1).item() == pytest.approx(0.0)
    assert gradient_matching_loss(pred + 5.0, target, torch.ones_like(mask), scales=3).item() == pytest.approx(0.5)


LOSSES = {
    "affine": lambda p, t, m: affine_invariant_loss(p, t, m),
    "cutmix": lambda p, t, m: cutmix_affine_invariant_loss(p, t, t.flip(0), m, m, m),
    "silog": lambda p, t, m: silog_loss(p, t, m),
    "gradient": lambda p, t, m: gradient_matching_loss(p, t, m),
    "feature": lambda p, t, m: feature_alignment_loss(p, t, margin=-2.0),  # every token above the margin
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_empty_masks_give_a_finite_zero_with_a_gradient_path(name: str) -> None:
    pred = torch.rand(2, 6, 8, requires_grad=True)
    target, mask = torch.rand(2, 6, 8) + 0.1, torch.zeros(2, 6, 8, dtype=torch.bool)
    loss = LOSSES[name](pred, target, mask)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.isfinite(pred.grad).all() and (pred.grad == 0).all()


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_run_in_fp32_under_autocast(name: str) -> None:
    pred = (torch.rand(2, 6, 8) + 0.1).bfloat16().requires_grad_()
    target, mask = torch.rand(2, 6, 8) + 0.1, torch.rand(2, 6, 8) > 0.2
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = LOSSES[name](pred, target.bfloat16(), mask)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(pred.grad.float()).all()


def test_constant_maps_stay_finite() -> None:
    pred = torch.full((1, 4, 4), 3.0, requires_grad=True)
    loss = affine_invariant_loss(pred, torch.full((1, 4, 4), 2.0), torch.ones(1, 4, 4, dtype=torch.bool))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()


def test_cutmix_loss_with_the_augmentation_pairing() -> None:
    """End to end with ``anydepth.augment.cutmix``: a student that reproduces each region's teacher
    disparity up to that region's own scale and shift has zero loss; swapping the pairing does not."""
    from anydepth.augment import CutMixConfig, cutmix

    images, pseudo = torch.rand(4, 3, 24, 32), torch.rand(4, 24, 32)
    valid = torch.rand(4, 24, 32) > 0.1
    mixed = cutmix(images, CutMixConfig(p=1.0), generator=torch.Generator().manual_seed(0))
    target_b = pseudo[mixed.partner]
    student = torch.where(mixed.mask, 2 * pseudo + 1, 0.5 * target_b - 3)
    loss = cutmix_affine_invariant_loss(student, pseudo, target_b, mixed.mask, valid, valid[mixed.partner])
    assert loss.item() == pytest.approx(0.0, abs=1e-5)
    swapped = cutmix_affine_invariant_loss(student, target_b, pseudo, mixed.mask)
    assert swapped.item() > 0.1


def test_trim_leaves_out_each_samples_largest_residuals() -> None:
    """V2's top-10% rule, checked against a per-sample loop: normalise over all valid pixels, drop the largest
    ceil-complement residuals, average the rest."""
    torch.manual_seed(0)
    pred, target = torch.rand(3, 6, 7), torch.rand(3, 6, 7)
    mask = torch.rand(3, 6, 7) > 0.2
    expected = []
    for p, t, m in zip(pred, target, mask):
        residual = (normalize_disparity(p[None], m[None]) - normalize_disparity(t[None], m[None]))[0].abs()[m]
        keep = math.ceil(0.9 * residual.numel())
        expected.append(residual.sort().values[:keep].mean())
    assert torch.allclose(affine_invariant_loss(pred, target, mask, trim=0.1), torch.stack(expected).mean())
    assert affine_invariant_loss(pred, target, mask, trim=0.1) < affine_invariant_loss(pred, target, mask)
    assert torch.equal(affine_invariant_loss(pred, target, mask, trim=0.0), affine_invariant_loss(pred, target, mask))


def test_trim_through_cutmix_and_its_bounds() -> None:
    pred, target = torch.rand(2, 5, 5), torch.rand(2, 5, 5)
    full = torch.ones(2, 5, 5, dtype=torch.bool)
    assert torch.allclose(
        cutmix_affine_invariant_loss(pred, target, target, full, trim=0.1),
        affine_invariant_loss(pred, target, full, trim=0.1),
    )
    with pytest.raises(ValueError, match="trim must be in"):
        affine_invariant_loss(pred, target, full, trim=1.0)


def test_normalized_gradient_matching_is_affine_invariant_and_zero_on_equal_maps() -> None:
    torch.manual_seed(1)
    pred, target, mask = torch.rand(2, 16, 16), torch.rand(2, 16, 16), torch.rand(2, 16, 16) > 0.1
    loss = normalized_gradient_matching_loss(pred, target, mask)
    assert loss > 0
    assert torch.allclose(normalized_gradient_matching_loss(3 * pred + 2, target, mask), loss, atol=1e-5)
    assert normalized_gradient_matching_loss(target, target, mask) == 0
