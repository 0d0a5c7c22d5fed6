"""TorchScript and ``torch.export`` round trips: the archive, loaded back, reproduces the model at sizes other than
the traced one and carries its spec."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from anydepth.export.torch_formats import load_torch_export, load_torchscript
from anydepth.models import DepthAnything
from anydepth.models.preprocess import normalize

from helpers import max_rel_diff

LOADERS = {"torchscript": load_torchscript, "torch-export": load_torch_export}


@pytest.mark.parametrize("fmt", ["torchscript", "torch-export"])
def test_a_dynamic_archive_reproduces_the_model_at_other_sizes(
    fmt: str, tiny_model: DepthAnything, tmp_path: Path
) -> None:
    report = tiny_model.export(tmp_path / "tiny.pt2", fmt)
    assert max(report.differences.values()) <= 1e-4
    spec, run = LOADERS[fmt](report.path)
    assert spec == report.spec and spec.format == fmt
    for shape in ((1, 3, 196, 252), (3, 3, 98, 70)):
        x = torch.randn(shape)
        with torch.no_grad():
            assert max_rel_diff(tiny_model(x), torch.from_numpy(run(x.numpy()))) <= 1e-5


def test_a_fixed_size_archive_with_baked_preprocessing_takes_uint8_rgb(
    tiny_model: DepthAnything, tmp_path: Path
) -> None:
    report = tiny_model.export(tmp_path / "tiny.pt2", "torch-export", input_size=(140, 196), bake_preprocessing=True)
    assert list(report.differences) == [(140, 196)]
    spec, run = load_torch_export(report.path)
    assert spec.input_size == (140, 196) and spec.bake_preprocessing
    pixels = torch.randint(0, 256, (3, 140, 196, 3), dtype=torch.uint8)
    with torch.no_grad():
        expected = tiny_model(normalize(pixels.permute(0, 3, 1, 2).float() / 255))
    assert max_rel_diff(expected, torch.from_numpy(run(pixels.numpy()))) <= 1e-5
    with pytest.raises(AssertionError, match="Guard failed"):  # the size is part of the program
        run(torch.zeros(1, 154, 196, 3, dtype=torch.uint8).numpy())
