"""``anydepth.training``: teacher and student LightningModules on real shards with real Trainers (CPU), the
optimiser and schedule of Sec. 4.1, the frozen encoder's checkpoint contract, resuming after a crash, and 2-process
DDP fits through ``anydepth fit`` with the shipped demo configs."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import wandb
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from PIL import Image
from torch.utils.data import DataLoader

from anydepth.augment import CutMixConfig
from anydepth.checkpoints import CheckpointError
from anydepth.data.datamodules import LabeledDataModule, MixedDataModule
from anydepth.models import DepthAnything
from anydepth.models.preprocess import normalize
from anydepth.sources.build import build_shards
from anydepth.training import StudentModule, TeacherModule
from anydepth.training.loggers import RunLogger
from anydepth.training.student import FROZEN_ENCODER_KEY

from helpers import REPO_ROOT, TINY, ddp_run
from helpers.lightning_modules import trainer

ROOT = REPO_ROOT
SIZE = 28  # training crop: 2 x 2 patches
SCENES = dict(num_scenes=12, size=(36, 48))


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic RGB-D scenes as labeled train shards (3 shards of 4), held-out scenes as validation shards, and
    a second scene set standing in for pseudo-labeled shards (any labeled shard feeds the unlabeled stream)."""
    tmp = tmp_path_factory.mktemp("training")
    out = {"train": tmp / "train", "val": tmp / "val", "pseudo": tmp / "pseudo"}
    build_shards("demo-train", tmp, out["train"], samples_per_shard=4, source_kwargs=SCENES)
    build_shards(
        "demo-train",
        tmp,
        out["val"],
        split="val",
        samples_per_shard=1,  # a shard per DDP rank
        source_kwargs=dict(num_scenes=2, size=(36, 48)),
    )
    build_shards("demo-train", tmp, out["pseudo"], samples_per_shard=4, source_kwargs=dict(SCENES, seed=100))
    return out


def tiny_model() -> DepthAnything:
    """Conftest's tiny sizes, seeded (the training modules open the final ReLU with their head_bias_init)."""
    torch.manual_seed(0)
    return DepthAnything(**TINY)


def labeled_data(shards: dict[str, Path], **kwargs: Any) -> LabeledDataModule:
    return LabeledDataModule(
        [str(shards["train"])], [str(shards["val"])], batch_size=4, num_workers=0, size=SIZE, shuffle_buffer=8, **kwargs
    )


def mixed_data(shards: dict[str, Path], **kwargs: Any) -> MixedDataModule:
    return MixedDataModule(
        [str(shards["train"])],
        [str(shards["pseudo"])],
        labeled_batch_size=2,
        num_workers=0,
        size=SIZE,
        shuffle_buffer=8,
        val_shards=[str(shards["val"])],
        **kwargs,
    )


def dinov2_file(path: Path, seed: int = 7) -> Path:
    """A DINOv2 backbone state dict of the tiny encoder, as Meta's ``dinov2_vits14_pretrain.pth`` is laid out."""
    torch.manual_seed(seed)
    torch.save(DepthAnything(**TINY).pretrained.state_dict(), path)
    return path


