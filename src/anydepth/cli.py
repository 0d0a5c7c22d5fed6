"""The ``anydepth`` command line: the tools ``anydepth infer``, ``convert``, ``shards``, ``eval`` and
``pseudo-label``, and the LightningCLI subcommands ``anydepth fit``, ``validate``, ``test`` and ``predict``.

Every tool is one subparser registered by an ``add_<name>_parser(subparsers)`` function
that sets ``func`` (``args -> exit code``) as a parser default; ``main`` parses, dispatches and
turns user mistakes (``USER_ERRORS``) into one ``anydepth <command>: error: ...`` message and
exit code 2, like argparse's own usage errors.

``anydepth fit|validate|test|predict ARGS`` hands ``ARGS`` to :class:`lightning.pytorch.cli.LightningCLI`
(:func:`run_lightning`): any LightningModule as ``--model`` and any LightningDataModule as ``--data``
(``class_path`` + ``init_args``, usually from ``--config cfg.yaml``), ``--trainer.*`` for the Trainer, e.g.
``anydepth test --config configs/eval/test.yaml --model.init_args.checkpoint ckpt.pth`` (zero-shot evaluation,
DDP with ``--trainer.devices N``). Those four are registered in the parser only so ``anydepth --help`` lists
them; ``main`` routes them to LightningCLI before argparse sees the rest of the line.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from anydepth.data.build import IMAGE_FORMATS, LABEL_DTYPES, BuildError, build_shards, verify_shards
from anydepth.data.manifest import Manifest, ManifestError
from anydepth.data.sources import SOURCES, SourceError
from anydepth.inference import (
    InputError,
    SkippedInputWarning,
    list_inputs,
    run_inference,
)
from anydepth.models.checkpoint import FORMATS, CheckpointError
from anydepth.models.depth_anything import VERSIONS, DepthAnything
from anydepth.models.encoder import ENCODERS

PROG = "anydepth"
EXIT_OK, EXIT_SKIPPED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
MAX_LISTED_SKIPS = 5


class UsageError(Exception):
    """A mistake in the command line or its environment; reported without a traceback."""


# Exceptions that mean "the user asked for something impossible", not "anydepth has a bug".
USER_ERRORS: tuple[type[BaseException], ...] = (
    UsageError, CheckpointError, InputError, SourceError, ManifestError, BuildError,
)  # fmt: skip


# ---------------------------------------------------------------- infer


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cuda`` without CUDA is a ``UsageError``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was requested but CUDA is not available (use --device cpu or auto)")
    return torch.device(name)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def infer_summary(written: int, output: Path, skipped: Sequence[tuple[Path, str]]) -> str:
    """``wrote N depth maps to DIR; skipped M unreadable inputs: a (why), b (why)``."""
    line = f"wrote {_plural(written, 'depth map')} to {output}"
    if skipped:
        listed = ", ".join(f"{path} ({reason})" for path, reason in skipped[:MAX_LISTED_SKIPS])
        more = f" and {len(skipped) - MAX_LISTED_SKIPS} more" if len(skipped) > MAX_LISTED_SKIPS else ""
        line += f"; skipped {_plural(len(skipped), 'unreadable input')}: {listed}{more}"
    return line


@contextlib.contextmanager
def _skip_warnings_to_stderr(command: str) -> Iterator[None]:
    """Print every ``SkippedInputWarning`` as ``anydepth <command>: warning: ...`` (above the progress bar)."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", SkippedInputWarning)
        original = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            if issubclass(category, SkippedInputWarning):
                tqdm.write(f"{PROG} {command}: warning: {message}", file=sys.stderr)
            else:
                original(message, category, *args, **kwargs)

        warnings.showwarning = show
        yield


