"""``anydepth eval``: zero-shot metrics of one or more checkpoints on benchmark shards (paper Table 2)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from anydepth.cli.common import (
    EXIT_OK,
    PROG,
    UsageError,
    add_checkpoint_arguments,
    add_prediction_run_arguments,
    plural,
)
from anydepth.evaluation.protocols import DEFAULT_BENCHMARKS, PROTOCOLS, EvaluationError  # no Lightning: cheap


def _model_names(checkpoints: Sequence[Path], names: Sequence[str] | None) -> list[str]:
    """One label per ``--checkpoint``: the ``--name`` values in order, else each checkpoint's file stem; distinct."""
    if names and len(names) != len(checkpoints):
        raise UsageError(f"give one --name per --checkpoint: {len(checkpoints)} checkpoint(s), {len(names)} name(s)")
    labels = list(names) if names else [checkpoint.stem for checkpoint in checkpoints]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise UsageError(f"model name(s) {', '.join(repeated)} label several checkpoints; give distinct --name values")
    return labels


def run_eval(args: argparse.Namespace) -> int:
    """``anydepth eval``: zero-shot metrics of one or more checkpoints on benchmark shards; one Markdown table on
    stdout (with a model column for several checkpoints or any ``--name``)."""
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
    benchmarks = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    protocols = load_protocols(args.protocols)
    per_model: dict[str, dict[str, dict[str, float]]] = {}
    for name, checkpoint in zip(names, args.checkpoint, strict=True):
        if len(names) > 1 and rank_zero_only.rank == 0:
            print(f"{PROG} {args.command}: evaluating {name} ({checkpoint})", file=sys.stderr)
        per_model[name] = evaluate(
            checkpoint,
            benchmarks,
            args.data_root,
            input_size=args.input_size,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            devices=args.devices,
            accelerator=args.accelerator,
            precision=args.precision,
            protocols=protocols,
            encoder=args.encoder,
            version=args.version,
        )
    if rank_zero_only.rank != 0:  # DDP: every rank holds the (synchronised) results; rank 0 reports them
        return EXIT_OK
    if args.name or len(names) > 1:  # one table and report with a model column / entry per checkpoint
        results, checkpoints = per_model, dict(zip(names, args.checkpoint, strict=True))
    else:
        results, checkpoints = per_model[names[0]], args.checkpoint[0]
    print(format_markdown_table(results))
    if args.output is not None:
        write_report(args.output, results, protocols, checkpoints, args.input_size)
        models = f" of {plural(len(names), 'model')}" if len(names) > 1 else ""
        print(f"wrote metrics{models} on {plural(len(benchmarks), 'benchmark')} to {args.output}", file=sys.stderr)
    return EXIT_OK


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``anydepth eval``."""
    parser = subparsers.add_parser(
        "eval",
        help="zero-shot relative depth metrics on benchmark shards (the paper's Table 2)",
        description=(
            "Evaluate one or more checkpoints on benchmark shards DIR/<benchmark> (built with anydepth shards build "
            "--source <benchmark> --out DIR/<benchmark>, or the directory a protocol names with 'shards'): "
            "per-image least-squares scale and shift in disparity space, prediction upsampled to the ground truth "
            "(depth, or disparity taken as depth up to scale), each benchmark's depth range and crop "
            "(the registry anydepth/evaluation/protocols.yaml). Prints one Markdown table (AbsRel, delta1, ...; "
            "with a model column for several checkpoints or --name) on stdout; progress on stderr. Exit code: 0 "
            "done, 2 usage error (e.g. missing shards)."
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
        default=",".join(DEFAULT_BENCHMARKS),
        metavar="LIST",
        help=f"comma-separated benchmark names: any of {','.join(PROTOCOLS)} or names added by --protocols "
        "(default: %(default)s, the paper's Table 2)",
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
    parser.set_defaults(func=run_eval)
    return parser