class Record(Callback):
    """Global step, learning rates and loss after every optimiser step, and the batches' images."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, list[float], float]] = []
        self.images: list[torch.Tensor] = []

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        lrs = [group["lr"] for group in trainer.optimizers[0].param_groups]
        self.steps.append((trainer.global_step, lrs, float(outputs["loss"])))
        if isinstance(batch, dict) and "image" in batch:
            self.images.append(batch["image"].clone())


# ---------------------------------------------------------------- one-step fits, optimiser, validation


def test_teacher_one_step_fit_validates_and_writes_a_loadable_checkpoint(shards: dict, tmp_path: Path) -> None:
    module = TeacherModule(tiny_model(), encoder_lr=1e-4)
    record = Record()
    fit = trainer(tmp_path, max_steps=1, limit_val_batches=2, val_check_interval=1, callbacks=[record])
    fit.fit(module, datamodule=labeled_data(shards))
    assert fit.global_step == 1 and record.steps[0][2] > 0
    metrics = fit.callback_metrics
    assert {"train/loss", "val/abs_rel", "val/d1"} <= set(metrics)
    # after one step the tiny model's map is near-constant, so its scale-and-shift fit (hence AbsRel) is arbitrary
    assert 0 < float(metrics["val/abs_rel"]) < float("inf") and 0 <= float(metrics["val/d1"]) <= 1
    path = tmp_path / "teacher.ckpt"
    fit.save_checkpoint(path)
    loaded = DepthAnything.from_checkpoint(path)  # the anydepth entry: readable by infer / eval / pseudo-label
    for key, value in module.model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)


def test_optimizer_groups_and_linear_decay(shards: dict, tmp_path: Path) -> None:
    """Sec. 4.1: AdamW, encoder at the base rate, decoder at 10x, linear decay to 0 over the run."""
    module = TeacherModule(tiny_model())  # paper defaults: 5e-6 and 10x
    record = Record()
    fit = trainer(tmp_path, max_steps=4, limit_val_batches=0, callbacks=[record])
    fit.fit(module, datamodule=labeled_data(shards))
    optimizer = fit.optimizers[0]
    assert isinstance(optimizer, torch.optim.AdamW)
    encoder, decoder = optimizer.param_groups
    assert (encoder["name"], decoder["name"]) == ("encoder", "decoder")
    fusion = module.model.depth_head.scratch.refinenet4.resConfUnit1
    unused = {"pretrained.mask_token"} | {
        f"depth_head.scratch.refinenet4.resConfUnit1.{k}" for k, _ in fusion.named_parameters()
    }
    named = dict(module.model.named_parameters())
    assert {id(p) for p in encoder["params"]} == {
        id(v) for k, v in named.items() if k.startswith("pretrained.") and k not in unused
    }
    assert {id(p) for p in decoder["params"]} == {
        id(v) for k, v in named.items() if k.startswith("depth_head.") and k not in unused
    }
    assert not any(named[k].requires_grad for k in unused)  # never used by the forward: frozen (DDP needs no search)
    lrs = [lr for _, group_lrs, _ in record.steps for lr in group_lrs]  # after step k: (1 - k / total) x base
    expected = [base * (1 - k / 4) for k in range(1, 5) for base in (5e-6, 5e-5)]
    assert lrs == pytest.approx(expected, rel=1e-6)


def test_student_one_step_fit_logs_the_three_losses_and_never_trains_the_frozen_encoder(
    shards: dict, tmp_path: Path
) -> None:
    module = StudentModule(tiny_model(), encoder_lr=1e-4)
    frozen_before = {k: v.clone() for k, v in module.frozen_encoder.state_dict().items()}
    encoder_before = {k: v.clone() for k, v in module.model.pretrained.state_dict().items()}
    fit = trainer(tmp_path, max_steps=2, limit_val_batches=1)
    fit.fit(module, datamodule=mixed_data(shards))
    metrics = fit.callback_metrics
    for name in ("loss", "labeled", "unlabeled", "feature"):
        assert torch.isfinite(metrics[f"train/{name}"]), name
    mean = sum(float(metrics[f"train/{k}"]) for k in ("labeled", "unlabeled", "feature")) / 3
    assert float(metrics["train/loss"]) == pytest.approx(mean, rel=1e-5)  # Sec. 3.3: the average of the three
    trained = {id(p) for group in fit.optimizers[0].param_groups for p in group["params"]}
    assert not trained & {id(p) for p in module.frozen_encoder.parameters()}
    assert not module.frozen_encoder.training
    for key, value in module.frozen_encoder.state_dict().items():
        torch.testing.assert_close(value, frozen_before[key])
    assert any(not torch.equal(v, encoder_before[k]) for k, v in module.model.pretrained.state_dict().items())


def test_student_batch_has_one_labeled_to_two_unlabeled_and_perturbs_only_unlabeled(shards: dict) -> None:
    data = mixed_data(shards)
    batch = next(iter(data.train_dataloader()))[0]
    module = StudentModule(tiny_model(), cutmix=CutMixConfig(p=1.0))
    module.trainer = pl.Trainer(accelerator="cpu", logger=False)  # attached trainer in its training state
    module.trainer.training = True
    moved = module.on_after_batch_transfer(batch, 0)
    assert moved["unlabeled"]["image"].shape[0] == 2 * moved["labeled"]["image"].shape[0]
    assert not torch.equal(moved["unlabeled"]["image"], batch["unlabeled"]["image"])  # strongly perturbed
    labeled_in, labeled_out = batch["labeled"]["image"] / 255, moved["labeled"]["image"]  # uint8 -> [0, 1] floats
    for before, after in zip(labeled_in, labeled_out):  # labeled: at most flipped, colours untouched
        assert torch.equal(after, before) or torch.equal(after, before.flip(-1))


# ---------------------------------------------------------------- learning


def fixed_batches(loader: Any, count: int) -> DataLoader:
    """The loader's first batch ``count`` times (a mixed loader's batch without CombinedLoader's indices)."""
    first = next(iter(loader))
    return DataLoader([first[0] if isinstance(first, tuple) else first] * count, batch_size=None)


