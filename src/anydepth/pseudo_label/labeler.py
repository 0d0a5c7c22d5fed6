"""The teacher side of pseudo-labelling: :class:`PseudoLabelDataModule` (the input shards still to do, each sample
read once, dealt to the ranks) and :class:`PseudoLabeler` (the teacher's relative disparity per image)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor

from anydepth.data.transforms import EvalTransform
from anydepth.files import tree_digest
from anydepth.models.depth_anything import DepthAnything
from anydepth.models.preprocess import normalize, upsample_prediction
from anydepth.pseudo_label.state import PseudoLabelError, input_shards, prepare_output
from anydepth.shards.dealing import rank_and_world_size
from anydepth.shards.reader import ShardDataset, ShardList, ShardLoader
from anydepth.shards.schema import Sample

__all__ = ["PseudoLabelDataModule", "PseudoLabeler", "default_workers"]

MAX_DEFAULT_WORKERS = 8
"""At most this many loader workers per device by default: with reduced-scale JPEG decoding one worker prepares a few
dozen large photos per second, so a handful keeps a teacher forward pass fed (``benchmarks/pseudo_label_speed.py``)."""


def default_workers(devices: int = 1) -> int:
    """Loader workers per device when none are given: the CPUs this process may use, shared by the node's ``devices``,
    less one each for the device's own process, between 1 and :data:`MAX_DEFAULT_WORKERS`."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_WORKERS, cpus // max(1, devices) - 1))


class _PseudoLabelInput:
    """:class:`EvalTransform` of a sample plus what the writer needs: ``shard`` (the input shard's index),
    ``shard_samples`` (its manifest count) and ``record`` (the raw record, whose bytes are copied). Its
    ``decode_size`` is the :class:`EvalTransform`'s (JPEGs decoded at a reduced scale unless ``reduced_decode`` is off).
    """

    def __init__(self, size: int, shards: ShardList, reduced_decode: bool = True) -> None:
        self.transform = EvalTransform(size, reduced_decode)
        self.decode_size = self.transform.decode_size
        self.index = {url: i for i, url in enumerate(shards.urls)}
        self.counts = shards.counts

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> dict[str, Any]:
        out = self.transform(sample)
        out.pop("label", None)  # a labeled input's own label is replaced, not read
        out.pop("mask", None)
        assert sample.record is not None, "decode_sample keeps the raw record"
        index = self.index[sample.record["__url__"]]
        out.update(shard=index, shard_samples=self.counts[index], record=sample.record)
        return out


