"""``anydepth infer --skip-existing``: a rerun keeps the inputs whose requested outputs all exist (written atomically,
so complete) and writes only the rest, e.g. after a kill; a video whose depth video exists is kept too."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import lightning.pytorch  # noqa: F401  (before the CLI's stdout is captured)
import numpy as np
import pytest
from PIL import Image

from anydepth.cli import main
from anydepth.video import write_video

from helpers.fabricate import tiny_checkpoint

SIZE = 56


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    tiny_checkpoint(path)
    return path


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name in ("a.png", "b.jpg", "sub/c.png"):
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), np.uint8)).save(tmp_path / "in" / name)
    return tmp_path / "in"


def infer(checkpoint: Path, inp: Path, out: Path, *extra: str) -> int:
    argv = ["infer", "--checkpoint", str(checkpoint), "--input", str(inp), "--output", str(out), "--device", "cpu"]
    return main([*argv, "--input-size", str(SIZE), *extra])


def stamps(out: Path) -> dict[str, int]:
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in sorted(out.rglob("*")) if p.is_file()}


def test_a_rerun_writes_only_what_is_missing(checkpoint: Path, photos: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert infer(checkpoint, photos, out) == 0
    first = stamps(out)
    assert sorted(first) == ["a.png", "b.png", "sub/c.png"]
    (out / "b.png").unlink()  # killed before this map was written: atomic writes leave no partial file
    capsys.readouterr()
    assert infer(checkpoint, photos, out, "--skip-existing") == 0
    assert f"wrote 1 depth map to {out}; kept 2 existing" in capsys.readouterr().out
    again = stamps(out)
    assert again["a.png"] == first["a.png"] and again["sub/c.png"] == first["sub/c.png"] and "b.png" in again
    assert infer(checkpoint, photos, out, "--skip-existing", "--raw-npy") == 0  # asks for more: every map again
    assert f"wrote 3 depth maps to {out}" in capsys.readouterr().out
    assert sorted(stamps(out)) == ["a.npy", "a.png", "b.npy", "b.png", "sub/c.npy", "sub/c.png"]
    assert infer(checkpoint, photos, out) == 0  # without the flag everything is written again
    assert f"wrote 3 depth maps to {out}\n" in capsys.readouterr().out


def test_an_existing_depth_video_is_kept(checkpoint: Path, tmp_path: Path, capsys) -> None:
    clip = tmp_path / "clip.mp4"
    write_video(clip, [np.full((32, 48, 3), 40 * i, np.uint8) for i in range(3)], Fraction(10))
    out = tmp_path / "out"
    assert infer(checkpoint, clip, out) == 0
    written = stamps(out)
    capsys.readouterr()
    assert infer(checkpoint, clip, out, "--skip-existing") == 0
    assert f"kept {out / 'clip_depth.mp4'}: it exists (--skip-existing)" in capsys.readouterr().out
    assert stamps(out) == written
    assert infer(checkpoint, clip, out, "--skip-existing", "--raw-npy") == 0  # the frames were not kept: run
    assert sorted(p.name for p in (out / "clip_depth").glob("*.npy")) == ["000000.npy", "000001.npy", "000002.npy"]
