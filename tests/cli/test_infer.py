"""``anydepth infer`` end to end on tiny random models (relative and metric), a metric model with exactly known metres
and scikit-image photos (offline, CPU)."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from anydepth.cli import main
from anydepth.images import read_rgb
from anydepth.inference import (
    InputError,
    SkippedInputWarning,
    list_inputs,
    output_names,
    run_inference,
)
from anydepth.models import DepthAnything
from anydepth.pointcloud import Camera
from anydepth.visualize import (
    SCALE_BAR_HEIGHT,
    SPECTRAL_R,
    colorize,
    side_by_side,
    to_millimetres,
    to_uint8,
    to_uint16,
    with_depth_scale,
)

from helpers import TINY
from helpers.fabricate import coded_depth, tiny_checkpoint, tiny_metric_checkpoint
from helpers.fuzz import CASES, bad_checkpoint, error_line
from helpers.metric import CodedDepth, read_ply

skdata = pytest.importorskip("skimage.data")

INPUT_SIZE = 56
GAP = 50


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DepthAnything]:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    return path, tiny_checkpoint(path)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """Input folder; maps each relative path (no suffix) to the RGB image stored there."""
    root = tmp_path_factory.mktemp("photos")
    images = {
        "astronaut.jpg": skdata.astronaut(),
        "coffee.png": skdata.coffee(),
        "sub/chelsea.jpg": skdata.chelsea(),
        "more/astronaut.jpg": skdata.astronaut()[100:300, 50:350],  # same name as the top-level one
    }
    stored = {}
    for rel, rgb in images.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(root / rel, quality=95)
        stored[str(Path(rel).with_suffix(""))] = read_rgb(root / rel)  # JPEG-decoded pixels
    return root, stored


def mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def decoys(path: Path) -> Path:
    """A folder without images: a text file, a hidden image and a folder named like an image."""
    (path / "folder.jpg").mkdir(parents=True)
    text(path / "notes.txt", "not an image")
    (path / ".hidden.png").write_bytes(encoded("PNG"))
    return path


def blocked(root: Path) -> Path:
    """An output folder where a folder is in the way of the depth map of ``coffee.png``."""
    (root / "blocked" / "coffee.png").mkdir(parents=True)
    return root / "blocked"


def text(path: Path, content: str) -> Path:
    path.write_text(content, errors="surrogateescape")
    return path


def infer(ckpt: Path, inp: Path, out: Path, *extra: str) -> int:
    return main(
        ["infer", "--checkpoint", str(ckpt), "--input", str(inp), "--output", str(out)]
        + ["--input-size", str(INPUT_SIZE), "--device", "cpu", *extra]
    )


# ---------------------------------------------------------------- visualize


def test_spectral_r_matches_matplotlib() -> None:
    # Reference: (matplotlib.colormaps["Spectral_r"](np.arange(256, dtype=np.uint8))[:, :3] * 255).astype(np.uint8),
    # matplotlib 3.11.2.
    assert SPECTRAL_R.shape == (256, 3) and SPECTRAL_R.dtype == np.uint8
    assert SPECTRAL_R[0].tolist() == [94, 79, 162]
    assert SPECTRAL_R[37].tolist() == [73, 162, 178]
    assert SPECTRAL_R[128].tolist() == [254, 254, 189]
    assert SPECTRAL_R[200].tolist() == [245, 119, 71]
    assert SPECTRAL_R[255].tolist() == [158, 1, 66]
    assert hashlib.sha256(SPECTRAL_R.tobytes()).hexdigest() == (
        "f641ca89be9889926f69aa54e491aabf3f9cfdb5a61e116cb33cc13e9ca0a26a"
    )


def test_colorize_near_red_far_blue() -> None:
    disparity = np.tile(np.linspace(0.5, 3.0, 64, dtype=np.float32), (8, 1))
    vis = colorize(disparity)
    assert vis.shape == (8, 64, 3) and vis.dtype == np.uint8
    near, far = vis[0, -1].astype(int), vis[0, 0].astype(int)  # max disparity, min disparity
    assert near[0] > near[2], near
    assert far[2] > far[0], far


def test_normalisation_ranges_and_constant_maps() -> None:
    ramp = np.linspace(-2.0, 7.0, 100, dtype=np.float32).reshape(10, 10)
    u8, u16 = to_uint8(ramp), to_uint16(ramp)
    assert u8.dtype == np.uint8 and (u8.min(), u8.max()) == (0, 255)
    assert u16.dtype == np.uint16 and (u16.min(), u16.max()) == (0, 65535)
    # The official script truncates: (d - min) / (max - min) * 255.0 -> astype(uint8).
    np.testing.assert_array_equal(u8, ((ramp - ramp.min()) / (ramp.max() - ramp.min()) * 255.0).astype(np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for bad in (np.full((5, 7), 3.0, np.float32), np.full((5, 7), np.nan, np.float32)):
            assert not to_uint8(bad).any() and not to_uint16(bad).any()
            assert colorize(bad).dtype == np.uint8 and (colorize(bad) == SPECTRAL_R[0]).all()
        with_nan = ramp.copy()
        with_nan[0, 0] = np.nan
        assert to_uint8(with_nan)[0, 0] == 0 and to_uint8(with_nan).max() == 255


def test_side_by_side_layout() -> None:
    rgb = np.zeros((20, 30, 3), np.uint8)
    out = side_by_side(rgb, np.full((20, 30), 7, np.uint8))
    assert out.shape == (20, 2 * 30 + GAP, 3)
    assert (out[:, 30 : 30 + GAP] == 255).all() and (out[:, 30 + GAP :] == 7).all()


def test_millimetres_and_the_metre_scale_bar() -> None:
    depth = np.array([[0.0, 0.0004, 0.0005, 1.2344, 1.2346], [65.535, 65.536, 100.0, np.nan, -np.inf]])
    assert to_millimetres(depth).tolist() == [[0, 0, 0, 1234, 1235], [65535, 65535, 65535, 0, 0]]  # rounded, clipped
    ramp = np.tile(np.linspace(0.5, 4.0, 120), (30, 1))  # metres, near on the left
    vis = with_depth_scale(colorize(-ramp), ramp)
    assert vis.shape == (30 + SCALE_BAR_HEIGHT, 120, 3)
    np.testing.assert_array_equal(vis[:30], colorize(-ramp))
    bar, labels = vis[30], vis[30 + SCALE_BAR_HEIGHT // 2 :]
    assert (bar[0] == SPECTRAL_R[255]).all() and (bar[-1] == SPECTRAL_R[0]).all()  # the map's near and far colours
    assert (labels < 128).any() and (labels == 255).any()  # dark text on white: "0.50 m" ... "4.00 m"
    gray = with_depth_scale(to_uint8(-ramp), ramp)
    assert gray.shape == (30 + SCALE_BAR_HEIGHT, 120) and gray[30, 0] == 255 and gray[30, -1] == 0


# ---------------------------------------------------------------- inputs


def test_list_inputs_and_names(photos: tuple[Path, dict], tmp_path: Path) -> None:
    root, stored = photos
    files = list_inputs(root)
    assert [str(f.relative_to(root).with_suffix("")) for f in files] == sorted(stored)
    assert [str(n) for n in output_names(files, root)] == [str(Path(f).with_suffix("")) for f in sorted(stored)]
    a, b = tmp_path / "a", tmp_path / "b"
    names = output_names([a / "x.jpg", b / "x.jpg", a / "y.jpg", a / "y.png", a / "z.jpg"])
    assert [n.as_posix() for n in names] == ["a/x", "b/x", "y_jpg", "y_png", "z"]
    with pytest.raises(InputError, match="nope"):
        list_inputs(tmp_path / "nope")


def test_infer_applies_exif_orientation(tiny, tmp_path: Path) -> None:
    """Inputs are read upright (EXIF applied), unlike labeled data, whose labels follow the stored grid."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / "rot.jpg", exif=exif)
    assert read_rgb(tmp_path / "rot.jpg", exif=True).shape == (60, 40, 3)
    assert read_rgb(tmp_path / "rot.jpg").shape == (40, 60, 3)
    assert infer(tiny[0], tmp_path / "rot.jpg", tmp_path / "out", "--raw-npy") == 0
    assert np.load(tmp_path / "out" / "rot.npy").shape == (60, 40)