class PseudoLabelDataModule(pl.LightningDataModule):
    """The input shards of ``out`` still to pseudo-label, each sample read once (see :mod:`anydepth.pseudo_label`).

    ``setup`` (every rank): global rank 0 runs :func:`prepare_output` and the pending shard indices (or its error) are
    broadcast, so all ranks agree; ``predict_dataloader`` then reads this rank's share. Batches: ``image`` B x 3 x h x w
    in [0, 1] (sides multiples of 14), ``original_size`` B x 2, ``key``, ``shard``, ``shard_samples``, ``record``.

    Args:
        inputs: input shard specs (directories with ``manifest.json``, or shard paths / patterns that one lists).
        out: the output directory.
        teacher: the teacher's identity (:meth:`PseudoLabeler.teacher_settings`), recorded in ``pseudo.json``.
        input_size: shorter network input side, rounded to a multiple of 14 (518 in the paper).
        batch_size: images per batch; > 1 only when all input images share one size.
        num_workers: DataLoader workers per rank (None: :func:`default_workers` of the trainer's devices per node).
        resume: continue a directory made with the same settings (else refuse any existing pseudo labels).
        pin_memory: pin host memory (default: when CUDA is available).
        reduced_decode: decode JPEGs at the smallest libjpeg scale still at least the network input size
            (:mod:`anydepth.images`; labels at the stored size as before); off: full decode, the official pixels.
    """

    def __init__(
        self,
        inputs: Sequence[str | os.PathLike],
        out: str | os.PathLike,
        teacher: Mapping[str, Any],
        input_size: int = 518,
        batch_size: int = 1,
        num_workers: int | None = None,
        resume: bool = True,
        pin_memory: bool | None = None,
        reduced_decode: bool = True,
    ) -> None:
        super().__init__()
        self.shards = input_shards(inputs)
        self.out = Path(out)
        self.state: dict[str, Any] = {
            **teacher,
            "input_size": input_size,
            "inputs": list(self.shards.urls),
            "input_samples": list(self.shards.counts),
            "reduced_decode": reduced_decode,  # the labels of a resumed run come from the same decoded pixels
        }
        self.input_size, self.batch_size, self.num_workers, self.resume = input_size, batch_size, num_workers, resume
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.reduced_decode = reduced_decode
        self.pending: list[int] | None = None
        self.allow_zero_length_dataloader_with_multiple_devices = True  # more ranks than pending shards

    def setup(self, stage: str) -> None:
        strategy = None if self.trainer is None else self.trainer.strategy
        plan: list[int] | str = []
        if strategy is None or strategy.is_global_zero:
            try:
                plan = prepare_output(self.out, self.state, self.resume)
            except PseudoLabelError as err:  # raised on every rank below, so none waits for the others
                plan = str(err)
        if strategy is not None:
            plan = strategy.broadcast(plan, src=0)
        if isinstance(plan, str):
            raise PseudoLabelError(plan)
        self.pending = plan

    def predict_dataloader(self) -> ShardLoader:
        if self.pending is None:
            raise RuntimeError("PseudoLabelDataModule.setup() must run before predict_dataloader()")
        rank, world_size = rank_and_world_size(self.trainer)
        pending = ShardList(
            tuple(self.shards.urls[i] for i in self.pending), tuple(self.shards.counts[i] for i in self.pending)
        )
        dataset = ShardDataset(
            pending,
            _PseudoLabelInput(self.input_size, self.shards, self.reduced_decode),
            self.batch_size,
            resampled=False,
            shuffle=False,
            rank=rank,
            world_size=world_size,
            name="pseudo-label",
        )
        devices = 1 if self.trainer is None else self.trainer.num_devices
        workers = default_workers(devices) if self.num_workers is None else self.num_workers
        return ShardLoader(dataset, num_workers=workers, pin_memory=self.pin_memory)


class PseudoLabeler(pl.LightningModule):
    """The teacher: ``predict_step`` maps a :class:`PseudoLabelDataModule` batch to a list of B float32 CPU tensors,
    the relative disparity of each image at its stored resolution (``original_size``).

    Args:
        checkpoint: any checkpoint :meth:`DepthAnything.from_checkpoint` reads (a teacher's Lightning / anydepth
            checkpoint, an official ``.pth``, a transformers directory); a bad one raises ``CheckpointError``.
        flip_tta: average the prediction with the un-flipped prediction of the horizontally flipped image.
        encoder: expected encoder, checked against the checkpoint.
        version: Depth Anything version, for checkpoints that do not say.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike,
        flip_tta: bool = False,
        encoder: str | None = None,
        version: str | None = None,
    ) -> None:
        super().__init__()
        self.model = DepthAnything.from_checkpoint(checkpoint, encoder=encoder, version=version).eval()
        self.checkpoint, self.flip_tta = Path(checkpoint), flip_tta

    def teacher_settings(self) -> dict[str, Any]:
        """``{"teacher": path, "teacher_sha256": ..., "flip_tta": ...}``: what identifies the labels (hashing reads the
        whole checkpoint)."""
        return {
            "teacher": str(self.checkpoint),
            "teacher_sha256": tree_digest(self.checkpoint),
            "flip_tta": self.flip_tta,
        }

    def forward(self, images: Tensor) -> Tensor:
        """``B x 3 x h x w`` images in [0, 1] (sides multiples of 14) -> ``B x h x w`` relative disparity."""
        x = normalize(images)
        disparity = self.model(x)
        if self.flip_tta:
            disparity = (disparity + self.model(x.flip(-1)).flip(-1)) / 2
        return disparity

    def transfer_batch_to_device(self, batch: dict[str, Any], device: torch.device, dataloader_idx: int) -> Any:
        """Only ``image`` goes to the device. Lightning's default walks every element of every collection, and the
        raw records' bytes are sequences of ints: seconds per large photo, more than decoding and the teacher."""
        return {**batch, "image": batch["image"].to(device, non_blocking=True)}

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[Tensor]:
        disparity = self(batch["image"])
        sizes = batch["original_size"].tolist()
        version = self.model.config.version
        return [upsample_prediction(d[None], size, version)[0].cpu() for d, size in zip(disparity, sizes)]
