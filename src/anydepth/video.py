"""Depth videos: ``anydepth infer --input clip.mp4`` (or ``.avi .mov .mkv .webm``) -> ``<clip>_depth.mp4``.

Video files are read and written with PyAV (FFmpeg's libraries, wheels bundle them). One colour scale serves the
whole clip: a depth map coloured by its own min-max flickers as near objects enter and leave the frame, so the clip is
processed in two passes. Pass 1 decodes the frames, predicts them ``batch_size`` at a time and stores every prediction
(float32, frame size) as ``NNNNNN.npy`` on disk, keeping the clip's global min / max; pass 2 colours each stored map
with that range and encodes the video. The maps stay on disk, not in memory, so clips of any length fit: in
``<clip>_depth/`` with ``raw_npy``, else in ``.<clip>_depth.frames/`` inside the output directory, removed afterwards
(4 bytes per pixel per frame while it runs: about 8 MB per 1080p frame); a run killed midway leaves it, and the next
run of the clip clears it. The folder is locked for the run, so two runs of one clip into one output cannot mix.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from tqdm import tqdm

from anydepth import visualize
from anydepth.batching import DEFAULT_READ_WORKERS, bucketed, predict_batch, read_ahead
from anydepth.images import VIDEO_EXTENSIONS, is_video  # noqa: F401  (their home is images; kept importable here)
from anydepth.inference import InputError, model_head
from anydepth.locks import OutputLock

VIDEO_SUFFIX = "_depth.mp4"
"""``<clip>_depth.mp4``: the coloured depth video written for ``<clip>.<ext>``."""
FRAMES_SUFFIX = "_depth"
"""``<clip>_depth/NNNNNN.npy``: the per-frame predictions kept with ``raw_npy`` (frame index from 0, 6 digits)."""
CODEC, CRF = "libx264", "18"  # H.264 in yuv420p plays everywhere; CRF 18 is visually lossless
DEFAULT_FPS = Fraction(30)  # when the container does not say


class VideoError(InputError):
    """A video file cannot be opened or decoded, has no video stream, or no frames."""


@dataclass(frozen=True)
class VideoInfo:
    """A video stream: frame ``width`` x ``height`` in pixels, ``fps`` and the container's ``frames`` (0: unknown)."""

    width: int
    height: int
    fps: Fraction
    frames: int


def _open(path: Path) -> Any:
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise VideoError(f"cannot open video {path}: {err}; is it a complete video file?") from err
    if not container.streams.video:
        container.close()
        raise VideoError(f"video {path} has no video stream")
    return container


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """The first video stream of ``path``; raises ``VideoError`` naming the file when it cannot be opened, has no
    video stream or its first frame does not decode."""
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        try:
            next(container.decode(stream))
        except (av.error.FFmpegError, StopIteration) as err:
            raise VideoError(f"cannot decode video {path}: {err or 'no frames'}; is it a complete video file?") from err
        rate = stream.average_rate or stream.guessed_rate or DEFAULT_FPS
        return VideoInfo(stream.width, stream.height, Fraction(rate), stream.frames)


def read_frames(path: str | os.PathLike, num_workers: int = 0) -> Iterator[np.ndarray]:
    """The frames of ``path``'s first video stream as H x W x 3 uint8 RGB, in order; raises ``VideoError`` naming the
    file and the frame where decoding fails. FFmpeg's frame threads decode; ``num_workers`` threads convert the
    decoded frames to RGB (swscale, which releases the GIL) a few frames ahead of the consumer
    (:func:`~anydepth.batching.read_ahead`; 0: in the caller's thread)."""
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        decoded = _decoded(container.decode(stream), path)
        for _, rgb in read_ahead(_to_rgb, decoded, num_workers, depth=2 * max(1, num_workers)):
            yield rgb


def _decoded(frames: Iterator[Any], path: Path) -> Iterator[Any]:
    """``frames`` as they decode; an FFmpeg error becomes a ``VideoError`` naming ``path`` and the frame index."""
    index = 0
    try:
        for frame in frames:
            yield frame
            index += 1
    except av.error.FFmpegError as err:
        raise VideoError(f"cannot decode frame {index} of video {path}: {err}; is the file complete?") from err


