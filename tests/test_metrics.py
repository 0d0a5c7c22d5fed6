"""anydepth.metrics: least-squares alignment, depth metrics by hand, per-image protocol, accumulation and merging,
disparity ground truth as depth up to scale."""

from __future__ import annotations

import math

import pytest
import torch

from anydepth.metrics import (
    HIGHER_IS_BETTER,
    METRIC_NAMES,
    RelativeDepthMetrics,
    align_scale_shift,
    aligned_depth,
    depth_from_label,
    depth_metrics,
    per_image_depth_metrics,
)


def close(a: torch.Tensor | float, b: float, tol: float = 1e-5) -> bool:
    return abs(float(a) - b) <= tol * max(1.0, abs(b))


def random_depth(*shape: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.5 + 9.0 * torch.rand(*shape, generator=generator)


# ---------------------------------------------------------------- align_scale_shift


def test_align_recovers_scale_and_shift_per_sample() -> None:
    g = random_depth(3, 5, 7)
    scales = torch.tensor([2.0, 0.5, -4.0])
    shifts = torch.tensor([3.0, -1.0, 0.25])
    pred = (g - shifts[:, None, None]) / scales[:, None, None]
    aligned, scale, shift = align_scale_shift(pred, g, torch.ones_like(g, dtype=torch.bool))
    torch.testing.assert_close(scale, scales, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shift, shifts, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(aligned, g, rtol=1e-5, atol=1e-5)
    assert aligned.dtype == torch.float32 and scale.shape == shift.shape == (3,)


def test_align_mask_hides_outliers() -> None:
    g = random_depth(2, 6, 6, seed=1)
    pred = (g - 3.0) / 2.0
    mask = torch.ones_like(g, dtype=torch.bool)
    mask[:, 0, :3] = False
    target = g.clone()
    target[:, 0, 0] = 1e6  # gross outliers...
    target[:, 0, 1] = float("nan")  # ...and non-finite values, all outside the mask
    target[:, 0, 2] = float("inf")
    aligned, scale, shift = align_scale_shift(pred, target, mask)
    torch.testing.assert_close(scale, torch.full((2,), 2.0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shift, torch.full((2,), 3.0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(aligned, g, rtol=1e-5, atol=1e-5)  # also correct at the masked pixels
    # Without the mask the outlier spoils the fit: the mask is what makes it exact.
    _, scale_unmasked, _ = align_scale_shift(pred, torch.where(mask, target, 1e6), None)
    assert not torch.allclose(scale_unmasked, torch.full((2,), 2.0), atol=1e-2)


def test_align_matches_lstsq_reference() -> None:
    generator = torch.Generator().manual_seed(2)
    pred = torch.randn(4, 8, 9, generator=generator, dtype=torch.float64)
    target = 3.0 * pred + 1.0 + 0.3 * torch.randn(4, 8, 9, generator=generator, dtype=torch.float64)
    mask = torch.rand(4, 8, 9, generator=generator) > 0.3
    _, scale, shift = align_scale_shift(pred, target, mask)
    for i in range(4):  # reference only: the implementation itself is batched
        p, g = pred[i][mask[i]], target[i][mask[i]]
        design = torch.stack([p, torch.ones_like(p)], dim=1)
        solution = torch.linalg.lstsq(design, g[:, None]).solution[:, 0]
        assert close(scale[i], float(solution[0]), 1e-9) and close(shift[i], float(solution[1]), 1e-9)


def test_align_degenerate_samples_never_nan() -> None:
    pred = torch.tensor(
        [
            [[1.0, 1.0], [1.0, 1.0]],  # constant prediction
            [[1.0, 2.0], [3.0, 4.0]],  # a single valid pixel
            [[1.0, 2.0], [3.0, 4.0]],  # no valid pixel
            [[0.3, 0.3], [0.3, 0.3]],  # constant, not exactly representable: rounding must not fake a slope
        ]
    )
    target = torch.tensor([[[2.0, 4.0], [6.0, 8.0]]]).expand(4, 2, 2)
    mask = torch.tensor(
        [
            [[True, True], [True, True]],
            [[False, True], [False, False]],
            [[False, False], [False, False]],
            [[True, True], [True, True]],
        ]
    )
    aligned, scale, shift = align_scale_shift(pred, target, mask)
    assert torch.isfinite(aligned).all() and torch.isfinite(scale).all() and torch.isfinite(shift).all()
    torch.testing.assert_close(scale, torch.zeros(4))
    torch.testing.assert_close(shift, torch.tensor([5.0, 4.0, 0.0, 5.0]))  # mean valid target; 0 with none


def test_align_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        align_scale_shift(torch.zeros(2, 3, 3), torch.zeros(2, 3, 4), None)
    with pytest.raises(ValueError):
        align_scale_shift(torch.zeros(3, 3), torch.zeros(3, 3), None)  # unbatched
    with pytest.raises(ValueError):
        align_scale_shift(torch.zeros(2, 3, 3), torch.zeros(2, 3, 3), torch.ones(2, 9, dtype=torch.bool))


# ---------------------------------------------------------------- depth metrics by hand


def test_every_metric_by_hand() -> None:
    p = [1.8, 2.0, 3.0, 6.0]
    g = [1.0, 2.0, 4.0, 5.0]  # ratios max(p/g, g/p): 1.8, 1, 4/3, 1.2
    pred = torch.tensor(p).reshape(1, 2, 2)
    gt = torch.tensor(g).reshape(1, 2, 2)
    e = [math.log(a) - math.log(b) for a, b in zip(p, g)]
    expected = {
        "abs_rel": (0.8 / 1 + 0 / 2 + 1 / 4 + 1 / 5) / 4,
        "sq_rel": (0.64 / 1 + 0 / 2 + 1 / 4 + 1 / 5) / 4,
        "rmse": math.sqrt((0.64 + 0 + 1 + 1) / 4),
        "rmse_log": math.sqrt(sum(x * x for x in e) / 4),
        "log10": sum(abs(math.log10(a) - math.log10(b)) for a, b in zip(p, g)) / 4,
        "silog": 100 * math.sqrt(sum(x * x for x in e) / 4 - (sum(e) / 4) ** 2),
        "d1": 2 / 4,  # 1 and 1.2 < 1.25
        "d2": 3 / 4,  # + 4/3 < 1.5625
        "d3": 4 / 4,  # + 1.8 < 1.953125
    }
    assert expected["abs_rel"] == pytest.approx(0.3125)
    result = depth_metrics(pred, gt, torch.ones(1, 2, 2, dtype=torch.bool))
    assert set(result) == set(METRIC_NAMES)
    for name, value in expected.items():
        assert close(result[name], value), (name, float(result[name]), value)
    per_image = per_image_depth_metrics(pred, gt, None)
    assert per_image["valid_images"].tolist() == [True]
    for name, value in expected.items():
        assert per_image[name].shape == (1,) and close(per_image[name][0], value), name


def test_perfect_prediction() -> None:
    gt = random_depth(2, 4, 5, seed=3)
    result = depth_metrics(gt.clone(), gt, torch.ones_like(gt, dtype=torch.bool))
    for name in ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog"):
        assert close(result[name], 0.0, 1e-4), name
    for name in ("d1", "d2", "d3"):
        assert float(result[name]) == 1.0
    # silog ignores a global scale: 2 * gt has zero scale-invariant error but a large abs_rel.
    scaled = depth_metrics(2 * gt, gt, None)
    assert close(scaled["silog"], 0.0, 1e-3) and close(scaled["abs_rel"], 1.0)


def test_per_image_mean_differs_from_pixel_pooling() -> None:
    pred = torch.tensor([[[2.0, 9.0], [9.0, 9.0]], [[1.0, 1.0], [1.0, 9.0]]])
    gt = torch.ones(2, 2, 2)
    mask = torch.tensor([[[True, False], [False, False]], [[True, True], [True, False]]])
    # image 0: 1 valid pixel, abs_rel 1; image 1: 3 valid pixels, abs_rel 0
    per_image_mean = (1.0 + 0.0) / 2
    pooled = (1.0 + 0 + 0 + 0) / 4
    result = depth_metrics(pred, gt, mask)
    assert close(result["abs_rel"], per_image_mean) and not close(result["abs_rel"], pooled)
    assert close(result["d1"], (0.0 + 1.0) / 2)  # pooled would be 3/4


def test_images_without_valid_pixels_are_excluded() -> None:
    gt = random_depth(3, 4, 4, seed=4)
    pred = gt * 1.1
    mask = torch.ones_like(gt, dtype=torch.bool)
    mask[1] = False
    per_image = per_image_depth_metrics(pred, gt, mask)
    assert per_image["valid_images"].tolist() == [True, False, True]
    for name in METRIC_NAMES:
        assert float(per_image[name][1]) == 0.0 and torch.isfinite(per_image[name]).all()
    both = depth_metrics(pred, gt, mask)
    alone = depth_metrics(pred[[0, 2]], gt[[0, 2]], mask[[0, 2]])
    for name in METRIC_NAMES:
        assert close(both[name], float(alone[name])), name
    # All invalid: per-image values stay finite; the batch mean of an empty set is NaN by design.
    none_valid = per_image_depth_metrics(pred, gt, torch.zeros_like(mask))
    assert not none_valid["valid_images"].any()
    assert all(torch.isfinite(none_valid[name]).all() for name in METRIC_NAMES)
    assert all(torch.isnan(v) for v in depth_metrics(pred, gt, torch.zeros_like(mask)).values())


def test_depth_range_removes_exactly_the_right_pixels() -> None:
    nan = float("nan")
    gt = torch.tensor([[[0.0005, 0.001, 0.002, 5.0], [10.0, 20.0, nan, float("inf")]]])
    pred = torch.tensor([[[7.0, 7.0, 0.002, 6.0], [7.0, 7.0, 7.0, 7.0]]])
    # kept: gt 0.002 (abs_rel 0) and gt 5 (abs_rel 0.2); dropped: <= min_depth, >= max_depth, non-finite
    result = depth_metrics(pred, gt, None, min_depth=1e-3, max_depth=10.0)
    assert close(result["abs_rel"], (0.0 + 0.2) / 2) and close(result["d1"], (1 + 1) / 2)
    # the user mask composes with the range
    mask = torch.ones_like(gt, dtype=torch.bool)
    mask[0, 0, 2] = False
    assert close(depth_metrics(pred, gt, mask, max_depth=10.0)["abs_rel"], 0.2)
    # without max_depth, gt 10 and 20 count (abs_rel 0.3 and 0.65); inf and NaN still do not
    no_max = depth_metrics(pred, gt, None, min_depth=1e-3)
    assert close(no_max["abs_rel"], (0 + 0.2 + 0.3 + 0.65) / 4)


def test_prediction_is_clamped_to_depth_range() -> None:
    gt = torch.tensor([[[5.0, 2.0]]])
    pred = torch.tensor([[[100.0, -3.0]]])  # clamped to 10 and 0.5
    result = depth_metrics(pred, gt, None, min_depth=0.5, max_depth=10.0)
    assert close(result["abs_rel"], (5 / 5 + 1.5 / 2) / 2)
    assert close(result["rmse"], math.sqrt((25 + 2.25) / 2))


def test_half_precision_inputs_are_computed_in_fp32() -> None:
    gt = random_depth(2, 4, 4, seed=5)
    result = depth_metrics(gt.half(), gt.half(), None)
    assert result["abs_rel"].dtype == torch.float32 and close(result["d1"], 1.0)


# ---------------------------------------------------------------- aligned_depth and RelativeDepthMetrics


def test_disparity_alignment_of_affine_prediction_is_perfect() -> None:
    gt = random_depth(3, 6, 6, seed=6)
    mask = torch.rand(3, 6, 6, generator=torch.Generator().manual_seed(7)) > 0.2
    scales = torch.tensor([0.5, 3.0, 20.0])[:, None, None]
    shifts = torch.tensor([0.1, -0.2, 5.0])[:, None, None]
    pred = (1.0 / gt - shifts) / scales  # exact affine function of the true disparity
    pred = torch.where(mask, pred, -50.0)  # garbage outside the mask must not matter
    metric = RelativeDepthMetrics(align="disparity")
    metric.update(pred, gt, mask)
    result = metric.compute()
    assert close(result["abs_rel"], 0.0, 1e-4) and float(result["d1"]) == 1.0
    assert close(result["rmse"], 0.0, 1e-3)


def test_depth_alignment_and_no_alignment() -> None:
    gt = random_depth(2, 5, 5, seed=8)
    mask = torch.ones_like(gt, dtype=torch.bool)
    depth_metric = RelativeDepthMetrics(align="depth")
    depth_metric.update((gt - 3.0) / 2.0, gt, mask)
    assert close(depth_metric.compute()["abs_rel"], 0.0, 1e-4)
    none_metric = RelativeDepthMetrics(align="none", max_depth=8.0)
    none_metric.update(gt * 1.2, gt, mask)
    expected = depth_metrics(gt * 1.2, gt, mask, max_depth=8.0)
    for name in METRIC_NAMES:
        assert close(none_metric.compute()[name], float(expected[name])), name


def test_aligned_disparity_is_floored_before_inversion() -> None:
    gt = torch.tensor([[[1.0, 2.0, 4.0, 5.0]]])
    mask = torch.tensor([[[True, True, True, False]]])
    pred = torch.tensor([[[1.0, 0.5, 0.25, -10.0]]])  # aligned disparity of the masked pixel is negative
    depth = aligned_depth(pred, gt, mask, align="disparity", max_depth=8.0)
    torch.testing.assert_close(depth[0, 0, :3], gt[0, 0, :3])
    assert float(depth[0, 0, 3]) == pytest.approx(8.0)  # clamped at 1 / max_depth, then inverted
    unbounded = aligned_depth(pred, gt, mask, align="disparity", min_disparity=1e-4)
    assert torch.isfinite(unbounded).all() and float(unbounded[0, 0, 3]) == pytest.approx(1e4)


def test_merge_and_ddp_sum_equal_single_pass() -> None:
    gt = random_depth(6, 8, 8, seed=9)
    generator = torch.Generator().manual_seed(10)
    pred = 1.0 / gt + 0.05 * torch.randn(6, 8, 8, generator=generator)
    mask = torch.rand(6, 8, 8, generator=generator) > 0.3
    mask[4] = False  # an image without valid pixels on one "rank"
    full = RelativeDepthMetrics(max_depth=9.0)
    full.update(pred, gt, mask)
    m1, m2, m3 = (RelativeDepthMetrics(max_depth=9.0) for _ in range(3))
    m1.update(pred[:2], gt[:2], mask[:2])
    m1.update(pred[2:3], gt[2:3], mask[2:3])
    m2.update(pred[3:], gt[3:], mask[3:])
    m1.merge_state(m2)
    expected = full.compute()
    assert int(full.count) == 5 and int(m1.count) == 5
    for name in METRIC_NAMES:
        assert close(m1.compute()[name], float(expected[name])), name
    # DDP reduction is a plain sum of every state (dist_reduce_fx="sum").
    m2.reset()
    m2.update(pred[3:], gt[3:], mask[3:])
    m3.update(pred[:3], gt[:3], mask[:3])
    states2, states3 = m2.metric_state, m3.metric_state
    assert set(states2) == {f"sum_{name}" for name in METRIC_NAMES} | {"count"}
    summed = {key: states2[key] + states3[key] for key in states2}
    m3.merge_state(states2)  # what the all-reduce does: add the other rank's state dict
    for key, value in m3.metric_state.items():
        torch.testing.assert_close(value, summed[key])
    for name in METRIC_NAMES:
        assert close(m3.compute()[name], float(expected[name])), name
    # and the accumulated mean is the per-image mean of the aligned batch
    direct = depth_metrics(aligned_depth(pred, gt, mask, max_depth=9.0), gt, mask, max_depth=9.0)
    for name in METRIC_NAMES:
        assert close(expected[name], float(direct[name])), name


def test_all_invalid_batch_leaves_finite_state() -> None:
    gt = random_depth(2, 4, 4, seed=11)
    metric = RelativeDepthMetrics()
    metric.update(gt, gt, torch.zeros_like(gt, dtype=torch.bool))
    for key, value in metric.metric_state.items():
        assert torch.isfinite(value.float()).all(), key
    assert int(metric.count) == 0
    metric.update(1.0 / gt, gt, torch.ones_like(gt, dtype=torch.bool))
    result = metric.compute()
    assert int(metric.count) == 2 and close(result["abs_rel"], 0.0, 1e-4)


def test_metric_interface() -> None:
    metric = RelativeDepthMetrics()
    assert metric.full_state_update is False and metric.is_differentiable is False
    assert HIGHER_IS_BETTER["d1"] and not HIGHER_IS_BETTER["abs_rel"]
    gt = random_depth(2, 4, 4, seed=12)
    batch_value = metric(2.0 / gt + 1.0, gt, None)  # forward: this batch's value, and accumulates
    assert close(batch_value["abs_rel"], 0.0, 1e-4) and int(metric.count) == 2
    with pytest.raises(ValueError):
        RelativeDepthMetrics(align="log")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RelativeDepthMetrics(min_depth=1.0, max_depth=0.5)


# ---------------------------------------------------------------- depth_from_label


def test_depth_from_label_per_kind() -> None:
    nan, inf = float("nan"), float("inf")
    label = torch.tensor(
        [
            [[2.0, 4.0, 8.0, 16.0, 3.0]],  # depth: unchanged, mask or not
            [[2.0, 4.0, 8.0, 0.0, 5.0]],  # disparity (pixels): median 4 over the masked positive pixels
            [[0.5, 0.25, nan, inf, -1.0]],  # relative disparity: median 0.25 over 0.5, 0.25
            [[0.0, 0.0, 0.0, 0.0, 0.0]],  # disparity without any valid pixel
        ]
    )
    mask = torch.tensor([[[True, True, True, True, False]]] * 4)
    depth = depth_from_label(label, mask, ["depth", "disparity", "relative_disparity", "disparity"])
    expected = torch.tensor(
        [
            [[2.0, 4.0, 8.0, 16.0, 3.0]],
            [[2.0, 1.0, 0.5, 0.0, 0.0]],  # zero disparity (infinitely far) and masked pixels -> 0 (invalid)
            [[0.5, 1.0, 0.0, 0.0, 0.0]],
            [[0.0, 0.0, 0.0, 0.0, 0.0]],
        ]
    )
    torch.testing.assert_close(depth, expected)
    only_depth = label[:1]
    assert depth_from_label(only_depth, mask[:1], ["depth"]) is only_depth


def test_disparity_ground_truth_scores_like_the_equivalent_depth() -> None:
    """Any positive scale of a disparity ground truth (here pixels, per image) gives the depth ground truth's
    scale-free metrics: the alignment fits scale and shift in disparity space."""
    gt = random_depth(3, 12, 16, seed=13)
    generator = torch.Generator().manual_seed(14)
    mask = torch.rand(3, 12, 16, generator=generator) > 0.2
    pred = (1.0 / gt) * (1.0 + 0.1 * torch.randn(3, 12, 16, generator=generator)) * 7.0 + 0.3  # noisy, affine
    disparity = torch.where(mask, torch.tensor([400.0, 35.0, 0.8])[:, None, None] / gt, 0.0)
    from_depth, from_disparity = RelativeDepthMetrics(), RelativeDepthMetrics()
    from_depth.update(pred, gt, mask)
    from_disparity.update(pred, depth_from_label(disparity, mask, ["disparity"] * 3), mask)
    expected, got = from_depth.compute(), from_disparity.compute()
    assert float(expected["abs_rel"]) > 0.01  # a non-trivial error to compare
    for name in ("abs_rel", "rmse_log", "log10", "silog", "d1", "d2", "d3"):  # the scale-free metrics
        assert close(got[name], float(expected[name]), 1e-4), name
    assert int(from_disparity.count) == 3


def test_depth_from_label_rejects_unknown_kinds() -> None:
    label, mask = torch.ones(2, 3, 3), torch.ones(2, 3, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="unknown label kind 'inverse_depth'"):
        depth_from_label(label, mask, ["depth", "inverse_depth"])
    with pytest.raises(ValueError, match="unknown label kind None"):
        depth_from_label(label, mask, [None, None])
    with pytest.raises(ValueError, match="one label kind per sample"):
        depth_from_label(label, mask, ["depth"])
