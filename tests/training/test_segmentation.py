"""``SegmentationModule`` on real demo shards with real Trainers (CPU): the encoder's starting points (DINOv2 or a
depth model), the official optimiser groups and schedule, checkpoints the evaluation reads, Mask2Former training, and
a 2-process DDP fit through ``anydepth fit`` with configs/demo/seg.yaml whose validation mIoU equals a
single-process evaluation of its checkpoint."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning import LightningDataModule, LightningModule
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from anydepth.checkpoints import CheckpointError
from anydepth.data.segmentation import AugmentationConfig, SegmentationDataModule
from anydepth.evaluation.segmentation import evaluate_segmentation
from anydepth.models import DepthAnything
from anydepth.models.segmentation import SEGMENTATION_KEY, SegmentationModel
from anydepth.sources.build import build_shards
from anydepth.training.segmentation import SegmentationModule, WarmupPolyDecay

from helpers import REPO_ROOT, TINY, ddp_run
from helpers.lightning_modules import trainer

SIZE = 28
TINY_V1 = {**TINY, "version": "v1"}


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """8 synthetic scenes with class ids in 4 shards, 2 held-out scenes in 2 shards (one per DDP rank)."""
    tmp = tmp_path_factory.mktemp("seg")
    out = {"train": tmp / "train", "val": tmp / "val"}
    scenes = dict(size=(36, 48))
    build_shards("demo-seg", tmp, out["train"], samples_per_shard=2, source_kwargs=dict(num_scenes=8, **scenes))
    build_shards(
        "demo-seg", tmp, out["val"], split="val", samples_per_shard=1, source_kwargs=dict(num_scenes=2, **scenes)
    )
    return out


def module(**kwargs: Any) -> SegmentationModule:
    torch.manual_seed(0)
    options = dict(classes="demo", head="light", light_channels=8, encoder_lr=1e-3, warmup_steps=0)
    return SegmentationModule(DepthAnything(**TINY_V1), **{**options, **kwargs})


def data(shards: dict[str, Path], size: int = SIZE) -> SegmentationDataModule:
    return SegmentationDataModule(
        [str(shards["train"])], [str(shards["val"])], batch_size=2, num_workers=0, size=size, shuffle_buffer=4
    )


class Rates(Callback):
    """The learning rate of every parameter group at each optimiser step."""

    def __init__(self) -> None:
        self.rates: list[dict[str, float]] = []

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self.rates.append({g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups})


def test_checkpoints_hold_the_network_the_evaluation_reads(shards: dict[str, Path], tmp_path: Path) -> None:
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    fit = trainer(tmp_path, max_steps=2, val_check_interval=2, enable_checkpointing=True, callbacks=[checkpoint])
    seg = module(augmentation=AugmentationConfig(hue_delta=9.0))
    fit.fit(seg, datamodule=data(shards))
    path = tmp_path / "last.ckpt"
    stored = torch.load(path, weights_only=True)  # plain values only: no pickled code
    assert stored[SEGMENTATION_KEY]["model"]["classes"][0] == "ground"
    assert stored["hyper_parameters"]["augmentation"]["hue_delta"] == 9.0
    loaded = SegmentationModel.from_checkpoint(path)
    for name, value in seg.model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)
    results = evaluate_segmentation(path, [str(shards["val"])], size=SIZE, num_workers=0, accelerator="cpu")
    assert results["mIoU"] == pytest.approx(float(fit.callback_metrics["val/mIoU"]), abs=1e-6)
    assert results["images"] == 2
    DepthAnything(**TINY_V1).save_checkpoint(tmp_path / "depth.ckpt", format="anydepth")
    with pytest.raises(CheckpointError, match="not a segmentation checkpoint"):  # a depth model's
        SegmentationModel.from_checkpoint(tmp_path / "depth.ckpt")


def test_encoder_starts_from_dinov2_or_a_depth_model(tmp_path: Path) -> None:
    torch.manual_seed(7)
    depth = DepthAnything(**TINY_V1)
    torch.save(depth.pretrained.state_dict(), tmp_path / "dinov2.pth")  # Meta's DINOv2 file layout
    depth.save_checkpoint(tmp_path / "depth.ckpt", format="anydepth")
    for kwargs in ({"pretrained": str(tmp_path / "dinov2.pth")}, {"init_encoder_from": str(tmp_path / "depth.ckpt")}):
        encoder = module(**kwargs).model.pretrained.state_dict()
        for name, value in depth.pretrained.state_dict().items():
            torch.testing.assert_close(encoder[name], value)
    wider = DepthAnything(**{**TINY_V1, "embed_dim": 64})
    wider.save_checkpoint(tmp_path / "wider.ckpt", format="anydepth")
    with pytest.raises(CheckpointError, match=r"holds a custom encoder \(width 64, .*but the model has .*width 32"):
        module(init_encoder_from=str(tmp_path / "wider.ckpt"))
    with pytest.raises(ValueError, match="classes must be a list of names or one of"):
        module(classes="coco")


def test_optimiser_groups_and_the_official_schedule(shards: dict[str, Path], tmp_path: Path) -> None:
    """AdamW groups: encoder / decoder at 1 : 10, biases, norms and embeddings without weight decay; linear warm-up
    from 1e-6 of the rate, then poly decay (power 1) to 0 at the last step."""
    rates = Rates()
    seg = module(encoder_lr=1e-3, warmup_steps=2)
    fit = trainer(tmp_path, max_steps=4, limit_val_batches=0, callbacks=[rates])
    fit.fit(seg, datamodule=data(shards))
    factors = [WarmupPolyDecay(4, 2)(step) for step in range(4)]
    assert factors == pytest.approx([1e-6, 0.5 + 5e-7, 1.0, 0.5])
    assert [r["encoder"] for r in rates.rates] == pytest.approx([1e-3 * f for f in factors])
    assert [r["decoder_no_decay"] for r in rates.rates] == pytest.approx([1e-2 * f for f in factors])
    groups = {g["name"]: g for g in fit.optimizers[0].param_groups}
    names = {id(p): n for n, p in seg.model.named_parameters()}
    no_decay = [names[id(p)] for g in ("encoder_no_decay", "decoder_no_decay") for p in groups[g]["params"]]
    assert {"pretrained.pos_embed", "pretrained.cls_token", "pretrained.norm.weight", "head.fuse.1.weight"} <= set(
        no_decay
    )
    assert all(groups[g]["weight_decay"] == 0.0 for g in ("encoder_no_decay", "decoder_no_decay"))
    decayed = [names[id(p)] for g in ("encoder", "decoder") for p in groups[g]["params"]]
    assert "pretrained.blocks.0.attn.qkv.weight" in decayed and all(n.endswith("weight") for n in decayed)
    assert groups["encoder"]["weight_decay"] == 0.05 and "pretrained.mask_token" not in no_decay + decayed


def test_mask2former_module_trains(shards: dict[str, Path], tmp_path: Path) -> None:
    tiny = dict(num_queries=4, decoder_layers=2, encoder_layers=1, train_num_points=64)
    seg = module(head="mask2former", mask2former=tiny)
    fit = trainer(tmp_path, max_steps=2, val_check_interval=2)
    fit.fit(seg, datamodule=data(shards, size=56))  # 4 x 4 patches: the 0.5x level keeps 2 x 2
    metrics = fit.callback_metrics
    assert {"train/cross_entropy", "train/mask", "train/dice", "val/mIoU"} <= set(metrics)
    assert torch.isfinite(metrics["train/loss"]) and 0 <= metrics["val/mIoU"] <= 1


def test_two_process_ddp_run_through_the_cli(shards: dict[str, Path], tmp_path: Path) -> None:
    """configs/trainer/ddp.yaml + configs/demo/seg.yaml on 2 CPU processes: the validation mIoU (each rank scoring
    its own shard, the confusion matrices summed) equals one process scoring both images with the checkpoint."""
    model = "--model.init_args.model.init_args."
    command = [
        *("fit", "--config", str(REPO_ROOT / "configs/trainer/ddp.yaml")),
        *("--config", str(REPO_ROOT / "configs/demo/seg.yaml")),
        *("--data.init_args.train_shards", f"[{shards['train']}]", "--data.init_args.val_shards", f"[{shards['val']}]"),
        *("--data.init_args.size", str(SIZE), "--data.init_args.num_workers", "0", "--data.init_args.batch_size", "2"),
        *(f"{model}embed_dim", "32", f"{model}num_heads", "2", f"{model}features", "16"),
        *(f"{model}out_channels", "[8,16,32,32]", "--model.init_args.light_channels", "8"),
        *("--trainer.max_steps", "2", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false"),
        *("--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.precision", "32-true"),
    ]
    ddp_run(command, tmp_path, max_steps=2)
    path = tmp_path / "outputs" / "demo" / "seg" / "checkpoints" / "last.ckpt"  # saved after the validation
    state = torch.load(path, weights_only=True)
    (logged,) = [s["current_score"] for k, s in state["callbacks"].items() if k.startswith("ModelCheckpoint")]
    results = evaluate_segmentation(path, [str(shards["val"])], size=SIZE, num_workers=0, accelerator="cpu")
    assert results["images"] == 2 and results["mIoU"] == pytest.approx(float(logged), abs=1e-6)


class ParseOnly(LightningCLI):
    def instantiate_classes(self) -> None:
        pass


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
def test_slurm_script_runs_a_recipe_lightning_cli_accepts(tmp_path: Path) -> None:
    """configs/slurm/seg.sbatch under a stand-in ``srun`` that prints its arguments: the run name says dataset,
    encoder and depth initialisation, and the command parses with the recipe and preset it names."""
    (tmp_path / "srun").write_text('#!/bin/bash\nprintf "%s\\n" "$@"\n')
    (tmp_path / "srun").chmod(0o755)
    env = {
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "SLURM_SUBMIT_DIR": str(REPO_ROOT),
        **dict(SLURM_JOB_ID="7", SLURM_NNODES="2", SLURM_NTASKS_PER_NODE="4", SLURM_CPUS_PER_TASK="10"),
        **dict(
            DATASET="cityscapes", ENCODER="vits", INIT="checkpoints/depth_anything_vits14.pth", RUN_DIR=str(tmp_path)
        ),
    }
    script = REPO_ROOT / "configs" / "slurm" / "seg.sbatch"
    out = subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True, text=True).stdout
    args = out.splitlines()[1:]  # after the job line
    args = args[args.index("fit") + 1 :]
    assert args[args.index("--trainer.logger.init_args.name") + 1] == "seg-cityscapes-vits-depth"
    args = [str(REPO_ROOT / a) if a.startswith("configs/") else a for a in args]
    at = args.index("--ckpt_path")  # fit's own option, not the LightningCLI parser's
    config = ParseOnly(
        LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True, run=False,
        args=args[:at] + args[at + 2 :],
    ).config  # fmt: skip
    assert config.model.init_args.init_encoder_from == "checkpoints/depth_anything_vits14.pth"
    assert config.model.init_args.classes == "cityscapes" and config.trainer.max_steps == 80_000
    assert (config.trainer.num_nodes, str(config.trainer.devices)) == (2, "4")
