"""Every shipped YAML parses and builds what it names."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).parents[1] / "configs"
CONFIGS = sorted(ROOT.rglob("*.yaml"))
MODEL_CONFIGS = sorted((ROOT / "model").glob("*.yaml"))


def test_configs_exist() -> None:
    assert CONFIGS and MODEL_CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_parses(path: Path) -> None:
    assert isinstance(yaml.safe_load(path.read_text()), dict)


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=lambda p: p.stem)
def test_model_config_builds(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    module, _, name = config["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    with torch.device("meta"):
        model = cls(**config["init_args"])
    assert model.config.encoder == path.stem