def run_infer(args: argparse.Namespace) -> int:
    """``anydepth infer``: load the checkpoint, predict every input, write the depth maps."""
    if args.input_size < 14:
        raise UsageError(f"--input-size must be at least 14 (one ViT patch), got {args.input_size}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.output.exists() and not args.output.is_dir():
        raise UsageError(f"--output {args.output} exists and is not a directory")
    list_inputs(args.input, exclude=args.output)  # fail on a bad --input before loading the model
    device = resolve_device(args.device)
    model = DepthAnything.from_checkpoint(args.checkpoint, encoder=args.encoder, version=args.version)
    model = model.to(device).eval()
    with _skip_warnings_to_stderr(args.command):
        summary = run_inference(
            model,
            args.input,
            args.output,
            input_size=args.input_size,
            batch_size=args.batch_size,
            raw_npy=args.raw_npy,
            png16=args.png16,
            grayscale=args.grayscale,
            side_by_side=args.side_by_side,
        )
    print(infer_summary(summary.written, args.output, summary.skipped))
    return EXIT_SKIPPED if summary.skipped else EXIT_OK


def add_infer_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``anydepth infer``."""
    parser = subparsers.add_parser(
        "infer",
        help="predict relative depth for images and write depth maps",
        description=(
            "Predict relative depth (disparity) for an image, a directory of images (searched "
            "recursively) or a .txt list of image paths, and write <name>.png depth maps (Spectral_r "
            "colours, near = red) into --output, keeping paths below an input directory. Exit code: "
            "0 all written, 1 some inputs skipped as unreadable, 2 usage error."
        ),
    )
    add_checkpoint_arguments(parser)
    parser.add_argument("--input", required=True, type=Path, help="image file, directory, or .txt list of paths")
    parser.add_argument("--output", required=True, type=Path, metavar="DIR", help="output directory (created)")
    parser.add_argument(
        "--input-size", type=int, default=518, metavar="N",
        help="shorter network input side, rounded to a multiple of 14 (default: 518)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=4, metavar="N", help="images per forward pass (default: 4)")
    parser.add_argument("--raw-npy", action="store_true", help="also write <name>.npy: float32 disparity at image size")
    parser.add_argument(
        "--png16", action="store_true",
        help="also write <name>_16bit.png: min-max normalised disparity as 16-bit grayscale",
    )  # fmt: skip
    parser.add_argument("--grayscale", action="store_true", help="write grayscale instead of coloured depth maps")
    parser.add_argument("--side-by-side", action="store_true", help="put the input image left of the depth map")
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto",
        help="auto = cuda when available, else cpu (default: auto)",
    )  # fmt: skip
    parser.set_defaults(func=run_infer)
    return parser


# ---------------------------------------------------------------- convert


def run_convert(args: argparse.Namespace) -> int:
    """``anydepth convert``: load any supported checkpoint and write it in another format."""
    model = DepthAnything.from_checkpoint(args.checkpoint, encoder=args.encoder, version=args.version)
    model.save_checkpoint(args.output, format=args.format)
    print(f"wrote {args.format} checkpoint of a {model.config.encoder} Depth Anything {model.config.version} "
          f"to {args.output}")
    return EXIT_OK


def add_convert_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``anydepth convert``."""
    parser = subparsers.add_parser(
        "convert",
        help="convert a checkpoint to the official, transformers or anydepth format",
        description=(
            "Read any checkpoint anydepth understands and write it as an official Depth Anything .pth "
            "(--format official), a transformers DepthAnythingForDepthEstimation directory (--format hf), "
            "or an anydepth checkpoint (--format anydepth)."
        ),
    )
    add_checkpoint_arguments(parser)
    parser.add_argument("--format", required=True, choices=FORMATS, help="output format")
    parser.add_argument("--output", required=True, type=Path, help="output file (.pth / .ckpt) or directory (hf)")
    parser.set_defaults(func=run_convert)
    return parser


def add_checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint`` plus the ``--encoder``/``--version`` hints ``from_checkpoint`` accepts."""
    parser.add_argument(
        "--checkpoint", required=True, type=Path, metavar="CKPT",
        help="official Depth Anything .pth, transformers model directory, DINOv2 backbone .pth, "
        "or anydepth/Lightning checkpoint",
    )  # fmt: skip
    parser.add_argument(
        "--encoder", choices=(*ENCODERS, "custom"), default=None,
        help="expected encoder; checked against the checkpoint (default: read from it)",
    )  # fmt: skip
    parser.add_argument(
        "--version", choices=VERSIONS, default=None,
        help="Depth Anything version, for files that do not say (default: from the checkpoint or its name)",
    )  # fmt: skip


# ---------------------------------------------------------------- shards


@contextlib.contextmanager
def _log_to_stderr(command: str, logger_name: str) -> Iterator[None]:
    """Show ``logger_name``'s INFO and WARNING records as ``anydepth <command>: <level>: ...`` on stderr."""
    logger = logging.getLogger(logger_name)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG} {command}: %(levelname)s: %(message)s"))
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


