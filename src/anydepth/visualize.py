"""Depth map visualisation as in the official Depth Anything ``run.py``, without matplotlib.

``colorize`` min-max normalises a disparity map to 0..255 (truncating, like the official
``astype(np.uint8)``) and looks the result up in ``SPECTRAL_R``, a 256-entry copy of
matplotlib's ``Spectral_r`` colormap: near (high disparity) is red, far (low disparity) blue/purple.
Metric depth in metres is shown as ``colorize(-depth)`` (linear in metres, near red) with ``with_depth_scale``'s
metre scale bar below, and stored 16-bit as ``to_millimetres``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# ColorBrewer "Spectral" control colours, the 11 entries of matplotlib's ``_Spectral_data``.
SPECTRAL_HEX: tuple[str, ...] = (
    "9e0142",
    "d53e4f",
    "f46d43",
    "fdae61",
    "fee08b",
    "ffffbf",
    "e6f598",
    "abdda4",
    "66c2a5",
    "3288bd",
    "5e4fa2",
)
SIDE_BY_SIDE_GAP = 50  # white columns between image and depth in the official run.py
SCALE_BAR_HEIGHT = 24  # rows of the metre scale strip under a metric depth map: a colour ramp, then its labels
MAX_MILLIMETRES = 65535  # the largest 16-bit value: to_millimetres clips at 65.535 m


def _lookup_table(colors: np.ndarray, n: int = 256) -> np.ndarray:
    """matplotlib's ``LinearSegmentedColormap.from_list(...).reversed()`` LUT, in floats in [0, 1].

    Follows ``matplotlib.colors._create_lookup_table`` step by step (control points equally
    spaced, reversed as ``(1 - x)``) so the float values, and hence the truncated bytes, match.
    """
    x = (1.0 - np.linspace(0.0, 1.0, len(colors)))[::-1] * (n - 1)
    colors = colors[::-1]
    xind = (n - 1) * np.linspace(0.0, 1.0, n)
    ind = np.searchsorted(x, xind)[1:-1]
    distance = (xind[1:-1] - x[ind - 1]) / (x[ind] - x[ind - 1])
    inner = distance[:, None] * (colors[ind] - colors[ind - 1]) + colors[ind - 1]
    return np.clip(np.concatenate([colors[:1], inner, colors[-1:]]), 0.0, 1.0)


def _spectral_r() -> np.ndarray:
    colors = np.array([[int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)] for h in SPECTRAL_HEX])
    # The official script does ``(cmap(depth)[..., :3] * 255).astype(np.uint8)``: truncation.
    return (_lookup_table(colors) * 255).astype(np.uint8)


SPECTRAL_R: np.ndarray = _spectral_r()
"""256 x 3 uint8 RGB lookup table equal to ``matplotlib.colormaps["Spectral_r"]`` at 0..255."""


def _min_max(disparity: np.ndarray, scale: float) -> np.ndarray:
    """``(d - min) / (max - min) * scale`` over the finite values; NaN/-inf -> 0, +inf -> scale.

    A constant (or entirely non-finite) map gives zeros. Float inputs keep their precision (the
    official float32 arithmetic); other dtypes are computed in float64.
    """
    d = np.asarray(disparity)
    if d.dtype.kind != "f":
        d = d.astype(np.float64)
    lo, hi = finite_range(d)
    if not hi > lo:
        return np.zeros(d.shape, d.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        out = (d - lo) / (hi - lo) * scale
    out = np.nan_to_num(out, nan=0.0, posinf=scale, neginf=0.0)
    return np.clip(out, 0.0, scale)


def finite_range(values: np.ndarray) -> tuple[float, float]:
    """``(min, max)`` of the finite values (``(0, 0)`` when there are none)."""
    finite = np.isfinite(values)
    if finite.all():
        return values.min(), values.max()
    return (values[finite].min(), values[finite].max()) if finite.any() else (0.0, 0.0)


def to_uint8(disparity: np.ndarray) -> np.ndarray:
    """Per-image min-max normalisation to 0..255 uint8, truncating like the official script.

    A constant map gives zeros; NaN and -inf give 0, +inf 255; no NaN warnings are raised.
    """
    return _min_max(disparity, 255.0).astype(np.uint8)


def to_uint16(disparity: np.ndarray) -> np.ndarray:
    """Per-image min-max normalisation to 0..65535 uint16, rounded to nearest.

    The minimum disparity (farthest point) maps to 0 and the maximum (nearest) to 65535, so the
    result is relative inverse depth at 16-bit precision, not metric depth. A constant map gives
    zeros; NaN and -inf give 0, +inf 65535.
    """
    return np.rint(_min_max(disparity, 65535.0)).astype(np.uint16)


def to_millimetres(depth: np.ndarray) -> np.ndarray:
    """Metric depth in metres -> uint16 millimetres, rounded to nearest (the 16-bit depth PNG convention of NYUv2's
    ``sync_depth`` files): clipped at ``MAX_MILLIMETRES`` (65.535 m); non-finite and non-positive depth -> 0 (no
    depth)."""
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    return np.where(valid, np.rint(np.clip(np.where(valid, depth, 0) * 1000, 0, MAX_MILLIMETRES)), 0).astype(np.uint16)


def with_depth_scale(vis: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """``vis``, a metric ``depth`` map shown as ``colorize(-depth)`` (H x W x 3) or ``to_uint8(-depth)`` (H x W),
    with a ``SCALE_BAR_HEIGHT``-row white strip below: the same colour ramp from the nearest depth (left) to the
    farthest (right), labelled with both in metres."""
    lo, hi = finite_range(np.asarray(depth, dtype=np.float64))
    width, half = vis.shape[1], SCALE_BAR_HEIGHT // 2
    ramp = np.linspace(255, 0, width).astype(np.uint8)  # nearest = 255, as to_uint8(-depth) maps it
    strip = np.full((SCALE_BAR_HEIGHT, *vis.shape[1:]), 255, np.uint8)
    strip[:half] = SPECTRAL_R[ramp] if vis.ndim == 3 else ramp
    image = Image.fromarray(strip)
    draw, font = ImageDraw.Draw(image), ImageFont.load_default(size=half - 2)
    ink = (0, 0, 0) if vis.ndim == 3 else 0
    far = f"{hi:.2f} m"
    draw.text((1, half), f"{lo:.2f} m", fill=ink, font=font)
    draw.text((width - 1 - draw.textlength(far, font=font), half), far, fill=ink, font=font)
    return np.concatenate([vis.astype(np.uint8, copy=False), np.asarray(image)], axis=0)


def colorize(disparity: np.ndarray) -> np.ndarray:
    """H x W disparity -> H x W x 3 uint8 RGB with Spectral_r (near = red, far = blue/purple)."""
    disparity = np.asarray(disparity)
    if disparity.ndim != 2:
        raise ValueError(f"expected an H x W disparity map, got shape {disparity.shape}")
    return SPECTRAL_R[to_uint8(disparity)]


def side_by_side(rgb: np.ndarray, vis: np.ndarray, gap: int = SIDE_BY_SIDE_GAP) -> np.ndarray:
    """``[rgb | gap white columns | vis]`` as H x (2W + gap) x 3 uint8, as the official run.py.

    ``vis`` may be H x W (grayscale, repeated to 3 channels) or H x W x 3.
    """
    if vis.ndim == 2:
        vis = np.repeat(vis[..., None], 3, axis=-1)
    if rgb.shape[0] != vis.shape[0]:
        raise ValueError(f"heights differ: image {rgb.shape[:2]} vs visualisation {vis.shape[:2]}")
    white = np.full((rgb.shape[0], gap, 3), 255, dtype=np.uint8)
    return np.concatenate([rgb.astype(np.uint8, copy=False), white, vis.astype(np.uint8, copy=False)], axis=1)
