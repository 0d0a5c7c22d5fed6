"""``anydepth.augment``: strong colour perturbation, CutMix (eq. 5) and the joint flip of labeled samples."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from anydepth.augment import (
    ColorPerturbationConfig,
    CutMixConfig,
    FlipConfig,
    StrongColorPerturbation,
    cutmix,
    joint_hflip,
    mix_targets,
)

B, H, W = 4, 32, 48

ALWAYS = ColorPerturbationConfig(jitter_p=1.0, grayscale_p=1.0, blur_p=1.0)
NEVER = ColorPerturbationConfig(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0)


def images(batch: int = B, height: int = H, width: int = W, seed: int = 123) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def per_sample_max_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().flatten(1).amax(1)


# ---------------------------------------------------------------------------------------------------- colour


def test_color_defaults_are_unimatch_recipe() -> None:
    cfg = ColorPerturbationConfig()
    assert (cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue) == (0.5, 0.5, 0.5, 0.25)
    assert (cfg.jitter_p, cfg.grayscale_p, cfg.blur_p) == (0.8, 0.2, 0.5)
    assert cfg.blur_sigma == (0.1, 2.0) and cfg.blur_kernel_size == 13


@pytest.mark.parametrize("config", [ColorPerturbationConfig(), ALWAYS], ids=["default", "always"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_color_keeps_shape_dtype_device_and_range(config: ColorPerturbationConfig, dtype: torch.dtype) -> None:
    x = images().to(dtype)
    out = StrongColorPerturbation(config)(x)
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert out.min() >= 0 and out.max() <= 1


def test_color_p0_is_identity() -> None:
    x = images()
    out = StrongColorPerturbation(NEVER)(x)
    assert torch.equal(out, x)
    assert out.data_ptr() != x.data_ptr()  # a new tensor: writing into it leaves the input alone


@pytest.mark.parametrize(
    "config",
    [
        ALWAYS,
        dataclasses.replace(NEVER, jitter_p=1.0),
        dataclasses.replace(NEVER, grayscale_p=1.0),
        dataclasses.replace(NEVER, blur_p=1.0),
    ],
    ids=["all", "jitter", "grayscale", "blur"],
)
def test_color_p1_changes_every_sample(config: ColorPerturbationConfig) -> None:
    x = images(batch=8)
    out = StrongColorPerturbation(config)(x)
    assert (per_sample_max_diff(out, x) > 1e-3).all()


def test_color_grayscale_p1_equalises_channels() -> None:
    out = StrongColorPerturbation(dataclasses.replace(NEVER, grayscale_p=1.0))(images())
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])


def test_color_gates_are_per_sample() -> None:
    # With p = 0.5 on a batch of 64 both outcomes occur (probability of failure ~ 2^-63).
    x = images(batch=64)
    out = StrongColorPerturbation(dataclasses.replace(NEVER, grayscale_p=0.5))(x)
    changed = per_sample_max_diff(out, x) > 0
    assert changed.any() and not changed.all()
    assert torch.equal(out[~changed], x[~changed])


def test_color_same_global_seed_same_output_different_seed_different() -> None:
    x = images()
    aug = StrongColorPerturbation()
    torch.manual_seed(7)
    a = aug(x)
    torch.manual_seed(7)
    b = aug(x)
    torch.manual_seed(8)
    c = aug(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_color_generator_is_reproducible_and_leaves_global_rng_alone() -> None:
    x = images()
    aug = StrongColorPerturbation(ALWAYS)
    state = torch.get_rng_state()
    a = aug(x, generator=torch.Generator().manual_seed(3))
    b = aug(x, generator=torch.Generator().manual_seed(3))
    c = aug(x, generator=torch.Generator().manual_seed(4))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # Two calls on one generator differ (the generator advances).
    g = torch.Generator().manual_seed(3)
    assert not torch.equal(aug(x, generator=g), aug(x, generator=g))


def test_color_kornia_rng_is_pinned_through_module_casts() -> None:
    # Kornia would move its parameter RNG with the module (device moves are checked in the CUDA test).
    aug = StrongColorPerturbation(ALWAYS)
    torch.manual_seed(0)
    reference = aug(images())
    aug = aug.to(torch.float64)
    for step in (aug.jitter, aug.grayscale, aug.blur):
        assert step.device == torch.device("cpu") and step.dtype == torch.float32
    torch.manual_seed(0)
    assert torch.equal(aug(images()), reference)  # the same draws as before the cast


def test_color_rejects_bad_input_and_config() -> None:
    aug = StrongColorPerturbation()
    with pytest.raises(ValueError):
        aug(torch.rand(B, 1, H, W))
    with pytest.raises(TypeError):
        aug(torch.randint(0, 255, (B, 3, H, W), dtype=torch.uint8))
    with pytest.raises(ValueError):
        ColorPerturbationConfig(blur_kernel_size=12)
    with pytest.raises(ValueError):
        ColorPerturbationConfig(jitter_p=1.5)
    with pytest.raises(ValueError):
        ColorPerturbationConfig(blur_sigma=(2.0, 0.1))


# ---------------------------------------------------------------------------------------------------- CutMix


def box_mask(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Reference mask by slicing, one sample at a time (the loop is fine in a test)."""
    mask = torch.zeros(boxes.shape[0], height, width, dtype=torch.bool)
    for i, (y0, x0, y1, x1) in enumerate(boxes.tolist()):
        mask[i, y0:y1, x0:x1] = True
    return mask