# ---------------------------------------------------------------- CLI


def test_infer_directory_all_outputs(tiny, photos, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ckpt, model = tiny
    root, stored = photos
    out = tmp_path / "out"
    assert infer(ckpt, root, out, "--raw-npy", "--png16", "--batch-size", "3") == 0
    assert f"wrote 4 depth maps to {out}" in capsys.readouterr().out
    for rel, rgb in stored.items():
        h, w = rgb.shape[:2]
        with Image.open(out / f"{rel}.png") as png:
            assert png.mode == "RGB" and png.size == (w, h)
        disparity = np.load(out / f"{rel}.npy")
        assert disparity.shape == (h, w) and disparity.dtype == np.float32
        with Image.open(out / f"{rel}_16bit.png") as png16:
            assert png16.mode == "I;16" and png16.size == (w, h)
            assert np.asarray(png16).dtype == np.uint16
    # The CLI runs the checkpoint's weights with the official recipe.
    expected = model.infer_image(stored["coffee"], INPUT_SIZE)
    assert expected.max() > expected.min() > 0
    written = np.load(out / "coffee.npy")  # batched with other sizes: equal to one by one up to float rounding
    np.testing.assert_allclose(written, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "coffee.png")), colorize(written))


def test_infer_grayscale_and_side_by_side(tiny, photos, tmp_path: Path) -> None:
    ckpt, _ = tiny
    root, stored = photos
    coffee = stored["coffee"]
    h, w = coffee.shape[:2]
    assert infer(ckpt, root / "coffee.png", tmp_path / "gray", "--grayscale") == 0
    with Image.open(tmp_path / "gray" / "coffee.png") as png:
        assert png.mode == "L" and np.asarray(png).shape == (h, w)
    assert infer(ckpt, root / "coffee.png", tmp_path / "sbs", "--side-by-side") == 0
    combined = np.asarray(Image.open(tmp_path / "sbs" / "coffee.png"))
    assert combined.shape == (h, 2 * w + GAP, 3)
    np.testing.assert_array_equal(combined[:, :w], coffee)
    assert (combined[:, w : w + GAP] == 255).all()
    assert infer(ckpt, root / "coffee.png", tmp_path / "both", "--side-by-side", "--grayscale") == 0
    assert np.asarray(Image.open(tmp_path / "both" / "coffee.png")).shape == (h, 2 * w + GAP, 3)


