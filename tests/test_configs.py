"""Every shipped YAML parses and builds what it names; the stage recipes compose with every model preset."""

from __future__ import annotations

import importlib
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from jsonargparse import Namespace

from helpers import REPO_ROOT

ROOT = REPO_ROOT / "configs"
CONFIGS = sorted(ROOT.rglob("*.yaml"))
MODEL_CONFIGS = sorted((ROOT / "model").glob("*.yaml"))
ENCODERS = [path.stem for path in MODEL_CONFIGS]
STAGE_CONFIGS = sorted((ROOT / "stages").glob("*.yaml"))  # recipes: composed with a model preset
DEMO_CONFIGS = [ROOT / "demo" / "teacher.yaml", ROOT / "demo" / "student.yaml"]  # self-contained (tiny model)


def test_configs_exist() -> None:
    assert CONFIGS and MODEL_CONFIGS and [p.stem for p in STAGE_CONFIGS] == ["student", "teacher"]
    assert {"vits", "vitb", "vitl", "vitg"} <= set(ENCODERS)
    assert not (ROOT / "teacher").exists() and not (ROOT / "student").exists(), "one recipe per stage"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_parses(path: Path) -> None:
    assert isinstance(yaml.safe_load(path.read_text()), dict)


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=lambda p: p.stem)
def test_model_preset_builds(path: Path) -> None:
    """A preset holds the network and its DINOv2 weights only (model.init_args.{model,pretrained})."""
    config = yaml.safe_load(path.read_text())
    assert list(config) == ["model"] and list(config["model"]) == ["init_args"]
    assert sorted(config["model"]["init_args"]) == ["model", "pretrained"]
    assert config["model"]["init_args"]["pretrained"] == f"checkpoints/dinov2_{path.stem}14_pretrain.pth"
    network = config["model"]["init_args"]["model"]
    module, _, name = network["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    with torch.device("meta"):
        model = cls(**network["init_args"])
    assert model.config.encoder == path.stem


@pytest.mark.parametrize("path", STAGE_CONFIGS, ids=lambda p: p.stem)
def test_stage_config_leaves_the_model_to_the_presets(path: Path) -> None:
    init_args = yaml.safe_load(path.read_text())["model"]["init_args"]
    assert "model" not in init_args and "pretrained" not in init_args


def run_dirs(run: str) -> list[str]:
    """The overrides that give a run its name and directory (as the Makefile and configs/slurm/*.sbatch pass)."""
    return [
        "--trainer.default_root_dir",
        f"outputs/{run}",
        "--trainer.logger.init_args.name",
        run,
        "--trainer.logger.init_args.save_dir",
        f"outputs/{run}",
        "--trainer.callbacks.init_args.dirpath",
        f"outputs/{run}/checkpoints",
    ]


def parse(*args: str) -> Namespace:
    """``anydepth fit``'s LightningCLI parse of ``args`` (configs, class paths, types); instantiates nothing."""
    from lightning import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    class ParseOnly(LightningCLI):
        def instantiate_classes(self) -> None:
            pass

    return ParseOnly(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        run=False,
        args=list(args),
    ).config


def check_paper_defaults(config: Namespace, student: bool, demo: bool = False) -> None:
    """Sec. 4.1: encoder 5e-6 with the decoder at 10x, 20 teacher epochs, 1 student epoch; the student's feature
    margin 0.85, CutMix p 0.5 and 1:2 ratio; the best checkpoint by validation AbsRel."""
    model, data = config.model.init_args, config.data.init_args
    assert config.model.class_path == f"anydepth.training.{'StudentModule' if student else 'TeacherModule'}"
    assert model.decoder_lr_multiplier == 10.0
    if not demo:  # the demo trains a tiny random encoder at a higher rate, for speed
        assert model.encoder_lr == 5e-6
        assert config.trainer.max_epochs == (1 if student else 20)
    if student:
        assert model.feature_margin == 0.85 and model.cutmix.p == 0.5 and data.ratio == 2
    monitor = [c.init_args.monitor for c in config.trainer.callbacks if c.class_path.endswith("ModelCheckpoint")]
    assert monitor == ["val/abs_rel"]


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("path", STAGE_CONFIGS, ids=lambda p: p.stem)
def test_stage_config_composes_with_every_model_preset(path: Path, encoder: str) -> None:
    """hardware config + stage recipe + model preset + run directories passes LightningCLI's type checks (class
    paths, argument names and types of model, data, logger and callbacks), builds the preset's encoder with its
    DINOv2 weights and keeps the recipe's paper defaults."""
    run = f"{path.stem}-{encoder}"
    config = parse(
        "--config",
        str(ROOT / "trainer" / "cpu.yaml"),
        "--config",
        str(path),
        "--config",
        str(ROOT / "model" / f"{encoder}.yaml"),
        *run_dirs(run),
    )
    model = config.model.init_args
    assert model.model.class_path == "anydepth.DepthAnything" and model.model.init_args.encoder == encoder
    assert model.pretrained == f"checkpoints/dinov2_{encoder}14_pretrain.pth"
    check_paper_defaults(config, student=path.stem == "student")
    (checkpoint,) = config.trainer.callbacks
    assert checkpoint.init_args.dirpath == f"outputs/{run}/checkpoints" and checkpoint.init_args.save_last
    assert config.trainer.default_root_dir == config.trainer.logger.init_args.save_dir == f"outputs/{run}"
    assert config.trainer.logger.init_args.name == run


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
@pytest.mark.parametrize("path", DEMO_CONFIGS, ids=lambda p: p.stem)
def test_demo_config_parses_through_lightning_cli(path: Path) -> None:
    config = parse("--config", str(ROOT / "trainer" / "cpu.yaml"), "--config", str(path))
    check_paper_defaults(config, student=path.stem == "student", demo=True)


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
@pytest.mark.parametrize(("stage", "encoder"), [("teacher", "vitl"), ("student", None)])
def test_makefile_training_command_parses(stage: str, encoder: str | None) -> None:
    """``make teacher|student [ENCODER=...]`` composes hardware config, recipe, model preset and run directory
    outputs/<stage>-<encoder> (ENCODER defaults to vits) into a command line LightningCLI accepts."""
    make = ["make", "-n", "-C", str(REPO_ROOT), stage, "TRAINER=cpu", *([f"ENCODER={encoder}"] if encoder else [])]
    lines = subprocess.run(make, check=True, capture_output=True, text=True).stdout.splitlines()
    (line,) = [line for line in lines if " fit --config " in line]
    args = shlex.split(line)
    args = args[args.index("fit") + 1 :]
    args = [str(REPO_ROOT / a) if a.startswith("configs/") else a for a in args]
    args = args[: args.index("--ckpt_path")]  # LightningCLI's parser takes no --ckpt_path without a subcommand
    config = parse(*args)
    encoder = encoder or "vits"
    assert config.model.init_args.model.init_args.encoder == encoder
    assert config.trainer.logger.init_args.name == f"{stage}-{encoder}"
    assert config.trainer.callbacks[0].init_args.dirpath == f"outputs/{stage}-{encoder}/checkpoints"
    check_paper_defaults(config, student=stage == "student")
