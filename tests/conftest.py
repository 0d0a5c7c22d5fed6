"""Shared fixtures: tiny model sizes and helpers that make random weights non-trivial."""

from __future__ import annotations

import pytest
import torch
from torch import nn

TINY = dict(encoder="custom", embed_dim=32, depth=4, num_heads=2, features=16, out_channels=(8, 16, 32, 32))


def perturb_(module: nn.Module, std: float = 0.05, seed: int = 0) -> nn.Module:
    """Add Gaussian noise to every parameter so no layer is an identity or a zero (in place)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * std)
    return module


def lift_output_(model: nn.Module, bias: float = 0.1) -> nn.Module:
    """Positive bias before the final ReLU (anydepth or transformers model), so random weights do
    not give an all-zero depth map (in place)."""
    last = model.head.conv3 if hasattr(model, "head") else model.depth_head.scratch.output_conv2[2]
    with torch.no_grad():
        last.bias.fill_(bias)
    return model


def max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Max abs difference relative to the output's scale (max |a|)."""
    scale = a.abs().max().item()
    assert scale > 0 and a.std() > 1e-2 * scale, "reference output is constant; the comparison would be vacuous"
    return (a - b).abs().max().item() / scale


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu``-marked tests where CUDA is not available."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