def test_teacher_loss_falls_on_a_fixed_batch(shards: dict, tmp_path: Path) -> None:
    module = TeacherModule(tiny_model(), encoder_lr=2e-4, flip_p=0.0)
    record = Record()
    batches = fixed_batches(labeled_data(shards).train_dataloader(), 50)
    trainer(tmp_path, max_steps=50, limit_val_batches=0, callbacks=[record]).fit(module, train_dataloaders=batches)
    losses = [loss for _, _, loss in record.steps]
    assert len(losses) == 50
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, losses


def test_student_loss_falls_on_a_fixed_batch(shards: dict, tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = StudentModule(tiny_model(), encoder_lr=2e-4, flip_p=0.0)
    record = Record()
    batches = fixed_batches(mixed_data(shards).train_dataloader(), 50)
    trainer(tmp_path, max_steps=50, limit_val_batches=0, callbacks=[record]).fit(module, train_dataloaders=batches)
    losses = [loss for _, _, loss in record.steps]
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10, losses


# ---------------------------------------------------------------- checkpoints and resuming


def test_student_checkpoint_leaves_out_the_frozen_encoder_yet_restores_the_full_module(
    shards: dict, tmp_path: Path
) -> None:
    dinov2 = dinov2_file(tmp_path / "dinov2.pth")
    module = StudentModule(tiny_model(), pretrained=str(dinov2), encoder_lr=1e-4)
    reference = torch.load(dinov2)
    for key, value in reference.items():  # student and frozen copy both start from the DINOv2 file
        torch.testing.assert_close(module.model.pretrained.state_dict()[key], value)
        torch.testing.assert_close(module.frozen_encoder.state_dict()[key], value)
    fit = trainer(tmp_path, max_steps=1, limit_val_batches=0)
    fit.fit(module, datamodule=mixed_data(shards))
    path = tmp_path / "student.ckpt"
    fit.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=False)
    assert not [k for k in checkpoint["state_dict"] if k.startswith("frozen_encoder.")]
    assert checkpoint[FROZEN_ENCODER_KEY]["pretrained"] == str(dinov2)

    restored = StudentModule(tiny_model(), pretrained=str(dinov2))
    restored.on_load_checkpoint(checkpoint)
    restored.load_state_dict(checkpoint["state_dict"], strict=True)
    expected = module.state_dict()
    assert set(restored.state_dict()) == set(expected)
    for key, value in restored.state_dict().items():
        torch.testing.assert_close(value, expected[key])

    other = dinov2_file(tmp_path / "other.pth", seed=8)  # another DINOv2 file: refused, not silently mixed
    with pytest.raises(CheckpointError, match="frozen DINOv2 came from"):
        StudentModule(tiny_model(), pretrained=str(other)).on_load_checkpoint(torch.load(path, weights_only=False))


def test_random_student_saves_its_frozen_encoder(shards: dict, tmp_path: Path) -> None:
    module = StudentModule(tiny_model())
    fit = trainer(tmp_path, max_steps=1, limit_val_batches=0)
    fit.fit(module, datamodule=mixed_data(shards))
    fit.save_checkpoint(tmp_path / "s.ckpt")
    state = torch.load(tmp_path / "s.ckpt", weights_only=False)["state_dict"]
    assert {k for k in state if k.startswith("frozen_encoder.")} == {
        f"frozen_encoder.{k}" for k in module.frozen_encoder.state_dict()
    }


