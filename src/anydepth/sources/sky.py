"""Sky masks predicted at shard-build time by a semantic segmentation model (``shards build --sky-model DIR``).

Depth Anything, Sec. 3.1: "we apply a pre-trained semantic segmentation model [70] to detect the sky region, and set
its disparity value as 0 (farthest)"; [70] is SegFormer, e.g. ``nvidia/segformer-b5-640-640-ade20k`` downloaded to a
local directory. The builder stores the mask as the sample's ``sky.png``; training sets sky disparity to 0.

- The model is a transformers ``AutoModelForSemanticSegmentation`` read from a local directory (nothing is
  downloaded), with its image processor when the directory has a ``preprocessor_config.json``; without one, images
  are scaled to [0, 1] and normalised with the ImageNet mean and std (SegFormer's defaults) at their own size.
- The sky class is the one whose ``config.id2label`` name is ``sky`` (any case); exactly one is required.
- Only labeled samples without a sky mask of their own get one: a reader's mask (TartanAir's far plane, ``sky/``
  folders) wins, and unlabeled images need none (their pseudo labels come from the teacher, sky included).
- The mask is predicted on the stored (downscaled) image: logits are upsampled bilinearly to its size, argmaxed,
  and compared with the sky class.
- Samples run in batches of ``batch_size`` under ``torch.inference_mode``; images whose model inputs differ in shape
  (no resizing processor, images of several sizes) run in separate forward passes of the same batch.
  A failing forward pass (e.g. out of memory) is no input's fault: it stops the build, which ``resume`` continues.
- The build records the resolved directory and a sha256 over all its files as its ``sky_model`` setting, so resuming
  with another model (or changed files) is refused like any other change of settings.
- A :class:`SkySegmenter` pickles as its arguments: each build worker process loads its own copy (once), and the
  model moves to its device at the first prediction, so a parent that only hands it to workers never touches CUDA.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from anydepth.files import tree_digest
from anydepth.shards.schema import Sample
from anydepth.sources.base import SourceError

PROCESSOR_CONFIG = "preprocessor_config.json"
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


class SkyModelError(SourceError):
    """An unusable ``--sky-model``: no segmentation model with one sky class in the directory, or a bad batch size."""


def sky_class_id(id2label: dict[Any, str], directory: str | os.PathLike[str]) -> int:
    """The one class id whose label is ``sky`` (case-insensitive) in a model config's ``id2label``; ``SkyModelError``
    naming ``directory`` when there is none or more than one."""
    ids = [int(i) for i, label in id2label.items() if str(label).strip().lower() == "sky"]
    if len(ids) != 1:
        found = "no class" if not ids else f"classes {ids}"
        raise SkyModelError(
            f"--sky-model {directory}: expected one class labeled 'sky' in config.json's id2label, found {found} "
            f"(labels: {', '.join(list(id2label.values())[:8])}{', ...' if len(id2label) > 8 else ''}); "
            "use a model trained on a dataset with a sky class, e.g. SegFormer on ADE20K"
        )
    return ids[0]


def _pretrained(loader: Any, directory: Path, **kwargs: Any) -> Any:
    """``loader.from_pretrained(directory)`` without network access; a one-line ``SkyModelError`` naming ``directory``
    if it fails (transformers raises OSError, ValueError, KeyError, ... for unusable directories)."""
    try:
        return loader.from_pretrained(directory, local_files_only=True, **kwargs)
    except Exception as err:
        why = " ".join(str(err).split())
        raise SkyModelError(
            f"--sky-model {directory}: cannot load a semantic segmentation model ({type(err).__name__}: {why})"
        ) from err


class SkySegmenter:
    """Predicts sky masks with the segmentation model in ``directory`` on ``device`` (None: CUDA when available),
    ``batch_size`` images per step (see the module doc). Raises ``SkyModelError`` for an unusable directory (before
    loading the weights when the config has no sky class)."""

    def __init__(self, directory: str | os.PathLike[str], device: str | None = None, batch_size: int = 8) -> None:
        from transformers import AutoConfig, AutoImageProcessor, AutoModelForSemanticSegmentation  # slow: on use

        if batch_size < 1:
            raise SkyModelError(f"sky batch size must be at least 1, got {batch_size}")
        self.directory, self.device, self.batch_size = Path(directory), device, batch_size
        if not self.directory.is_dir():
            raise SkyModelError(f"--sky-model {self.directory}: not a directory (expected a transformers model folder)")
        config = _pretrained(AutoConfig, self.directory)
        self.sky_id = sky_class_id(config.id2label, self.directory)
        self.model = _pretrained(AutoModelForSemanticSegmentation, self.directory, config=config).eval()
        has_processor = (self.directory / PROCESSOR_CONFIG).is_file()
        self.processor = _pretrained(AutoImageProcessor, self.directory) if has_processor else None

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.directory, self.device, self.batch_size)

    def record(self) -> dict[str, str]:
        """What the build settings record: the resolved directory and a digest of all its files."""
        return {"path": str(self.directory.resolve()), "sha256": tree_digest(self.directory)}

    def _pixels(self, image: np.ndarray) -> torch.Tensor:
        """The model input (3 x h x w float) of one H x W x 3 uint8 image."""
        pixels = torch.tensor(image).permute(2, 0, 1)  # a copy: decoded images are read-only arrays
        if self.processor is not None:
            return self.processor(images=pixels, return_tensors="pt")["pixel_values"][0]
        return (pixels.float() / 255 - IMAGENET_MEAN) / IMAGENET_STD

    @torch.inference_mode()
    def predict(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """One H x W boolean sky mask per H x W x 3 uint8 image (one forward pass per input shape)."""
        device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(device)
        inputs = [self._pixels(image) for image in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, pixels in enumerate(inputs):
            groups.setdefault(tuple(pixels.shape), []).append(index)
        masks: dict[int, np.ndarray] = {}
        for indices in groups.values():
            pixels = torch.stack([inputs[i] for i in indices]).to(device, self.model.dtype)
            for index, logit in zip(indices, self.model(pixel_values=pixels).logits):
                size = images[index].shape[:2]
                upsampled = F.interpolate(logit[None].float(), size=size, mode="bilinear", align_corners=False)
                masks[index] = (upsampled[0].argmax(0) == self.sky_id).cpu().numpy()
        return [masks[i] for i in range(len(images))]

    def add_sky(self, samples: Iterable[Sample]) -> Iterator[Sample]:
        """``samples`` in order, each labeled one without a sky mask given the predicted one (batched)."""
        stream = iter(samples)
        while batch := list(islice(stream, self.batch_size)):
            todo = [i for i, sample in enumerate(batch) if sample.label is not None and sample.sky is None]
            for index, mask in zip(todo, self.predict([batch[i].image for i in todo])):
                batch[index] = replace(batch[index], sky=mask)
            yield from batch
