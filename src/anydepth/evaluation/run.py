"""``evaluate()``: relative (zero-shot) or metric evaluation of a checkpoint or model on benchmark shards
(``anydepth eval``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from anydepth.evaluation.data import BenchmarkDataModule, benchmark_shards
from anydepth.evaluation.evaluator import EVALUATION_WARNINGS, DepthEvaluator, EvalProgressBar
from anydepth.evaluation.protocols import PROTOCOLS, EvaluationError, Protocol
from anydepth.models.depth_anything import DepthAnything
from anydepth.prediction import check_prediction_settings, expected_warnings_ignored, offline_trainer

__all__ = ["evaluate"]


def evaluate(
    checkpoint_or_model: str | os.PathLike | nn.Module,
    benchmarks: Sequence[str],
    data_root: str | os.PathLike,
    input_size: int = 518,
    batch_size: int = 1,
    num_workers: int = 2,
    devices: int | str | Sequence[int] = 1,
    accelerator: str = "auto",
    strategy: str = "auto",
    precision: str | int | None = None,
    protocols: Mapping[str, Protocol] | None = None,
    progress: bool = True,
    encoder: str | None = None,
    version: str | None = None,
    **trainer_kwargs: Any,
) -> dict[str, dict[str, float]]:
    """Evaluation of a checkpoint (any format ``DepthAnything.from_checkpoint`` reads, with the optional
    ``encoder``/``version`` hints) or a model on ``benchmarks``, each read from ``data_root/<benchmark>`` or the
    directory its protocol names (:meth:`Protocol.shard_dir`; a directory with ``manifest.json`` written by
    ``anydepth shards build``). Relative protocols align each prediction (zero-shot, Table 2); metric ones
    (``align: none``, e.g. :data:`~anydepth.evaluation.METRIC_BENCHMARKS`) score a metric model's metres as they are
    (Tables 3-4), and refuse a relative model.

    Runs ``lightning.Trainer(accelerator, devices, strategy, precision, **trainer_kwargs).test`` (an
    :func:`~anydepth.prediction.offline_trainer`) once over one loader per benchmark; ``devices=N`` evaluates under
    DDP with every sample read once. ``input_size`` is the network's shorter input side (518 in the paper);
    ``batch_size > 1`` only for benchmarks whose images share one size. ``protocols`` defaults to the registry's
    :data:`PROTOCOLS` (see :func:`load_protocols`).

    Returns:
        ``{benchmark: {"abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog", "d1", "d2", "d3": float,
        "images": int}}`` in the order of ``benchmarks``; the same on every rank.

    Raises:
        EvaluationError: an unknown benchmark, missing / incomplete shards (all problems in one message), or a
            relative model on a metric protocol.
    """
    protocols = PROTOCOLS if protocols is None else protocols
    benchmarks = list(dict.fromkeys(benchmarks))
    check_prediction_settings(input_size, batch_size, error=EvaluationError)
    shards = benchmark_shards(benchmarks, data_root, protocols)
    if isinstance(checkpoint_or_model, nn.Module):
        model = checkpoint_or_model
    else:
        model = DepthAnything.from_checkpoint(checkpoint_or_model, encoder=encoder, version=version)
    evaluator = DepthEvaluator.from_model(model, protocols, benchmarks)
    data = BenchmarkDataModule(shards, batch_size=batch_size, num_workers=num_workers, input_size=input_size)
    settings = dict(
        accelerator=accelerator, devices=devices, strategy=strategy, precision=precision, enable_progress_bar=progress
    )
    trainer = offline_trainer([EvalProgressBar()] if progress else [], **{**settings, **trainer_kwargs})
    data.check_world_size(trainer.world_size)  # fail early (before any DDP launch) with too few shards
    with expected_warnings_ignored(*EVALUATION_WARNINGS):
        trainer.test(evaluator, dataloaders=data, verbose=False)
    return {name: evaluator.results[name] for name in benchmarks}