def test_infer_list_file(tiny, photos, tmp_path: Path) -> None:
    ckpt, _ = tiny
    root, stored = photos
    lists = tmp_path / "lists"
    lists.mkdir()
    rel = Path(os.path.relpath(root, lists))  # e.g. ../../photos0
    (lists / "list.txt").write_text(
        f"# photos\n\n{rel / 'astronaut.jpg'}\n  {rel / 'sub' / 'chelsea.jpg'}  \n{root / 'coffee.png'}\n"
        f"{rel / 'more' / 'astronaut.jpg'}\n{rel / 'coffee.png'}\n"
    )
    # the list file's folder, not the working directory, anchors relative entries
    (tmp_path / "elsewhere").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path / "elsewhere")
        assert infer(ckpt, lists / "list.txt", tmp_path / "out") == 0
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    # stems; the two astronaut.jpg keep their path below their common folder; coffee listed twice runs once
    assert written == ["astronaut.png", "chelsea.png", "coffee.png", "more/astronaut.png"]
    with Image.open(tmp_path / "out" / "chelsea.png") as png:
        assert png.size == stored["sub/chelsea"].shape[1::-1]


def test_infer_skips_unreadable_inputs(tiny, photos, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ckpt, model = tiny
    root, _ = photos
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "good.jpg").write_bytes((root / "astronaut.jpg").read_bytes())
    (inp / "broken.jpg").write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(inp / "tiny.png")
    out = tmp_path / "out"
    assert infer(ckpt, inp, out) == 1
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]
    assert "wrote 1 depth map to" in captured.out and "skipped 2 unreadable inputs" in captured.out
    assert "broken.jpg" in captured.out and "tiny.png" in captured.out
    assert "warning: skipping" in captured.err and "broken.jpg" in captured.err and "10x10" in captured.err
    # the library reports skips as warnings, too
    with pytest.warns(SkippedInputWarning) as record:
        summary = run_inference(model, inp, tmp_path / "lib", input_size=INPUT_SIZE)
    assert sorted(Path(str(w.message).split(": ")[0].removeprefix("skipping ")).name for w in record) == [
        "broken.jpg",
        "tiny.png",
    ]
    assert summary.written == 1
    assert sorted(p.name for p, _ in summary.skipped) == ["broken.jpg", "tiny.png"]


