"""What every ``anydepth`` tool shares: exit codes, the user-error types, and the options of several commands."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from anydepth.checkpoints import CheckpointError
from anydepth.export.spec import ExportError
from anydepth.inference import InputError, SkippedInputWarning
from anydepth.locks import OutputLockedError
from anydepth.models.depth_anything import HEADS, VERSIONS
from anydepth.models.encoder import ENCODERS
from anydepth.shards.manifest import ManifestError
from anydepth.shards.reader import ShardSpecError
from anydepth.sources import SourceError
from anydepth.sources.build import BuildError

PROG = "anydepth"
EXIT_OK, EXIT_SKIPPED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
MAX_LISTED_SKIPS = 5


class UsageError(Exception):
    """A mistake in the command line or its environment; reported without a traceback."""


# Exceptions that mean "the user asked for something impossible", not "anydepth has a bug".
USER_ERRORS: tuple[type[BaseException], ...] = (
    UsageError,
    CheckpointError,
    InputError,
    SourceError,
    ManifestError,
    ShardSpecError,
    BuildError,
    OutputLockedError,
    ExportError,
)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cuda`` without CUDA is a ``UsageError``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was requested but CUDA is not available (use --device cpu or auto)")
    return torch.device(name)


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def infer_summary(
    written: int, output: Path, skipped: Sequence[tuple[Path, str]], noun: str = "depth map", kept: int = 0
) -> str:
    """``wrote N depth maps to DIR[; kept K existing]; skipped M unreadable inputs: a (why), b (why)`` (``noun``: what
    was written; ``kept``: inputs whose outputs existed, ``--skip-existing``)."""
    line = f"wrote {plural(written, noun)} to {output}" + (f"; kept {kept} existing" if kept else "")
    if skipped:
        listed = ", ".join(f"{path} ({reason})" for path, reason in skipped[:MAX_LISTED_SKIPS])
        more = f" and {len(skipped) - MAX_LISTED_SKIPS} more" if len(skipped) > MAX_LISTED_SKIPS else ""
        line += f"; skipped {plural(len(skipped), 'unreadable input')}: {listed}{more}"
    return line


@contextlib.contextmanager
def skip_warnings_to_stderr(command: str) -> Iterator[None]:
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


def add_checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint`` plus the ``--encoder``/``--version`` hints ``from_checkpoint`` accepts."""
    parser.add_argument(
        "--checkpoint",
        required=True,
        type=Path,
        metavar="CKPT",
        help="official Depth Anything .pth, transformers model directory, DINOv2 backbone .pth, "
        "or anydepth/Lightning checkpoint",
    )
    parser.add_argument(
        "--encoder",
        choices=(*ENCODERS, "custom"),
        default=None,
        help="expected encoder; checked against the checkpoint (default: read from it)",
    )
    parser.add_argument(
        "--version",
        choices=VERSIONS,
        default=None,
        help="Depth Anything version, for files that do not say (default: from the checkpoint or its name)",
    )
    parser.add_argument(
        "--head",
        choices=HEADS,
        default=None,
        help="relative or metric, for official .pth files whose name does not say (the official V2 metric files "
        "have the relative keys; default: from the checkpoint or its name, e.g. *_metric_hypersim_*)",
    )
    parser.add_argument(
        "--max-depth",
        type=float,
        default=None,
        metavar="M",
        help="metric head's maximum depth in metres (implies --head metric; default: from the checkpoint or its name)",
    )


def checkpoint_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``from_checkpoint`` keyword arguments of :func:`add_checkpoint_arguments`'s options that were given."""
    options = {"encoder": args.encoder, "version": args.version}
    options.update({k: v for k, v in (("head", args.head), ("max_depth", args.max_depth)) if v is not None})
    return options


# ---------------------------------------------------------------- shards


@contextlib.contextmanager
def log_to_stderr(command: str, logger_name: str) -> Iterator[None]:
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


def parse_devices(value: str) -> int | str | list[int]:
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


def add_prediction_run_arguments(
    parser: argparse.ArgumentParser, devices: int | str, workers: int | None = 2, workers_help: str = "2"
) -> None:
    """The options of a tool that runs a model over shards with Lightning (``eval``, ``pseudo-label``):
    ``--input-size``, ``--batch-size``, ``--num-workers`` (default ``workers``, described by ``workers_help``),
    ``--devices`` (default ``devices``), ``--accelerator``."""
    parser.add_argument(
        "--input-size",
        type=int,
        default=518,
        metavar="N",
        help="shorter network input side, rounded to a multiple of 14 (default: 518, as the paper)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1,
        metavar="N",
        help="images per forward pass; > 1 only when all images of the shards share one size (default: 1)",
    )
    parser.add_argument(
        "--num-workers",
        type=int,
        default=workers,
        metavar="N",
        help=f"loader workers per device (default {workers_help})",
    )
    parser.add_argument(
        "--devices",
        type=parse_devices,
        default=devices,
        metavar="N",
        help=f"devices per node: a count (> 1 runs DDP), indices like 0,1, or auto (default: {devices})",
    )
    parser.add_argument(
        "--accelerator", choices=("auto", "cpu", "gpu"), default="auto", help="auto = GPU when available (default)"
    )
