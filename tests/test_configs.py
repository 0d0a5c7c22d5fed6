"""Every shipped YAML parses and builds what it names; the stage recipes compose with every model preset."""

from __future__ import annotations

import importlib
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from jsonargparse import Namespace

from helpers import REPO_ROOT

ROOT = REPO_ROOT / "configs"
CONFIGS = sorted(ROOT.rglob("*.yaml"))
MODEL_CONFIGS = sorted((ROOT / "model").glob("*.yaml"))
ENCODERS = [path.stem for path in MODEL_CONFIGS]
RECIPE_CONFIGS = sorted((ROOT / "recipes").glob("*/*.yaml"))  # recipes: composed with a model preset
DEMO_CONFIGS = [ROOT / "demo" / "teacher.yaml", ROOT / "demo" / "student.yaml"]  # self-contained (tiny model)


def test_configs_exist() -> None:
    recipes = [f"{p.parent.name}/{p.stem}" for p in RECIPE_CONFIGS]
    assert recipes == [
        "finetune/finetune",
        "metric/hypersim",
        "metric/kitti",
        "metric/nyu",
        "metric/vkitti2",
        "seg/ade20k",
        "seg/cityscapes",
        "v1/student",
        "v1/teacher",
        "v2/student",
        "v2/teacher",
    ]
    assert CONFIGS and MODEL_CONFIGS and {"vits", "vitb", "vitl", "vitg"} <= set(ENCODERS)
    assert not (ROOT / "stages").exists(), "one home for the recipes: configs/recipes/"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_parses(path: Path) -> None:
    assert isinstance(yaml.safe_load(path.read_text()), dict)


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=lambda p: p.stem)
def test_model_preset_builds(path: Path) -> None:
    """A preset holds the network and its DINOv2 weights only (model.init_args.{model,pretrained})."""
    config = yaml.safe_load(path.read_text())
    assert list(config) == ["model"] and list(config["model"]) == ["init_args"]
    assert sorted(config["model"]["init_args"]) == ["model", "pretrained"]
    assert "version" not in config["model"]["init_args"]["model"]["init_args"], "the recipe picks the version"
    assert config["model"]["init_args"]["pretrained"] == f"checkpoints/dinov2_{path.stem}14_pretrain.pth"
    network = config["model"]["init_args"]["model"]
    module, _, name = network["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    with torch.device("meta"):
        model = cls(**network["init_args"])
    assert model.config.encoder == path.stem


def recipe_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


@pytest.mark.parametrize("path", RECIPE_CONFIGS, ids=recipe_id)
def test_recipe_leaves_the_encoder_to_the_presets(path: Path) -> None:
    """A recipe names the network's version (and a metric recipe its head and max_depth) only; encoder, sizes and
    DINOv2 weights come from the preset."""
    init_args = yaml.safe_load(path.read_text())["model"]["init_args"]
    assert "pretrained" not in init_args
    network = init_args["model"]
    head = ["head", "max_depth"] if path.parent.name == "metric" else []
    assert network["class_path"] == "anydepth.DepthAnything" and list(network["init_args"]) == ["version", *head]


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
    margin 0.85, CutMix p 0.5 and 1:2 ratio; the best checkpoint by validation AbsRel; V1's DPT feed."""
    model, data = config.model.init_args, config.data.init_args
    assert config.model.class_path == f"anydepth.training.{'StudentModule' if student else 'TeacherModule'}"
    assert model.decoder_lr_multiplier == 10.0 and model.gradient_weight == 0.0
    if not demo:  # the demo trains a tiny random encoder at a higher rate, for speed
        assert model.encoder_lr == 5e-6 and model.model.init_args.version == "v1"
        assert config.trainer.max_epochs == (1 if student else 20)
    if student:
        assert model.feature_margin == 0.85 and model.cutmix.p == 0.5 and data.ratio == 2
        assert model.unlabeled_trim == 0.0
    check_best_by_abs_rel(config)


def check_best_by_abs_rel(config: Namespace) -> None:
    monitor = [c.init_args.monitor for c in config.trainer.callbacks if c.class_path.endswith("ModelCheckpoint")]
    assert monitor == ["val/abs_rel"]


def check_v2_defaults(config: Namespace, student: bool) -> None:
    """Depth Anything V2: intermediate-block DPT feed, L_ssi : L_gm = 1 : 2, Adam at 5e-6 / 5e-5, 160K teacher
    iterations on the five synthetic sets, 480K student iterations on pseudo labels only with the top 10% ignored."""
    model, data = config.model.init_args, config.data.init_args
    assert model.model.init_args.version == "v2" and model.gradient_weight == 2.0 and model.weight_decay == 0.0
    assert model.encoder_lr == 5e-6 and model.decoder_lr_multiplier == 10.0
    if student:
        assert config.data.class_path.endswith("UnlabeledDataModule") and config.trainer.max_steps == 480_000
        assert model.unlabeled_trim == 0.1 and model.feature_margin == 0.85
    else:
        assert config.trainer.max_steps == 160_000
        assert [Path(s).name for s in data.train_shards] == ["blendedmvs", "hypersim", "irs", "tartanair", "vkitti2"]
    check_best_by_abs_rel(config)


def check_metric_defaults(path: Path, config: Namespace) -> None:
    """Metric recipes: V2's metric_depth trainer (hypersim 20 m, vkitti2 80 m: 518 crops, encoder 5e-6 with the head
    10x, poly 0.9) or the paper's supplementary Sec. 1 (nyu 392 x 518, kitti 384 x 768 at multiples of 14: 5 epochs,
    encoder 1/50 of the decoder, ZoeDepth's one-cycle); SiLog lambda 0.5 and min_depth 1e-3 for all."""
    model, data = config.model.init_args, config.data.init_args
    assert config.model.class_path == "anydepth.training.MetricDepthModule"
    assert config.data.class_path == "anydepth.data.metric.MetricDataModule"
    network = model.model.init_args
    assert network.head == "metric" and model.silog_lambda == 0.5 and model.min_depth == 1e-3
    paper = path.stem in ("nyu", "kitti")
    max_depth = {"hypersim": 20.0, "vkitti2": 80.0, "nyu": 10.0, "kitti": 80.0}[path.stem]
    crop = {"nyu": [392, 518], "kitti": [378, 770]}.get(path.stem, [518, 518])
    assert network.max_depth == max_depth and list(data.crop) == crop
    if paper:
        assert network.version == "v1" and config.trainer.max_epochs == 5 and model.decoder_lr_multiplier == 50.0
        assert model.encoder_lr * model.decoder_lr_multiplier == pytest.approx(1.61e-4)  # ZoeDepth's lr
        assert model.schedule == "one_cycle" and model.schedule_options["pct_start"] == 0.7
    else:
        assert network.version == "v2" and model.encoder_lr == 5e-6 and model.decoder_lr_multiplier == 10.0
        assert model.schedule == "poly" and model.schedule_options == {"power": 0.9} and data.batch_size == 4
    check_best_by_abs_rel(config)


def check_seg_defaults(config: Namespace, dataset: str) -> None:
    """Supp. Sec. 1: Mask2Former at 896 x 896, encoder 3e-6 with the decoder at 10x, 160K (ADE20K) / 80K
    (Cityscapes) iterations; the official last four blocks, weight decay, warm-up, clipping and best-by-mIoU."""
    model, data = config.model.init_args, config.data.init_args
    assert config.model.class_path == "anydepth.training.segmentation.SegmentationModule"
    assert model.head == "mask2former" and model.classes == dataset and model.model.init_args.version == "v1"
    assert model.encoder_lr == 3e-6 and model.decoder_lr_multiplier == 10.0 and model.weight_decay == 0.05
    assert model.mask2former["num_queries"] == 200 and model.warmup_steps == 1500 and model.val_crop == 896
    assert data.size == 896 and min(data.scales) == 0.5 and max(data.scales) == 2.0
    assert config.trainer.max_steps == {"ade20k": 160_000, "cityscapes": 80_000}[dataset]
    assert config.trainer.gradient_clip_val == 0.01
    monitor = [c.init_args.monitor for c in config.trainer.callbacks if c.class_path.endswith("ModelCheckpoint")]
    assert monitor == ["val/mIoU"]


def check_recipe(path: Path, config: Namespace) -> None:
    if path.parent.name == "metric":
        check_metric_defaults(path, config)
    elif path.parent.name == "seg":
        check_seg_defaults(config, path.stem)
    elif path.parent.name == "v1":
        check_paper_defaults(config, student=path.stem == "student")
    elif path.parent.name == "v2":
        check_v2_defaults(config, student=path.stem == "student")
    else:
        assert config.model.init_args.init_checkpoint and config.model.init_args.freeze_encoder is False
        check_best_by_abs_rel(config)


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("path", RECIPE_CONFIGS, ids=recipe_id)
def test_recipe_composes_with_every_model_preset(path: Path, encoder: str) -> None:
    """hardware config + recipe + model preset + run directories passes LightningCLI's type checks (class paths,
    argument names and types of model, data, logger and callbacks), builds the preset's encoder with its DINOv2
    weights and the recipe's version, and keeps the recipe's paper defaults."""
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
    check_recipe(path, config)
    (checkpoint,) = config.trainer.callbacks
    assert checkpoint.init_args.dirpath == f"outputs/{run}/checkpoints" and checkpoint.init_args.save_last
    assert config.trainer.default_root_dir == config.trainer.logger.init_args.save_dir == f"outputs/{run}"
    assert config.trainer.logger.init_args.name == run


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
@pytest.mark.parametrize("path", DEMO_CONFIGS, ids=lambda p: p.stem)
def test_demo_config_parses_through_lightning_cli(path: Path) -> None:
    config = parse("--config", str(ROOT / "trainer" / "cpu.yaml"), "--config", str(path))
    check_paper_defaults(config, student=path.stem == "student", demo=True)


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
def test_demo_metric_config_parses_through_lightning_cli() -> None:
    """make demo-metric: the metric module and data on the demo scenes, the V2 metric trainer's loss and schedule."""
    config = parse("--config", str(ROOT / "trainer" / "cpu.yaml"), "--config", str(ROOT / "demo" / "metric.yaml"))
    model = config.model.init_args
    assert config.model.class_path == "anydepth.training.MetricDepthModule"
    assert config.data.class_path == "anydepth.data.metric.MetricDataModule"
    assert model.model.init_args.head == "metric" and model.silog_lambda == 0.5 and model.schedule == "poly"
    assert model.decoder_lr_multiplier == 10.0 and list(config.data.init_args.crop) == [126, 168]


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
@pytest.mark.parametrize(
    ("target", "options", "run"),
    [
        ("teacher", ["ENCODER=vitl"], "teacher-vitl"),
        ("student", [], "student-vits"),
        ("teacher", ["RECIPE=v2", "ENCODER=vitg"], "teacher-vitg-v2"),
        ("student", ["RECIPE=v2"], "student-vits-v2"),
        ("finetune", ["CKPT=released.pth", "LABELED=data_shards/mine"], "finetune-vits"),
        ("metric", ["DATASET=nyu", "ENCODER=vitl"], "nyu-vitl-metric"),
        ("metric", ["DATASET=vkitti2", "INIT=outputs/student-vits/last.ckpt"], "vkitti2-vits-metric"),
    ],
)
def test_makefile_training_command_parses(target: str, options: list[str], run: str) -> None:
    """``make teacher|student|finetune [RECIPE=...] [ENCODER=...]`` and ``make metric DATASET=...`` compose hardware
    config, recipe, model preset and run directory outputs/<run> (ENCODER defaults to vits, RECIPE to v1) into a
    command LightningCLI accepts."""
    make = ["make", "-n", "-C", str(REPO_ROOT), target, "TRAINER=cpu", *options]
    lines = subprocess.run(make, check=True, capture_output=True, text=True).stdout.splitlines()
    (line,) = [line for line in lines if " fit --config " in line]
    args = shlex.split(line)
    args = args[args.index("fit") + 1 :]
    recipe = Path(args[args.index("--config", 2) + 1])
    args = [str(REPO_ROOT / a) if a.startswith("configs/") else a for a in args]
    args = args[: args.index("--ckpt_path")]  # LightningCLI's parser takes no --ckpt_path without a subcommand
    config = parse(*args)
    assert config.model.init_args.model.init_args.encoder == run.split("-")[1]
    assert config.trainer.logger.init_args.name == run
    assert config.trainer.callbacks[0].init_args.dirpath == f"outputs/{run}/checkpoints"
    check_recipe(recipe, config)


METRIC_RECIPES = sorted((ROOT / "recipes" / "metric").glob("*.yaml"))
METRIC_MAX_DEPTH = {"hypersim": 20.0, "vkitti2": 80.0, "nyu": 10.0, "kitti": 80.0}
"""V2 metric_depth: 20 m indoor (Hypersim), 80 m outdoor (Virtual KITTI 2); ZoeDepth: NYUv2 10 m, KITTI 80 m."""


@pytest.fixture(scope="module")
def metric_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two synthetic RGB-D scenes (depth in metres) in one shard."""
    from anydepth.sources.build import build_shards

    tmp = tmp_path_factory.mktemp("metric-shards")
    build_shards(
        "demo-train", tmp, tmp / "scenes", samples_per_shard=2, source_kwargs=dict(num_scenes=2, size=(28, 28))
    )
    return tmp / "scenes"


def instantiate_metric(configs: list[Path], network: str, shards: Path, run_dir: Path) -> Any:
    """hardware config + ``configs`` through LightningCLI, instantiated, with a tiny encoder (its arguments under
    ``network``) in place of the preset and ``shards`` in place of the recipe's: the ``LightningCLI``."""
    from lightning import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    data = "--data.init_args."
    tiny = ("encoder", "custom", "embed_dim", "32", "depth", "4", "num_heads", "2", "features", "16")
    return LightningCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        run=False,
        args=[
            *("--config", str(ROOT / "trainer" / "cpu.yaml")),
            *[arg for path in configs for arg in ("--config", str(path))],
            *[f"{network}{a}" if i % 2 == 0 else a for i, a in enumerate(tiny)],
            *(f"{network}out_channels", "[8,16,32,32]", "--trainer.logger", "false"),
            *(f"{data}train_shards", f"[{shards}]", f"{data}val_shards", f"[{shards}]"),
            *("--trainer.default_root_dir", str(run_dir), "--trainer.callbacks.init_args.dirpath", str(run_dir)),
        ],
    )


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
@pytest.mark.parametrize("path", METRIC_RECIPES, ids=recipe_id)
def test_metric_recipe_head_and_max_depth_reach_the_model(path: Path, metric_shards: Path, tmp_path: Path) -> None:
    """hardware config + metric recipe through LightningCLI, instantiated (a tiny encoder in place of the preset, the
    test scenes in place of the recipe's shards): the module's network is the recipe's metric head with its
    max_depth, and the module supervises and scores that range."""
    from anydepth.training import MetricDepthModule

    cli = instantiate_metric([path], "--model.init_args.model.init_args.", metric_shards, tmp_path)
    assert isinstance(cli.model, MetricDepthModule)
    config = cli.model.model.config
    assert (config.head, config.max_depth) == ("metric", METRIC_MAX_DEPTH[path.stem])
    assert config.version == ("v1" if path.stem in ("nyu", "kitti") else "v2")
    assert cli.model.max_depth == config.max_depth and cli.model.min_depth == 1e-3


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
@pytest.mark.parametrize("overlay", sorted((ROOT / "recipes" / "metric" / "zoedepth").glob("*.yaml")), ids=recipe_id)
def test_zoedepth_overlay_composes_with_its_dataset_recipe(overlay: Path, metric_shards: Path, tmp_path: Path) -> None:
    """metric/<dataset>.yaml + metric/zoedepth/<dataset>.yaml (a tiny core in place of ViT-L): the module trains a
    ZoeDepthMetric over the dataset's depth range with ZoeDepth's SILog, the recipe's data and rates kept."""
    from anydepth.models.zoedepth import ZoeDepthMetric

    configs = [ROOT / "recipes" / "metric" / overlay.name, overlay]
    cli = instantiate_metric(configs, "--model.init_args.model.init_args.relative.init_args.", metric_shards, tmp_path)
    network = cli.model.model
    assert isinstance(network, ZoeDepthMetric) and network.relative.config.version == "v1"
    assert (network.config.min_depth, network.config.max_depth) == (1e-3, METRIC_MAX_DEPTH[overlay.stem])
    assert cli.model.max_depth == network.config.max_depth
    assert (cli.model.hparams.silog_lambda, cli.model.hparams.silog_scale) == (0.85, 10.0)
    assert cli.trainer.gradient_clip_val == 0.1  # the dataset recipe's (ZoeDepth: clip_grad 0.1)


