"""Every shipped YAML parses and builds what it names."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
import yaml

from helpers import REPO_ROOT

ROOT = REPO_ROOT / "configs"
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


STAGE_CONFIGS = sorted([*(ROOT / "teacher").glob("*.yaml"), *(ROOT / "student").glob("*.yaml"),
                        ROOT / "demo" / "teacher.yaml", ROOT / "demo" / "student.yaml"])  # fmt: skip


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
@pytest.mark.parametrize("path", STAGE_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_stage_config_parses_through_lightning_cli_with_the_paper_defaults(path: Path) -> None:
    """Each training config, composed with a hardware config, passes LightningCLI's type checks (class paths,
    argument names and types of model, data, logger and callbacks) and keeps the paper's defaults (Sec. 4.1)."""
    from lightning import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    class ParseOnly(LightningCLI):
        def instantiate_classes(self) -> None:
            pass

    config = ParseOnly(LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                       run=False, args=["--config", str(ROOT / "trainer" / "cpu.yaml"), "--config", str(path)]).config
    model, data = config.model.init_args, config.data.init_args
    student = path.stem == "student" or path.parent.name == "student"
    assert config.model.class_path == f"anydepth.training.{'StudentModule' if student else 'TeacherModule'}"
    assert model.decoder_lr_multiplier == 10.0
    if path.parent.name != "demo":  # the demo trains a tiny random encoder at a higher rate, for speed
        assert model.encoder_lr == 5e-6 and model.model.init_args.encoder == path.stem
        assert config.trainer.max_epochs == (1 if student else 20)
    if student:
        assert model.feature_margin == 0.85 and model.cutmix.p == 0.5 and data.ratio == 2
    monitor = [c.init_args.monitor for c in config.trainer.callbacks if c.class_path.endswith("ModelCheckpoint")]
    assert monitor == ["val/abs_rel"]