def _to_rgb(frame: Any) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: Fraction) -> int:
    """Encode H x W x 3 uint8 RGB ``frames`` (one size) as H.264 MP4 at ``fps``; odd sides are padded by one
    repeated edge row / column (yuv420p needs even sides). Written under a temporary name, then renamed: ``path``
    appears complete or not at all. Returns the number of frames; ``ValueError`` when there are none."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    count = 0
    try:
        with av.open(str(partial), "w", format="mp4") as container:
            stream = container.add_stream(CODEC, rate=fps, options={"crf": CRF})
            stream.pix_fmt = "yuv420p"
            for frame in frames:
                frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")
                if count == 0:
                    stream.height, stream.width = frame.shape[:2]
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                count += 1
            if count == 0:
                raise ValueError(f"no frames to write to {path}")
            container.mux(stream.encode())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return count


def colorize_in_range(shown: np.ndarray, lo: float, hi: float, grayscale: bool = False) -> np.ndarray:
    """``shown`` (larger = nearer) coloured on the fixed range ``lo..hi`` instead of its own min-max: Spectral_r
    (``visualize.SPECTRAL_R``, H x W x 3) or grayscale (H x W) levels ``(v - lo) / (hi - lo) * 255`` truncated,
    clipped to 0..255 (non-finite: 0); all 0 when ``hi <= lo``."""
    if hi > lo:
        with np.errstate(invalid="ignore", over="ignore"):
            level = (np.asarray(shown, np.float64) - lo) / (hi - lo) * 255.0
        level = np.clip(np.nan_to_num(level, nan=0.0, posinf=0.0, neginf=0.0), 0.0, 255.0).astype(np.uint8)
    else:
        level = np.zeros(np.shape(shown), np.uint8)
    return level if grayscale else visualize.SPECTRAL_R[level]


@dataclass(frozen=True)
class VideoSummary:
    """What ``run_video_inference`` wrote: the ``video``, its ``frames``, the clip's ``depth_range`` (min, max of the
    predictions: disparity, or metres for a metric model) and the per-frame ``.npy`` folder (None without raw_npy)."""

    video: Path
    frames: int
    depth_range: tuple[float, float]
    raw_dir: Path | None


def _predict_to_disk(
    model: Any, path: Path, store: Path, input_size: int, batch_size: int, num_workers: int
) -> tuple[int, float, float]:
    """Pass 1: every frame's prediction as ``store/NNNNNN.npy``; returns (frames, min, max) over the clip."""
    lo, hi, count = np.inf, -np.inf, 0
    indexed = enumerate(read_frames(path, num_workers))
    with tqdm(unit="frame", desc=f"depth {path.name}", disable=None) as progress:
        for batch in bucketed(indexed, lambda item: item[1].shape[:2], batch_size, max_waiting=batch_size):
            for (index, _), prediction in zip(batch, predict_batch(model, [f for _, f in batch], input_size)):
                np.save(store / f"{index:06d}.npy", prediction.astype(np.float32, copy=False))
                frame_lo, frame_hi = visualize.finite_range(prediction)
                lo, hi, count = min(lo, frame_lo), max(hi, frame_hi), count + 1
            progress.update(len(batch))
    if count == 0:
        raise VideoError(f"video {path} has no decodable frames")
    return count, float(lo), float(hi)


def depth_video_outputs(path: Path, output_dir: Path, raw_npy: bool) -> tuple[Path, Path | None]:
    """What :func:`run_video_inference` writes for the clip ``path``: ``<clip>_depth.mp4`` and, with ``raw_npy``,
    the ``<clip>_depth/`` folder of per-frame maps (None without)."""
    video = output_dir / (path.stem + VIDEO_SUFFIX)
    return video, output_dir / (path.stem + FRAMES_SUFFIX) if raw_npy else None


@contextlib.contextmanager
def _frame_store(path: Path, output_dir: Path, raw_dir: Path | None) -> Iterator[Path]:
    """The folder pass 1 stores the clip's maps in, held by this run (:class:`~anydepth.locks.OutputLock`: a second
    run of the same clip into the same output stops with one line naming the first): ``raw_dir``, kept; else
    ``output_dir/.<clip>_depth.frames/``, cleared of what a killed run left and removed at the end."""
    store = raw_dir if raw_dir is not None else output_dir / f".{path.stem}{FRAMES_SUFFIX}.frames"
    with OutputLock(store, f"anydepth infer of {path.name}"):
        try:
            if raw_dir is None:
                for stale in store.glob("*.npy"):
                    stale.unlink()
            yield store
        finally:
            if raw_dir is None:
                shutil.rmtree(store, ignore_errors=True)


def run_video_inference(
    model: Any,
    path: str | os.PathLike,
    output_dir: str | os.PathLike,
    input_size: int = 518,
    batch_size: int = 4,
    raw_npy: bool = False,
    grayscale: bool = False,
    num_workers: int = DEFAULT_READ_WORKERS,
) -> VideoSummary:
    """Write ``output_dir/<clip>_depth.mp4`` for the video ``path``: every frame's depth coloured on ONE scale for the
    clip (module docstring), Spectral_r near = red or ``grayscale`` near = white, at the clip's frame rate; a metric
    model's frames are coloured linearly in metres with the clip's metre scale bar below. ``raw_npy`` keeps the
    float32 predictions at frame size as ``<clip>_depth/NNNNNN.npy``. ``model`` is any model ``run_inference``
    takes; ``num_workers`` threads prepare frames ahead of it (:func:`read_frames`). Raises ``VideoError`` for a
    file that cannot be decoded, ``InputError`` for outputs that cannot be written."""
    path, output_dir = Path(path), Path(output_dir)
    info = probe_video(path)
    metric = model_head(model) == "metric"
    video, raw_dir = depth_video_outputs(path, output_dir, raw_npy)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with _frame_store(path, output_dir, raw_dir) as store:
            frames, lo, hi = _predict_to_disk(model, path, store, input_size, batch_size, num_workers)
            shown_lo, shown_hi = (-hi, -lo) if metric else (lo, hi)  # metric: near = small metres, shown = -depth

            def coloured(index: int) -> np.ndarray:
                prediction = np.load(store / f"{index:06d}.npy")
                vis = colorize_in_range(-prediction if metric else prediction, shown_lo, shown_hi, grayscale)
                vis = visualize.with_depth_scale(vis, np.array([lo, hi])) if metric else vis
                return np.repeat(vis[..., None], 3, axis=2) if grayscale else vis

            write_video(video, map(coloured, range(frames)), info.fps)
    except OSError as err:
        raise InputError(f"cannot write the depth video of {path} into {output_dir}: {err}") from err
    return VideoSummary(video, frames, (lo, hi), raw_dir)
