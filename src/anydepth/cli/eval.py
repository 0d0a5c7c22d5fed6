"""``anydepth eval``: metrics of one or more checkpoints on benchmark shards: zero-shot relative depth (paper Table 2)
or metric depth (Tables 3-4)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from anydepth.cli.common import (
    EXIT_OK,
    PROG,
    UsageError,
    add_checkpoint_arguments,
    add_prediction_run_arguments,
    checkpoint_options,
    plural,
)
from anydepth.cli.segment import add_task_arguments, resolve_task, run_seg_eval
from anydepth.evaluation.protocols import (  # no Lightning: cheap
    BENCHMARK_SETS,
    DEFAULT_BENCHMARKS,
    METRIC_BENCHMARKS,
    MODES,
    PROTOCOLS,
    EvaluationError,
    Protocol,
    check_mode,
    default_benchmarks,
    expand_benchmarks,
)
from anydepth.inference import model_head
from anydepth.models.depth_anything import DepthAnything


def _model_names(checkpoints: Sequence[Path], names: Sequence[str] | None) -> list[str]:
    """One label per ``--checkpoint``: the ``--name`` values in order, else each checkpoint's file stem; distinct."""
    if names and len(names) != len(checkpoints):
        raise UsageError(f"give one --name per --checkpoint: {len(checkpoints)} checkpoint(s), {len(names)} name(s)")
    labels = list(names) if names else [checkpoint.stem for checkpoint in checkpoints]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise UsageError(f"model name(s) {', '.join(repeated)} label several checkpoints; give distinct --name values")
    return labels


def run_mode(model: nn.Module, checkpoint: Path, asked: str | None, first: tuple[str, Path] | None) -> str:
    """The run's mode: ``--mode`` (``asked``), else the first checkpoint's head (``first``: its mode and path), which
    every later checkpoint must share. A relative model has no metres to score in metric mode."""
    head = model_head(model)
    if asked == "metric" and head != "metric":
        raise UsageError(
            f"--mode metric: {checkpoint} is a relative model (it predicts disparity up to scale and shift, no "
            "metres); evaluate it with --mode relative"
        )
    if asked is not None:
        return asked
    if first is not None and head != first[0]:
        raise UsageError(
            f"{checkpoint} is a {head} model but {first[1]} is {first[0]}: give --mode relative to compare them in "
            "one table (a metric model's depth is then inverted and aligned as disparity)"
        )
    return head


def run_benchmarks(text: str | None, protocols: dict[str, Protocol], mode: str) -> list[str]:
    """``--benchmarks`` (comma-separated; a set name such as ``marigold`` stands for its members,
    :func:`expand_benchmarks`), else the registry's defaults of ``mode``; every one of ``mode``."""
    names = expand_benchmarks([b.strip() for b in text.split(",") if b.strip()]) if text else []
    names = names or list(default_benchmarks(mode))
    check_mode(names, protocols, mode)
    return names


def run_eval(args: argparse.Namespace) -> int:
    """``anydepth eval``: metrics of one or more checkpoints on benchmark shards; one Markdown table on stdout (with
    a model column for several checkpoints or any ``--name``); ``--task seg``: :func:`run_seg_eval`."""
    if resolve_task(args) == "seg":
        return run_seg_eval(args)
    try:
        return _run_eval(args)
    except EvaluationError as err:
        raise UsageError(str(err)) from err


