"""Fixtures only (helpers live in the importable ``helpers`` package, on the path via ``pythonpath = tests``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from anydepth import DepthAnything

from helpers import TINY


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random model as a transformers directory (the base of the malformed-config fuzz cases)."""
    directory = tmp_path_factory.mktemp("hf") / "model"
    DepthAnything(**TINY).save_checkpoint(directory, format="hf")
    return directory


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu``-marked tests where CUDA is not available."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
