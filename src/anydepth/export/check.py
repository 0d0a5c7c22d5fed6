"""The parity check run on every export: the file, read back from disk, against the PyTorch model in fp32 on real
photos (scikit-image's astronaut and cat) at two network sizes (the fixed size, for a fixed-size export)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from anydepth.export.onnx import import_optional
from anydepth.export.spec import ExportError, ExportSpec
from anydepth.models.depth_anything import DepthAnything
from anydepth.models.preprocess import normalize

Runner = Callable[[np.ndarray], np.ndarray]
"""An export loaded back: one batch in its input contract -> ``B x H x W`` float32 depth."""
CHECK_SIZES: tuple[tuple[int, int], ...] = ((518, 518), (364, 546))
"""Network sizes (H, W) of a dynamic export's check: the native 37 x 37 patch grid and a non-square other one."""


class ParityError(ExportError):
    """The exported file's output differs from the PyTorch model's by more than the precision's tolerance."""


def reference_photos() -> list[np.ndarray]:
    """scikit-image's astronaut and chelsea (cat) photos, uint8 RGB."""
    data = import_optional("skimage.data")
    return [data.astronaut(), data.chelsea()]


def check_sizes(spec: ExportSpec) -> tuple[tuple[int, int], ...]:
    return (spec.input_size,) if spec.input_size else CHECK_SIZES


def photo_batch(photos: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """``photos`` resized to ``size`` (H, W; PIL bicubic), stacked: uint8 ``B x H x W x 3``."""
    return np.stack([np.asarray(Image.fromarray(p).resize(size[::-1], Image.Resampling.BICUBIC)) for p in photos])


def max_relative_difference(reference: np.ndarray, other: np.ndarray) -> float:
    """``max |other - reference| / max |reference|``; infinite where either is not finite (an fp16 overflow)."""
    if other.shape != reference.shape:
        raise ExportError(f"exported output has shape {other.shape}, the PyTorch model's {reference.shape}")
    if not (np.isfinite(other).all() and np.isfinite(reference).all()):
        return float("inf")
    return float(np.abs(other - reference).max() / max(np.abs(reference).max(), np.finfo(np.float32).tiny))


def parity(
    model: DepthAnything, run: Runner, spec: ExportSpec, photos: list[np.ndarray]
) -> dict[tuple[int, int], float]:
    """:func:`max_relative_difference` of ``run`` (the export, in ``spec``'s input contract) to ``model`` (eval mode,
    fp32) on ``photos`` at each of :func:`check_sizes`."""
    differences = {}
    for size in check_sizes(spec):
        pixels = photo_batch(photos, size)
        normalized = normalize(torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0)
        with torch.inference_mode():
            reference = model(normalized).numpy()
        differences[size] = max_relative_difference(
            reference, run(pixels if spec.bake_preprocessing else normalized.numpy())
        )
    return differences


def require_parity(differences: dict[tuple[int, int], float], spec: ExportSpec, name: str) -> None:
    """``ParityError`` naming the worst size when a difference exceeds ``spec.tolerance``."""
    size, worst = max(differences.items(), key=lambda item: item[1])
    if worst > spec.tolerance:
        raise ParityError(
            f"{name} ({spec.format}, {spec.precision}) disagrees with the PyTorch model: max relative difference "
            f"{worst:.2e} at {size[0]}x{size[1]} px exceeds the {spec.precision} tolerance {spec.tolerance:g}"
        )
