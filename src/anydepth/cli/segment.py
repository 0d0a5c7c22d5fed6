"""``anydepth eval --task seg`` and ``anydepth infer --task seg``: semantic segmentation checkpoints (paper Sec. 4.4,
written by ``anydepth fit`` with a configs/recipes/seg/ recipe) scored on shards with ``seg.png`` (mIoU, pixel
accuracy, per-class IoU) or run on image files (palette PNGs).

``eval`` and ``infer`` call :func:`add_task_arguments` when they build their parser and :func:`resolve_task` first
thing when they run: ``--task depth`` (the default) leaves them as they were; ``--task seg`` hands the run to
:func:`run_seg_eval` / :func:`run_seg_infer`. An option of the other task is a usage error naming it.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from anydepth.cli.common import (
    EXIT_OK,
    EXIT_SKIPPED,
    UsageError,
    infer_summary,
    plural,
    resolve_device,
    skip_warnings_to_stderr,
)
from anydepth.files import atomic_write_json
from anydepth.inference import InputError, SkippedInputWarning, list_inputs, output_names, read_checked
from anydepth.shards.manifest import MANIFEST_NAME, Manifest
from anydepth.sources.segmentation import CLASS_SETS, IGNORE_INDEX

TASKS = ("depth", "seg")
MULTI_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
"""``--multi-scale``: Table 7's "m.s." (the official ``_ms`` configs)."""
MIN_SIDE = 28
"""The smallest network input side: two ViT patches, as the neck's 0.5 rescale halves the patch grid."""
SEG_OPTIONS = ("multi_scale", "flip", "sliding_window", "crop", "stride")
SHARED_OPTIONS = {
    "eval": frozenset({"checkpoint", "data_root", "benchmarks", "input_size", "batch_size", "num_workers", "devices",
                       "accelerator", "precision", "output"}),
    "infer": frozenset({"checkpoint", "input", "output", "input_size", "device", "skip_existing"}),
}  # fmt: skip
"""The options of each command that both tasks read; every other one belongs to one task."""
SEG_SOURCES = {"ade20k": "ade20k", "cityscapes": "cityscapes", "demo-seg": "demo"}
"""Shard readers (``manifest.json`` ``source``) that write ``seg.png``, and the :data:`CLASS_SETS` entry they use."""
SEG_BENCHMARKS = {"ade20k": "ade20k-val", "cityscapes": "cityscapes-val"}
"""The paper's benchmarks (Tables 7-8) and the validation shard directories they read, as the seg recipes name them;
any other ``--benchmarks`` name is a shard directory under ``--data-root``."""
LEGEND_NAME = "legend.json"


@dataclass(frozen=True)
class _TaskOptions:
    """What :func:`resolve_task` needs of a command's parser: its defaults and the options both tasks read."""

    parser: argparse.ArgumentParser
    shared: frozenset[str]


def add_task_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """``--task`` and the segmentation options (``--multi-scale``, ``--flip``, ``--sliding-window``, ``--crop``,
    ``--stride``) on ``command``'s parser; its options outside :data:`SHARED_OPTIONS` belong to one task."""
    parser.add_argument(
        "--task",
        choices=TASKS,
        default="depth",
        help="depth (default) or seg: a semantic segmentation checkpoint (anydepth fit with a configs/recipes/seg/ "
        "recipe), the image resized to shorter side --input-size (the paper scores segmentation at 896)",
    )
    group = parser.add_argument_group("semantic segmentation (--task seg)")
    group.add_argument(
        "--multi-scale",
        action="store_true",
        help=f"average the class probabilities of the image at {', '.join(map(str, MULTI_SCALES))} x --input-size "
        "(Table 7's m.s.; add --flip as the paper does)",
    )
    group.add_argument("--flip", action="store_true", help="also predict the mirrored image(s) and average")
    group.add_argument(
        "--sliding-window",
        action="store_true",
        help="predict --crop x --crop windows every --stride px, averaged where they overlap (the official test mode)",
    )
    group.add_argument("--crop", type=int, default=None, metavar="N", help="window side (default: --input-size)")
    group.add_argument(
        "--stride",
        type=int,
        default=None,
        metavar="N",
        help="window step (default: half the crop; official at 896: 426 ADE20K, 518 Cityscapes)",
    )
    parser.set_defaults(task_options=_TaskOptions(parser, SHARED_OPTIONS[command]))


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def resolve_task(args: argparse.Namespace) -> str:
    """``args.task`` after checking no option of the other task was given (``UsageError`` naming them)."""
    options: _TaskOptions = args.task_options
    seg = args.task == "seg"
    own = {"command", "func", "task", "task_options", *options.shared}
    foreign = [
        _flag(dest)
        for dest, value in vars(args).items()
        if dest not in own and (dest in SEG_OPTIONS) != seg and value != options.parser.get_default(dest)
    ]
    if foreign:
        other = "depth" if seg else "seg"
        them = "them" if len(foreign) > 1 else "it"
        raise UsageError(f"{', '.join(foreign)}: only for --task {other}; drop {them} or run with --task {other}")
    return args.task


