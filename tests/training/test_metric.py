"""``MetricDepthModule`` on real synthetic RGB-D shards (depth in metres) with real Trainers: the SiLog loss falls,
the metric head stays within max_depth, validation scores metres without alignment, the encoder comes from a relative
checkpoint and the head stays fresh, schedules, a metric recipe for a few steps, the demo config and a 2-process DDP
fit through ``anydepth fit``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

from anydepth import DepthAnything
from anydepth.checkpoints import CheckpointError
from anydepth.cli.main import main
from anydepth.losses import silog_loss
from anydepth.metrics import depth_metrics
from anydepth.models.preprocess import upsample_prediction
from anydepth.training import MetricDepthModule, TeacherModule
from anydepth.training.base import visualization
from anydepth.training.schedules import build_schedule

from helpers import REPO_ROOT, TINY, ddp_run
from helpers.lightning_modules import trainer
from helpers.metric_training import MAX_DEPTH, Record, metric_data, metric_model, metric_shards, relative_checkpoint

NETWORK = "--model.init_args.model.init_args."
TINY_NETWORK = [
    *(f"{NETWORK}encoder", "custom", f"{NETWORK}embed_dim", "32", f"{NETWORK}depth", "4"),
    *(f"{NETWORK}num_heads", "2", f"{NETWORK}features", "16", f"{NETWORK}out_channels", "[8,16,32,32]"),
]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return metric_shards(tmp_path_factory.mktemp("metric"))


@pytest.fixture(scope="module")
def fitted(shards: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[MetricDepthModule, Record]:
    """40 optimiser steps on the 4 training scenes (one batch per epoch) with a high rate and a 10 m head, whose
    sigmoid the farther ground truth (3-77 m) pushes against its ceiling."""
    module = MetricDepthModule(metric_model(max_depth=10.0), encoder_lr=1e-3, num_visualizations=1)
    record = Record()
    trainer(tmp_path_factory.mktemp("fit"), max_epochs=40, callbacks=[record], limit_val_batches=0).fit(
        module, metric_data(shards)
    )
    return module, record


def test_silog_training_lowers_the_loss(fitted: tuple[MetricDepthModule, Record]) -> None:
    _, record = fitted
    assert len(record.losses) == 40
    first, last = sum(record.losses[:5]) / 5, sum(record.losses[-5:]) / 5
    assert last < 0.6 * first, record.losses


def test_the_metric_head_never_exceeds_max_depth(fitted: tuple[MetricDepthModule, Record]) -> None:
    module, record = fitted
    assert module.max_depth == 10.0 and all(0.0 < deepest <= 10.0 for deepest in record.deepest)
    assert max(record.deepest) > 9.0  # the far ground truth did push the predictions to the ceiling


def test_poly_decay_with_the_head_at_ten_times_the_encoder(fitted: tuple[MetricDepthModule, Record]) -> None:
    """The official V2 schedule: after step s of S, rate = base * (1 - s / S) ** 0.9, the head at 10x."""
    _, record = fitted
    for step, (encoder, decoder) in enumerate(record.rates, start=1):
        expected = 1e-3 * max(0.0, 1 - step / 40) ** 0.9
        assert encoder == pytest.approx(expected) and decoder == pytest.approx(10 * expected)


def test_the_loss_sees_valid_depths_within_the_range_only(shards: dict[str, Path]) -> None:
    """SiLog on the pixels with valid depth in [min_depth, max_depth] (official: depth >= min & depth <= max)."""
    module = MetricDepthModule(metric_model(max_depth=10.0), min_depth=2.0)
    batch = next(iter(metric_data(shards).train_dataloader()))
    label, mask = batch["label"], batch["mask"]
    supervised = module.supervised(label, mask)
    assert torch.equal(supervised, mask & (label >= 2.0) & (label <= 10.0))
    assert supervised.any() and (mask & ~supervised).any()  # the scenes hold depths beyond 10 m
    pred = module(module.unit_images(batch)["image"])
    assert silog_loss(pred, label, supervised) != silog_loss(pred, label, mask)  # the range matters


def test_validation_scores_metres_without_alignment(shards: dict[str, Path], tmp_path: Path) -> None:
    module = MetricDepthModule(metric_model(), num_visualizations=0)
    data = metric_data(shards)
    (logged,) = trainer(tmp_path).validate(module, data, verbose=False)
    preds, depths, masks = [], [], []
    with torch.no_grad():
        for batch in data.val_dataloader():
            size = tuple(int(s) for s in batch["original_size"][0])
            preds.append(upsample_prediction(module(batch["image"]), size, "v2"))
            depths.append(batch["label"])
            masks.append(batch["mask"])
    expected = depth_metrics(torch.cat(preds), torch.cat(depths), torch.cat(masks), 1e-3, MAX_DEPTH)
    for name in ("abs_rel", "rmse", "d1"):
        assert logged[f"val/{name}"] == pytest.approx(float(expected[name]), rel=1e-5), name


def test_validation_panels_share_one_scale_in_metres() -> None:
    """RGB | prediction | ground truth, with equal depths in equal colours across the two depth panels."""
    depth = torch.tensor([[2.0, 4.0], [8.0, 0.0]])
    mask = depth > 0
    panels = visualization(torch.rand(3, 2, 2), torch.full((2, 2), 4.0), depth, mask, metric=True)
    gap = (panels.shape[1] - 6) // 2
    prediction, truth = panels[:, 2 + gap : 4 + gap], panels[:, 4 + 2 * gap :]
    assert (prediction == truth[0, 1]).all()  # 4 m everywhere is the colour of the 4 m ground-truth pixel
    assert (truth[1, 1] == 0).all()  # no ground truth: black


@pytest.mark.parametrize("name", ["relative.ckpt", "transformers"])
def test_init_encoder_from_loads_the_encoder_only(name: str, tmp_path: Path) -> None:
    source = relative_checkpoint(tmp_path / name).state_dict()
    fresh = metric_model(seed=0).state_dict()
    module = MetricDepthModule(metric_model(seed=0), init_encoder_from=str(tmp_path / name), pretrained="missing.pth")
    loaded = module.model.state_dict()
    assert module.pretrained is None  # the preset's DINOv2 file is not read
    encoder = [k for k in loaded if k.startswith("pretrained.")]
    head = [k for k in loaded if k.startswith("depth_head.")]
    assert encoder and head and len(encoder) + len(head) == len(loaded)
    assert all(torch.equal(loaded[k], source[k]) for k in encoder)
    assert all(torch.equal(loaded[k], fresh[k]) for k in head)  # the metric head stays as initialised


def test_init_encoder_from_refuses_another_encoder_size(tmp_path: Path) -> None:
    relative_checkpoint(tmp_path / "wide.ckpt", embed_dim=64)
    with pytest.raises(CheckpointError, match=r"width 64, 4 blocks.*but the model has a custom encoder \(width 32"):
        MetricDepthModule(metric_model(), init_encoder_from=str(tmp_path / "wide.ckpt"))
    with pytest.raises(ValueError, match="not both"):
        TeacherModule(DepthAnything(**TINY), init_checkpoint="a.ckpt", init_encoder_from="b.ckpt")


def test_a_relative_head_is_refused() -> None:
    with pytest.raises(ValueError, match=r"head: metric and its max_depth.*no model preset may follow it"):
        MetricDepthModule(DepthAnything(**TINY))


def test_one_cycle_holds_the_peak_then_anneals() -> None:
    """ZoeDepth's OneCycleLR (div_factor 1, pct_start 0.7, final_div_factor 1e4): each group at its own peak for
    70% of the run, then down to peak / 1e4; beta1 cycles 0.95 -> 0.85 -> 0.95."""
    groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in (1e-6, 5e-5)]
    optimizer = torch.optim.AdamW(groups)
    schedule = build_schedule(optimizer, "one_cycle", 100)
    rates, betas = [], []
    for _ in range(100):
        rates.append([g["lr"] for g in optimizer.param_groups])
        betas.append(optimizer.param_groups[0]["betas"][0])
        optimizer.step()
        schedule.step()
    assert rates[0] == pytest.approx([1e-6, 5e-5]) and rates[69] == pytest.approx([1e-6, 5e-5], rel=1e-3)
    assert rates[-1][1] < 5e-5 / 1000 and betas[0] == pytest.approx(0.95) and min(betas) == pytest.approx(0.85)
    with pytest.raises(ValueError, match=r"\['warmup'\] are not options of the 'poly' schedule"):
        MetricDepthModule(metric_model(), schedule_options={"warmup": 3})


def test_the_nyu_recipe_trains_two_steps(shards: dict[str, Path], tmp_path: Path) -> None:
    """The paper's NYUv2 recipe (V1 feed, one-cycle, encoder at 1/50 of the decoder) from a relative checkpoint's
    encoder, shrunk to the test scenes; the checkpoint reads back as a metric model."""
    relative_checkpoint(tmp_path / "relative.ckpt")
    data = "--data.init_args."
    code = main(
        [
            *("fit", "--config", str(REPO_ROOT / "configs/trainer/cpu.yaml")),
            *("--config", str(REPO_ROOT / "configs/recipes/metric/nyu.yaml"), *TINY_NETWORK),
            *(f"{data}train_shards", f"[{shards['train']}]", f"{data}val_shards", f"[{shards['val']}]"),
            *(f"{data}crop", "[28,42]", f"{data}batch_size", "2", f"{data}num_workers", "0"),
            *("--model.init_args.init_encoder_from", str(tmp_path / "relative.ckpt")),
            *("--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--trainer.logger", "false"),
            *("--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path / "run")),
            *("--trainer.callbacks.init_args.dirpath", str(tmp_path / "run" / "checkpoints")),
        ]
    )
    assert code == 0
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(path, weights_only=False)["global_step"] == 2
    model = DepthAnything.from_checkpoint(path)
    assert (model.config.head, model.config.max_depth, model.config.version) == ("metric", 10.0, "v1")
    module = MetricDepthModule(metric_model(max_depth=10.0, version="v1"), init_checkpoint=str(path))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in module.model.state_dict().items())


def test_two_process_ddp_metric_fit_through_the_cli(shards: dict[str, Path], tmp_path: Path) -> None:
    """configs/trainer/ddp.yaml (2 CPU processes, fp32) + configs/demo/metric.yaml on the test scenes."""
    data = "--data.init_args."
    command = [
        *("fit", "--config", str(REPO_ROOT / "configs/trainer/ddp.yaml")),
        *("--config", str(REPO_ROOT / "configs/demo/metric.yaml"), *TINY_NETWORK),
        *(f"{data}train_shards", f"[{shards['train']}]", f"{data}val_shards", f"[{shards['val']}]"),
        *(f"{data}crop", "[28,42]", f"{data}batch_size", "2", f"{data}num_workers", "0"),
        *("--trainer.max_epochs", "2", "--trainer.max_steps", "2", "--trainer.logger", "false"),
        *("--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu", "--trainer.devices", "2"),
        *("--trainer.precision", "32-true"),
    ]
    ddp_run(command, tmp_path, max_steps=2)
    path = tmp_path / "outputs" / "demo" / "metric" / "checkpoints" / "last.ckpt"
    assert torch.load(path, weights_only=False)["global_step"] == 2
    assert DepthAnything.from_checkpoint(path).config.head == "metric"


def test_metric_sbatch_composes_dataset_encoder_and_init(tmp_path: Path) -> None:
    """configs/slurm/metric.sbatch as SLURM runs it (srun printing its arguments): the dataset's recipe, the preset,
    the official release's encoder by default (V1 for the paper's nyu/kitti), DINOv2 with INIT set empty."""

    def run(**env: str) -> list[str]:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / "srun").write_text('#!/bin/bash\nprintf "%s\\n" "$@"\n')
        (bin_dir / "srun").chmod(0o755)
        slurm = dict(SLURM_SUBMIT_DIR=str(tmp_path), SLURM_JOB_ID="7", SLURM_NNODES="1", SLURM_NTASKS_PER_NODE="8")
        out = subprocess.run(
            ["bash", str(REPO_ROOT / "configs/slurm/metric.sbatch")],
            env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path), "SLURM_CPUS_PER_TASK": "6"}
            | slurm
            | env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.splitlines()
        return out[out.index("fit") :]

    args = run(DATASET="nyu", ENCODER="vits")
    assert args[args.index("--config", 3) + 1] == "configs/recipes/metric/nyu.yaml"
    assert args[args.index("--model.init_args.init_encoder_from") + 1] == "checkpoints/depth_anything_vits14.pth"
    assert args[args.index("--trainer.logger.init_args.name") + 1] == "nyu-vits-metric"
    args = run()
    assert args[args.index("--model.init_args.init_encoder_from") + 1] == "checkpoints/depth_anything_v2_vitl.pth"
    assert "--model.init_args.init_encoder_from" not in run(INIT="")