def shards_summary(manifest: Manifest, output: Path) -> str:
    """``wrote N shards (M samples) to DIR; skipped K inputs: a (why), ...``."""
    line = f"wrote {_plural(len(manifest.shards), 'shard')} ({_plural(manifest.num_samples, 'sample')}) to {output}"
    if manifest.skipped:
        listed = ", ".join(f"{s['input']} ({s['reason']})" for s in manifest.skipped[:MAX_LISTED_SKIPS])
        extra = len(manifest.skipped) - MAX_LISTED_SKIPS
        more = f" and {extra} more" if extra > 0 else ""
        line += f"; skipped {_plural(len(manifest.skipped), 'unreadable input')}: {listed}{more}"
    return line


def run_shards_build(args: argparse.Namespace) -> int:
    """``anydepth shards build``: read a dataset with a source and write shards plus manifest.json."""
    with _log_to_stderr(args.command, "anydepth.data.build"):
        manifest = build_shards(
            args.source,
            args.root,
            args.out,
            split=args.split,
            max_side=args.max_side,
            samples_per_shard=args.samples_per_shard,
            workers=args.workers,
            seed=args.seed,
            resume=args.resume,
            image_format=args.image_format,
            label_dtype=args.label_dtype,
        )
    print(shards_summary(manifest, args.out))
    if manifest.num_samples == 0:
        print(f"{PROG} {args.command}: error: no input could be read; see the reasons above", file=sys.stderr)
        return EXIT_SKIPPED
    return EXIT_OK


def run_shards_verify(args: argparse.Namespace) -> int:
    """``anydepth shards verify``: re-hash and decode every shard against manifest.json."""
    report = verify_shards(args.directory)
    print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    return EXIT_OK if report.ok else EXIT_SKIPPED


def add_shards_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``anydepth shards build`` and ``anydepth shards verify``."""
    parser = subparsers.add_parser(
        "shards",
        help="build and verify WebDataset shards of a dataset",
        description="Build WebDataset shards (plus manifest.json) from a dataset, or verify built shards.",
    )
    commands = parser.add_subparsers(dest="shards_command", required=True, metavar="{build,verify}")
    build = commands.add_parser(
        "build",
        help="read a dataset and write shards and manifest.json",
        description=(
            "Read every input of --root with the --source reader, shuffle them (--seed), and write "
            "shard-NNNNNN.tar WebDataset shards of --samples-per-shard samples plus manifest.json into --out. "
            "Unreadable inputs are skipped and listed in the manifest. Exit code: 0 built, 1 nothing readable, "
            "2 usage error (wrong layout, bad settings, an existing build without --resume)."
        ),
    )
    build.add_argument("--source", required=True, metavar="KIND", help=f"dataset reader: {', '.join(SOURCES)}")
    build.add_argument("--root", required=True, type=Path, metavar="DIR", help="dataset root directory")
    build.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory, e.g. data_shards/NAME")
    build.add_argument("--split", default=None, help="dataset split, for readers that have splits")
    build.add_argument(
        "--max-side", type=int, default=None, metavar="N",
        help="downscale samples whose longer side exceeds N pixels (default: keep the size)",
    )  # fmt: skip
    build.add_argument("--samples-per-shard", type=int, default=1000, metavar="N", help="shard size (default: 1000)")
    build.add_argument("--workers", type=int, default=1, metavar="N", help="parallel processes (default: 1)")
    build.add_argument("--seed", type=int, default=0, metavar="N", help="shuffle seed (default: 0)")
    build.add_argument(
        "--resume", action="store_true",
        help="continue an interrupted build in --out, keeping its complete shards (same settings required)",
    )  # fmt: skip
    build.add_argument("--image-format", choices=IMAGE_FORMATS, default="jpg", help="image encoding (default: jpg)")
    build.add_argument("--label-dtype", choices=LABEL_DTYPES, default="float32", help="label dtype (default: float32)")
    build.set_defaults(func=run_shards_build)
    verify = commands.add_parser(
        "verify",
        help="check shards against manifest.json and decode every sample",
        description=(
            "Re-hash every shard listed in DIR/manifest.json (size and sha256), decode every sample and "
            "check the counts. Prints OK, or the problems and exits with 1; 2 when there is no manifest."
        ),
    )
    verify.add_argument("directory", type=Path, metavar="DIR", help="a directory written by anydepth shards build")
    verify.set_defaults(func=run_shards_verify)
    return parser


# ---------------------------------------------------------------- eval


BENCHMARKS = ("kitti", "nyuv2", "sintel", "ddad", "eth3d", "diode-indoor", "diode-outdoor")
"""The protocols of ``anydepth.evaluation.PROTOCOLS`` (listed here so the CLI starts without importing Lightning)."""


def _devices(value: str) -> int | str | list[int]:
    """``--devices``: ``auto``, a count (``2``) or device indices (``0,2``)."""
    if value == "auto":
        return value
    try:
        if "," in value:
            return [int(v) for v in value.split(",") if v.strip()]
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, a count or indices like 0,1; got {value!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 device, got {count}")
    return count


def _model_names(checkpoints: Sequence[Path], names: Sequence[str] | None) -> list[str]:
    """One label per ``--checkpoint``: the ``--name`` values in order, else each checkpoint's file stem; distinct."""
    if names and len(names) != len(checkpoints):
        raise UsageError(f"give one --name per --checkpoint: {len(checkpoints)} checkpoint(s), {len(names)} name(s)")
    labels = list(names) if names else [checkpoint.stem for checkpoint in checkpoints]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise UsageError(f"model name(s) {', '.join(repeated)} label several checkpoints; give distinct --name values")
    return labels


