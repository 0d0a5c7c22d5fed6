"""Batch-side perturbations of Depth Anything's semi-supervised stage (paper Sec. 3.2, Sec. 4.1).

Everything here runs on a whole batch where it lives (GPU or CPU) with no Python loop over samples and no
device-to-host read:

* :class:`StrongColorPerturbation` -- the "strong color distortions" of Sec. 3.2 (colour jitter, grayscale,
  Gaussian blur), with the recipe of UniMatch (Yang et al., CVPR 2023), the authors' semi-supervised
  segmentation work that Depth Anything's student training follows.
* :func:`cutmix` -- the "strong spatial distortion" of Sec. 3.2, eq. 5, applied to the colour-distorted
  student batch; :func:`mix_targets` mixes per-pixel targets the same way.
* :func:`joint_hflip` -- horizontal flipping, "the only data augmentation for labeled images" (Sec. 4.1).

Image contract: ``B x 3 x H x W`` floating-point RGB in ``[0, 1]``, **not** ImageNet-normalised;
normalise after these perturbations. The teacher's pseudo labels are computed on the clean images (Sec. 3.2).

Randomness: :func:`cutmix` and :func:`joint_hflip` draw every random number with torch ops on the batch's device,
from ``generator`` when one is given (it must live on that device) and from torch's global RNG otherwise.
:class:`StrongColorPerturbation` uses Kornia, which samples from torch's global CPU RNG (see the class); it takes
an optional CPU ``generator`` instead. Either way, the same seed gives the same output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import kornia.augmentation as K
import torch
from torch import Tensor, nn

__all__ = [
    "ColorPerturbationConfig",
    "CutMixConfig",
    "CutMixResult",
    "FlipConfig",
    "FlipResult",
    "StrongColorPerturbation",
    "cutmix",
    "joint_hflip",
    "mix_targets",
]


def _check_probability(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {p}")


def _check_range(name: str, bounds: tuple[float, float], low: float = 0.0) -> None:
    if len(bounds) != 2 or not low < bounds[0] <= bounds[1]:
        raise ValueError(f"{name} must be (min, max) with {low} < min <= max, got {tuple(bounds)}")


def _check_images(images: Tensor, channels: int | None = None) -> None:
    if images.ndim != 4 or (channels is not None and images.shape[1] != channels):
        want = f"B x {channels} x H x W" if channels is not None else "B x C x H x W"
        raise ValueError(f"expected {want} images, got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"expected floating-point images in [0, 1], got {images.dtype}")


def _check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    if generator is not None and generator.device.type != device.type:
        raise ValueError(f"generator is on {generator.device}, the batch on {device}: they must match")


def _batch_view(flags: Tensor, ndim: int) -> Tensor:
    """``(B,)`` -> ``(B, 1, ..., 1)`` with ``ndim`` dimensions, for broadcasting against a batch."""
    return flags.view(-1, *([1] * (ndim - 1)))


# --------------------------------------------------------------------------------------------------------------
# Strong colour perturbation
# --------------------------------------------------------------------------------------------------------------


@dataclass
class ColorPerturbationConfig:
    """Strong colour distortions of Sec. 3.2; defaults are UniMatch's strong augmentation.

    UniMatch (``dataset/semi.py``) applies, in this order, torchvision ``ColorJitter(0.5, 0.5, 0.5, 0.25)`` with
    probability 0.8, ``RandomGrayscale(p=0.2)`` and, with probability 0.5, PIL ``GaussianBlur(radius=sigma)`` with
    ``sigma ~ U(0.1, 2.0)``. PIL's radius is the Gaussian's standard deviation, so ``blur_sigma`` is that range.
    Kornia needs an odd, fixed kernel: ``2 * ceil(3 * sigma_max) + 1 = 13`` spans +-3 sigma at the largest sigma
    (99.7% of the mass; the kernel is renormalised, and smaller sigmas are simply narrower inside it). Images
    must be larger than ``blur_kernel_size // 2`` on each side (reflect padding).
    """

    brightness: float = 0.5  # UniMatch ColorJitter(0.5, 0.5, 0.5, 0.25): factor ~ U(0.5, 1.5)
    contrast: float = 0.5  # UniMatch ColorJitter: factor ~ U(0.5, 1.5)
    saturation: float = 0.5  # UniMatch ColorJitter: factor ~ U(0.5, 1.5)
    hue: float = 0.25  # UniMatch ColorJitter: hue shift ~ U(-0.25, 0.25) of a turn
    jitter_p: float = 0.8  # UniMatch: if random.random() < 0.8: ColorJitter(...)
    grayscale_p: float = 0.2  # UniMatch RandomGrayscale(p=0.2)
    blur_p: float = 0.5  # UniMatch blur(img, p=0.5)
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # UniMatch blur: sigma ~ U(0.1, 2.0) (PIL radius = sigma)
    blur_kernel_size: int = 13  # 2 * ceil(3 * max(blur_sigma)) + 1: +-3 sigma at the largest sigma

    def __post_init__(self) -> None:
        self.blur_sigma = tuple(self.blur_sigma)  # type: ignore[assignment]  # YAML gives a list
        for name in ("jitter_p", "grayscale_p", "blur_p"):
            _check_probability(name, getattr(self, name))
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")
        _check_range("blur_sigma", self.blur_sigma)
        if self.blur_kernel_size < 3 or self.blur_kernel_size % 2 == 0:
            raise ValueError(f"blur_kernel_size must be odd and >= 3, got {self.blur_kernel_size}")


class StrongColorPerturbation(nn.Module):
    """Colour jitter -> random grayscale -> Gaussian blur, each gated per sample (Sec. 3.2, UniMatch recipe).

    Input ``B x 3 x H x W`` float RGB in ``[0, 1]`` (not ImageNet-normalised); output of the same shape, dtype
    and device, in ``[0, 1]``. Every sample draws its own gates and factors. A probability of 0 skips that step,
    so with all three at 0 the output equals the input exactly; a probability of 1 applies it to every sample.

    Colour jitter is Kornia's ``ColorJitter`` (torchvision's formulas and its random per-call order of the four
    adjustments), not ``ColorJiggle``, which uses different factor conventions.

    Randomness: Kornia draws from torch's **global CPU** RNG, so ``torch.manual_seed(s)`` makes a call
    reproducible. Pass a CPU ``generator`` to ``forward`` instead to leave the global RNG untouched: a seed is
    drawn from it and the Kornia ops run under a forked, reseeded CPU RNG. Kornia's parameter sampling is kept on
    the CPU even after ``.to(cuda)`` (Kornia's own default; see ``_apply``): the parameters are a few scalars per
    sample, copied host-to-device without blocking, and Kornia's per-step "is any factor non-neutral" checks then
    read host tensors instead of waiting on the GPU. The same seed therefore draws the same parameters on any
    device. The images themselves are only touched on their device.
    """

    def __init__(self, config: ColorPerturbationConfig | None = None) -> None:
        super().__init__()
        self.config = config = config if config is not None else ColorPerturbationConfig()
        self.jitter = K.ColorJitter(
            brightness=config.brightness,
            contrast=config.contrast,
            saturation=config.saturation,
            hue=config.hue,
            p=config.jitter_p,
        )
        self.grayscale = K.RandomGrayscale(p=config.grayscale_p)
        self.blur = K.RandomGaussianBlur(
            kernel_size=config.blur_kernel_size,
            sigma=config.blur_sigma,
            border_type="reflect",
            p=config.blur_p,
        )
        self._pin_rng_to_cpu()

    def _steps(self) -> tuple[K.AugmentationBase2D, ...]:
        return (self.jitter, self.grayscale, self.blur)

    def _pin_rng_to_cpu(self) -> None:
        for step in self._steps():
            if step.device != torch.device("cpu") or step.dtype != torch.float32:
                step.set_rng_device_and_dtype(torch.device("cpu"), torch.float32)

    def _apply(self, fn: Callable[[Tensor], Tensor], *args: Any, **kwargs: Any) -> StrongColorPerturbation:
        # Kornia moves its parameter RNG with the module; keep it on the host (see the class docstring).
        out = super()._apply(fn, *args, **kwargs)
        self._pin_rng_to_cpu()
        return out

    def _perturb(self, images: Tensor) -> Tensor:
        out = images
        for step in self._steps():
            if step.p > 0:  # a static config value, not data: p = 0 costs nothing and leaves the input exact
                out = step(out)
        return out

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Perturb ``images`` (``B x 3 x H x W`` in ``[0, 1]``); ``generator``: optional CPU generator."""
        _check_images(images, channels=3)
        if generator is None:
            out = self._perturb(images)
        else:
            if generator.device.type != "cpu":
                raise ValueError(f"Kornia samples on the host: pass a CPU generator, got one on {generator.device}")
            # A host-side draw from a CPU generator: no device synchronisation.
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(seed)
                out = self._perturb(images)
        # Grayscale and blur are convex combinations; clamp their float round-off and restore the input dtype.
        return out.clamp(0.0, 1.0).to(images.dtype)


# --------------------------------------------------------------------------------------------------------------
# CutMix
# --------------------------------------------------------------------------------------------------------------


@dataclass
class CutMixConfig:
    """CutMix of Sec. 3.2 (eq. 5); box defaults are UniMatch's ``obtain_cutmix_box``.

    A box has area ``U(area_ratio) * H * W`` pixels and aspect ratio ``r = height / width`` drawn from
    ``aspect_ratio`` -- uniformly, as UniMatch does (``ratio = uniform(0.3, 1/0.3)``, ``h = sqrt(size * ratio)``),
    or log-uniformly (``aspect_sampling="log_uniform"``, symmetric between tall and wide boxes). UniMatch re-draws
    ratio and position until the box fits the image; here, without a loop, the ratio is drawn from the part of
    the range for which a box of that area fits (``area / W^2 <= r <= H^2 / area``) and the position uniformly
    among the fitting ones, so area and aspect stay in range up to integer rounding (for images of a sane aspect:
    an impossible box is clamped to the image).
    """

    p: float = 0.5  # Sec. 3.2: "We use CutMix with 50% probability"
    area_ratio: tuple[float, float] = (0.02, 0.4)  # UniMatch obtain_cutmix_box(size_min=0.02, size_max=0.4)
    aspect_ratio: tuple[float, float] = (0.3, 1 / 0.3)  # UniMatch obtain_cutmix_box(ratio_1=0.3, ratio_2=1/0.3)
    aspect_sampling: Literal["uniform", "log_uniform"] = "uniform"  # UniMatch: np.random.uniform(ratio_1, ratio_2)

    def __post_init__(self) -> None:
        self.area_ratio = tuple(self.area_ratio)  # type: ignore[assignment]  # YAML gives a list
        self.aspect_ratio = tuple(self.aspect_ratio)  # type: ignore[assignment]
        _check_probability("p", self.p)
        _check_range("area_ratio", self.area_ratio)
        if self.area_ratio[1] > 1:
            raise ValueError(f"area_ratio must lie in (0, 1], got {self.area_ratio}")
        _check_range("aspect_ratio", self.aspect_ratio)
        if self.aspect_sampling not in ("uniform", "log_uniform"):
            raise ValueError(f"aspect_sampling must be 'uniform' or 'log_uniform', got {self.aspect_sampling!r}")


class CutMixResult(NamedTuple):
    """Output of :func:`cutmix` for a batch of ``B`` images of ``H x W`` pixels.

    * ``images``: ``B x C x H x W`` mixed images ``u_ab`` (eq. 5), same dtype/device as the input.
    * ``mask``: ``B x H x W`` bool, eq. 5's ``M``: True inside the box, where the pixel is the sample's own
      ``u_a``; False outside, where it is the partner's ``u_b``. All True where nothing was mixed.
    * ``partner``: ``B`` int64, the index ``b`` of ``u_b`` for each output ``a``; ``partner[a] == a`` where nothing
      was mixed.
    * ``applied``: ``B`` bool, whether sample ``a`` was mixed.
    * ``boxes``: ``B x 4`` int64 ``(y0, x0, y1, x1)``, half-open, of the region where ``mask`` is True (the whole
      image, ``(0, 0, H, W)``, where nothing was mixed).

    Losses (eq. 6-8): ``L^M`` compares ``S(u_ab)`` with ``T(u_a) = target[a]`` on ``mask``, and ``L^{1-M}`` with
    ``T(u_b) = target[partner[a]]`` on ``~mask``, i.e. ``targets[result.partner]``; weight them by
    ``mask.mean()`` and ``1 - mask.mean()`` per sample (eq. 8). :func:`mix_targets` builds the pixelwise mix.
    """

    images: Tensor
    mask: Tensor
    partner: Tensor
    applied: Tensor
    boxes: Tensor


def _sample_partners(batch: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """A random cyclic permutation: ``partner[perm[i]] = perm[i + 1]`` -- no fixed point when ``batch >= 2``.

    Each sample's partner is uniform over the *other* samples, and every sample is drawn as exactly one sample's
    partner (UniMatch mixes with a second, distinct batch; mixing a sample with itself would be a no-op).
    """
    # argsort of uniform keys rather than randperm: plain device ops on every backend and torch version.
    perm = torch.rand(batch, generator=generator, device=device).argsort()
    return torch.empty_like(perm).scatter_(0, perm, perm.roll(-1))


def _sample_boxes(
    batch: int, height: int, width: int, config: CutMixConfig, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """``B x 4`` int64 half-open boxes ``(y0, x0, y1, x1)`` that fit the image (see :class:`CutMixConfig`).

    Sizes are drawn in float32, ample for any image size, as float64 is slow or missing on some accelerators.
    """
    u = torch.rand(4, batch, generator=generator, device=device)
    lo, hi = config.area_ratio
    area = (lo + (hi - lo) * u[0]) * (height * width)  # pixels
    # Ratios r = h / w for which the box fits: h = sqrt(area * r) <= H and w = sqrt(area / r) <= W.
    r_lo = torch.clamp(area / width**2, min=config.aspect_ratio[0])
    r_hi = torch.maximum(torch.clamp(height**2 / area, max=config.aspect_ratio[1]), r_lo)
    if config.aspect_sampling == "log_uniform":
        ratio = torch.exp(r_lo.log() + (r_hi.log() - r_lo.log()) * u[1])
    else:
        ratio = r_lo + (r_hi - r_lo) * u[1]
    box_h = torch.sqrt(area * ratio).round().clamp(1, height).long()
    box_w = torch.sqrt(area / ratio).round().clamp(1, width).long()
    # Top-left corner uniform over the positions where the box fits; the clamp guards u * n rounding up to n.
    y0 = torch.minimum((u[2] * (height - box_h + 1)).long(), height - box_h)
    x0 = torch.minimum((u[3] * (width - box_w + 1)).long(), width - box_w)
    return torch.stack([y0, x0, y0 + box_h, x0 + box_w], dim=1)


def _box_masks(boxes: Tensor, height: int, width: int) -> Tensor:
    """``B x H x W`` bool, True inside each half-open box, by broadcasting coordinate grids against the bounds."""
    ys = torch.arange(height, device=boxes.device).view(1, height, 1)
    xs = torch.arange(width, device=boxes.device).view(1, 1, width)
    y0, x0, y1, x1 = (boxes[:, i].view(-1, 1, 1) for i in range(4))
    return (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)


def cutmix(
    images: Tensor, config: CutMixConfig | None = None, generator: torch.Generator | None = None
) -> CutMixResult:
    """CutMix within a batch, eq. 5 of Sec. 3.2: ``u_ab = u_a * M + u_b * (1 - M)``.

    Output ``a`` is ``u_a = images[a]`` inside a random box (``M = 1``) and its partner ``u_b =
    images[partner[a]]`` outside, with probability ``config.p`` per sample; otherwise ``images[a]`` unchanged,
    ``M`` all ones and ``partner[a] = a``. Partners form a random cyclic permutation of the batch, so
    ``partner[a] != a`` whenever ``B >= 2``. With ``B == 1`` there is nothing to mix with: the sample is never
    ``applied`` and comes back unchanged. (UniMatch pastes the partner into the box instead; as partners are a
    random permutation, the two conventions give identically distributed batches up to relabelling.)

    ``images``: ``B x C x H x W`` float (any ``C``; meant for the colour-perturbed student batch). Randomness
    comes from ``generator`` (on the images' device) or torch's global RNG; all sampling is done with torch ops
    on the images' device, with no host synchronisation and no loop over samples. See :class:`CutMixResult`.
    """
    config = config if config is not None else CutMixConfig()
    _check_images(images)
    _check_generator(generator, images.device)
    batch, _, height, width = images.shape
    device = images.device

    partner = _sample_partners(batch, generator, device)
    identity = torch.arange(batch, device=device)
    applied = (torch.rand(batch, generator=generator, device=device) < config.p) & (partner != identity)
    partner = torch.where(applied, partner, identity)

    # Where nothing is mixed the box is the whole image, so M is all ones. Python scalars, not a tensor built from
    # a list: that would be a blocking host-to-device copy.
    y0, x0, y1, x1 = _sample_boxes(batch, height, width, config, generator, device).unbind(1)
    boxes = torch.stack(
        [
            torch.where(applied, y0, 0),
            torch.where(applied, x0, 0),
            torch.where(applied, y1, height),
            torch.where(applied, x1, width),
        ],
        dim=1,
    )
    mask = _box_masks(boxes, height, width)
    mixed = torch.where(mask[:, None], images, images[partner])
    return CutMixResult(images=mixed, mask=mask, partner=partner, applied=applied, boxes=boxes)


def mix_targets(targets: Tensor, result: CutMixResult) -> Tensor:
    """Mix per-pixel ``targets`` (``B x H x W`` or ``B x ... x H x W``; any dtype) as :func:`cutmix` mixed the
    images: ``targets[a]`` where ``result.mask`` is True, ``targets[result.partner[a]]`` elsewhere (eq. 5).

    Useful for pixelwise quantities (e.g. validity masks). The affine-invariant loss of eq. 6-8 aligns each
    region separately, so it should rather take ``targets`` on ``mask`` and ``targets[result.partner]`` on ``~mask``.
    """
    if targets.ndim < 3 or targets.shape[0] != result.mask.shape[0] or targets.shape[-2:] != result.mask.shape[-2:]:
        raise ValueError(f"targets of shape {tuple(targets.shape)} do not match the mask {tuple(result.mask.shape)}")
    mask = result.mask.view(result.mask.shape[0], *([1] * (targets.ndim - 3)), *result.mask.shape[-2:])
    return torch.where(mask, targets, targets[result.partner])


# --------------------------------------------------------------------------------------------------------------
# Joint horizontal flip
# --------------------------------------------------------------------------------------------------------------


@dataclass
class FlipConfig:
    """Horizontal flip of labeled images, "the only data augmentation for labeled images" (Sec. 4.1)."""

    p: float = 0.5  # Sec. 4.1 gives no probability; 0.5 is the usual unbiased flip

    def __post_init__(self) -> None:
        _check_probability("p", self.p)


class FlipResult(NamedTuple):
    """Output of :func:`joint_hflip`: the three tensors, flipped per sample, and ``flipped`` (``B`` bool)."""

    image: Tensor
    label: Tensor
    mask: Tensor
    flipped: Tensor


def joint_hflip(
    image: Tensor, label: Tensor, mask: Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> FlipResult:
    """Flip the same samples left-right in ``image`` (``B x C x H x W``), ``label`` (``B x H x W``) and ``mask``
    (``B x H x W``, bool or float), each with probability ``p`` (Sec. 4.1). Shapes, dtypes and devices are kept.

    Randomness comes from ``generator`` (on the batch's device) or torch's global RNG; the decision is drawn and
    applied on the device (``torch.where``), with no host synchronisation and no loop over samples.
    """
    _check_probability("p", p)
    _check_generator(generator, image.device)
    batch = image.shape[0]
    for name, tensor in (("label", label), ("mask", mask)):
        if tensor.shape[0] != batch or tensor.shape[-2:] != image.shape[-2:] or tensor.device != image.device:
            raise ValueError(f"{name} of shape {tuple(tensor.shape)} does not match image {tuple(image.shape)}")
    flipped = torch.rand(batch, generator=generator, device=image.device) < p

    def flip(tensor: Tensor) -> Tensor:
        return torch.where(_batch_view(flipped, tensor.ndim), tensor.flip(-1), tensor)

    return FlipResult(image=flip(image), label=flip(label), mask=flip(mask), flipped=flipped)