def inference_settings(args: argparse.Namespace) -> Any:
    """The :class:`~anydepth.models.segmentation.InferenceSettings` of the segmentation options."""
    from anydepth.models.segmentation import InferenceSettings

    scales = MULTI_SCALES if args.multi_scale else (1.0,)
    if min(scales) * args.input_size < MIN_SIDE:
        raise UsageError(
            f"--input-size {args.input_size}{' x 0.5 (--multi-scale)' if args.multi_scale else ''} is below "
            f"{MIN_SIDE} px, two ViT patches (the segmentation neck halves the patch grid)"
        )
    if args.sliding_window and args.crop is not None and args.crop < MIN_SIDE:
        raise UsageError(f"--crop must be at least {MIN_SIDE} (two ViT patches), got {args.crop}")
    if not args.sliding_window and (args.crop is not None or args.stride is not None):
        raise UsageError("--crop / --stride set the windows of --sliding-window; add --sliding-window")
    crop = (args.crop or args.input_size) if args.sliding_window else None
    stride = (args.stride or max(crop // 2, 1)) if crop is not None else None
    try:
        return InferenceSettings(scales, args.flip, crop, stride)
    except ValueError as err:
        raise UsageError(f"--crop / --stride: {err}") from err


def load_segmentation_model(checkpoint: Path) -> Any:
    """The :class:`~anydepth.models.segmentation.SegmentationModel` of ``--checkpoint`` (a ``CheckpointError`` for
    other files, e.g. a depth model's)."""
    from anydepth.models.segmentation import SegmentationModel

    if not checkpoint.exists():
        raise UsageError(f"--checkpoint: no such file: {checkpoint}")
    if checkpoint.is_dir():
        raise UsageError(
            f"--checkpoint {checkpoint} is a directory (a transformers depth model?); --task seg reads the .ckpt "
            "files of anydepth fit with a configs/recipes/seg/ recipe (depth models: --task depth)"
        )
    return SegmentationModel.from_checkpoint(checkpoint)


# ---------------------------------------------------------------------------------------------------- eval


def seg_benchmarks(text: str | None, classes: Sequence[str]) -> list[str]:
    """``--benchmarks`` (comma-separated: :data:`SEG_BENCHMARKS` or shard directory names), else the one whose
    classes the checkpoint segments."""
    if text:
        return [name.strip() for name in text.split(",") if name.strip()]
    known = [name for name in SEG_BENCHMARKS if CLASS_SETS[name] == tuple(classes)]
    if not known:
        raise UsageError(
            f"--benchmarks: the checkpoint's {len(classes)} classes are neither ADE20K's nor Cityscapes'; name the "
            "shard directories under --data-root to score (e.g. --benchmarks val)"
        )
    return known


def seg_shards(data_root: Path, name: str, classes: Sequence[str]) -> Path:
    """The shard directory of benchmark ``name`` under ``data_root`` (:data:`SEG_BENCHMARKS`, else ``name``) after
    checking it holds complete segmentation shards of the checkpoint's classes."""
    directory = data_root / SEG_BENCHMARKS.get(name, name)
    source = name if name in SEG_BENCHMARKS else "ade20k|cityscapes"
    build = f"anydepth shards build --source {source} --split validation --root <dataset root> --out {directory}"
    if not (directory / MANIFEST_NAME).is_file():
        raise UsageError(f"{name}: expected {directory / MANIFEST_NAME}, built with `{build}`")
    manifest = Manifest.load(directory)
    if not manifest.shards or any(not (directory / s.name).is_file() for s in manifest.shards):
        raise UsageError(f"{name}: {directory} lacks shards its manifest lists; finish the build (`{build} --resume`)")
    if manifest.label_kind is not None:
        raise UsageError(
            f"{name}: {directory} holds depth shards (label_kind {manifest.label_kind!r}), no seg.png class ids; "
            f"build segmentation shards with `{build}` (or use --task depth)"
        )
    expected = CLASS_SETS.get(SEG_SOURCES.get(manifest.source, ""))
    if expected is not None and expected != tuple(classes):
        raise UsageError(
            f"{name}: {directory} holds {manifest.source} shards ({len(expected)} classes) but the checkpoint "
            f"segments {len(classes)} other classes ({', '.join(classes[:3])}, ...)"
        )
    return directory


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.2f}"


def format_seg_tables(results: dict[str, dict[str, Any]]) -> str:
    """Per-class IoU (rows: classes, columns: benchmarks) above one row of mIoU, aAcc (pixel accuracy), mAcc and
    images per benchmark; percentages, ``n/a`` for a class in neither ground truth nor prediction."""
    benchmarks = list(results)
    classes = list(next(iter(results.values()))["IoU"])
    lines = ["| class | " + " | ".join(f"{b} IoU %" for b in benchmarks) + " |", "| --- |" + " --- |" * len(benchmarks)]
    lines += [f"| {c} | " + " | ".join(_percent(results[b]["IoU"][c]) for b in benchmarks) + " |" for c in classes]
    lines += ["", "| benchmark | mIoU % | aAcc % | mAcc % | images |", "| --- | --- | --- | --- | --- |"]
    for name, values in results.items():
        scores = " | ".join(_percent(values[key]) for key in ("mIoU", "aAcc", "mAcc"))
        lines.append(f"| {name} | {scores} | {values['images']} |")
    return "\n".join(lines)


def _json_values(values: dict[str, Any]) -> dict[str, Any]:
    """NaN (a class never seen) -> null: strict JSON."""
    iou = {c: None if math.isnan(v) else v for c, v in values["IoU"].items()}
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in values.items()} | {"IoU": iou}


