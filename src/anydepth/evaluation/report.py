"""Evaluation results as a Markdown table (stdout) and as a JSON report (``anydepth eval --output``)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from anydepth.evaluation.protocols import Protocol
from anydepth.files import atomic_write_json

__all__ = ["IMAGES", "Results", "format_markdown_table", "write_report"]

IMAGES = "images"
"""Key of the number of images scored (images with at least one valid pixel) in each benchmark's results."""

Results = Mapping[str, Mapping[str, Any]]
"""One model's ``{benchmark: {metric: value}}`` (what :func:`~anydepth.evaluation.evaluate` returns)."""

_COLUMNS = {
    "abs_rel": "AbsRel",
    "d1": "δ1",
    "sq_rel": "SqRel",
    "rmse": "RMSE",
    "rmse_log": "RMSE log",
    "log10": "log10",
    "silog": "SILog",
    "d2": "δ2",
    "d3": "δ3",
    IMAGES: "images",
}
_ORDER = ("abs_rel", "d1", "sq_rel", "rmse", "rmse_log", "log10", "silog", "d2", "d3", IMAGES)
_METRIC_ORDER = ("d1", "d2", "d3", "abs_rel", "rmse", "log10", "rmse_log", "sq_rel", "silog", IMAGES)
"""Metric depth tables: the columns of the paper's Tables 3 (NYUv2) and 4 (KITTI) first, in their order."""


def _cell(name: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if name == IMAGES:
        return str(int(value))
    return f"{float(value):.3f}"


def _per_model(results: Results | Mapping[str, Results]) -> bool:
    """Whether ``results`` is ``{model: {benchmark: {metric: value}}}`` (metric values are numbers, not mappings)."""
    return any(isinstance(value, Mapping) for inner in results.values() for value in inner.values())


def _benchmarks_of(per_model: Mapping[str, Results]) -> list[str]:
    """Every benchmark of ``{model: {benchmark: ...}}``, in order of first appearance."""
    return list(dict.fromkeys(name for results in per_model.values() for name in results))


def format_markdown_table(results: Results | Mapping[str, Results], metric: bool = False) -> str:
    """One model's ``{benchmark: {metric: value}}`` as a Markdown table: one row per benchmark (in the given order),
    columns AbsRel and δ1 first, then SqRel, RMSE, RMSE log, log10, SILog, δ2, δ3, images (the metrics present);
    with ``metric`` (metric depth), the paper's Tables 3-4 order: δ1, δ2, δ3, AbsRel, RMSE, log10, RMSE log, then
    SqRel, SILog, images. Values with 3 decimals (``n/a`` for NaN, i.e. no valid image). Unknown metric keys follow
    under their own name.

    Several models' ``{model: {benchmark: {metric: value}}}`` give one table with a ``model`` column after
    ``benchmark``: rows grouped by benchmark (in order of first appearance) and, within a group, one per model that
    has the benchmark, in the given order, so the numbers to compare sit on adjacent rows."""
    if _per_model(results):
        labels = ["benchmark", "model"]
        rows = [([b, m], results[m][b]) for b in _benchmarks_of(results) for m in results if b in results[m]]
    else:
        labels, rows = ["benchmark"], [([name], metrics) for name, metrics in results.items()]
    present = {key for _, metrics in rows for key in metrics}
    order = _METRIC_ORDER if metric else _ORDER
    keys = [k for k in order if k in present] + sorted(present - set(order))
    lines = [
        "| " + " | ".join([*labels, *(_COLUMNS.get(k, k) for k in keys)]) + " |",
        "| " + " | ".join(["---"] * (len(labels) + len(keys))) + " |",
    ]
    for row, metrics in rows:
        lines.append("| " + " | ".join([*row, *(_cell(k, metrics.get(k)) for k in keys)]) + " |")
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    """NaN (a benchmark without valid pixels) -> null, so the file is strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_report(
    path: str | os.PathLike,
    results: Results | Mapping[str, Results],
    protocols: Mapping[str, Protocol],
    checkpoint: str | os.PathLike | Mapping[str, str | os.PathLike] | None,
    input_size: int | None,
) -> Path:
    """Write the ``anydepth eval --output`` / ``DepthEvaluator(output=...)`` file to ``path`` as strict JSON (NaN ->
    null; parents created; atomic and durable, :func:`~anydepth.files.atomic_write_json`). One model (``results``
    ``{benchmark: {metric: value}}``, its ``checkpoint`` path or None): ``{"metrics", "protocols", "checkpoint",
    "input_size"}``. Several models (``results`` ``{model: {benchmark: ...}}``, ``checkpoint`` ``{model: path}``):
    ``{"models": {model: {"checkpoint", "metrics"}}, "protocols", "input_size"}``; ``protocols`` holds every
    benchmark scored."""
    if isinstance(checkpoint, Mapping):
        benchmarks = _benchmarks_of(results)
        head: dict[str, Any] = {
            "models": {m: {"checkpoint": str(checkpoint[m]), "metrics": dict(r)} for m, r in results.items()}
        }
    else:
        benchmarks = list(results)
        head = {"metrics": dict(results), "checkpoint": None if checkpoint is None else str(checkpoint)}
    report = {**head, "protocols": {name: protocols[name].to_dict() for name in benchmarks}, "input_size": input_size}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, _json_safe(report), sort_keys=False)
    return path
