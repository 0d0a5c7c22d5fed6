"""Batch inference over image files: list inputs, read images, predict and write depth maps.

The logic behind ``anydepth infer`` (``anydepth.cli``); usable on its own::

    model = DepthAnything.from_checkpoint("depth_anything_v2_vits.pth").eval()
    summary = run_inference(model, "photos/", "depth/", raw_npy=True)

A relative model predicts disparity up to scale and shift; a metric one (``model.config.head == "metric"``, paper
Sec. 4.3) depth in metres, written as metres (``.npy``), millimetres (16-bit PNG), a map with a metre scale and, given
a camera, a point cloud (:mod:`anydepth.pointcloud`).
"""

from __future__ import annotations

import os
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from torch import nn
from tqdm import tqdm

from anydepth import visualize
from anydepth.batching import DEFAULT_READ_WORKERS, bucketed, network_size, predict_batch, read_ahead
from anydepth.files import written_atomically
from anydepth.images import IMAGE_EXTENSIONS, is_video, read_rgb
from anydepth.models.depth_anything import HEADS, DepthAnything
from anydepth.models.preprocess import check_image
from anydepth.pointcloud import Camera, back_project, write_ply

LIST_EXTENSION = ".txt"
OUTPUT_SUFFIXES = (".png", ".npy", "_16bit.png", ".ply")
"""What ``write_outputs`` may write per input, after its output name."""
MAX_WAITING_BATCHES = 4
"""Images of sizes still short of a full batch wait for company up to this many batches' worth (memory bound)."""


def model_head(model: nn.Module) -> str:
    """What ``model`` predicts: ``"metric"`` (depth in metres) or ``"relative"`` (disparity up to scale and shift),
    its ``config.head``; a model without one is relative."""
    head = getattr(getattr(model, "config", None), "head", "relative")
    if head not in HEADS:
        raise ValueError(f"model.config.head must be one of {HEADS}, got {head!r}")
    return head


class InputError(ValueError):
    """The input or output paths cannot be used (missing, empty, the same, would overwrite an input, not writable)."""


class SkippedInputWarning(UserWarning):
    """An input image could not be read or is too small and was skipped."""


@dataclass
class InferenceSummary:
    """What ``run_inference`` did: ``written`` depth maps, ``skipped`` (path, reason) pairs, and ``kept`` inputs whose
    outputs were all there already (``skip_existing``)."""

    written: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    kept: int = 0


