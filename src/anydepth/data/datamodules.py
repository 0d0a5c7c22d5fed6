"""The LightningDataModules that feed training, validation and evaluation from shards.

Each DataModule builds :class:`~anydepth.shards.reader.ShardDataset` pipelines (order, epoch length, seeding, resume
and error handling are documented in :mod:`anydepth.shards.reader`) for its rank, read off the attached Trainer
(:func:`~anydepth.shards.dealing.rank_and_world_size`), and wraps them in :class:`~anydepth.shards.reader.ShardLoader`.
Training streams default to exact epochs (every sample once per epoch, the same batch count on every rank, resumed
mid-epoch where the checkpoint left them); ``resampled: true`` draws shards with replacement instead (an epoch of
``samples_per_epoch``, as open_clip does at very large scale, or to repeat a tiny set within an epoch).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import CombinedLoader

from anydepth.data.transforms import EvalTransform, TrainTransform, UnlabeledTransform
from anydepth.shards.dealing import rank_and_world_size, require_one_per_rank
from anydepth.shards.manifest import ManifestError
from anydepth.shards.reader import ShardDataset, ShardLoader, ShardSpecError, Transform, resolve_shards

__all__ = [
    "EvalDataModule",
    "LabeledDataModule",
    "MixedDataModule",
    "UnlabeledDataModule",
]

logger = logging.getLogger(__name__)

LABELED_TO_UNLABELED_RATIO = 2
"""Paper Sec. 4.1: "The ratio of labeled and unlabeled images is set as 1:2 in each batch"."""


# --------------------------------------------------------------------------------------------------------------
# DataModules
# --------------------------------------------------------------------------------------------------------------


class _ShardDataModule(pl.LightningDataModule):
    """Rank, epoch and loader plumbing shared by the DataModules, and the two transform hooks a subclass overrides to
    change what its samples become while keeping every stream's shards, batching, epochs and seeds:
    :meth:`train_transform` (labeled training samples) and :meth:`eval_transform` (validation, test and predict
    samples)."""

    size: int
    """Training crop side and evaluation shorter side of the default transforms (set by each subclass)."""

    def __init__(
        self,
        num_workers: int,
        seed: int,
        pin_memory: bool | None,
        rank: int | None,
        world_size: int | None,
    ) -> None:
        super().__init__()
        if (rank is None) != (world_size is None):
            raise ValueError("give both rank and world_size, or neither")
        self.num_workers, self.seed = num_workers, seed
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.rank, self.world_size = rank, world_size

    @staticmethod
    def check_shards(**named: Sequence[str] | None) -> None:
        """Resolve every given shard list once, so a missing or empty shard directory fails when the DataModule is
        built (before a model loads or ranks start), with one error naming the argument."""
        for name, specs in named.items():
            if specs is None:
                continue
            try:
                resolve_shards(specs)
            except (ShardSpecError, ManifestError) as err:
                raise type(err)(f"data.init_args.{name}: {err}") from None

    @staticmethod
    def check_epoch(resampled: bool, samples_per_epoch: int | None) -> None:
        """Refuse ``samples_per_epoch`` beside exact epochs when the DataModule is built (it sizes resampled ones)."""
        if samples_per_epoch is not None and not resampled:
            raise ValueError(
                "data.init_args.samples_per_epoch sizes resampled epochs: set data.init_args.resampled: true with it, "
                "or drop it (an exact epoch reads every sample once; trainer.limit_train_batches shortens it)"
            )

    def _set_streams(
        self,
        resampled: bool,
        samples_per_epoch: int | None,
        shuffle_buffer: int,
        val_shards: list[str] | None,
        val_batch_size: int,
        **train_shards: Sequence[str] | None,
    ) -> None:
        """Check the training shard lists (named as their arguments), ``val_shards`` and the epoch settings when the
        DataModule is built, and keep the settings every training stream and the validation loader share."""
        self.check_shards(**train_shards, val_shards=val_shards or None)
        self.check_epoch(resampled, samples_per_epoch)
        self.resampled, self.samples_per_epoch, self.shuffle_buffer = resampled, samples_per_epoch, shuffle_buffer
        self.val_shards, self.val_batch_size = val_shards, val_batch_size

    def rank_and_world_size(self) -> tuple[int, int]:
        """Explicit ``rank``/``world_size`` if given (tests), else :func:`~anydepth.shards.dealing.rank_and_world_size`
        of the attached Trainer (resolved when a loader is built, after DDP is set up)."""
        if self.rank is not None and self.world_size is not None:
            return self.rank, self.world_size
        return rank_and_world_size(self.trainer)

    def train_transform(self) -> Transform:
        """The worker transform of labeled training samples: :class:`TrainTransform` at ``size`` (a random
        ``size`` x ``size`` crop, labels as normalised disparity). Override to train on other samples."""
        return TrainTransform(self.size)

    def eval_transform(self) -> Transform:
        """The worker transform of validation, test and predict samples: :class:`EvalTransform` at ``size`` (image
        at multiples of 14, label at ground-truth resolution). Override to evaluate other samples."""
        return EvalTransform(self.size)

    def _epoch(self) -> int | None:
        return self.trainer.current_epoch if self.trainer is not None else None

    def _dataset(self, shards: Sequence[str], transform: Transform, batch_size: int, **kwargs: Any) -> ShardDataset:
        rank, world_size = self.rank_and_world_size()
        return ShardDataset(
            resolve_shards(shards), transform, batch_size, seed=self.seed, rank=rank, world_size=world_size, **kwargs
        )

    def _train_dataset(
        self, shards: Sequence[str], transform: Transform, batch_size: int, name: str, **kwargs: Any
    ) -> ShardDataset:
        """A training stream of ``shards``: shuffled, exact or resampled epochs (:meth:`_set_streams`), the last partial
        batch dropped; ``kwargs`` override (e.g. ``batches_per_epoch`` in place of ``samples_per_epoch``)."""
        epoch = {"resampled": self.resampled, "samples_per_epoch": self.samples_per_epoch}
        return self._dataset(
            shards,
            transform,
            batch_size,
            shuffle_buffer=self.shuffle_buffer,
            drop_last=True,
            name=name,
            **{**epoch, **kwargs},
        )

    def _loader(self, dataset: ShardDataset, batches_per_pass: int | None = None) -> ShardLoader:
        if not dataset.resampled and len(dataset.shards.urls) < dataset.world_size * max(1, self.num_workers):
            logger.warning(
                "%s: %d shards for %d ranks x %d workers: some will read nothing; write more, smaller shards",
                dataset.name,
                len(dataset.shards.urls),
                dataset.world_size,
                max(1, self.num_workers),
            )
        return ShardLoader(
            dataset,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            epoch_fn=self._epoch,
            batches_per_pass=batches_per_pass,
        )

    def val_dataloader(self) -> ShardLoader | list[Any]:
        """Every ``val_shards`` sample once through :meth:`eval_transform`, dealt to ranks (none: no validation)."""
        return self._val_loader(self.val_shards, self.val_batch_size)

    def _val_loader(self, shards: Sequence[str] | None, batch_size: int) -> ShardLoader | list[Any]:
        """The validation loader of ``shards`` (none: no validation). Every rank needs a shard: a rank without
        validation batches skips validation, and the metric synchronisation of the others would wait for it."""
        if not shards:
            return []
        loader = self._eval_loader(shards, batch_size, "val")
        require_one_per_rank(len(loader.dataset.shards.urls), loader.dataset.world_size, f"val_shards {list(shards)}")
        return loader

    def _eval_loader(self, shards: Sequence[str], batch_size: int, name: str) -> ShardLoader:
        """Every sample of ``shards`` once, in order, through :meth:`eval_transform`."""
        dataset = self._dataset(shards, self.eval_transform(), batch_size, resampled=False, shuffle=False, name=name)
        return self._loader(dataset)


class LabeledDataModule(_ShardDataModule):
    """Labeled training (the teacher stage): ``train_shards`` through :meth:`train_transform` (:class:`TrainTransform`),
    ``val_shards`` (optional) through :meth:`eval_transform` (:class:`EvalTransform`) at ground-truth resolution.

    Train batches: ``{"image": B x 3 x S x S uint8 RGB, "label": B x S x S float32 in [0, 1] (disparity),
    "mask": B x S x S bool, "key": list[str], "label_kind": list[str]}`` with ``S = size``. Validation batches
    (``val_batch_size``, default 1): ``image`` 3 x h x w (multiples of 14), ``original_size`` B x 2, ``label`` and
    ``mask`` at the original H x W (label raw, in its stored kind), ``key``, ``label_kind``.

    Args: ``train_shards``/``val_shards`` shard specs (directories with manifest.json, brace patterns, globs);
    ``batch_size`` per rank; ``num_workers`` DataLoader workers per rank; ``size`` the training crop / eval shorter
    side (518 in the paper); ``seed`` of every random choice; ``shuffle_buffer`` raw records in the sample shuffle
    buffer; ``resampled`` draws shards with replacement, ``samples_per_epoch`` (default: the manifests' total) per
    epoch, instead of exact epochs (the default: every sample once, the remainder that keeps every rank's batch count
    equal dropped; see :mod:`anydepth.shards.reader`); ``rank``/``world_size`` override the Trainer's (tests).
    """

    def __init__(
        self,
        train_shards: list[str],
        val_shards: list[str] | None = None,
        batch_size: int = 8,
        num_workers: int = 4,
        size: int = 518,
        seed: int = 0,
        shuffle_buffer: int = 1000,
        resampled: bool = False,
        samples_per_epoch: int | None = None,
        val_batch_size: int = 1,
        pin_memory: bool | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__(num_workers, seed, pin_memory, rank, world_size)
        self.save_hyperparameters()
        self._set_streams(
            resampled, samples_per_epoch, shuffle_buffer, val_shards, val_batch_size, train_shards=train_shards
        )
        self.train_shards, self.batch_size, self.size = list(train_shards), batch_size, size

    def train_dataset(self) -> ShardDataset:
        return self._train_dataset(self.train_shards, self.train_transform(), self.batch_size, "labeled")

    def train_dataloader(self) -> ShardLoader:
        return self._loader(self.train_dataset())


class UnlabeledDataModule(_ShardDataModule):
    """Unlabeled or pseudo-labeled shards through :class:`UnlabeledTransform` (train batches as
    :class:`LabeledDataModule`'s; without ``label``/``mask`` for unlabeled shards, ``label_kind`` then None).
    ``predict_dataloader`` reads every sample once through :class:`EvalTransform` (batch ``predict_batch_size``,
    default 1), e.g. for a teacher writing pseudo labels at each image's resolution; ``val_shards`` (labeled,
    optional) validate a student trained on this stream alone (Depth Anything V2)."""

    def __init__(
        self,
        train_shards: list[str],
        batch_size: int = 8,
        num_workers: int = 4,
        size: int = 518,
        seed: int = 0,
        shuffle_buffer: int = 1000,
        resampled: bool = False,
        samples_per_epoch: int | None = None,
        predict_batch_size: int = 1,
        val_shards: list[str] | None = None,
        val_batch_size: int = 1,
        pin_memory: bool | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__(num_workers, seed, pin_memory, rank, world_size)
        self.save_hyperparameters()
        self._set_streams(
            resampled, samples_per_epoch, shuffle_buffer, val_shards, val_batch_size, train_shards=train_shards
        )
        self.train_shards, self.batch_size, self.size = list(train_shards), batch_size, size
        self.predict_batch_size = predict_batch_size

    def train_dataloader(self) -> ShardLoader:
        dataset = self._train_dataset(self.train_shards, UnlabeledTransform(self.size), self.batch_size, "unlabeled")
        return self._loader(dataset)

    def predict_dataloader(self) -> ShardLoader:
        return self._eval_loader(self.train_shards, self.predict_batch_size, "predict")


class MixedDataModule(_ShardDataModule):
    """Student training: each step holds ``labeled_batch_size`` labeled and ``ratio * labeled_batch_size``
    pseudo-labeled (or unlabeled) samples, 1 : 2 by default (paper Sec. 4.1: "The ratio of labeled and unlabeled
    images is set as 1:2 in each batch").

    ``train_dataloader`` returns ``CombinedLoader({"labeled": ..., "unlabeled": ...}, mode="min_size")``; a
    training step gets ``batch = {"labeled": <LabeledDataModule train batch>, "unlabeled": <UnlabeledDataModule
    train batch>}``. An epoch is one sweep over the pseudo-labeled set (the paper's student "sweep[s] across all
    unlabeled images for one time"): an exact epoch of ``B`` steps per rank, ``B`` the pseudo-labeled stream's batches
    of ``ratio * labeled_batch_size``. The labeled stream cycles through its own exact epochs (each with its own
    seeded order; the next starts where the previous ended), cut into passes of ``B`` batches (a
    :class:`~anydepth.shards.reader.ShardLoader` with ``batches_per_pass``), so the two end together: "min_size"
    never restarts a loader mid-epoch, every step has both parts, and the labeled samples come equally often (up to
    the remainders). ``resampled: true`` resamples both streams, ``samples_per_epoch`` (default: the pseudo-labeled
    manifests' total) per epoch, the labeled one cut to the same ``B``.
    ``num_workers`` is per stream (two worker pools). Validation as :class:`LabeledDataModule`.
    """

    def __init__(
        self,
        labeled_shards: list[str],
        pseudo_shards: list[str],
        labeled_batch_size: int = 4,
        ratio: int = LABELED_TO_UNLABELED_RATIO,
        num_workers: int = 4,
        size: int = 518,
        seed: int = 0,
        shuffle_buffer: int = 1000,
        resampled: bool = False,
        samples_per_epoch: int | None = None,
        val_shards: list[str] | None = None,
        val_batch_size: int = 1,
        pin_memory: bool | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__(num_workers, seed, pin_memory, rank, world_size)
        if ratio < 1:
            raise ValueError(f"ratio must be >= 1, got {ratio}")
        self.save_hyperparameters()
        self._set_streams(
            resampled,
            samples_per_epoch,
            shuffle_buffer,
            val_shards,
            val_batch_size,
            labeled_shards=labeled_shards,
            pseudo_shards=pseudo_shards,
        )
        self.labeled_shards, self.pseudo_shards = list(labeled_shards), list(pseudo_shards)
        self.labeled_batch_size, self.ratio, self.size = labeled_batch_size, ratio, size

    @property
    def unlabeled_batch_size(self) -> int:
        return self.ratio * self.labeled_batch_size

    def train_dataloader(self) -> CombinedLoader:
        pseudo = UnlabeledTransform(self.size)
        unlabeled = self._loader(
            self._train_dataset(self.pseudo_shards, pseudo, self.unlabeled_batch_size, "unlabeled")
        )
        steps = len(unlabeled)
        labeled = self._train_dataset(
            self.labeled_shards,
            self.train_transform(),
            self.labeled_batch_size,
            "labeled",
            samples_per_epoch=None,
            batches_per_epoch=steps if self.resampled else None,
        )
        loaders = {"labeled": self._loader(labeled, batches_per_pass=steps), "unlabeled": unlabeled}
        return CombinedLoader(loaders, mode="min_size")


class EvalDataModule(_ShardDataModule):
    """Benchmark evaluation: every sample once, no crop, image at the multiple-of-14 size and label at ground-truth
    resolution (:class:`EvalTransform`); the same loader serves ``validate``, ``test`` and ``predict``. Batches as
    :class:`LabeledDataModule`'s validation batches; ``batch_size > 1`` only for shards of one image size."""

    def __init__(
        self,
        shards: list[str],
        batch_size: int = 1,
        num_workers: int = 2,
        size: int = 518,
        pin_memory: bool | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__(num_workers, 0, pin_memory, rank, world_size)
        self.save_hyperparameters()
        self.check_shards(shards=shards)
        self.shards, self.batch_size, self.size = list(shards), batch_size, size

    def eval_dataloader(self) -> ShardLoader:
        return self._eval_loader(self.shards, self.batch_size, "eval")

    def val_dataloader(self) -> ShardLoader:
        return self.eval_dataloader()

    def test_dataloader(self) -> ShardLoader:
        return self.eval_dataloader()

    def predict_dataloader(self) -> ShardLoader:
        return self.eval_dataloader()
