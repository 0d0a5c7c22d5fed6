"""The paper's official metric files (``depth_anything_metric_depth_{indoor,outdoor}.pt``: ZoeDepth on the V1
encoder, weights under ``"model"``) load through ``DepthAnything.from_checkpoint`` and infer in metres."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from anydepth import DepthAnything
from anydepth.checkpoints import CheckpointError
from anydepth.models.zoedepth import ZoeDepthMetric, prepare_zoedepth_batch

from helpers import TINY, perturb_

SMALL_HEAD = dict(n_bins=8, bin_embedding_dim=16, n_attractors=(4, 2, 2, 1))


def official_file(path: Path, preset: str = "indoor") -> ZoeDepthMetric:
    """A tiny ZoeDepth saved as the official trainer does: ``{"model": state_dict, "optimizer": None, ...}``."""
    torch.manual_seed(0)
    relative = DepthAnything(version="v1", **TINY)
    model = perturb_(ZoeDepthMetric.from_preset(preset, relative, **SMALL_HEAD), std=0.05).eval()
    torch.save({"model": model.state_dict(), "optimizer": None, "epoch": 5}, path)
    return model


@pytest.mark.parametrize(("preset", "max_depth"), [("indoor", 10.0), ("outdoor", 80.0)])
def test_official_metric_file_loads_as_zoedepth(preset: str, max_depth: float, tmp_path: Path) -> None:
    reference = official_file(tmp_path / f"depth_anything_metric_depth_{preset}.pt", preset)
    loaded = DepthAnything.from_checkpoint(
        tmp_path / f"depth_anything_metric_depth_{preset}.pt", num_heads=2, **SMALL_HEAD
    )
    assert isinstance(loaded, ZoeDepthMetric) and loaded.config.max_depth == max_depth
    assert loaded.config.head == "metric" and loaded.relative.config.version == "v1"
    x = torch.randn(1, 3, 42, 56)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.eval()(x), reference(x))


def test_zoedepth_infers_metres_at_the_image_size_with_the_official_preprocessing(tmp_path: Path) -> None:
    model = official_file(tmp_path / "depth_anything_metric_depth_indoor.pt")
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    depth = model.infer_image(image)
    assert depth.shape == (50, 70) and depth.dtype == np.float32 and (depth > 0).all()
    with torch.inference_mode():
        network = model(prepare_zoedepth_batch(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255))
    assert network.shape[-2:] == (392, 518)  # the released models' fixed input size
    assert depth.mean() == pytest.approx(network.mean().item(), rel=0.05)


def test_a_zoedepth_file_named_neither_indoor_nor_outdoor_needs_max_depth(tmp_path: Path) -> None:
    official_file(tmp_path / "zoe.pt")
    with pytest.raises(CheckpointError, match="max_depth"):
        DepthAnything.from_checkpoint(tmp_path / "zoe.pt", num_heads=2, **SMALL_HEAD)
    loaded = DepthAnything.from_checkpoint(tmp_path / "zoe.pt", num_heads=2, max_depth=20.0, **SMALL_HEAD)
    assert loaded.config.max_depth == 20.0
