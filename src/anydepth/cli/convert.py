"""``anydepth convert``: rewrite a checkpoint in another format (official ``.pth``, transformers, anydepth)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from anydepth.checkpoints import FORMATS
from anydepth.cli.common import EXIT_OK, add_checkpoint_arguments, checkpoint_options
from anydepth.models.depth_anything import DepthAnything


def run_convert(args: argparse.Namespace) -> int:
    """``anydepth convert``: load any supported checkpoint and write it in another format (a ``CheckpointError``, exit
    code 2, where that format cannot represent the model: :func:`~anydepth.checkpoints.save.save_checkpoint`)."""
    model = DepthAnything.from_checkpoint(args.checkpoint, **checkpoint_options(args))
    model.save_checkpoint(args.output, format=args.format)
    head = f"metric (max {model.config.max_depth:g} m)" if model.config.head == "metric" else "relative"
    print(
        f"wrote {args.format} checkpoint of a {model.config.encoder} Depth Anything {model.config.version} {head} "
        f"model to {args.output}"
    )
    return EXIT_OK


def add_convert_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``anydepth convert``."""
    parser = subparsers.add_parser(
        "convert",
        help="convert a checkpoint to the official, transformers or anydepth format",
        description=(
            "Read any checkpoint anydepth understands and write it as an official Depth Anything .pth "
            "(--format official), a transformers DepthAnythingForDepthEstimation directory (--format hf), "
            "or an anydepth checkpoint (--format anydepth). A format that cannot represent the model is refused "
            "(exit code 2, nothing written): official files store weights only, so they hold the released "
            "vits/vitb/vitl/vitg V1/V2 architectures only (sizes, head and encoder blocks); transformers stores the "
            "sizes and blocks but has no batch norm or class-token readout in the head. The anydepth format holds "
            "every model."
        ),
    )
    add_checkpoint_arguments(parser)
    parser.add_argument("--format", required=True, choices=FORMATS, help="output format")
    parser.add_argument("--output", required=True, type=Path, help="output file (.pth / .ckpt) or directory (hf)")
    parser.set_defaults(func=run_convert)
    return parser