def _run_eval(args: argparse.Namespace) -> int:
    from lightning.pytorch.utilities import rank_zero_only  # imported here: Lightning slows every command's start

    from anydepth.evaluation import evaluate, format_markdown_table, load_protocols, write_report

    if args.input_size < 14:
        raise UsageError(f"--input-size must be at least 14 (one ViT patch), got {args.input_size}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.num_workers < 0:
        raise UsageError(f"--num-workers must be >= 0, got {args.num_workers}")
    if args.output is not None and args.output.is_dir():
        raise UsageError(f"--output {args.output} is a directory; give a file name such as metrics.json")
    names = _model_names(args.checkpoint, args.name)
    missing = [str(c) for c in args.checkpoint if not c.exists()]
    if missing:  # before the first checkpoint's evaluation, not after it
        raise UsageError(f"--checkpoint: no such file or directory: {', '.join(missing)}")
    protocols = load_protocols(args.protocols)
    if args.mode is not None:  # a wrong benchmark for the mode fails before any checkpoint is read
        run_benchmarks(args.benchmarks, protocols, args.mode)
    per_model: dict[str, dict[str, dict[str, float]]] = {}
    first: tuple[str, Path] | None = None
    for name, checkpoint in zip(names, args.checkpoint, strict=True):
        if len(names) > 1 and rank_zero_only.rank == 0:
            print(f"{PROG} {args.command}: evaluating {name} ({checkpoint})", file=sys.stderr)
        model = DepthAnything.from_checkpoint(checkpoint, **checkpoint_options(args))
        mode = run_mode(model, checkpoint, args.mode, first)
        first = first or (mode, checkpoint)
        benchmarks = run_benchmarks(args.benchmarks, protocols, mode)
        per_model[name] = evaluate(
            model,
            benchmarks,
            args.data_root,
            input_size=args.input_size,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            devices=args.devices,
            accelerator=args.accelerator,
            precision=args.precision,
            protocols=protocols,
        )
    if rank_zero_only.rank != 0:  # DDP: every rank holds the (synchronised) results; rank 0 reports them
        return EXIT_OK
    if args.name or len(names) > 1:  # one table and report with a model column / entry per checkpoint
        results, checkpoints = per_model, dict(zip(names, args.checkpoint, strict=True))
    else:
        results, checkpoints = per_model[names[0]], args.checkpoint[0]
    print(format_markdown_table(results, metric=mode == "metric"))  # every checkpoint ran in one mode
    if args.output is not None:
        write_report(args.output, results, protocols, checkpoints, args.input_size)
        models = f" of {plural(len(names), 'model')}" if len(names) > 1 else ""
        print(f"wrote metrics{models} on {plural(len(benchmarks), 'benchmark')} to {args.output}", file=sys.stderr)
    return EXIT_OK


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``anydepth eval``."""
    parser = subparsers.add_parser(
        "eval",
        help="depth metrics on benchmark shards: zero-shot relative (Table 2) or metric (Tables 3-4)",
        description=(
            "Evaluate one or more checkpoints on benchmark shards DIR/<benchmark> (built with anydepth shards build "
            "--source <benchmark> --out DIR/<benchmark>, or the directory a protocol names with 'shards'), the "
            "prediction upsampled to the ground truth, each benchmark's depth range and crop (the registry "
            "anydepth/evaluation/protocols.yaml). Relative mode (zero-shot, the paper's Table 2): per-image "
            "least-squares scale and shift in disparity space (ground truth depth, or disparity taken as depth up to "
            "scale). Metric mode (Tables 3-4): a metric model's depth in metres scored as it is, nothing aligned. "
            "Prints one Markdown table (with a model column for several checkpoints or --name) on stdout; progress "
            "on stderr. Exit code: 0 done, 2 usage error (e.g. missing shards)."
        ),
        conflict_handler="resolve",  # eval's repeatable --checkpoint replaces the shared single one
    )
    add_checkpoint_arguments(parser)
    parser.add_argument(
        "--checkpoint",
        required=True,
        type=Path,
        action="append",
        metavar="CKPT",
        help="official Depth Anything .pth, transformers model directory or anydepth/Lightning checkpoint; repeat "
        "to compare several in one table (--encoder/--version apply to each)",
    )
    parser.add_argument(
        "--name",
        action="append",
        default=None,
        metavar="LABEL",
        help="model label in the table and JSON, once per --checkpoint in the same order (default: file stems)",
    )
    parser.add_argument(
        "--benchmarks",
        default=None,
        metavar="LIST",
        help=f"comma-separated benchmark names: any of {','.join(PROTOCOLS)}, a set ({','.join(BENCHMARK_SETS)}: "
        "its members) or names added by --protocols, all of "
        f"the run's mode (default: relative {','.join(DEFAULT_BENCHMARKS)}, the paper's Table 2; metric "
        f"{','.join(METRIC_BENCHMARKS)}, Tables 3-4)",
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default=None,
        help="relative: align each prediction (zero-shot); metric: score metres as they are, metric checkpoints only "
        "(default: the checkpoint's head; several checkpoints must share it)",
    )
    parser.add_argument(
        "--data-root",
        required=True,
        type=Path,
        metavar="DIR",
        help="directory holding one shard directory (with manifest.json) per benchmark",
    )
    add_prediction_run_arguments(parser, devices=1)
    parser.add_argument(
        "--precision",
        default=None,
        choices=("32", "16-mixed", "bf16-mixed"),
        help="Lightning precision (default: 32)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write all metrics as JSON (several checkpoints: one entry per model under 'models')",
    )
    parser.add_argument(
        "--protocols",
        type=Path,
        default=None,
        metavar="YAML",
        help="YAML of 'name: {field: value}' merged field by field over the protocol registry "
        "(anydepth/evaluation/protocols.yaml; its header shows how)",
    )
    add_task_arguments(parser, "eval")
    parser.set_defaults(func=run_eval)
    return parser
