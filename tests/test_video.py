"""Depth videos: a short clip written with PyAV round-trips through ``anydepth infer`` (frame count, size, rate, one
colour scale for the whole clip, per-frame ``.npy``), and bad video input is one error line."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import lightning.pytorch  # noqa: F401  (before the CLI's stderr is captured)
import numpy as np
import pytest
import torch
from PIL import Image

from anydepth.cli import main
from anydepth.locks import OutputLock
from anydepth.models import DepthAnything
from anydepth.video import (
    VideoError,
    colorize_in_range,
    probe_video,
    read_frames,
    run_video_inference,
    write_video,
)
from anydepth.visualize import SCALE_BAR_HEIGHT, SPECTRAL_R, colorize

from helpers import TINY, lift_output_, perturb_
from helpers.fabricate import tiny_metric_checkpoint
from helpers.fuzz import error_line

FRAMES, HEIGHT, WIDTH, FPS = 6, 64, 96, Fraction(12)
INPUT_SIZE = 56


def scene(index: int) -> np.ndarray:
    """A smooth frame that brightens with ``index``: the model's depth range differs from frame to frame."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    wave = np.sin(x / 9.0 + index)[..., None] * np.cos(y / 7.0)[..., None] * np.array([1.0, 0.6, 0.3])
    return np.clip(30 + 40 * index + 25 * wave, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    assert write_video(path, (scene(i) for i in range(FRAMES)), FPS) == FRAMES
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DepthAnything]:
    """A tiny model whose depth range follows the frames' brightness (1.4..3.0 on the first, 0.6..3.2 on the last)."""
    torch.manual_seed(0)
    model = lift_output_(perturb_(DepthAnything(**TINY), std=0.1), bias=3.0).eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    model.save_checkpoint(path, format="anydepth")
    return path, model


def infer(checkpoint: Path, inp: Path, out: Path, *extra: str) -> int:
    return main(
        ["infer", "--checkpoint", str(checkpoint), "--input", str(inp), "--output", str(out), "--device", "cpu"]
        + ["--input-size", str(INPUT_SIZE), *extra]
    )


def levels(rgb: np.ndarray) -> np.ndarray:
    """The Spectral_r level (0..255) nearest to each pixel's colour: a coloured frame read back as numbers."""
    distance = ((rgb[..., None, :].astype(np.int32) - SPECTRAL_R.astype(np.int32)) ** 2).sum(-1)
    return distance.argmin(-1)


def test_colorize_in_range_uses_the_given_range_not_the_maps_own() -> None:
    ramp = np.linspace(2.0, 3.0, 11, dtype=np.float32).reshape(1, 11)
    np.testing.assert_array_equal(colorize_in_range(ramp, 2.0, 3.0), colorize(ramp))  # own range: as colorize
    half = colorize_in_range(ramp, 2.0, 4.0, grayscale=True)
    assert half[0, 0] == 0 and half[0, -1] == 127  # (3 - 2) / (4 - 2) * 255, truncated
    clipped = colorize_in_range(np.array([[0.0, 9.0, np.nan]]), 1.0, 2.0, grayscale=True)
    assert clipped.tolist() == [[0, 255, 0]]
    assert not colorize_in_range(ramp, 1.0, 1.0, grayscale=True).any()


def test_write_and_read_frames_round_trip_with_odd_sides(tmp_path: Path) -> None:
    frames = [np.full((15, 21, 3), 40 * i, np.uint8) for i in range(3)]
    assert write_video(tmp_path / "odd.mp4", frames, Fraction(5)) == 3
    info = probe_video(tmp_path / "odd.mp4")
    assert (info.width, info.height, info.fps) == (22, 16, 5)  # padded by one edge column and row
    decoded = list(read_frames(tmp_path / "odd.mp4"))
    assert len(decoded) == 3 and all(abs(int(f[:15, :21].mean()) - 40 * i) <= 2 for i, f in enumerate(decoded))
    assert not (tmp_path / "odd.mp4.partial").exists()
    with pytest.raises(ValueError, match="no frames to write"):
        write_video(tmp_path / "none.mp4", [], Fraction(5))
    assert not list(tmp_path.glob("none.mp4*"))


def test_frames_converted_ahead_in_threads_are_the_frames_in_order(clip: Path) -> None:
    inline = list(read_frames(clip, num_workers=0))
    ahead = list(read_frames(clip, num_workers=3))
    assert len(inline) == FRAMES and len(ahead) == FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(inline, ahead))
    brightness = [float(frame.mean()) for frame in ahead]
    assert brightness == sorted(brightness)  # scene(i) brightens with i: the order is the clip's


