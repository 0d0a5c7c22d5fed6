"""Metric Depth Anything V2 (the official ``metric_depth`` head: ``max_depth * sigmoid``): the head's math, the
official checkpoint names it loads strictly (told apart from relative files by their names only), the transformers
metric format both ways (measured against transformers), and refusals instead of guesses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from anydepth import DepthAnything
from anydepth.checkpoints import CheckpointError
from anydepth.checkpoints.convert import native_to_official

from helpers import FIXTURES, TINY, max_rel_diff, perturb_

transformers = pytest.importorskip("transformers")

SIZES = [(518, 518), (392, 518)]


def metric_model(max_depth: float = 20.0, **sizes: object) -> DepthAnything:
    torch.manual_seed(0)
    return perturb_(DepthAnything(head="metric", max_depth=max_depth, **(sizes or TINY)), std=0.1).eval()


def test_metric_head_is_max_depth_times_the_sigmoid_of_the_relative_heads_input() -> None:
    """Same weights: the relative model's last convolution output x gives relu(x); the metric one max_depth *
    sigmoid(x), always inside (0, max_depth)."""
    metric = metric_model(max_depth=80.0)
    relative = DepthAnything(**TINY).eval()
    relative.load_state_dict(metric.state_dict())
    raw: list[torch.Tensor] = []
    last_conv = relative.depth_head.scratch.output_conv2[2]
    last_conv.register_forward_hook(lambda m, i, out: raw.append(out.clone()))  # before the in-place ReLU
    x = torch.randn(2, 3, 56, 70)
    with torch.inference_mode():
        depth, disparity = metric(x), relative(x)
    torch.testing.assert_close(disparity, torch.relu(raw[0][:, 0]))
    torch.testing.assert_close(depth, 80.0 * torch.sigmoid(raw[0][:, 0]))
    assert depth.min() > 0 and depth.max() < 80.0 and depth.std() > 0


def test_official_metric_checkpoint_keys_are_the_relative_ones() -> None:
    """The official V2 metric .pth has the relative model's keys and shapes (the sigmoid has no weights): the
    key fixture of the released ViT-S loads into the metric model strictly."""
    expected = json.loads((FIXTURES / "official_vits_keys.json").read_text())
    with torch.device("meta"):
        model = DepthAnything(encoder="vits", version="v2", head="metric", max_depth=20.0)
    keys = {k: list(v.shape) for k, v in native_to_official(model.state_dict(), swiglu=False).items()}
    assert keys == expected


def write_official(model: DepthAnything, path: Path) -> Path:
    torch.save(native_to_official(model.state_dict(), swiglu=False), path)  # custom sizes: save_checkpoint refuses
    return path


@pytest.mark.parametrize(("name", "max_depth"), [("hypersim", 20.0), ("vkitti", 80.0)])
def test_official_metric_file_is_recognised_by_its_name(name: str, max_depth: float, tmp_path: Path) -> None:
    model = metric_model(max_depth)
    path = write_official(model, tmp_path / f"depth_anything_v2_metric_{name}_vits.pth")
    loaded = DepthAnything.from_checkpoint(path, num_heads=2).eval()
    assert (loaded.config.head, loaded.config.max_depth) == ("metric", max_depth)
    x = torch.randn(1, 3, 42, 56)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x))


def test_a_metric_name_without_a_known_dataset_is_refused_not_guessed(tmp_path: Path) -> None:
    path = write_official(metric_model(), tmp_path / "depth_anything_v2_metric_mine.pth")
    with pytest.raises(CheckpointError, match="pass max_depth="):
        DepthAnything.from_checkpoint(path, num_heads=2)
    assert DepthAnything.from_checkpoint(path, num_heads=2, max_depth=35.0).config.max_depth == 35.0
    assert DepthAnything.from_checkpoint(path, num_heads=2, head="relative").config.head == "relative"


def test_official_writer_names_metric_files_so_they_read_back_metric(tmp_path: Path) -> None:
    with torch.device("meta"):
        vits = DepthAnything(encoder="vits", version="v2", head="metric", max_depth=20.0)
        v1 = DepthAnything(encoder="vits", version="v1", head="metric", max_depth=20.0)
    with pytest.raises(CheckpointError, match="depth_anything_v2_metric_hypersim_vits.pth"):
        vits.save_checkpoint(tmp_path / "depth_anything_v2_vits.pth")
    with pytest.raises(CheckpointError, match="ZoeDepth"):
        v1.save_checkpoint(tmp_path / "depth_anything_metric_vits.pth")
    assert not list(tmp_path.iterdir())


def test_transformers_metric_format_both_ways(tmp_path: Path) -> None:
    """anydepth -> transformers (depth_estimation_type metric, max_depth) gives transformers' own output; the
    directory reads back as the same metric model."""
    ours = metric_model(20.0, **{**TINY, "embed_dim": 48, "depth": 8, "out_channels": (8, 16, 32, 48)})
    ours = DepthAnything.from_config(ours.config, pos_embed_interpolation="size").eval()
    perturb_(ours, std=0.1)
    ours.save_checkpoint(tmp_path / "hf", format="hf")
    hf = transformers.DepthAnythingForDepthEstimation.from_pretrained(tmp_path / "hf").eval()
    assert (hf.config.depth_estimation_type, hf.config.max_depth) == ("metric", 20.0)
    for size in SIZES:
        x = torch.randn(1, 3, *size)
        with torch.inference_mode():
            assert max_rel_diff(hf(pixel_values=x).predicted_depth, ours(x)) <= 1e-4, size
    again = DepthAnything.from_checkpoint(tmp_path / "hf", pos_embed_interpolation="size")
    assert again.config == ours.config


def test_anydepth_format_keeps_the_head(tmp_path: Path) -> None:
    model = metric_model(10.0)
    model.save_checkpoint(tmp_path / "m.ckpt", format="anydepth")
    again = DepthAnything.from_checkpoint(tmp_path / "m.ckpt")
    assert (again.config.head, again.config.max_depth) == ("metric", 10.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"head": "metric"}, "needs max_depth"), ({"max_depth": 5.0}, "belongs to metric"), ({"head": "x"}, "head")],
)
def test_head_arguments_are_checked(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DepthAnything(**TINY, **kwargs)


def test_convert_cli_takes_head_and_max_depth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from anydepth.cli.main import main

    path = write_official(metric_model(), tmp_path / "depth_anything_v2_metric_mine.pth")
    out = tmp_path / "out.ckpt"
    assert main(["convert", "--checkpoint", str(path), "--format", "anydepth", "--output", str(out)]) == 2
    assert "--max-depth" in capsys.readouterr().err and not out.exists()
    args = ["convert", "--checkpoint", str(path), "--format", "anydepth", "--output", str(out), "--max-depth", "35"]
    with pytest.warns(UserWarning, match="attention heads"):  # a tiny custom width: the head count is guessed
        assert main(args) == 0
    assert "metric (max 35 m)" in capsys.readouterr().out
    assert DepthAnything.from_checkpoint(out).config.max_depth == 35.0
