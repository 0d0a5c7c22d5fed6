"""``anydepth export``: a checkpoint as an ONNX, TorchScript or ``torch.export`` file, checked against PyTorch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from anydepth.cli.common import EXIT_OK, PROG, UsageError, add_checkpoint_arguments, checkpoint_options
from anydepth.export import FORMATS, PRECISIONS, TOLERANCES, ExportError, ExportReport, ParityError
from anydepth.export.module import MAX_PATCHES, MIN_PATCHES
from anydepth.export.spec import check_input_size
from anydepth.models.depth_anything import DepthAnything
from anydepth.models.encoder import PATCH_SIZE

EXIT_MISMATCH = 1
"""The file was written but disagrees with the PyTorch model beyond the tolerance (and was removed)."""


def describe(report: ExportReport) -> str:
    """One line: what was written where, its input, and the check's differences."""
    spec, cfg = report.spec, report.spec.config
    head = f"metric (max {cfg.max_depth:g} m)" if cfg.head == "metric" else "relative"
    size = "x".join(map(str, spec.input_size)) if spec.input_size else "dynamic H x W"
    image = spec.contract()["input"]
    checked = ", ".join(f"{d:.1e} at {h}x{w}" for (h, w), d in report.differences.items())
    return (
        f"wrote {spec.format} {spec.precision} export of a {cfg.encoder} Depth Anything {cfg.version} {head} model "
        f"to {report.path}: input '{image['name']}' {image['dtype']} {image['layout']}, {size}; "
        f"max relative difference to PyTorch {checked} (tolerance {spec.tolerance:g})"
    )


def run_export(args: argparse.Namespace) -> int:
    """``anydepth export``: load, export, check; ``ExportError`` -> exit 2, a failed check -> exit 1 (one line)."""
    try:
        input_size = check_input_size(args.input_size)
        model = DepthAnything.from_checkpoint(args.checkpoint, **checkpoint_options(args))
        report = model.export(args.output, args.format, args.precision, input_size, args.bake_preprocessing)
    except ParityError as err:
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return EXIT_MISMATCH
    except ExportError as err:
        raise UsageError(str(err)) from err
    print(describe(report))
    return EXIT_OK


def add_export_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``anydepth export``."""
    low, high = MIN_PATCHES * PATCH_SIZE, MAX_PATCHES * PATCH_SIZE
    parser = subparsers.add_parser(
        "export",
        help="export a checkpoint to ONNX, TorchScript or torch.export, checked against PyTorch",
        description=(
            "Read any checkpoint anydepth understands (relative or metric head) and write a deployable file: ONNX "
            "(opset 18, for onnxruntime and TensorRT), TorchScript (traced) or a torch.export archive (.pt2). The "
            f"batch is dynamic; height and width are dynamic multiples of {PATCH_SIZE} ({low} to {high} px) unless "
            "--input-size fixes them. The file records the model (encoder, version, head, max depth) and its input "
            "contract. Every export is loaded back and run on two photos at two sizes against the PyTorch model; "
            f"a max relative difference over {TOLERANCES['fp32']:g} (fp32) or {TOLERANCES['fp16']:g} (fp16) "
            f"removes the file and exits with code {EXIT_MISMATCH}."
        ),
    )
    add_checkpoint_arguments(parser)
    parser.add_argument("--format", required=True, choices=FORMATS, help="output format")
    parser.add_argument("--output", required=True, type=Path, help="output file (.onnx, .pt, .pt2)")
    parser.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        default=None,
        metavar=("H", "W"),
        help=f"fixed network input size, both multiples of {PATCH_SIZE} (default: dynamic height and width)",
    )
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="fp32", help="weights and activations (default fp32)"
    )
    parser.add_argument(
        "--bake-preprocessing",
        action="store_true",
        help="take uint8 RGB B x H x W x 3 at the network size; /255 and ImageNet normalisation run in the graph",
    )
    parser.set_defaults(func=run_export)
    return parser