def test_a_clip_becomes_a_depth_video_on_one_colour_scale(clip: Path, checkpoint, tmp_path: Path, capsys) -> None:
    ckpt, model = checkpoint
    out = tmp_path / "out"
    assert infer(ckpt, clip, out, "--raw-npy", "--batch-size", "4") == 0  # batches of 4 + 2 frames
    stdout = capsys.readouterr().out
    assert f"wrote {out / 'clip_depth.mp4'} (6 frames, colour scale" in stdout
    info = probe_video(out / "clip_depth.mp4")
    assert (info.width, info.height, info.fps) == (WIDTH, HEIGHT, FPS)
    coloured = list(read_frames(out / "clip_depth.mp4"))
    maps = [np.load(out / "clip_depth" / f"{i:06d}.npy") for i in range(FRAMES)]
    assert len(coloured) == FRAMES and sorted(p.name for p in out.iterdir()) == ["clip_depth", "clip_depth.mp4"]
    inputs = list(read_frames(clip))
    for frame, depth in zip(inputs, maps):  # the maps are the model's on the decoded frames
        assert depth.shape == (HEIGHT, WIDTH) and depth.dtype == np.float32
        np.testing.assert_allclose(depth, model.infer_image(frame, INPUT_SIZE), rtol=1e-5, atol=1e-6)
    lo, hi = min(m.min() for m in maps), max(m.max() for m in maps)
    own_ranges = [(m.min(), m.max()) for m in maps]
    narrowest = min(range(FRAMES), key=lambda i: own_ranges[i][1] - own_ranges[i][0])
    assert np.subtract(*own_ranges[narrowest][::-1]) < 0.6 * (hi - lo)  # per-frame scales would differ
    for i, (rgb, depth, (own_lo, own_hi)) in enumerate(zip(coloured, maps, own_ranges)):
        read_back = lo + levels(rgb) / 255 * (hi - lo)  # the colours mean values on the clip's range ...
        per_frame = own_lo + levels(rgb) / 255 * (own_hi - own_lo)  # ... not on the frame's own
        clip_error, frame_error = (np.abs(v - depth).mean() / (hi - lo) for v in (read_back, per_frame))
        assert clip_error < 0.02, (i, clip_error)
        if i == narrowest:
            assert frame_error > 3 * clip_error, (clip_error, frame_error)


def test_library_grayscale_metric_clip_has_a_metre_scale_bar(clip: Path, tmp_path: Path) -> None:
    model = tiny_metric_checkpoint(tmp_path / "metric.pth")
    summary = run_video_inference(model, clip, tmp_path / "out", INPUT_SIZE, batch_size=6, grayscale=True)
    assert summary.frames == FRAMES and summary.raw_dir is None
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip_depth.mp4"]  # the stored maps are gone
    info = probe_video(summary.video)
    assert (info.width, info.height) == (WIDTH, HEIGHT + SCALE_BAR_HEIGHT)
    first = next(read_frames(summary.video))
    lo, hi = summary.depth_range
    assert 0 < lo < hi < 10.0
    gray = first[:HEIGHT].astype(float).mean(-1)
    expected = colorize_in_range(-model.infer_image(next(read_frames(clip)), INPUT_SIZE), -hi, -lo, grayscale=True)
    assert np.median(np.abs(gray - expected)) <= 4


def audio_only(path: Path) -> Path:
    """A well-formed MP4 holding one silent AAC frame and no video stream."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=8000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.mark.parametrize("damage", ["junk", "truncated", "audio only"])
def test_a_bad_video_is_one_error_line(damage: str, clip: Path, checkpoint, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.mkv"
    if damage == "junk":
        bad.write_bytes(b"\x1a\x45\xdf\xa3" + b"junk" * 64)
    elif damage == "truncated":
        bad = tmp_path / "bad.mp4"
        bad.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    else:
        bad = audio_only(tmp_path / "sound.mp4")
    assert infer(checkpoint[0], bad, tmp_path / "out") == 2
    line = error_line(capsys.readouterr().err, "infer")
    assert str(bad) in line and "video" in line, line
    assert not (tmp_path / "out").exists()
    with pytest.raises(VideoError):
        probe_video(bad)


def test_image_only_outputs_are_refused_for_a_video(clip: Path, checkpoint, tmp_path: Path, capsys) -> None:
    assert infer(checkpoint[0], clip, tmp_path / "out", "--png16", "--side-by-side") == 2
    line = error_line(capsys.readouterr().err, "infer")
    assert "--png16 / --side-by-side: not available for the video" in line and "clip_depth.mp4" in line


def test_a_folder_of_frames_is_a_folder_of_images(clip: Path, checkpoint, tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, frame in enumerate(read_frames(clip)):
        Image.fromarray(frame).save(frames / f"{i:04d}.png")
    assert infer(checkpoint[0], frames, tmp_path / "out") == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{i:04d}.png" for i in range(FRAMES)]


def test_a_video_in_a_list_is_skipped_with_the_way_to_run_it(clip: Path, checkpoint, tmp_path: Path, capsys) -> None:
    """Lists hold images: a listed clip is skipped (exit 1) with a reason that says how to infer it."""
    Image.fromarray(scene(0)).save(tmp_path / "frame.png")
    (tmp_path / "list.txt").write_text(f"frame.png\n{clip}\n")
    assert infer(checkpoint[0], tmp_path / "list.txt", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert f"skipping {clip}: a video: give it as --input on its own (anydepth infer --input {clip})" in err
    assert (tmp_path / "out" / "frame.png").is_file() and not list((tmp_path / "out").glob("clip*"))


def test_a_killed_runs_frames_are_cleared_and_a_concurrent_run_of_the_clip_refused(
    clip: Path, checkpoint, tmp_path: Path, capsys
) -> None:
    """What a killed run leaves (its maps in ``.clip_depth.frames/``, an unheld lock file) is cleared by the next run;
    while a run holds the clip's folder, a second run of the clip into the same output is one error line."""
    out = tmp_path / "out"
    stale = out / ".clip_depth.frames"
    stale.mkdir(parents=True)
    np.save(stale / "000099.npy", np.full((4, 4), 1e6, np.float32))  # a frame index the clip does not have
    (stale / ".anydepth.lock").write_text('{"pid": 1}\n')
    assert infer(checkpoint[0], clip, out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["clip_depth.mp4"]
    assert "colour scale" in capsys.readouterr().out
    with OutputLock(stale, "anydepth infer of clip.mp4"):
        assert infer(checkpoint[0], clip, out) == 2
        line = error_line(capsys.readouterr().err, "infer")
        assert str(stale) in line and "in use by another anydepth infer of clip.mp4" in line, line
