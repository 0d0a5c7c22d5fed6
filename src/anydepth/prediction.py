"""The offline prediction runner: one pass of a model over shards, nothing trained, nothing logged.

Zero-shot evaluation (:func:`anydepth.evaluation.evaluate`) and pseudo-labelling
(:func:`anydepth.pseudo_label.pseudo_label`) check their options with :func:`check_prediction_settings`, build their
Trainer with :func:`offline_trainer` and run it under :func:`expected_warnings_ignored`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

__all__ = ["EXPECTED_WARNINGS", "check_prediction_settings", "expected_warnings_ignored", "offline_trainer"]

OFFLINE_SETTINGS: dict[str, Any] = dict(logger=False, enable_checkpointing=False, enable_model_summary=False)
"""What :func:`offline_trainer` sets unless told otherwise: a prediction run has no logs, checkpoints or summary."""

EXPECTED_WARNINGS = (
    ".*IterableDataset.*has `__len__` defined",  # the shard datasets' __len__ is exact per worker
    ".*local rank has zero length",  # DDP: a rank holds no shard of some dataloader (dealt round-robin)
    ".*across ranks is zero",  # the same for a whole run: nothing pending, or fewer shards than ranks
)
"""Lightning warnings that reading shards once, dealt to ranks, triggers by design."""


def check_prediction_settings(
    input_size: int, batch_size: int, num_workers: int = 0, error: type[ValueError] = ValueError
) -> None:
    """Raise ``error`` naming the setting unless ``input_size >= 14`` (one ViT patch), ``batch_size >= 1`` and
    ``num_workers >= 0``: the options of every tool that runs a model over shards (evaluation, pseudo-labels)."""
    if input_size < 14:
        raise error(f"input_size must be at least 14 (one ViT patch), got {input_size}")
    if batch_size < 1:
        raise error(f"batch_size must be at least 1, got {batch_size}")
    if num_workers < 0:
        raise error(f"num_workers must be >= 0, got {num_workers}")


def offline_trainer(callbacks: Sequence[Callback] = (), **settings: Any) -> pl.Trainer:
    """``lightning.Trainer`` for one offline pass: :data:`OFFLINE_SETTINGS` overridden by ``settings`` (a
    ``precision`` of None is Lightning's default); the tool's own ``callbacks`` first, then the caller's
    ``settings["callbacks"]``."""
    own = [*callbacks, *(settings.pop("callbacks", None) or [])]
    if settings.get("precision", 0) is None:
        del settings["precision"]
    return pl.Trainer(**{**OFFLINE_SETTINGS, **settings}, callbacks=own)


@contextmanager
def expected_warnings_ignored(*messages: str) -> Iterator[None]:
    """Within the block, ignore :data:`EXPECTED_WARNINGS` and the warnings matching ``messages`` (regexes)."""
    with warnings.catch_warnings():
        for message in (*EXPECTED_WARNINGS, *messages):
            warnings.filterwarnings("ignore", message=message)
        yield