def add_prediction_run_arguments(parser: argparse.ArgumentParser, devices: int | str) -> None:
    """The options of a tool that runs a model over shards with Lightning (``eval``, ``pseudo-label``):
    ``--input-size``, ``--batch-size``, ``--num-workers``, ``--devices`` (default ``devices``), ``--accelerator``."""
    parser.add_argument(
        "--input-size", type=int, default=518, metavar="N",
        help="shorter network input side, rounded to a multiple of 14 (default: 518, as the paper)",
    )  # fmt: skip
    parser.add_argument(
        "--batch-size", type=int, default=1, metavar="N",
        help="images per forward pass; > 1 only when all images of the shards share one size (default: 1)",
    )  # fmt: skip
    parser.add_argument("--num-workers", type=int, default=2, metavar="N", help="loader workers per device (default 2)")
    parser.add_argument(
        "--devices", type=_devices, default=devices, metavar="N",
        help=f"devices per node: a count (> 1 runs DDP), indices like 0,1, or auto (default: {devices})",
    )  # fmt: skip
    parser.add_argument(
        "--accelerator", choices=("auto", "cpu", "gpu"), default="auto", help="auto = GPU when available (default)"
    )


def run_eval(args: argparse.Namespace) -> int:
    """``anydepth eval``: zero-shot metrics of one or more checkpoints on benchmark shards; one Markdown table on
    stdout (with a model column for several checkpoints or any ``--name``)."""
    from anydepth.evaluation import EvaluationError  # imported here: Lightning slows every command's start

    try:
        return _run_eval(args)
    except EvaluationError as err:
        raise UsageError(str(err)) from err