def test_wrong_dinov2_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="do not exist"):
        TeacherModule(tiny_model(), pretrained=str(tmp_path / "missing.pth"))
    torch.save({"weights": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="not a DINOv2 backbone"):
        TeacherModule(tiny_model(), pretrained=str(tmp_path / "bad.pth"))


class Crash(Callback):
    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step == self.at_step:
            raise RuntimeError("simulated crash")


def test_run_killed_midway_resumes_with_the_same_step_and_learning_rate(shards: dict, tmp_path: Path) -> None:
    """3 batches per epoch; checkpoints every 2 steps; a crash at step 5 resumes from step 4 (mid-epoch 2) with
    the schedule of the uninterrupted run, and trains on exactly its batches (the rest of epoch 2's exact stream,
    crops included)."""

    def run(directory: Path, *callbacks: Callback, ckpt_path: str | None = None) -> Record:
        record = Record()
        checkpoint = ModelCheckpoint(dirpath=directory, save_last=True, every_n_train_steps=2)
        module = TeacherModule(tiny_model(), encoder_lr=1e-4, flip_p=0.0)  # batches as the loader gives them
        fit = trainer(
            tmp_path,
            max_steps=6,
            limit_val_batches=0,
            enable_checkpointing=True,
            callbacks=[checkpoint, record, *callbacks],
        )
        fit.fit(module, datamodule=labeled_data(shards), ckpt_path=ckpt_path)
        return record

    reference = run(tmp_path / "reference")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "crashed", Crash(at_step=5))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*dataloader is not resumable")  # the loaders are stateful
        resumed = run(tmp_path / "crashed", ckpt_path="last")
    assert [step for step, _, _ in resumed.steps] == [5, 6]  # continues after step 4 (last.ckpt), to max_steps
    assert [lr for _, lrs, _ in resumed.steps for lr in lrs] == pytest.approx(
        [lr for _, lrs, _ in reference.steps[4:] for lr in lrs]
    )
    assert len(resumed.images) == 2
    assert all(torch.equal(a, b) for a, b in zip(resumed.images, reference.images[4:]))


# ---------------------------------------------------------------- DDP through the CLI with the shipped configs


def fit_command(stage: str, shards: dict) -> list[str]:
    """``anydepth fit`` with configs/trainer/ddp.yaml (on 2 CPU processes, fp32) + configs/demo/<stage>.yaml on the
    test shards, tiny model (outputs under the working directory's outputs/demo/<stage>)."""
    data = (
        # exact epochs: 3 shards of 4 over 2 ranks (8 | 4) hold no full batch of the demo's 8 on rank 1
        ["--data.init_args.train_shards", f"[{shards['train']}]", "--data.init_args.batch_size", "2"]
        if stage == "teacher"
        else [
            "--data.init_args.labeled_shards",
            f"[{shards['train']}]",
            "--data.init_args.pseudo_shards",
            f"[{shards['pseudo']}]",
            "--data.init_args.labeled_batch_size",
            "1",
            "--data.init_args.samples_per_epoch",
            "null",  # the demo's epoch length (resampled photos), if set: here an epoch of the shards' own size
        ]
    )
    model = "--model.init_args.model.init_args."
    return [
        "fit",
        "--config",
        str(ROOT / "configs/trainer/ddp.yaml"),
        "--config",
        str(ROOT / f"configs/demo/{stage}.yaml"),
        *data,
        "--data.init_args.val_shards",
        f"[{shards['val']}]",
        "--data.init_args.size",
        str(SIZE),
        "--data.init_args.num_workers",
        "0",
        f"{model}embed_dim",
        "32",
        f"{model}num_heads",
        "2",
        f"{model}features",
        "16",
        f"{model}out_channels",
        "[8,16,32,32]",
        "--trainer.max_epochs",
        "2",
        "--trainer.max_steps",
        "2",
        "--trainer.logger",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.accelerator",
        "cpu",
        "--trainer.devices",
        "2",
        "--trainer.precision",
        "32-true",
    ]


@pytest.mark.parametrize("stage", ["teacher", "student"])
def test_two_process_ddp_run_through_the_cli(stage: str, shards: dict, tmp_path: Path) -> None:
    ddp_run(fit_command(stage, shards), tmp_path, max_steps=2)
    path = tmp_path / "outputs" / "demo" / stage / "checkpoints" / "last.ckpt"  # saved after a validation
    assert torch.load(path, weights_only=False)["global_step"] >= 1
    DepthAnything.from_checkpoint(path)


