"""``anydepth shards build|merge|verify``: dataset readers -> WebDataset shards (on one node or split into parts
across nodes), the merge of the parts, and the check."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from anydepth.cli.common import EXIT_OK, EXIT_SKIPPED, MAX_LISTED_SKIPS, PROG, log_to_stderr, plural, resolve_device
from anydepth.models.encoder import PATCH_SIZE
from anydepth.shards.manifest import Manifest
from anydepth.shards.verify import verify_shards
from anydepth.sources import ROOTLESS, SOURCES
from anydepth.sources.build import IMAGE_FORMATS, LABEL_DTYPES, build_shards
from anydepth.sources.parts import merge_parts


def counts(manifest: Manifest) -> str:
    """``N shards (M samples)``."""
    return f"{plural(len(manifest.shards), 'shard')} ({plural(manifest.num_samples, 'sample')})"


def shards_summary(manifest: Manifest, line: str) -> str:
    """``line`` followed by ``; skipped K unusable inputs: a (why), ...`` when ``manifest`` lists skipped inputs."""
    if manifest.skipped:
        listed = ", ".join(f"{s['input']} ({s['reason']})" for s in manifest.skipped[:MAX_LISTED_SKIPS])
        extra = len(manifest.skipped) - MAX_LISTED_SKIPS
        more = f" and {extra} more" if extra > 0 else ""
        line += f"; skipped {plural(len(manifest.skipped), 'unusable input')}: {listed}{more}"
    return line


def run_shards_build(args: argparse.Namespace) -> int:
    """``anydepth shards build``: read a dataset with a source and write shards plus manifest.json (or one part)."""
    sky_device = str(resolve_device(args.device)) if args.sky_model is not None else None
    with log_to_stderr(args.command, "anydepth.sources"):
        manifest = build_shards(
            args.source,
            args.root,
            args.out,
            split=args.split,
            max_side=args.max_side,
            min_side=args.min_side,
            samples_per_shard=args.samples_per_shard,
            workers=args.workers,
            seed=args.seed,
            resume=args.resume,
            image_format=args.image_format,
            label_dtype=args.label_dtype,
            sky_model=args.sky_model,
            sky_batch_size=args.sky_batch_size,
            sky_device=sky_device,
            num_parts=args.num_parts,
            part=args.part,
        )
    if args.num_parts > 1:  # an empty part is no error: the merge judges the whole
        print(shards_summary(manifest, f"part {args.part} of {args.num_parts}: wrote {counts(manifest)} to {args.out}"))
        return EXIT_OK
    print(shards_summary(manifest, f"wrote {counts(manifest)} to {args.out}"))
    if manifest.num_samples == 0:
        print(f"{PROG} {args.command}: error: no input was usable; see the reasons above", file=sys.stderr)
        return EXIT_SKIPPED
    return EXIT_OK


def run_shards_merge(args: argparse.Namespace) -> int:
    """``anydepth shards merge``: write manifest.json of a build split into parts, once every part is complete."""
    manifest = merge_parts(args.directory)
    print(shards_summary(manifest, f"merged the parts of {args.directory}: manifest.json lists {counts(manifest)}"))
    if manifest.num_samples == 0:
        print(f"{PROG} {args.command}: error: no input was usable; see the skipped inputs above", file=sys.stderr)
        return EXIT_SKIPPED
    return EXIT_OK


def run_shards_verify(args: argparse.Namespace) -> int:
    """``anydepth shards verify``: re-hash and decode every shard against manifest.json."""
    report = verify_shards(args.directory)
    print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    return EXIT_OK if report.ok else EXIT_SKIPPED


def add_shards_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``anydepth shards build``, ``anydepth shards merge`` and ``anydepth shards verify``."""
    parser = subparsers.add_parser(
        "shards",
        help="build, merge and verify WebDataset shards of a dataset",
        description="Build WebDataset shards (plus manifest.json) from a dataset, on one node or in parts across "
        "nodes; merge the parts; or verify built shards.",
    )
    commands = parser.add_subparsers(dest="shards_command", required=True, metavar="{build,merge,verify}")
    build = commands.add_parser(
        "build",
        help="read a dataset and write shards and manifest.json",
        description=(
            "Read every input of --root with the --source reader, shuffle them (--seed), and write "
            "shard-NNNNNN.tar WebDataset shards of --samples-per-shard samples plus manifest.json into --out. "
            "Unusable inputs (unreadable, a label without a valid pixel, an image below --min-side) are skipped "
            "and listed in the manifest. With --num-parts N --part I, build only the shards whose index is I mod N "
            "(the same files a one-node build writes), so N nodes build --out together: each part records itself "
            "in --out/parts/part-I-of-N.json, and the last to finish writes manifest.json (else: anydepth shards "
            "merge). Exit code: 0 built (a part: built, even if empty), 1 nothing usable, "
            "2 usage error (wrong layout, bad settings, an unusable --sky-model, an existing build without --resume, "
            "--out in use by another build or part)."
        ),
    )
    build.add_argument("--source", required=True, metavar="KIND", help=f"dataset reader: {', '.join(SOURCES)}")
    build.add_argument(
        "--root",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"dataset root directory (required, except for {', '.join(sorted(ROOTLESS))})",
    )
    build.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory, e.g. data_shards/NAME")
    build.add_argument("--split", default=None, help="dataset split, for readers that have splits")
    build.add_argument(
        "--max-side",
        type=int,
        default=None,
        metavar="N",
        help="downscale samples whose longer side exceeds N pixels (default: keep the size)",
    )
    build.add_argument(
        "--min-side",
        type=int,
        default=PATCH_SIZE,
        metavar="N",
        help=f"skip images whose shorter side is below N pixels after --max-side (default: {PATCH_SIZE}, one patch)",
    )
    build.add_argument("--samples-per-shard", type=int, default=1000, metavar="N", help="shard size (default: 1000)")
    build.add_argument("--workers", type=int, default=1, metavar="N", help="parallel processes (default: 1)")
    build.add_argument("--seed", type=int, default=0, metavar="N", help="shuffle seed (default: 0)")
    build.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted build (or part) in --out, keeping its complete shards (same settings required)",
    )
    build.add_argument(
        "--num-parts",
        type=int,
        default=1,
        metavar="N",
        help="split the build into N parts, built one per node or job, e.g. a SLURM array (default: 1, no split)",
    )
    build.add_argument(
        "--part",
        type=int,
        default=0,
        metavar="I",
        help="which part to build, 0..N-1: the shards whose index is I mod N (default: 0)",
    )
    build.add_argument("--image-format", choices=IMAGE_FORMATS, default="jpg", help="image encoding (default: jpg)")
    build.add_argument("--label-dtype", choices=LABEL_DTYPES, default="float32", help="label dtype (default: float32)")
    build.add_argument(
        "--sky-model",
        type=Path,
        default=None,
        metavar="DIR",
        help="local transformers semantic segmentation model (e.g. SegFormer-B5 on ADE20K, as the paper) that "
        "predicts sky.png for labeled samples without a sky mask of their own (default: none)",
    )
    build.add_argument(
        "--sky-batch-size", type=int, default=8, metavar="N", help="images per --sky-model step (default: 8)"
    )
    build.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="device of --sky-model; auto = cuda when available, else cpu (default: auto)",
    )
    build.set_defaults(func=run_shards_build, command="shards build")  # messages: "anydepth shards build: ..."
    merge = commands.add_parser(
        "merge",
        help="write manifest.json of a build split into parts",
        description=(
            "Check that every part of the build in DIR (anydepth shards build --num-parts N --part I) is complete, "
            "was built with the same settings and still has its shards, then write DIR/manifest.json (the one a "
            "single-node build writes). The last part to finish does this by itself. Exit code: 0 merged, "
            "1 nothing usable, 2 a part missing, unfinished, damaged or built with other settings (each named)."
        ),
    )
    merge.add_argument("directory", type=Path, metavar="DIR", help="the --out of the parts")
    merge.set_defaults(func=run_shards_merge, command="shards merge")
    verify = commands.add_parser(
        "verify",
        help="check shards against manifest.json and decode every sample",
        description=(
            "Re-hash every shard listed in DIR/manifest.json (size and sha256), decode every sample and "
            "check the counts. Prints OK, or the problems and exits with 1; 2 when there is no manifest."
        ),
    )
    verify.add_argument("directory", type=Path, metavar="DIR", help="a directory written by anydepth shards build")
    verify.set_defaults(func=run_shards_verify, command="shards verify")
    return parser