def test_cutmix_defaults() -> None:
    cfg = CutMixConfig()
    assert cfg.p == 0.5 and cfg.area_ratio == (0.02, 0.4) and cfg.aspect_ratio == pytest.approx((0.3, 1 / 0.3))
    assert cfg.aspect_sampling == "uniform"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cutmix_shapes_dtypes_device(dtype: torch.dtype) -> None:
    x = images().to(dtype)
    res = cutmix(x, CutMixConfig(p=0.5))
    assert res.images.shape == x.shape and res.images.dtype == dtype and res.images.device == x.device
    assert res.mask.shape == (B, H, W) and res.mask.dtype == torch.bool
    assert res.partner.shape == (B,) and res.partner.dtype == torch.int64
    assert res.applied.shape == (B,) and res.applied.dtype == torch.bool
    assert res.boxes.shape == (B, 4) and res.boxes.dtype == torch.int64
    assert res.images.min() >= 0 and res.images.max() <= 1
    assert all(t.device == x.device for t in res)


def test_cutmix_p0_is_identity() -> None:
    x = images()
    res = cutmix(x, CutMixConfig(p=0.0))
    assert torch.equal(res.images, x)
    assert res.mask.all() and not res.applied.any()
    assert torch.equal(res.partner, torch.arange(B))
    assert torch.equal(res.boxes, torch.tensor([[0, 0, H, W]] * B))


def test_cutmix_p1_mixes_every_sample_with_another() -> None:
    x = images(batch=16)
    res = cutmix(x, CutMixConfig(p=1.0))
    assert res.applied.all()
    assert (res.partner != torch.arange(16)).all()  # a derangement: nobody is its own partner
    assert torch.equal(res.partner.sort().values, torch.arange(16))  # ... and a permutation
    inside = res.mask.flatten(1).sum(1)
    assert (inside > 0).all() and (inside < H * W).all()
    assert (per_sample_max_diff(res.images, x) > 0).all()


def test_cutmix_eq5_inside_is_self_outside_is_partner() -> None:
    x = images(batch=8)
    res = cutmix(x, CutMixConfig(p=0.5), generator=torch.Generator().manual_seed(0))
    m = res.mask[:, None].expand_as(x)
    partner_images = x[res.partner]
    assert torch.equal(res.images[m], x[m])
    assert torch.equal(res.images[~m], partner_images[~m])
    # eq. 5 literally, with a float M
    mf = res.mask[:, None].float()
    assert torch.equal(res.images, x * mf + partner_images * (1 - mf))
    # the mask is exactly the box, the whole image where not applied
    assert torch.equal(res.mask, box_mask(res.boxes, H, W))
    assert res.mask[~res.applied].all()
    assert torch.equal(res.partner[~res.applied], torch.arange(8)[~res.applied])