# ---------------------------------------------------------------- never reading its own outputs


@pytest.fixture()
def inputs(photos, tmp_path: Path) -> Path:
    """A copy of the photos at ``tmp_path / "in"``, also reachable as ``tmp_path / "link"``."""
    shutil.copytree(photos[0], tmp_path / "in")
    (tmp_path / "link").symlink_to(tmp_path / "in")
    return tmp_path / "in"


def test_output_inside_the_input_is_skipped_on_a_rerun(tiny, inputs: Path, monkeypatch, capsys) -> None:
    """Reruns into a folder inside the input folder, the two spelled relative, absolute or via a symlink, read the
    photos only, never the depth maps of the run before."""
    monkeypatch.chdir(inputs.parent)
    photos = sorted(p.relative_to(inputs).with_suffix(".png") for p in inputs.rglob("*.*"))
    for inp, out in (("in", "in/depth"), (inputs, "link/depth"), ("link", inputs / "depth"), ("./in/", "in/./depth")):
        assert infer(tiny[0], Path(inp), Path(out)) == 0
        assert f"wrote {len(photos)} depth maps" in capsys.readouterr().out
    assert sorted(p.relative_to(inputs / "depth") for p in (inputs / "depth").rglob("*")) == sorted(
        {*photos, *(p.parent for p in photos if p.parent != Path("."))}
    )