def run_seg_eval(args: argparse.Namespace) -> int:
    """``anydepth eval --task seg``: one checkpoint on each benchmark's shards; the tables of
    :func:`format_seg_tables` on stdout, with ``--output`` a JSON report."""
    from lightning.pytorch.utilities import rank_zero_only  # imported here: Lightning slows every command's start

    from anydepth.evaluation.segmentation import evaluate_segmentation

    if len(args.checkpoint) > 1:
        raise UsageError("--task seg evaluates one --checkpoint per run")
    if args.batch_size < 1 or args.num_workers < 0:
        raise UsageError(f"--batch-size must be >= 1 and --num-workers >= 0, got {args.batch_size}, {args.num_workers}")
    if args.output is not None and args.output.is_dir():
        raise UsageError(f"--output {args.output} is a directory; give a file name such as miou.json")
    settings = inference_settings(args)
    if not args.data_root.is_dir():
        raise UsageError(f"--data-root {args.data_root} does not exist; it holds one shard directory per benchmark")
    model = load_segmentation_model(args.checkpoint[0])
    classes = model.config.classes
    shards = {name: seg_shards(args.data_root, name, classes) for name in seg_benchmarks(args.benchmarks, classes)}
    run = dict(size=args.input_size, settings=settings, batch_size=args.batch_size, num_workers=args.num_workers)
    run |= dict(devices=args.devices, accelerator=args.accelerator, precision=args.precision)
    results = {name: evaluate_segmentation(model, [str(directory)], **run) for name, directory in shards.items()}
    if rank_zero_only.rank != 0:  # DDP: every rank holds the (summed) results; rank 0 reports them
        return EXIT_OK
    print(format_seg_tables(results))
    if args.output is not None:
        report = {
            "task": "seg",
            "checkpoint": str(args.checkpoint[0]),
            "input_size": args.input_size,
            "inference": asdict(settings),
            "shards": {name: str(directory) for name, directory in shards.items()},
            "metrics": {name: _json_values(values) for name, values in results.items()},
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.output, report, sort_keys=False)
        print(f"wrote mIoU on {plural(len(results), 'benchmark')} to {args.output}", file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------- infer


def run_seg_infer(args: argparse.Namespace) -> int:
    """``anydepth infer --task seg``: ``<name>.png`` per input, an 8-bit palette PNG whose values are class ids
    (colours from :func:`~anydepth.evaluation.segmentation.palette`), and ``legend.json`` (id, class, colour).
    Inputs, output names and skipped images as ``anydepth infer`` (exit 1 when something was skipped)."""
    from anydepth.evaluation.segmentation import palette, segment_images, write_segmentation_png

    settings = inference_settings(args)
    if args.output.exists() and not args.output.is_dir():
        raise UsageError(f"--output {args.output} exists and is not a directory")
    files = list_inputs(args.input, exclude=args.output)  # a bad --input fails before the model loads
    root = args.input.expanduser() if args.input.expanduser().is_dir() else None
    names = output_names(files, root)
    targets = [args.output / name.with_name(name.name + ".png") for name in names]
    overwritten = {t.resolve() for t in targets} & {f.resolve() for f in files}
    if overwritten:
        raise UsageError(f"--output {args.output}: writing {sorted(overwritten)[0]} would overwrite that input image")
    model = load_segmentation_model(args.checkpoint).to(resolve_device(args.device)).eval()
    classes = model.config.classes
    colors = palette(classes)
    args.output.mkdir(parents=True, exist_ok=True)
    legend = [{"id": i, "class": c, "color": colors[i].tolist()} for i, c in enumerate(classes)]
    atomic_write_json(args.output / LEGEND_NAME, {"classes": legend, "ignore_id": IGNORE_INDEX}, sort_keys=False)
    written, skipped = 0, []
    pending = [(path, target) for path, target in zip(files, targets) if not (args.skip_existing and target.is_file())]
    with skip_warnings_to_stderr(args.command):
        for path, target in tqdm(pending, unit="img", desc="infer", disable=None):
            rgb, reason = read_checked(path)
            if rgb is None:
                skipped.append((path, reason))
                warnings.warn(f"skipping {path}: {reason}", SkippedInputWarning, stacklevel=2)
                continue
            ids = segment_images(model, [rgb], size=args.input_size, settings=settings)[0]
            try:
                write_segmentation_png(target, ids, colors)
            except OSError as err:  # a full disk, a directory in the way ...
                raise InputError(f"cannot write the segmentation of {path} into {args.output}: {err}") from err
            written += 1
    print(infer_summary(written, args.output, skipped, noun="segmentation map", kept=len(files) - len(pending)))
    return EXIT_SKIPPED if skipped else EXIT_OK