def test_cutmix_batch_of_one_is_unchanged() -> None:
    x = images(batch=1)
    res = cutmix(x, CutMixConfig(p=1.0))
    assert torch.equal(res.images, x)
    assert res.mask.all() and not res.applied.any() and res.partner.tolist() == [0]


@pytest.mark.parametrize("sampling", ["uniform", "log_uniform"])
@pytest.mark.parametrize("size", [(128, 128), (64, 96), (96, 64)])
def test_cutmix_box_area_and_aspect_in_range(sampling: str, size: tuple[int, int]) -> None:
    height, width = size
    cfg = CutMixConfig(p=1.0, aspect_sampling=sampling)  # type: ignore[arg-type]
    res = cutmix(torch.rand(256, 1, height, width), cfg, generator=torch.Generator().manual_seed(1))
    y0, x0, y1, x1 = res.boxes.unbind(1)
    assert (y0 >= 0).all() and (x0 >= 0).all() and (y1 <= height).all() and (x1 <= width).all()
    h, w = (y1 - y0).double(), (x1 - x0).double()
    assert (h >= 1).all() and (w >= 1).all()
    area = h * w
    assert torch.equal(res.mask.flatten(1).sum(1).double(), area)
    # The unrounded sides h*, w* satisfy |h - h*| <= 0.5 and |w - w*| <= 0.5, with h* w* in the area range
    # and h* / w* in the aspect range: bound the rounded values accordingly.
    lo, hi = (r * height * width for r in cfg.area_ratio)
    slack = 0.5 * (h + w + 1) + 0.25
    assert (area >= lo - slack).all() and (area <= hi + slack).all()
    r_lo, r_hi = cfg.aspect_ratio
    assert (h >= r_lo * (w - 0.5) - 0.5).all() and (h <= r_hi * (w + 0.5) + 0.5).all()
    # ... and without rounding slack the bulk of the boxes are strictly inside (the checks are not vacuous)
    ratio = area / (height * width)
    assert ratio.min() < 0.05 and ratio.max() > 0.35
    assert (h / w).min() < 0.5 and (h / w).max() > 2.0


def test_cutmix_same_seed_same_result_different_seed_different() -> None:
    x = images(batch=8)
    cfg = CutMixConfig(p=0.5)
    a = cutmix(x, cfg, generator=torch.Generator().manual_seed(5))
    b = cutmix(x, cfg, generator=torch.Generator().manual_seed(5))
    c = cutmix(x, cfg, generator=torch.Generator().manual_seed(6))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a.images, c.images)
    torch.manual_seed(11)
    d = cutmix(x, cfg)
    torch.manual_seed(11)
    e = cutmix(x, cfg)
    assert all(torch.equal(u, v) for u, v in zip(d, e))


def test_cutmix_applies_with_probability_p() -> None:
    res = cutmix(torch.rand(512, 1, 8, 8), CutMixConfig(p=0.5), generator=torch.Generator().manual_seed(2))
    assert 0.4 < res.applied.float().mean() < 0.6


def test_mix_targets_follows_the_images() -> None:
    x = images(batch=8)
    res = cutmix(x, CutMixConfig(p=1.0))
    assert torch.equal(mix_targets(x, res), res.images)
    depth = x[:, 0] * 10
    mixed = mix_targets(depth, res)
    assert mixed.shape == depth.shape
    assert torch.equal(mixed[res.mask], depth[res.mask])
    assert torch.equal(mixed[~res.mask], depth[res.partner][~res.mask])
    valid = depth > 3
    assert torch.equal(mix_targets(valid, res), torch.where(res.mask, valid, valid[res.partner]))
    with pytest.raises(ValueError):
        mix_targets(depth[:, :-1], res)


def test_cutmix_rejects_bad_config() -> None:
    with pytest.raises(ValueError):
        CutMixConfig(p=-0.1)
    with pytest.raises(ValueError):
        CutMixConfig(area_ratio=(0.4, 0.02))
    with pytest.raises(ValueError):
        CutMixConfig(area_ratio=(0.5, 1.5))
    with pytest.raises(ValueError):
        CutMixConfig(aspect_sampling="gaussian")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- flip