# ---------------------------------------------------------------- inputs


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _read_list(list_file: Path) -> list[Path]:
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read list file {list_file}: {err}") from err
    files: list[Path] = []
    seen: set[Path] = set()
    for number, line in enumerate(lines, 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = list_file.parent / Path(entry).expanduser()  # absolute entries replace the folder
        if not path.is_file():
            what = "is not a file" if path.exists() else "does not exist"
            raise InputError(f"{list_file} line {number}: {path} {what}")
        if path.resolve() not in seen:  # the same image listed twice is processed once
            seen.add(path.resolve())
            files.append(path)
    if not files:
        raise InputError(f"{list_file} lists no images")
    return files


def list_inputs(path: str | os.PathLike, exclude: str | os.PathLike | None = None) -> list[Path]:
    """The image files that ``path`` names.

    - an image file: itself (any extension PIL may read);
    - a directory: every ``.jpg .jpeg .png .bmp .tif .tiff .webp`` file below it (case-insensitive,
      recursive, hidden files and folders skipped, files under ``exclude`` skipped), sorted;
    - a ``.txt`` file: one image path per line, relative paths resolved against the list file's
      folder, blank lines and ``#`` comment lines ignored, repeated entries kept once.

    ``exclude`` is the output directory: so that a rerun never reads its own outputs, everything under it is skipped,
    and it must not be the input directory itself (paths compared resolved: relative, absolute, via symlinks).
    Raises ``InputError`` naming the path when it (or a listed file) does not exist, when nothing is found, or when
    ``exclude`` is the input directory.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"input {path} does not exist")
    if path.is_dir():
        skip = Path(exclude).expanduser().resolve() if exclude is not None else None
        if skip == path.resolve():
            raise InputError(
                f"output directory {exclude} is the input directory {path}: depth maps written there would be read "
                f"as inputs by the next run; write them into another directory (one inside {path} is skipped)"
            )
        files = sorted(
            p
            for p in path.rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS
            and p.is_file()
            and not _is_hidden(p, path)
            and not (skip is not None and p.resolve().is_relative_to(skip))
        )
        if not files:
            raise InputError(f"no images ({' '.join(IMAGE_EXTENSIONS)}) found under {path}")
        return files
    if path.suffix.lower() == LIST_EXTENSION:
        return _read_list(path)
    return [path]


def output_names(files: Sequence[Path], root: Path | None = None) -> list[Path]:
    """Unique output names (no suffix) relative to the output directory, one per input file.

    Under a directory ``root`` the name is the path below ``root`` (``a/x.jpg`` -> ``a/x``), so
    equal file names in different folders do not collide; otherwise it is the file stem, and
    stems shared by files from different folders keep the path below their common folder.
    Names still shared (``x.jpg`` and ``x.png``) get the extension appended (``x_jpg``, ``x_png``).
    """
    if root is not None:
        names = [f.relative_to(root).with_suffix("") for f in files]
    else:
        names = [Path(f.stem) for f in files]
        groups: dict[Path, list[int]] = defaultdict(list)
        for i, name in enumerate(names):
            groups[name].append(i)
        for indices in groups.values():
            if len(indices) > 1:
                common = Path(os.path.commonpath([files[i].absolute().parent for i in indices]))
                for i in indices:
                    names[i] = files[i].absolute().relative_to(common).with_suffix("")
    counts = Counter(names)
    names = [
        n.with_name(f"{n.name}_{f.suffix.lstrip('.')}") if counts[n] > 1 and f.suffix else n
        for n, f in zip(names, files)
    ]
    taken: set[Path] = set()
    unique: list[Path] = []
    for name in names:  # last resort (e.g. ``x_jpg.png`` next to ``x.jpg`` and ``x.png``): a counter
        candidate, k = name, 1
        while candidate in taken:
            k += 1
            candidate = name.with_name(f"{name.name}_{k}")
        taken.add(candidate)
        unique.append(candidate)
    return unique


def read_checked(path: Path) -> tuple[np.ndarray | None, str]:
    """``(rgb, "")`` for a usable image, ``(None, reason)`` otherwise."""
    try:
        rgb = read_rgb(path, exif=True)
    except Image.UnidentifiedImageError:
        if is_video(path):
            return None, f"a video: give it as --input on its own (anydepth infer --input {path})"
        return None, "not an image file PIL can read"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        return None, f"cannot decode image ({err})"
    try:
        check_image(rgb, "image")
    except ValueError as err:
        return None, str(err)
    return rgb, ""


# ---------------------------------------------------------------- outputs


def requested_suffixes(raw_npy: bool, png16: bool, point_cloud: bool) -> tuple[str, ...]:
    """The :data:`OUTPUT_SUFFIXES` :func:`write_outputs` writes with these options."""
    wanted = (True, raw_npy, png16, point_cloud)
    return tuple(suffix for suffix, want in zip(OUTPUT_SUFFIXES, wanted) if want)


def all_exist(stem: Path, suffixes: Sequence[str]) -> bool:
    """Whether ``<stem><suffix>`` is a file for every suffix."""
    return all(stem.with_name(stem.name + suffix).is_file() for suffix in suffixes)


def _save(array: np.ndarray, path: Path) -> None:
    """``array`` as an image (format from the suffix) or ``.npy`` file, complete or absent (atomic write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with written_atomically(path) as tmp:
        if path.suffix == ".npy":
            np.save(tmp, array)
        else:
            Image.fromarray(array).save(tmp)


def write_outputs(
    rgb: np.ndarray,
    prediction: np.ndarray,
    stem: Path,
    raw_npy: bool = False,
    png16: bool = False,
    grayscale: bool = False,
    side_by_side: bool = False,
    metric: bool = False,
    camera: Camera | None = None,
) -> None:
    """Write ``<stem>.png`` (coloured or grayscale, near = red / white, optionally beside ``rgb``) and the extras.

    ``prediction`` is relative disparity, or with ``metric`` depth in metres. ``<stem>.npy``: float32 prediction at
    image size (``raw_npy``); ``<stem>_16bit.png``, PIL mode ``I;16`` (``png16``): min-max normalised disparity, or
    metric depth in millimetres (:func:`~anydepth.visualize.to_millimetres`, clipped at 65.535 m, 0 = none). A metric
    map gets a metre scale bar below it (:func:`~anydepth.visualize.with_depth_scale`), and with a ``camera`` a
    coloured point cloud ``<stem>.ply`` (:mod:`anydepth.pointcloud`).
    """
    if camera is not None and not metric:
        raise ValueError("a point cloud needs metric depth; a relative prediction has an unknown scale and shift")
    shown = -prediction if metric else prediction  # near is the maximum either way
    vis = visualize.to_uint8(shown) if grayscale else visualize.colorize(shown)
    if metric:
        vis = visualize.with_depth_scale(vis, prediction)
    if side_by_side:
        below = vis.shape[0] - rgb.shape[0]  # the scale bar's rows: white under the image
        vis = visualize.side_by_side(np.pad(rgb, ((0, below), (0, 0), (0, 0)), constant_values=255), vis)
    _save(vis, stem.with_name(stem.name + ".png"))
    if raw_npy:
        _save(prediction.astype(np.float32, copy=False), stem.with_name(stem.name + ".npy"))
    if png16:
        _save(
            visualize.to_millimetres(prediction) if metric else visualize.to_uint16(prediction),
            stem.with_name(stem.name + "_16bit.png"),
        )
    if camera is not None:
        points, valid = back_project(prediction, camera.focal_px(prediction.shape[1]))
        with written_atomically(stem.with_name(stem.name + ".ply")) as tmp:
            write_ply(tmp, points, rgb[valid])


# ---------------------------------------------------------------- the loop


def run_inference(
    model: DepthAnything,
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    input_size: int = 518,
    batch_size: int = 4,
    raw_npy: bool = False,
    png16: bool = False,
    grayscale: bool = False,
    side_by_side: bool = False,
    camera: Camera | None = None,
    num_workers: int = DEFAULT_READ_WORKERS,
    skip_existing: bool = False,
) -> InferenceSummary:
    """Predict and write depth maps for ``inputs`` into ``output_dir``; see ``write_outputs`` (metric output for a
    metric model, :func:`model_head`; a ``camera`` writes point clouds and needs a metric model: ``ValueError``).

    ``inputs`` is a path for ``list_inputs`` (image, directory, ``.txt`` list) or a sequence of
    image paths. Output names follow ``output_names`` (paths below an input directory are kept).
    ``num_workers`` threads decode the files ahead of the model (0: in this thread); images of any sizes that share
    a network input size (:func:`~anydepth.batching.network_size`) go through the model ``batch_size`` at a time
    (:func:`~anydepth.batching.predict_batch`, the same maps as one by one); unreadable or
    too small ones are skipped with a ``SkippedInputWarning`` and listed in the summary. ``skip_existing`` keeps the
    inputs whose requested outputs all exist (files are written atomically, so an existing one is complete: a killed
    run resumes where it stopped; outputs are not compared with the options that wrote them). Raises ``InputError`` for
    unusable paths (see ``list_inputs``) and for depth maps that cannot be written.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    metric = model_head(model) == "metric"
    if camera is not None and not metric:
        raise ValueError("point clouds need a metric model; this one predicts relative disparity")
    output_dir = Path(output_dir)
    root: Path | None = None
    if isinstance(inputs, (str, os.PathLike)):
        files = list_inputs(inputs, exclude=output_dir)
        root = Path(inputs).expanduser() if Path(inputs).expanduser().is_dir() else None
    else:
        files = [Path(p) for p in inputs]
        if not files:
            raise InputError("no input images given")
    names = output_names(files, root)
    resolved_inputs = {f.resolve() for f in files}
    for name in names:
        for suffix in OUTPUT_SUFFIXES:
            target = f"{name.name}{suffix}"
            if (output_dir / name.parent / target).resolve() in resolved_inputs:
                raise InputError(f"writing {output_dir / name.parent / target} would overwrite that input image")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create output directory {output_dir}: {err}") from err

    summary = InferenceSummary()
    pending = list(zip(files, names))
    if skip_existing:
        suffixes = requested_suffixes(raw_npy, png16, camera is not None)
        todo = [(path, name) for path, name in pending if not all_exist(output_dir / name, suffixes)]
        summary.kept, pending = len(pending) - len(todo), todo
    with tqdm(total=len(pending), unit="img", desc="infer", disable=None) as progress:

        def readable() -> Iterator[tuple[Path, Path, np.ndarray]]:
            ahead = 2 * max(batch_size, num_workers)
            for (path, name), (rgb, reason) in read_ahead(lambda e: read_checked(e[0]), pending, num_workers, ahead):
                if rgb is None:
                    summary.skipped.append((path, reason))
                    warnings.warn(f"skipping {path}: {reason}", SkippedInputWarning, stacklevel=2)
                    progress.update(1)
                else:
                    yield path, name, rgb

        def bucket(entry: tuple[Path, Path, np.ndarray]) -> tuple[int, int]:
            return network_size(model, *entry[2].shape[:2], input_size)

        for batch in bucketed(readable(), bucket, batch_size, max_waiting=MAX_WAITING_BATCHES * batch_size):
            depths = predict_batch(model, [rgb for _, _, rgb in batch], input_size)
            for (path, name, rgb), prediction in zip(batch, depths):
                try:
                    write_outputs(
                        rgb, prediction, output_dir / name, raw_npy, png16, grayscale, side_by_side, metric, camera
                    )
                except OSError as err:  # a full disk, a directory in the way ...
                    raise InputError(f"cannot write the depth map of {path} into {output_dir}: {err}") from err
                summary.written += 1
                progress.update(1)
    return summary