def _run_eval(args: argparse.Namespace) -> int:
    from lightning.pytorch.utilities import rank_zero_only

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
        models = f" of {_plural(len(names), 'model')}" if len(names) > 1 else ""
        print(f"wrote metrics{models} on {_plural(len(benchmarks), 'benchmark')} to {args.output}", file=sys.stderr)
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
            "(configs/eval/protocols.yaml). Prints one Markdown table (AbsRel, delta1, ...; with a model column for "
            "several checkpoints or --name) on stdout; progress on stderr. Exit code: 0 done, 2 usage error "
            "(e.g. missing shards)."
        ),
        conflict_handler="resolve",  # eval's repeatable --checkpoint replaces the shared single one
    )
    add_checkpoint_arguments(parser)
    parser.add_argument(
        "--checkpoint", required=True, type=Path, action="append", metavar="CKPT",
        help="official Depth Anything .pth, transformers model directory or anydepth/Lightning checkpoint; repeat "
        "to compare several in one table (--encoder/--version apply to each)",
    )  # fmt: skip
    parser.add_argument(
        "--name", action="append", default=None, metavar="LABEL",
        help="model label in the table and JSON, once per --checkpoint in the same order (default: file stems)",
    )  # fmt: skip
    parser.add_argument(
        "--benchmarks", required=True, metavar="LIST",
        help=f"comma-separated benchmark names: {','.join(BENCHMARKS)} (or names added by --protocols)",
    )  # fmt: skip
    parser.add_argument(
        "--data-root", required=True, type=Path, metavar="DIR",
        help="directory holding one shard directory (with manifest.json) per benchmark",
    )  # fmt: skip
    add_prediction_run_arguments(parser, devices=1)
    parser.add_argument(
        "--precision", default=None, choices=("32", "16-mixed", "bf16-mixed"),
        help="Lightning precision (default: 32)",
    )  # fmt: skip
    parser.add_argument(
        "--output", type=Path, default=None, metavar="FILE",
        help="also write all metrics as JSON (several checkpoints: one entry per model under 'models')",
    )  # fmt: skip
    parser.add_argument(
        "--protocols", type=Path, default=None, metavar="YAML",
        help="YAML merged field by field over the default protocols (see configs/eval/protocols.yaml)",
    )  # fmt: skip
    parser.set_defaults(func=run_eval)
    return parser


# ---------------------------------------------------------------- pseudo-label


def run_pseudo_label(args: argparse.Namespace) -> int:
    """``anydepth pseudo-label``: pseudo-label the input shards; a summary line on stderr (rank 0)."""
    from lightning.pytorch.utilities import rank_zero_only  # imported here: Lightning slows every command's start

    from anydepth.training.pseudo_label import PseudoLabelError, pseudo_label

    try:
        manifest = pseudo_label(
            args.checkpoint, args.input, args.out, input_size=args.input_size, flip_tta=args.flip_tta,
            batch_size=args.batch_size, num_workers=args.num_workers, accelerator=args.accelerator,
            devices=args.devices, num_nodes=args.num_nodes, strategy=args.strategy, precision=args.precision,
            encoder=args.encoder, version=args.version,
        )  # fmt: skip
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
        "--input", required=True, nargs="+", metavar="SHARDS",
        help="input shard directories with manifest.json (or shard paths / patterns a manifest lists)",
    )  # fmt: skip
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory (data_shards/NAME)")
    parser.add_argument(
        "--flip-tta", action="store_true",
        help="average with the un-flipped prediction of the horizontally flipped image (2x the compute)",
    )  # fmt: skip
    add_prediction_run_arguments(parser, devices="auto")
    parser.add_argument("--num-nodes", type=int, default=1, metavar="N", help="number of nodes (default: 1)")
    parser.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp (default: auto)")
    parser.add_argument(
        "--precision", default="32-true", choices=("32-true", "16-mixed", "bf16-mixed"),
        help="Lightning precision (default: 32-true)",
    )  # fmt: skip
    parser.set_defaults(func=run_pseudo_label)
    return parser


# ---------------------------------------------------------------- LightningCLI: fit, validate, test, predict

LIGHTNING_SUBCOMMANDS: dict[str, str] = {
    "fit": "LightningCLI: train a --model on --data (Trainer.fit)",
    "validate": "LightningCLI: one validation pass (Trainer.validate)",
    "test": "LightningCLI: one test pass (Trainer.test), e.g. zero-shot evaluation with configs/eval/test.yaml",
    "predict": "LightningCLI: predictions of a --model on --data (Trainer.predict)",
}
"""The subcommands :func:`main` hands to :class:`lightning.pytorch.cli.LightningCLI`."""