@pytest.mark.parametrize("mask_dtype", [torch.bool, torch.float32])
def test_joint_hflip_is_consistent(mask_dtype: torch.dtype) -> None:
    x = images(batch=16)
    label = x[:, 0].clone()
    mask = (label > 0.5).to(mask_dtype)
    out = joint_hflip(x, label, mask, p=0.5, generator=torch.Generator().manual_seed(0))
    assert out.flipped.dtype == torch.bool and out.flipped.any() and not out.flipped.all()
    assert out.image.dtype == x.dtype and out.label.dtype == label.dtype and out.mask.dtype == mask_dtype
    assert torch.equal(out.label, out.image[:, 0])  # label still equals image channel 0
    assert torch.equal(out.mask, (out.label > 0.5).to(mask_dtype))
    f = out.flipped
    assert torch.equal(out.image[f], x[f].flip(-1)) and torch.equal(out.image[~f], x[~f])


def test_joint_hflip_p0_p1_and_determinism() -> None:
    x = images()
    label, mask = x[:, 0], x[:, 0] > 0.5
    none = joint_hflip(x, label, mask, p=0.0)
    assert not none.flipped.any() and torch.equal(none.image, x) and torch.equal(none.mask, mask)
    every = joint_hflip(x, label, mask, p=1.0)
    assert every.flipped.all() and torch.equal(every.image, x.flip(-1)) and torch.equal(every.label, label.flip(-1))
    a = joint_hflip(x, label, mask, p=FlipConfig().p, generator=torch.Generator().manual_seed(9))
    b = joint_hflip(x, label, mask, p=FlipConfig().p, generator=torch.Generator().manual_seed(9))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    with pytest.raises(ValueError):
        joint_hflip(x, label[:, :, :-1], mask)
    with pytest.raises(ValueError):
        FlipConfig(p=2.0)


# ---------------------------------------------------------------------------------------------------- config


def test_configs_build_from_yaml_with_jsonargparse() -> None:
    jsonargparse = pytest.importorskip("jsonargparse")
    parser = jsonargparse.ArgumentParser()
    parser.add_argument("--color", type=ColorPerturbationConfig, default=ColorPerturbationConfig())
    parser.add_argument("--cutmix", type=CutMixConfig, default=CutMixConfig())
    parser.add_argument("--flip", type=FlipConfig, default=FlipConfig())
    cfg = parser.parse_string(
        "color: {blur_sigma: [0.2, 1.5], jitter_p: 0.5}\n"
        "cutmix: {area_ratio: [0.1, 0.3], aspect_sampling: log_uniform}\n"
        "flip: {p: 0.25}\n"
    )
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    init = instantiate(cfg)
    assert init.color == ColorPerturbationConfig(blur_sigma=(0.2, 1.5), jitter_p=0.5)
    assert init.cutmix == CutMixConfig(area_ratio=(0.1, 0.3), aspect_sampling="log_uniform")
    assert init.flip == FlipConfig(p=0.25)


# ---------------------------------------------------------------------------------------------------- CUDA


@pytest.mark.gpu
def test_cuda_device_preserved_deterministic_and_sync_free() -> None:
    device = torch.device("cuda")
    x = images().to(device)
    aug = StrongColorPerturbation(ALWAYS).to(device)
    label, mask = x[:, 0], x[:, 0] > 0.5
    cfg = CutMixConfig(p=0.5)

    def run(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        g = torch.Generator(device=device).manual_seed(seed)
        return [aug(x), *cutmix(x, cfg, generator=g), *joint_hflip(x, label, mask, generator=g)]

    for step in (aug.jitter, aug.grayscale, aug.blur):
        assert step.device == torch.device("cpu")  # Kornia's parameter RNG stays on the host
    warm = run(0)  # kernels, cuDNN and allocator warmed up outside the sync check
    assert all(t.device.type == "cuda" for t in warm)
    torch.cuda.set_sync_debug_mode("error")  # any host synchronisation raises
    try:
        again = run(0)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(torch.equal(u, v) for u, v in zip(warm, again))
    with pytest.raises(ValueError):
        cutmix(x, cfg, generator=torch.Generator().manual_seed(0))  # CPU generator, CUDA batch