def shard_build_outputs() -> set[str]:
    """Every shard directory the README's build commands write: ``make shards-* ...`` lines resolved by ``make -n``
    (the Makefile's own naming) and ``anydepth shards build ... --out DIR`` lines as written."""
    readme = (REPO_ROOT / "README.md").read_text()
    outputs = set(re.findall(r"anydepth shards build [^\n]*--out (data_shards/\S+)", readme))
    for target, options in re.findall(r"^make (shards-[a-z0-9-]+)((?: [A-Z_]+=\S+)*)", readme, flags=re.M):
        make = ["make", "-n", "-C", str(REPO_ROOT), target, *options.split()]
        printed = subprocess.run(make, check=True, capture_output=True, text=True).stdout
        outputs.update(re.findall(r"--out (\S+)", printed))
    return outputs


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_metric_shard_directories_are_the_ones_the_documented_builds_write() -> None:
    """The directories the hypersim/vkitti2 recipes train and validate on and those the metric protocols read
    (relative to --data-root data_shards) are all written by a build command the README documents."""
    from anydepth.evaluation import PROTOCOLS

    needed = {}
    for name in ("hypersim", "vkitti2"):
        data = yaml.safe_load((ROOT / "recipes" / "metric" / f"{name}.yaml").read_text())["data"]["init_args"]
        needed |= {shards: f"recipe {name}" for shards in data["train_shards"] + data["val_shards"]}
    for name, protocol in PROTOCOLS.items():
        if protocol.mode == "metric":
            needed[f"data_shards/{protocol.shards or name}"] = f"protocol {name}"
    built = shard_build_outputs()
    assert {"data_shards/hypersim-train", "data_shards/hypersim-val", "data_shards/vkitti2-val"} <= set(needed)
    assert not {d: who for d, who in needed.items() if d not in built}, f"not built by a README command: {built}"
