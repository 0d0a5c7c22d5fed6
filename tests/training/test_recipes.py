"""Every shipped recipe (configs/recipes/{v1,v2,finetune}) trains for a few steps on tiny data through
``anydepth fit``, and what each recipe changes reaches the training step: V2's gradient matching and trimmed
pseudo-label loss, the pseudo-labeled stream alone, fine-tuning from a released model with a frozen encoder."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch  # noqa: F401  (its log handler binds stderr at import: the session's, not a test's capture)
import pytest
import torch

from anydepth import DepthAnything
from anydepth.checkpoints import CheckpointError
from anydepth.cli.main import main
from anydepth.losses import affine_invariant_loss, normalized_gradient_matching_loss
from anydepth.sources.build import build_shards
from anydepth.training import StudentModule, TeacherModule
from anydepth.training.base import load_trained_model

from helpers import REPO_ROOT, TINY

NETWORK = "--model.init_args.model.init_args."
TINY_NETWORK = [
    *(f"{NETWORK}encoder", "custom", f"{NETWORK}embed_dim", "32", f"{NETWORK}depth", "8"),
    *(f"{NETWORK}num_heads", "2", f"{NETWORK}features", "16", f"{NETWORK}out_channels", "[8,16,32,32]"),
]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Labeled synthetic scenes (train, and a second set standing in for pseudo-labeled shards) and validation."""
    tmp = tmp_path_factory.mktemp("recipes")
    scenes = dict(num_scenes=8, size=(36, 48))
    build_shards("demo-train", tmp, tmp / "train", samples_per_shard=4, source_kwargs=scenes)
    build_shards("demo-train", tmp, tmp / "pseudo", samples_per_shard=4, source_kwargs=dict(scenes, seed=7))
    build_shards("demo-train", tmp, tmp / "val", split="val", source_kwargs=dict(num_scenes=1, size=(36, 48)))
    return {"train": tmp / "train", "pseudo": tmp / "pseudo", "val": tmp / "val"}


def data_overrides(recipe: str, stage: str, shards: dict[str, Path]) -> list[str]:
    data = "--data.init_args."
    if stage == "student" and recipe == "v2":
        streams = [f"{data}train_shards", f"[{shards['pseudo']}]", f"{data}batch_size", "3"]
    elif stage == "student":
        streams = [f"{data}labeled_shards", f"[{shards['train']}]", f"{data}pseudo_shards", f"[{shards['pseudo']}]"]
        streams += [f"{data}labeled_batch_size", "1"]
    else:
        streams = [f"{data}train_shards", f"[{shards['train']}]", f"{data}batch_size", "2"]
    return [*streams, f"{data}val_shards", f"[{shards['val']}]", f"{data}size", "28", f"{data}num_workers", "0"]


def fit(recipe: str, stage: str, shards: dict[str, Path], run: Path, *extra: str) -> int:
    return main(
        [
            *("fit", "--config", str(REPO_ROOT / "configs/trainer/cpu.yaml")),
            *("--config", str(REPO_ROOT / f"configs/recipes/{recipe}/{stage}.yaml"), *TINY_NETWORK),
            *data_overrides(recipe, stage, shards),
            *("--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--trainer.logger", "false"),
            *("--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(run)),
            *("--trainer.callbacks.init_args.dirpath", str(run / "checkpoints")),
            *extra,
        ]
    )


@pytest.mark.parametrize(
    ("recipe", "stage"), [("v1", "teacher"), ("v1", "student"), ("v2", "teacher"), ("v2", "student")]
)
def test_recipe_trains_a_few_steps(recipe: str, stage: str, shards: dict, tmp_path: Path) -> None:
    assert fit(recipe, stage, shards, tmp_path) == 0
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 2
    model = DepthAnything.from_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert model.config.version == recipe  # V1: the last four blocks feed the DPT; V2: intermediate ones
    assert model.config.layer_indices == ((4, 5, 6, 7) if recipe == "v1" else (1, 3, 5, 7))


NETWORK_SIZES = {**TINY, "depth": 8}  # TINY_NETWORK's


def released_model(path: Path, version: str = "v2") -> DepthAnything:
    torch.manual_seed(3)
    model = DepthAnything(version=version, **NETWORK_SIZES)
    model.save_checkpoint(path, format="anydepth")
    return model


@pytest.mark.parametrize("freeze", [False, True])
def test_finetune_starts_from_the_released_model(freeze: bool, shards: dict, tmp_path: Path) -> None:
    """The fine-tuning recipe loads encoder and head of the released model, then trains (only the head when the
    encoder is frozen)."""
    released = released_model(tmp_path / "released.ckpt")
    extra = ["--model.init_args.init_checkpoint", str(tmp_path / "released.ckpt")]
    extra += ["--model.init_args.freeze_encoder", str(freeze).lower()]
    assert fit("finetune", "finetune", shards, tmp_path / "run", *extra) == 0
    tuned = DepthAnything.from_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt").state_dict()
    start = released.state_dict()
    encoder_moved = any(not torch.equal(tuned[k], v) for k, v in start.items() if k.startswith("pretrained."))
    head_moved = any(not torch.equal(tuned[k], v) for k, v in start.items() if k.startswith("depth_head."))
    assert head_moved and encoder_moved != freeze


def test_init_checkpoint_loads_every_weight_and_refuses_another_architecture(tmp_path: Path) -> None:
    released = released_model(tmp_path / "released.ckpt")
    module = TeacherModule(
        DepthAnything(version="v2", **NETWORK_SIZES), init_checkpoint=str(tmp_path / "released.ckpt")
    )
    for key, value in released.state_dict().items():
        assert torch.equal(module.model.state_dict()[key], value), key
    assert module.pretrained is None
    with pytest.raises(CheckpointError, match="version: v2 \\(checkpoint\\) vs v1 \\(model\\)"):
        load_trained_model(DepthAnything(version="v1", **NETWORK_SIZES), str(tmp_path / "released.ckpt"))


def test_v2_pseudo_label_loss_is_the_trimmed_loss_plus_twice_gradient_matching() -> None:
    """V2's L_u: the affine-invariant loss without each image's 10% largest residuals, plus 2 L_gm."""
    torch.manual_seed(0)
    student = StudentModule(DepthAnything(**TINY), gradient_weight=2.0, unlabeled_trim=0.1)
    pred, label = torch.rand(2, 14, 14), torch.rand(2, 14, 14)
    mask, box = torch.rand(2, 14, 14) > 0.1, torch.ones(2, 14, 14, dtype=torch.bool)  # no CutMix: the box is all
    unlabeled = {"label": label, "mask": mask, "box": box, "partner": torch.tensor([1, 0])}
    expected = affine_invariant_loss(pred, label, mask, trim=0.1) + 2 * normalized_gradient_matching_loss(
        pred, label, mask
    )
    assert torch.allclose(student.pseudo_label_loss(pred, unlabeled), expected)
    assert not torch.allclose(expected, affine_invariant_loss(pred, label, mask))