def test_output_equal_to_the_input_is_refused(tiny, inputs: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(inputs.parent)
    before = sorted(inputs.rglob("*"))
    for inp, out in (("in", "in"), ("in", inputs), ("link", "in"), ("./in/", "link/.")):
        assert infer(tiny[0], Path(inp), Path(out)) == 2
        err = capsys.readouterr().err
        assert (
            err.startswith(f"anydepth infer: error: --output {Path(out)} is the --input directory") and "\n" == err[-1]
        )
    with pytest.raises(InputError, match="is the input directory"):  # the library refuses, too
        run_inference(tiny[1], "link", inputs)
    assert sorted(inputs.rglob("*")) == before


# ---------------------------------------------------------------- fuzz: every bad input is one line, no traceback


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_checkpoints(case: str, tiny, photos, hf_dir: Path, tmp_path: Path, capsys) -> None:
    checkpoint, message = bad_checkpoint(case, tmp_path, hf_dir)
    assert infer(checkpoint, photos[0] / "coffee.png", tmp_path / "out") == 2
    captured = capsys.readouterr()
    line = error_line(captured.err, "infer")
    assert re.search(message, line) and str(checkpoint) in line and "pwned" not in captured.out
    assert not (tmp_path / "out").exists()


USAGE_ERRORS: dict[str, tuple[Callable[[Path, Path], tuple[Path | str, Path, Path, list[str]]], str]] = {
    "missing checkpoint": (lambda t, c: (t / "missing.pth", t / "in", t / "o", []), "missing.pth does not exist"),
    "missing input": (lambda t, c: (c, t / "missing.jpg", t / "o", []), "missing.jpg does not exist"),
    "empty input directory": (lambda t, c: (c, mkdir(t / "empty"), t / "o", []), "no images"),
    "only decoys in the directory": (lambda t, c: (c, decoys(t / "decoys"), t / "o", []), "no images"),
    "list naming a missing file": (lambda t, c: (c, text(t / "l.txt", "nope.jpg"), t / "o", []), "l.txt line 1"),
    "binary list": (lambda t, c: (c, text(t / "l.txt", "\udcff"), t / "o", []), "cannot read list file"),
    "output a file": (lambda t, c: (c, t / "in", t / "in" / "coffee.png", []), "coffee.png exists and is not"),
    "output below a file": (lambda t, c: (c, t / "in", t / "in" / "coffee.png" / "o", []), "cannot create output"),
    "a folder in the way": (lambda t, c: (c, t / "in" / "coffee.png", blocked(t), []), "cannot write the depth map"),
    "overwriting an input": (lambda t, c: (c, t / "in" / "coffee.png", t / "in", []), "would overwrite"),
    "input size 0": (lambda t, c: (c, t / "in", t / "o", ["--input-size", "0"]), "--input-size must be at least 14"),
    "input size abc": (lambda t, c: (c, t / "in", t / "o", ["--input-size", "abc"]), "argument --input-size"),
    "batch size 0": (lambda t, c: (c, t / "in", t / "o", ["--batch-size", "0"]), "--batch-size must be at least 1"),
    "cuda": (lambda t, c: (c, t / "in", t / "o", ["--device", "cuda"]), "CUDA is not available"),
    "no checkpoint": (lambda t, c: ("", t / "in", t / "o", []), "--checkpoint"),
    "point cloud of a relative model": (
        lambda t, c: (c, t / "in", t / "o", ["--point-cloud", "--focal", "500"]),
        "--point-cloud needs a metric checkpoint",
    ),
    "point cloud without a camera": (lambda t, c: (c, t / "in", t / "o", ["--point-cloud"]), "needs the camera"),
    "camera without a point cloud": (lambda t, c: (c, t / "in", t / "o", ["--fov", "60"]), "add --point-cloud"),
    "zero focal": (
        lambda t, c: (c, t / "in", t / "o", ["--point-cloud", "--focal", "0"]),
        "the focal length must be positive",
    ),
    "focal and fov": (
        lambda t, c: (c, t / "in", t / "o", ["--point-cloud", "--focal", "5", "--fov", "60"]),
        "not allowed with argument",
    ),
}


@pytest.mark.parametrize("case", USAGE_ERRORS, ids=str)
def test_usage_errors(case: str, tiny, inputs: Path, capsys) -> None:
    if case == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available")
    make, message = USAGE_ERRORS[case]
    checkpoint, inp, out, extra = make(inputs.parent, tiny[0])
    argv = ["--checkpoint", str(checkpoint)] if checkpoint else []
    assert main(["infer", *argv, "--input", str(inp), "--output", str(out), "--device", "cpu", *extra]) == 2
    line = error_line(capsys.readouterr().err, "infer")
    assert message in line, line
    assert not (inputs.parent / "o").exists()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def bomb() -> bytes:
    """A PNG header announcing 100000 x 100000 pixels (PIL refuses it as a decompression bomb)."""
    header = (100_000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    idat = png_chunk(b"IDAT", zlib.compress(b"\0" * 99))
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + idat + png_chunk(b"IEND", b"")


def encoded(suffix: str, size: tuple[int, int] = (40, 60)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((*size, 3), 90, np.uint8)).save(buffer, format=suffix)
    return buffer.getvalue()


BAD_IMAGES: dict[str, Callable[[], bytes]] = {
    "empty.png": lambda: b"",
    "random.jpg": lambda: np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes(),
    "truncated.jpg": lambda: encoded("JPEG")[:300],
    "truncated.png": lambda: encoded("PNG")[:60],
    "truncated.tif": lambda: encoded("TIFF")[:300],
    "text.png": lambda: b"hello world\n" * 10,
    "bomb.png": bomb,
    "one pixel.png": lambda: encoded("PNG", (1, 1)),
}


@pytest.mark.parametrize("name", BAD_IMAGES, ids=str)
def test_corrupt_images_among_good_ones_are_skipped(name: str, tiny, photos, tmp_path: Path, capsys) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "good.png").write_bytes((photos[0] / "coffee.png").read_bytes())
    (tmp_path / "in" / name).write_bytes(BAD_IMAGES[name]())
    assert infer(tiny[0], tmp_path / "in", tmp_path / "out") == 1  # documented: 1 = some inputs skipped
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and f"warning: skipping {tmp_path / 'in' / name}: " in captured.err
    assert f"wrote 1 depth map to {tmp_path / 'out'}; skipped 1 unreadable input: {tmp_path / 'in' / name}" in (
        captured.out
    )
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.png"]


# ---------------------------------------------------------------- metric checkpoints


def test_metric_checkpoint_writes_metres_millimetres_a_metre_scale_and_a_point_cloud(photos, tmp_path: Path) -> None:
    ckpt = tmp_path / "metric.pth"
    model = tiny_metric_checkpoint(ckpt)
    coffee = photos[1]["coffee"]
    h, w = coffee.shape[:2]
    out = tmp_path / "out"
    extra = ("--raw-npy", "--png16", "--point-cloud", "--focal", "500")
    assert infer(ckpt, photos[0] / "coffee.png", out, *extra) == 0
    expected = model.infer_image(coffee, INPUT_SIZE)  # metres (sigmoid x max_depth)
    assert 0 < expected.min() < expected.max() < model.config.max_depth
    depth = np.load(out / "coffee.npy")
    np.testing.assert_allclose(depth, expected, rtol=1e-5, atol=1e-6)
    with Image.open(out / "coffee_16bit.png") as png16:
        assert png16.mode == "I;16"
        np.testing.assert_array_equal(np.asarray(png16), to_millimetres(depth))
    vis = np.asarray(Image.open(out / "coffee.png"))
    np.testing.assert_array_equal(vis, with_depth_scale(colorize(-depth), depth))  # near red, metre scale below
    vertices = read_ply(out / "coffee.ply")
    assert len(vertices) == h * w
    np.testing.assert_array_equal(vertices["z"], depth.ravel())
    np.testing.assert_array_equal(vertices["red"], coffee[..., 0].ravel())
    x = vertices["x"].reshape(h, w)
    np.testing.assert_allclose(x[:, -1], depth[:, -1] * (w - 1) / 2 / 500, rtol=1e-5)  # principal point: the centre


def test_metric_outputs_have_exact_metres(tmp_path: Path) -> None:
    image = np.random.default_rng(1).integers(0, 256, (56, 84, 3), dtype=np.uint8)
    image[0, :3, 0] = [0, 100, 255]  # 0.5, 3.5 and 8.15 m, x 10: 5, 35 and 81.5 m
    Image.fromarray(image).save(tmp_path / "coded.png")
    model = CodedDepth(scale=10.0).eval()
    summary = run_inference(
        model, tmp_path / "coded.png", tmp_path / "out", input_size=56, raw_npy=True, png16=True, camera=Camera(fov=90)
    )
    assert summary.written == 1
    metres = 10 * coded_depth(image)
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "coded.npy"), metres)
    mm = np.asarray(Image.open(tmp_path / "out" / "coded_16bit.png"))
    assert mm[0, :3].tolist() == [5000, 35000, 65535]  # millimetres, clipped at 65.535 m
    vertices = read_ply(tmp_path / "out" / "coded.ply")
    focal = 84 / 2  # fov 90 degrees: W / (2 tan 45)
    np.testing.assert_allclose(vertices["x"][:3], metres[0, :3] * (np.arange(3) + 0.5 - 42) / focal, rtol=1e-6)
    run_inference(model, tmp_path / "coded.png", tmp_path / "sbs", input_size=56, grayscale=True, side_by_side=True)
    combined = np.asarray(Image.open(tmp_path / "sbs" / "coded.png"))
    assert combined.shape == (56 + SCALE_BAR_HEIGHT, 2 * 84 + GAP, 3)
    np.testing.assert_array_equal(combined[:56, :84], image)
    assert (combined[56:, :84] == 255).all()  # white under the image; the scale bar is under the depth map
    with pytest.raises(ValueError, match="point clouds need a metric model"):
        run_inference(DepthAnything(**TINY), tmp_path / "coded.png", tmp_path / "x", camera=Camera(focal=500.0))
