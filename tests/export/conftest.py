"""Fixtures only: a tiny relative model and its dynamic fp32 ONNX export, shared by this directory's tests."""

from __future__ import annotations

import pytest
import torch

from anydepth.export import ExportReport
from anydepth.models import DepthAnything

from helpers import TINY, lift_output_, perturb_


@pytest.fixture(scope="session")
def tiny_model() -> DepthAnything:
    torch.manual_seed(1)
    return lift_output_(perturb_(DepthAnything(**TINY, version="v2"))).eval()


@pytest.fixture(scope="session")
def tiny_onnx(tiny_model: DepthAnything, tmp_path_factory: pytest.TempPathFactory) -> ExportReport:
    """``tiny_model`` exported to ONNX, fp32, dynamic batch, height and width, without baked preprocessing."""
    return tiny_model.export(tmp_path_factory.mktemp("onnx") / "tiny.onnx")
