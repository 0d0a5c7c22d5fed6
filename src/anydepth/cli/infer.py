"""``anydepth infer``: depth maps of images, folders or lists with any checkpoint anydepth reads (relative
disparity, or metric depth in metres and point clouds for metric checkpoints)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from anydepth.batching import DEFAULT_READ_WORKERS
from anydepth.cli.common import (
    EXIT_OK,
    EXIT_SKIPPED,
    UsageError,
    add_checkpoint_arguments,
    checkpoint_options,
    infer_summary,
    plural,
    resolve_device,
    skip_warnings_to_stderr,
)
from anydepth.cli.segment import add_task_arguments, resolve_task, run_seg_infer
from anydepth.images import VIDEO_EXTENSIONS, is_video
from anydepth.inference import list_inputs, model_head, run_inference
from anydepth.models.depth_anything import DepthAnything
from anydepth.pointcloud import Camera
from anydepth.video import depth_video_outputs, probe_video, run_video_inference

IMAGE_ONLY_OPTIONS = ("png16", "point_cloud", "side_by_side")
"""Outputs a video input does not get: it is one ``<name>_depth.mp4`` (+ per-frame ``.npy`` with ``--raw-npy``)."""


def point_cloud_camera(args: argparse.Namespace) -> Camera | None:
    """The camera of ``--point-cloud`` (``--focal`` or ``--fov``); None without ``--point-cloud``."""
    given = args.focal is not None or args.fov is not None
    if not args.point_cloud:
        if given:
            raise UsageError("--focal / --fov set the camera of --point-cloud; add --point-cloud")
        return None
    if not given:
        raise UsageError(
            "--point-cloud needs the camera: --focal PX (focal length in pixels of the input images) or --fov DEG "
            "(horizontal field of view)"
        )
    try:
        return Camera(focal=args.focal, fov=args.fov)
    except ValueError as err:
        raise UsageError(f"--focal / --fov: {err}") from err


def load_model(args: argparse.Namespace) -> Any:
    """The model ``--backend`` names: a PyTorch model of any checkpoint on ``--device`` (``torch``), or an ``anydepth
    export --format onnx`` file in an onnxruntime session (``onnxruntime``: CUDA provider when available;
    ``tensorrt``: a TensorRT engine built from the file and cached beside it)."""
    if args.backend in ("onnxruntime", "tensorrt"):
        from anydepth.export.runtime import OnnxDepthModel, tensorrt_providers

        if args.backend == "tensorrt":
            if args.device == "cpu":
                raise UsageError("--backend tensorrt runs on a CUDA GPU; leave out --device cpu")
            return OnnxDepthModel(args.checkpoint, providers=tensorrt_providers(args.checkpoint))
        providers = ["CPUExecutionProvider"] if args.device == "cpu" else None
        return OnnxDepthModel(args.checkpoint, providers=providers)
    device = resolve_device(args.device)
    model = DepthAnything.from_checkpoint(args.checkpoint, **checkpoint_options(args)).to(device).eval()
    if args.compile:
        import torch._dynamo

        if not torch._dynamo.is_dynamo_supported():
            raise UsageError("--compile: torch.compile is not supported by this Python / PyTorch; leave it out")
        model.compile()  # in place: the model stays a DepthAnything, its forward compiled on first use
    return model


def check_video_input(args: argparse.Namespace) -> bool:
    """Whether ``--input`` is a video file (then refuse the image-only outputs and an undecodable file, before the
    model loads)."""
    if not (is_video(args.input) and args.input.is_file()):
        return False
    given = [f"--{name.replace('_', '-')}" for name in IMAGE_ONLY_OPTIONS if getattr(args, name)]
    if given:
        raise UsageError(
            f"{' / '.join(given)}: not available for the video {args.input}, which becomes "
            f"{args.input.stem}_depth.mp4 (and with --raw-npy one .npy per frame); leave {' / '.join(given)} out"
        )
    probe_video(args.input)
    return True


def run_video(args: argparse.Namespace, model: Any) -> int:
    """``anydepth infer`` on a video file: ``<name>_depth.mp4`` on one colour scale (:func:`run_video_inference`)."""
    summary = run_video_inference(
        model, args.input, args.output, args.input_size, args.batch_size, args.raw_npy, args.grayscale, args.num_workers
    )
    frames = f" and {plural(summary.frames, 'depth map')} in {summary.raw_dir}" if summary.raw_dir else ""
    low, high = summary.depth_range
    print(f"wrote {summary.video} ({plural(summary.frames, 'frame')}, colour scale {low:.4g}..{high:.4g}){frames}")
    return EXIT_OK


def run_infer(args: argparse.Namespace) -> int:
    """``anydepth infer``: load the checkpoint, predict every input, write the depth maps (``--task seg``:
    :func:`run_seg_infer`)."""
    if resolve_task(args) == "seg":
        return run_seg_infer(args)
    if args.input_size < 14:
        raise UsageError(f"--input-size must be at least 14 (one ViT patch), got {args.input_size}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.num_workers < 0:
        raise UsageError(f"--num-workers must be 0 (read in the main thread) or more, got {args.num_workers}")
    if args.compile and args.backend != "torch":
        raise UsageError("--compile compiles the PyTorch model (--backend torch); onnxruntime optimises its graph")
    if args.output.exists() and not args.output.is_dir():
        raise UsageError(f"--output {args.output} exists and is not a directory")
    if args.input.is_dir() and args.output.expanduser().resolve() == args.input.expanduser().resolve():
        raise UsageError(
            f"--output {args.output} is the --input directory: depth maps written there would be read as inputs by "
            f"the next run; choose another --output (a directory inside --input, e.g. {args.input / 'depth'}, is "
            "skipped when listing the inputs)"
        )
    if check_video_input(args):
        video, frames = depth_video_outputs(args.input, args.output, args.raw_npy)
        if args.skip_existing and video.is_file() and (frames is None or frames.is_dir()):
            print(f"kept {video}: it exists (--skip-existing)")
            return EXIT_OK
        return run_video(args, load_model(args))
    camera = point_cloud_camera(args)
    list_inputs(args.input, exclude=args.output)  # fail on a bad --input before loading the model
    model = load_model(args)
    if camera is not None and model_head(model) != "metric":
        raise UsageError(
            f"--point-cloud needs a metric checkpoint; {args.checkpoint} is a relative model (it predicts disparity "
            "up to an unknown scale and shift, no metres to back-project)"
        )
    with skip_warnings_to_stderr(args.command):
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
            camera=camera,
            num_workers=args.num_workers,
            skip_existing=args.skip_existing,
        )
    print(infer_summary(summary.written, args.output, summary.skipped, kept=summary.kept))
    return EXIT_SKIPPED if summary.skipped else EXIT_OK


def add_infer_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``anydepth infer``."""
    parser = subparsers.add_parser(
        "infer",
        help="predict relative or metric depth for images and write depth maps",
        description=(
            "Predict depth for an image, a directory of images (searched recursively) or a .txt list of image "
            "paths, and write <name>.png depth maps (Spectral_r colours, near = red) into --output, keeping paths "
            "below an input directory: relative disparity, or for a metric checkpoint depth in metres (the map "
            "linear in metres with a metre scale bar below). Images of any sizes that share a network input size "
            "share batches. A video file (" + " ".join(VIDEO_EXTENSIONS) + ") becomes <name>_depth.mp4, all frames "
            "coloured on one scale for the clip (with --raw-npy: <name>_depth/NNNNNN.npy per frame). Exit code: 0 "
            "all written, 1 some inputs skipped as unreadable, 2 usage error."
        ),
    )
    add_checkpoint_arguments(parser)
    parser.add_argument(
        "--input", required=True, type=Path, help="image or video file, directory, or .txt list of paths"
    )
    parser.add_argument(
        "--output",
        required=True,
        type=Path,
        metavar="DIR",
        help="output directory (created); not the --input directory, and one inside it is not read as input",
    )
    parser.add_argument(
        "--input-size",
        type=int,
        default=518,
        metavar="N",
        help="shorter network input side, rounded to a multiple of 14 (default: 518)",
    )
    parser.add_argument("--batch-size", type=int, default=4, metavar="N", help="images per forward pass (default: 4)")
    parser.add_argument(
        "--num-workers",
        type=int,
        default=DEFAULT_READ_WORKERS,
        metavar="N",
        help=f"threads decoding images (converting video frames) ahead of the model; 0 = in the main thread "
        f"(default: {DEFAULT_READ_WORKERS})",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model (--backend torch). Pays off on GPU for long runs of one network size (a "
        "video, a folder of same-size photos): the first batch of each new size compiles (tens of seconds); on CPU "
        "it mostly does not",
    )
    parser.add_argument(
        "--raw-npy",
        action="store_true",
        help="also write <name>.npy at image size: float32 disparity, or depth in metres (metric checkpoint)",
    )
    parser.add_argument(
        "--png16",
        action="store_true",
        help="also write <name>_16bit.png: min-max normalised disparity as 16-bit grayscale, or for a metric "
        "checkpoint depth in millimetres (uint16, clipped at 65.535 m, 0 = no depth)",
    )
    parser.add_argument(
        "--point-cloud",
        action="store_true",
        help="also write <name>.ply, a coloured binary PLY of the metric depth (metric checkpoints only; pinhole "
        "camera, principal point at the image centre, x right, y down, z forward, metres): needs --focal or --fov",
    )
    camera = parser.add_mutually_exclusive_group()
    camera.add_argument("--focal", type=float, default=None, metavar="PX", help="focal length in pixels of the inputs")
    camera.add_argument(
        "--fov", type=float, default=None, metavar="DEG", help="horizontal field of view in degrees (focal per image)"
    )
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help="keep inputs whose requested outputs all exist (outputs are written atomically, so a killed run "
        "resumes where it stopped); existing files are not checked against the options that wrote them",
    )
    parser.add_argument("--grayscale", action="store_true", help="write grayscale instead of coloured depth maps")
    parser.add_argument("--side-by-side", action="store_true", help="put the input image left of the depth map")
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto = cuda when available, else cpu (default: auto)",
    )
    parser.add_argument(
        "--backend",
        choices=("torch", "onnxruntime", "tensorrt"),
        default="torch",
        help="torch: any checkpoint in PyTorch (default); onnxruntime: a file written by anydepth export --format "
        "onnx; tensorrt: the same file as a TensorRT engine (onnxruntime-gpu with TensorRT, a CUDA GPU; the engine is "
        "built on first use and cached in <file>.trt/)",
    )
    add_task_arguments(parser, "infer")
    parser.set_defaults(func=run_infer)
    return parser
