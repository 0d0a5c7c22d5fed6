"""``anydepth pseudo-label``: a teacher's pseudo labels for unlabeled shards (the data engine, paper Sec. 3.2)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from anydepth.cli.common import UsageError, add_checkpoint_arguments, add_prediction_run_arguments


def run_pseudo_label(args: argparse.Namespace) -> int:
    """``anydepth pseudo-label``: pseudo-label the input shards; a summary line on stderr (rank 0)."""
    from lightning.pytorch.utilities import rank_zero_only  # imported here: Lightning slows every command's start

    from anydepth.pseudo_label import PseudoLabelError, pseudo_label

    try:
        manifest = pseudo_label(
            args.checkpoint,
            args.input,
            args.out,
            input_size=args.input_size,
            flip_tta=args.flip_tta,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            accelerator=args.accelerator,
            devices=args.devices,
            num_nodes=args.num_nodes,
            strategy=args.strategy,
            precision=args.precision,
            encoder=args.encoder,
            version=args.version,
            reduced_decode=not args.full_decode,
        )
    except PseudoLabelError as err:
        raise UsageError(str(err)) from err
    if rank_zero_only.rank == 0:
        line = f"wrote {manifest.num_samples} pseudo-labeled samples in {len(manifest.shards)} shards to {args.out}"
        if manifest.skipped:
            line += f"; {len(manifest.skipped)} input shard(s) had unreadable samples (listed in manifest.json)"
        print(line, file=sys.stderr)
    return 0


def add_pseudo_label_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``anydepth pseudo-label``."""
    parser = subparsers.add_parser(
        "pseudo-label",
        help="label unlabeled shards with a teacher's relative disparity (the paper's data engine)",
        description=(
            "Run the teacher --checkpoint on every image of the --input shards (clean images, evaluation "
            "preprocessing, optional flip test-time augmentation) and write shards with the original image bytes "
            "plus float16 relative disparity labels (normalised to [0, 1] per image) and manifest.json into --out, "
            "for student training. Output shard NNNNNN holds input shard NNNNNN. Rerunning continues an interrupted "
            "run (finished shards are kept; other settings are refused). Runs under DDP with --devices/--num-nodes "
            "(e.g. SLURM). Exit code: 0 done, 2 usage error."
        ),
    )
    add_checkpoint_arguments(parser)
    parser.add_argument(
        "--input",
        required=True,
        nargs="+",
        metavar="SHARDS",
        help="input shard directories with manifest.json (or shard paths / patterns a manifest lists)",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory (data_shards/NAME)")
    parser.add_argument(
        "--flip-tta",
        action="store_true",
        help="average with the un-flipped prediction of the horizontally flipped image (2x the compute)",
    )
    add_prediction_run_arguments(
        parser,
        devices="auto",
        workers=None,
        workers_help="the node's CPUs shared by its devices, minus one each, at most 8",
    )
    parser.add_argument(
        "--full-decode",
        action="store_true",
        help="decode every JPEG at full size (default: at the smallest libjpeg scale still at least the network input "
        "size: the same pixels up to resampling, fewer of them to decode on large photos)",
    )
    parser.add_argument("--num-nodes", type=int, default=1, metavar="N", help="number of nodes (default: 1)")
    parser.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp (default: auto)")
    parser.add_argument(
        "--precision",
        default="32-true",
        choices=("32-true", "16-mixed", "bf16-mixed"),
        help="Lightning precision (default: 32-true)",
    )
    parser.set_defaults(func=run_pseudo_label)
    return parser
