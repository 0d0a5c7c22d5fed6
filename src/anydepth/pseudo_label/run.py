"""``pseudo_label()``: the data engine stage (paper Sec. 3.2) as one call (``anydepth pseudo-label``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.utilities.exceptions import MisconfigurationException

from anydepth.locks import OutputLock
from anydepth.prediction import check_prediction_settings, expected_warnings_ignored, offline_trainer
from anydepth.pseudo_label.labeler import PseudoLabelDataModule, PseudoLabeler
from anydepth.pseudo_label.state import PseudoLabelError, check_output, input_shards
from anydepth.pseudo_label.writer import PseudoLabelWriter
from anydepth.shards.manifest import Manifest

__all__ = ["PSEUDO_LABEL_WARNINGS", "pseudo_label"]

PSEUDO_LABEL_WARNINGS = (
    "Couldn't infer the batch indices",  # the writer does not need them
    ".*overridden `transfer_batch_to_device`",  # PseudoLabeler's, by design: only the image goes to the device
)
"""Pseudo-labelling's expected warnings, beyond :data:`~anydepth.prediction.EXPECTED_WARNINGS`."""


def _trainer(writer: PseudoLabelWriter, **settings: Any) -> pl.Trainer:
    """:func:`~anydepth.prediction.offline_trainer` with ``writer``; a setting Lightning refuses (``num_nodes=0``, an
    unknown strategy, a GPU that is not there) is a :class:`PseudoLabelError`."""
    try:
        return offline_trainer([writer], **settings)
    except (ValueError, MisconfigurationException) as err:
        raise PseudoLabelError(f"invalid run settings: {err}") from err


def pseudo_label(
    checkpoint: str | os.PathLike,
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    input_size: int = 518,
    flip_tta: bool = False,
    batch_size: int = 1,
    num_workers: int | None = None,
    accelerator: str = "auto",
    devices: int | str | Sequence[int] = "auto",
    num_nodes: int = 1,
    strategy: str = "auto",
    precision: str = "32-true",
    resume: bool = True,
    encoder: str | None = None,
    version: str | None = None,
    reduced_decode: bool = True,
    encode_threads: int | None = None,
    **trainer_kwargs: Any,
) -> Manifest:
    """Pseudo-label the shards ``inputs`` with the teacher ``checkpoint`` into ``out`` (see
    :mod:`anydepth.pseudo_label`).

    Every process of a DDP run calls this (Lightning's launcher or SLURM starts them). ``accelerator``, ``devices``,
    ``num_nodes``, ``strategy``, ``precision`` and ``trainer_kwargs`` go to ``lightning.Trainer`` (an
    :func:`~anydepth.prediction.offline_trainer`); ``encoder`` / ``version`` are the checkpoint hints of
    :meth:`DepthAnything.from_checkpoint`; ``num_workers`` (per device, None: the
    :func:`~anydepth.pseudo_label.labeler.default_workers`) and ``reduced_decode`` (JPEGs decoded at a reduced
    scale, default on) as :class:`~anydepth.pseudo_label.labeler.PseudoLabelDataModule`; ``encode_threads`` as
    :class:`~anydepth.pseudo_label.writer.PseudoLabelWriter` (labels encoded while the model runs). Returns the
    written manifest (on every rank). Raises ``CheckpointError`` for a bad checkpoint and :class:`PseudoLabelError`
    for bad settings (those Lightning refuses included), missing inputs or inputs without manifest counts, and an
    ``out`` that cannot be resumed.

    The process of global rank 0 holds :class:`~anydepth.locks.OutputLock` on ``out`` while predicting, so a second
    run into ``out`` stops at once with :class:`~anydepth.locks.OutputLockedError` (naming this process). Only rank 0
    locks: every rank writes its own shards into ``out``, and the ranks are separate processes (Lightning's launcher
    re-runs the command, SLURM or torchrun start each one), so one lock per rank would refuse the others. With
    ``ddp_spawn`` the launching process is rank 0 and holds it while its children predict.
    """
    check_prediction_settings(input_size, batch_size, num_workers or 0, PseudoLabelError)
    try:
        writer = PseudoLabelWriter(out, encode_threads)
    except ValueError as err:  # its settings, checked before the teacher loads
        raise PseudoLabelError(str(err)) from None
    specs = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    input_shards(specs)  # fail on missing inputs before loading the teacher
    labeler = PseudoLabeler(checkpoint, flip_tta, encoder, version)
    settings = labeler.teacher_settings()
    data = PseudoLabelDataModule(
        specs, out, settings, input_size, batch_size, num_workers, resume, None, reduced_decode
    )
    check_output(data.out, data.state, resume)  # once here, before any DDP process starts
    trainer = _trainer(
        writer,
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=precision,
        **trainer_kwargs,
    )
    # global rank 0 only (see above); the Trainer knows its rank from the launcher's environment before predicting
    with OutputLock(out, "pseudo-label") if trainer.global_rank == 0 else nullcontext():
        with expected_warnings_ignored(*PSEUDO_LABEL_WARNINGS):
            trainer.predict(labeler, datamodule=data, return_predictions=False)
    return writer.manifest or Manifest.load(out)  # spawn-based strategies set the manifest in child processes only
