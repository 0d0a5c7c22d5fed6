"""Depth evaluation on the paper's benchmarks: zero-shot relative depth (Depth Anything, Table 2) and metric depth
(Sec. 4.3, Tables 3-4).

- :mod:`~anydepth.evaluation.protocols`: :class:`Protocol` (depth range, crop, alignment of one benchmark) and the
  one registry, ``protocols.yaml`` shipped in this package: :data:`PROTOCOLS` (the seven zero-shot paper benchmarks,
  the metric ones and the offline ``demo`` set), :data:`DEFAULT_BENCHMARKS` (the paper's seven, relative mode) and
  :data:`METRIC_BENCHMARKS` (NYUv2 and KITTI, metric mode: ``align: none``); :func:`load_protocols` merges a user's
  YAML over it field by field.
- :mod:`~anydepth.evaluation.data`: :func:`benchmark_shards` (``data_root/<benchmark>/manifest.json``, built by
  ``anydepth shards build --source <benchmark>``, or the directory a protocol names with ``shards``, checked with
  one error listing every problem) and :class:`BenchmarkDataModule` (every sample read once, shards dealt to ranks).
- :mod:`~anydepth.evaluation.evaluator`: :class:`DepthEvaluator`, the LightningModule that scores each image
  (prediction upsampled to the ground truth, per-image least-squares scale and shift in disparity space), and
  :class:`EvalProgressBar`; a metric model's depth is compared as it is by metric protocols and inverted to
  disparity (then aligned) by relative ones.
- :mod:`~anydepth.evaluation.report`: :func:`format_markdown_table` and :func:`write_report` (JSON).
- :mod:`~anydepth.evaluation.run`: :func:`evaluate` runs the evaluator with ``lightning.Trainer.test``
  (``anydepth eval``). The same two classes run from a LightningCLI config: ``anydepth test --config
  configs/eval/test.yaml --model.init_args.checkpoint CKPT``.

The names that need Lightning (data module, evaluator, :func:`evaluate`) are imported on first use, so reading the
registry (as the command line does to list the benchmarks) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from anydepth.evaluation.protocols import (
    BENCHMARK_SETS,
    CROPS,
    DEFAULT_BENCHMARKS,
    DEFAULT_PROTOCOLS_YAML,
    METRIC_BENCHMARKS,
    MODES,
    PROTOCOLS,
    EvaluationError,
    Protocol,
    check_mode,
    default_benchmarks,
    expand_benchmarks,
    load_protocols,
    protocol_table,
)
from anydepth.evaluation.report import IMAGES, Results, format_markdown_table, write_report
from anydepth.models.preprocess import upsample_prediction

if TYPE_CHECKING:
    from anydepth.evaluation.data import BenchmarkDataModule, benchmark_shards
    from anydepth.evaluation.evaluator import DepthEvaluator, EvalProgressBar
    from anydepth.evaluation.run import evaluate

__all__ = [
    "BENCHMARK_SETS",
    "CROPS",
    "DEFAULT_BENCHMARKS",
    "DEFAULT_PROTOCOLS_YAML",
    "IMAGES",
    "METRIC_BENCHMARKS",
    "MODES",
    "PROTOCOLS",
    "BenchmarkDataModule",
    "DepthEvaluator",
    "EvalProgressBar",
    "EvaluationError",
    "Protocol",
    "Results",
    "benchmark_shards",
    "check_mode",
    "default_benchmarks",
    "evaluate",
    "expand_benchmarks",
    "format_markdown_table",
    "load_protocols",
    "protocol_table",
    "upsample_prediction",
    "write_report",
]

_LAZY = {
    "BenchmarkDataModule": "data",
    "benchmark_shards": "data",
    "DepthEvaluator": "evaluator",
    "EvalProgressBar": "evaluator",
    "evaluate": "run",
}
"""The public names imported on first use (their modules import Lightning)."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