def test_fewer_validation_shards_than_ranks_is_one_clear_error(shards: dict) -> None:
    """A rank without validation batches would leave the others waiting in the metric synchronisation."""
    data = LabeledDataModule(
        [str(shards["train"])], [str(shards["val"])], num_workers=0, size=SIZE, rank=0, world_size=3
    )
    with pytest.raises(ValueError, match="2 shard\\(s\\) for 3 ranks: every rank needs at least one shard"):
        data.val_dataloader()


def test_fresh_head_starts_with_an_open_final_relu() -> None:
    """A random DPT head's output is about its last bias: with PyTorch's init it is often an all-zero map (no
    gradient); head_bias_init opens it for every seed."""
    images = torch.rand(1, 3, SIZE, SIZE)
    closed = 0
    for seed in range(4):
        torch.manual_seed(seed)
        closed += int((DepthAnything(**TINY)(images) == 0).all())
        torch.manual_seed(seed)
        assert (TeacherModule(DepthAnything(**TINY))(images) > 0).all()
    assert closed > 0  # the failure the default prevents does happen at these sizes


def test_frozen_features_see_the_student_images_or_the_same_mix_of_clean_ones(shards: dict) -> None:
    batch = next(iter(mixed_data(shards).train_dataloader()))[0]
    for feature_input in ("perturbed", "clean"):
        module = StudentModule(tiny_model(), feature_input=feature_input, cutmix=CutMixConfig(p=1.0))
        module.trainer = pl.Trainer(accelerator="cpu", logger=False)
        module.trainer.training = True
        torch.manual_seed(0)
        unlabeled = module.on_after_batch_transfer(batch, 0)["unlabeled"]
        clean, box, partner = unlabeled["clean"], unlabeled["box"], unlabeled["partner"]
        expected_images = (
            unlabeled["image"] if feature_input == "perturbed" else torch.where(box[:, None], clean, clean[partner])
        )
        last = module.model.config.depth - 1
        expected = module.frozen_encoder.forward_features(normalize(expected_images), (last,))[0][0]
        torch.testing.assert_close(module.frozen_features(unlabeled), expected)
        assert not torch.equal(unlabeled["image"], torch.where(box[:, None], clean, clean[partner]))


def test_a_zero_loss_weight_averages_the_other_two(shards: dict, tmp_path: Path) -> None:
    module = StudentModule(tiny_model(), feature_weight=0.0)
    fit = trainer(tmp_path, max_steps=1, limit_val_batches=0)
    fit.fit(module, datamodule=mixed_data(shards))
    metrics = fit.callback_metrics
    mean = (float(metrics["train/labeled"]) + float(metrics["train/unlabeled"])) / 2
    assert float(metrics["train/loss"]) == pytest.approx(mean, rel=1e-5)
    assert "train/feature" not in metrics  # the frozen encoder's pass is skipped
    with pytest.raises(ValueError, match="loss weights"):
        StudentModule(tiny_model(), labeled_weight=0.0, unlabeled_weight=0.0, feature_weight=0.0)


def test_wandb_offline_run_holds_validation_metrics_and_depth_images(
    shards: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped logger (real wandb, offline without credentials) receives the validation metrics and the
    ``RGB | prediction | ground truth`` images."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    wandb.teardown()  # wandb keeps process-wide settings from any earlier test that set it up; start from this env
    logger = RunLogger(name="teacher-test", project="anydepth-test", save_dir=str(tmp_path))
    module = TeacherModule(tiny_model(), num_visualizations=2)
    fit = trainer(tmp_path, max_steps=2, limit_val_batches=2, val_check_interval=1, logger=logger)
    fit.fit(module, datamodule=labeled_data(shards))
    architecture = dict(logger.experiment.config["architecture"])
    logger.experiment.finish()
    assert architecture == module.model.config.to_dict()  # runs filter by encoder, version, block indices
    run = next((tmp_path / "wandb").glob("offline-run-*"))
    images = sorted((run / "files" / "media" / "images" / "val").glob("depth_*.png"))
    assert len(images) == 2 * 2  # two validations, two samples each
    with Image.open(images[0]) as panel:  # RGB | gap | prediction | gap | ground truth, at the label's size
        assert panel.size[1] == 36 and panel.size[0] > 3 * 48
    assert {"val/abs_rel", "val/d1", "train/loss", "train/lr_encoder"} <= set(fit.logged_metrics)
