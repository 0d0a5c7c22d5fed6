"""``anydepth convert``: every format keeps the model, and a format that cannot represent it is refused (exit 2, one
line, nothing written) instead of writing a file that loads as a different model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from anydepth.cli import main
from anydepth.models import DepthAnything

from helpers import TINY, perturb_

X = torch.randn(1, 3, 42, 56)


def outputs(model: DepthAnything) -> torch.Tensor:
    with torch.inference_mode():
        return model.eval()(X)


def convert(checkpoint: Path, fmt: str, output: Path) -> int:
    return main(["convert", "--checkpoint", str(checkpoint), "--format", fmt, "--output", str(output)])


def saved(model: DepthAnything, path: Path) -> Path:
    model.save_checkpoint(path, format="anydepth")
    return path


@pytest.fixture(scope="module")
def vits_v1(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DepthAnything]:
    model = perturb_(DepthAnything("vits", "v1"), std=0.01).eval()
    return saved(model, tmp_path_factory.mktemp("vits") / "vits.ckpt"), model


def test_convert_writes_each_format_and_keeps_the_model(vits_v1, tmp_path: Path) -> None:
    vits_ckpt, vits = vits_v1
    tiny = perturb_(DepthAnything(**TINY, version="v1"))
    tiny6 = perturb_(DepthAnything(**{**TINY, "depth": 6}, layer_indices=(1, 2, 4, 5)))  # not the default blocks
    for source, model, fmt, out in (
        (vits_ckpt, vits, "official", tmp_path / "depth_anything_vits14.pth"),
        (vits_ckpt, vits, "hf", tmp_path / "vits-hf"),
        (saved(tiny, tmp_path / "tiny.ckpt"), tiny, "hf", tmp_path / "hf"),
        (saved(tiny6, tmp_path / "tiny6.ckpt"), tiny6, "hf", tmp_path / "hf6"),
        (tmp_path / "tiny.ckpt", tiny, "anydepth", tmp_path / "copy.ckpt"),
    ):
        assert convert(source, fmt, out) == 0, out
        loaded = DepthAnything.from_checkpoint(out)
        assert loaded.config == model.config, out
        torch.testing.assert_close(outputs(loaded), outputs(model))


def test_convert_refuses_what_the_format_cannot_represent(
    vits_v1, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vits_ckpt, _ = vits_v1
    v1_blocks_v2 = saved(DepthAnything("vits", "v2", layer_indices=(8, 9, 10, 11)), tmp_path / "v1-blocks.ckpt")
    tiny = saved(DepthAnything(**TINY), tmp_path / "tiny.ckpt")
    unsorted = saved(DepthAnything(**TINY, layer_indices=(0, 2, 1, 3)), tmp_path / "unsorted.ckpt")
    for source, fmt, out, message in (
        (v1_blocks_v2, "official", tmp_path / "depth_anything_v2_vits.pth", "layer_indices is (8, 9, 10, 11) where"),
        (tiny, "official", tmp_path / "tiny.pth", "encoder is 'custom'"),
        (vits_ckpt, "official", tmp_path / "depth_anything_v2_vits.pth", "name it like depth_anything_vits14.pth"),
        (unsorted, "hf", tmp_path / "hf", "layer_indices [0, 2, 1, 3] not strictly increasing"),
    ):
        capsys.readouterr()
        assert convert(source, fmt, out) == 2, out
        err = capsys.readouterr().err
        assert err.startswith("anydepth convert: error: ") and message in err and "Traceback" not in err, err
        assert err.count("\n") == 1 and not out.exists()
        assert "keep the anydepth checkpoint format (--format anydepth)" in err or "name it like" in err


def test_convert_reports_a_bad_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "junk.pth").write_bytes(b"\x00" * 64)
    assert convert(tmp_path / "junk.pth", "hf", tmp_path / "hf") == 2
    err = capsys.readouterr().err
    assert err.startswith("anydepth convert: error: cannot read checkpoint") and "Traceback" not in err