def run_lightning(argv: Sequence[str]) -> int:
    """``anydepth fit|validate|test|predict ...``: run LightningCLI on ``argv`` (subcommand first).

    Models are any ``lightning.LightningModule`` and data any ``lightning.LightningDataModule``, named by
    ``class_path`` (subclass mode, so one command serves the evaluator now and training modules later); the parsed
    config is saved to the Trainer's log directory (``config.yaml``, overwritten); ``--optimizer`` and
    ``--lr_scheduler`` stay available for ``fit`` (LightningCLI's ``auto_configure_optimizers`` default; a model's
    own ``configure_optimizers`` is used when they are not given). Returns 0 when the run finished,
    LightningCLI's exit code for ``--help`` (0) and parse errors (2), and 2 with one
    ``anydepth <command>: error: ...`` line for user errors (e.g. missing benchmark shards).
    """
    from lightning import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    from anydepth.evaluation import BenchmarkDataModule, EvaluationError

    class AnydepthCLI(LightningCLI):
        def before_test(self) -> None:
            # too few shards for the devices: one error before DDP starts (not one per rank after)
            if isinstance(self.datamodule, BenchmarkDataModule):
                self.datamodule.rank_shards(0, self.trainer.world_size)

    argv = list(argv)
    command = argv[0] if argv else "?"
    try:
        with warnings.catch_warnings():
            # main(argv) is how anydepth passes its own command line (even when it equals sys.argv[1:])
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
            AnydepthCLI(
                LightningModule,
                LightningDataModule,
                subclass_mode_model=True,
                subclass_mode_data=True,
                save_config_kwargs={"overwrite": True},
                parser_kwargs={"prog": PROG},
                args=argv,
            )
    except SystemExit as exit_:  # --help, parse errors, Ctrl+C (Lightning exits with 1)
        return exit_.code if isinstance(exit_.code, int) else (EXIT_OK if exit_.code is None else EXIT_USAGE)
    except Exception as err:
        user_error = _user_error(err, (*USER_ERRORS, EvaluationError))
        if user_error is None:
            raise
        print(f"{PROG} {command}: error: {user_error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # before the Trainer runs (Lightning handles it during a run)
        print(f"{PROG} {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def _user_error(err: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """``err`` or the exception it was raised from, when one is a user error: jsonargparse reports a failing
    ``--model``/``--data`` constructor as a ValueError raised from the constructor's exception."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


def add_lightning_parsers(subparsers: Any) -> None:
    """List ``fit``, ``validate``, ``test`` and ``predict`` in ``anydepth --help`` (``main`` hands them to
    LightningCLI before argparse parses them; their options are in ``anydepth <command> --help``)."""
    for name, text in LIGHTNING_SUBCOMMANDS.items():
        parser = subparsers.add_parser(
            name, help=text, add_help=False,
            description=f"{text}. Options: anydepth {name} --help (LightningCLI).",
        )  # fmt: skip
        parser.add_argument("args", nargs=argparse.REMAINDER, help="LightningCLI arguments")
        parser.set_defaults(func=lambda args: run_lightning([args.command, *args.args]))


# ---------------------------------------------------------------- main

SUBCOMMANDS: tuple[Callable[[Any], argparse.ArgumentParser | None], ...] = (
    add_infer_parser, add_convert_parser, add_shards_parser, add_eval_parser, add_pseudo_label_parser,
    add_lightning_parsers,
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The ``anydepth`` parser with one subparser per entry of ``SUBCOMMANDS``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Depth Anything style monocular depth models. infer, convert, shards, eval and pseudo-label are tools; "
            "fit, validate, test and predict run LightningCLI (jsonargparse: --config cfg.yaml, --model, --data, "
            "--trainer.*), e.g. anydepth fit --config configs/trainer/ddp.yaml --config configs/teacher/vits.yaml, "
            "anydepth test --config configs/eval/test.yaml --model.init_args.checkpoint CKPT "
            "--data.init_args.data_root DIR (zero-shot evaluation; --trainer.devices N runs DDP)."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``anydepth``; returns the exit code (console scripts call ``sys.exit(main())``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in LIGHTNING_SUBCOMMANDS:
        return run_lightning(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and argparse usage errors
        return exit_.code if isinstance(exit_.code, int) else (EXIT_OK if exit_.code is None else EXIT_USAGE)
    try:
        return args.func(args)
    except USER_ERRORS as err:
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
