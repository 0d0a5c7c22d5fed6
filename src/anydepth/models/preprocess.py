"""Official Depth Anything inference preprocessing, on torch tensors (any device).

The official ``Resize(keep_aspect_ratio=True, ensure_multiple_of=14, resize_method="lower_bound",
cv2.INTER_CUBIC)`` + ``NormalizeImage`` is reproduced with ``torch.nn.functional.interpolate``
(bicubic, a = -0.75 like OpenCV, no antialias) on the [0, 1] float image.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anydepth.models.encoder import PATCH_SIZE

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _multiple_at_least(x: float, minimum: int, multiple: int) -> int:
    """Official ``constrain_to_multiple_of(x, min_val)``: round half to even, ceil if below min."""
    y = int(np.round(x / multiple) * multiple)
    if y < minimum:
        y = int(np.ceil(x / multiple) * multiple)
    return y


def lower_bound_size(height: int, width: int, input_size: int = 518, multiple: int = PATCH_SIZE) -> tuple[int, int]:
    """Network input size (h, w): aspect kept, shorter side >= ``input_size``, both multiples of 14."""
    scale = max(input_size / height, input_size / width)
    return (
        _multiple_at_least(scale * height, input_size, multiple),
        _multiple_at_least(scale * width, input_size, multiple),
    )


def check_image(rgb: np.ndarray, name: str = "image") -> None:
    """Raise ``ValueError`` unless ``rgb`` is an H x W x 3 uint8 array at least 14 px per side."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        desc = f"{rgb.dtype} array of shape {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"{name}: expected an H x W x 3 uint8 RGB array, got {desc}")
    if min(rgb.shape[:2]) < PATCH_SIZE:
        raise ValueError(
            f"{name} is {rgb.shape[1]}x{rgb.shape[0]} px; the model needs at least "
            f"{PATCH_SIZE} px on each side (one ViT patch)"
        )


def normalize(images: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalise a ``B x 3 x H x W`` float batch in [0, 1]."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def prepare_images(images: list[np.ndarray], input_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Same-sized uint8 RGB arrays to one normalised ``B x 3 x h x w`` network batch."""
    height, width = images[0].shape[:2]
    batch = torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2).float() / 255.0
    size = lower_bound_size(height, width, input_size)
    batch = F.interpolate(batch, size=size, mode="bicubic", align_corners=False)
    return normalize(batch)


ALIGN_CORNERS: dict[str, bool] = {"v1": False, "v2": True}
"""Each version's official upsampling of the prediction to the image size (bilinear): V1's ``run.py`` and ``app.py``
interpolate with ``align_corners=False``, V2's ``DepthAnythingV2.infer_image`` with ``align_corners=True``."""


def upsample_prediction(pred: torch.Tensor, size: tuple[int, int] | torch.Size, version: str) -> torch.Tensor:
    """``B x h x w`` prediction -> ``B x H x W`` float32, bilinear as the official code of ``version`` does
    (:data:`ALIGN_CORNERS`); returned as is (in float32) when already at ``size``."""
    if version not in ALIGN_CORNERS:
        raise ValueError(f"version must be one of {sorted(ALIGN_CORNERS)}, got {version!r}")
    size = (int(size[0]), int(size[1]))
    if tuple(pred.shape[-2:]) == size:
        return pred.float()
    return F.interpolate(pred[:, None].float(), size=size, mode="bilinear", align_corners=ALIGN_CORNERS[version])[:, 0]


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode inside the block, back to its previous mode after it (also on errors)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
