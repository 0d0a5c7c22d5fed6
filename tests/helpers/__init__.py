"""Shared test helpers: tiny model sizes, weight perturbation and comparison, repository paths.

Fabricators of datasets, images and tiny checkpoints live in :mod:`helpers.fabricate`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The repository checkout (configs/, README.md, Makefile)."""
FIXTURES = REPO_ROOT / "tests" / "fixtures"

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


def ddp_run(
    command: list[str], cwd: Path, max_steps: int | None = None, timeout: int = 300, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``anydepth <command>`` (on ``--trainer.devices 2`` CPU processes) in a fresh interpreter in ``cwd``, assert
    it succeeded with 2 processes (and, for a fit, stopped at ``max_steps``), and return it. ``env`` adds variables."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "WANDB_MODE": "offline", **env}
    environment.pop("MASTER_PORT", None)  # Lightning picks a free port
    proc = subprocess.run(
        [sys.executable, "-m", "anydepth.cli", *command],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Starting with 2 processes" in proc.stderr, proc.stderr[-4000:]
    assert max_steps is None or f"`max_steps={max_steps}` reached" in proc.stderr, proc.stderr[-4000:]
    return proc
