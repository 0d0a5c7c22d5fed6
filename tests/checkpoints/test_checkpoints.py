"""Checkpoint formats: official layout and round trip, anydepth/Lightning, DINOv2 backbone, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from anydepth import CheckpointError, DepthAnything
from anydepth.checkpoints import add_anydepth_metadata, version_from_name
from anydepth.checkpoints.convert import check_official, native_to_official, official_differences
from anydepth.models.depth_anything import VERSIONS, resolve_config
from anydepth.models.encoder import ENCODERS

from helpers import FIXTURES, TINY, perturb_

X = torch.randn(1, 3, 70, 98)  # small, non-square, multiples of 14


def outputs(model: DepthAnything) -> torch.Tensor:
    with torch.inference_mode():
        return model.eval()(X)


@pytest.fixture(scope="module")
def vits() -> DepthAnything:
    return perturb_(DepthAnything("vits", "v2"), std=0.01).eval()


@pytest.fixture(scope="module")
def vits_official(vits: DepthAnything, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("official") / "depth_anything_v2_vits.pth"
    vits.save_checkpoint(path, format="official")
    return path


def test_official_layout_matches_the_released_vits_checkpoint(vits_official: Path) -> None:
    expected = json.loads((FIXTURES / "official_vits_keys.json").read_text())
    saved = torch.load(vits_official, weights_only=True)
    assert {k: list(v.shape) for k, v in saved.items()} == expected
    for key in (
        "pretrained.blocks.0.attn.qkv.weight",
        "pretrained.blocks.0.ls1.gamma",
        "pretrained.mask_token",
        "depth_head.scratch.refinenet1.out_conv.weight",
    ):
        assert key in saved


def test_official_round_trip_gives_identical_outputs(vits: DepthAnything, vits_official: Path) -> None:
    loaded = DepthAnything.from_checkpoint(vits_official)
    assert loaded.config == vits.config
    assert torch.equal(outputs(loaded), outputs(vits))


def test_v1_file_name_selects_the_last_four_blocks(vits: DepthAnything, vits_official: Path, tmp_path: Path) -> None:
    v1 = tmp_path / "depth_anything_vits14.pth"
    v1.write_bytes(vits_official.read_bytes())
    loaded = DepthAnything.from_checkpoint(v1)
    assert loaded.config.version == "v1" and loaded.config.layer_indices == (8, 9, 10, 11)
    assert DepthAnything.from_checkpoint(v1, version="v2").config.layer_indices == (2, 5, 8, 11)


@pytest.mark.parametrize(
    "name,version",
    [
        ("depth_anything_v2_vits.pth", "v2"),
        ("depth_anything_v2_vitl.pth", "v2"),
        ("depth-anything-v2-small.pth", "v2"),
        ("depth_anything_vits14.pth", "v1"),
        ("depth_anything_vitl14.pth", "v1"),
        ("model.pth", None),
        ("dinov2_vits14_pretrain.pth", None),
    ],
)
def test_version_from_file_name(name: str, version: str | None) -> None:
    assert version_from_name(Path(name)) == version


def test_unknown_version_is_a_clear_error(vits_official: Path, tmp_path: Path) -> None:
    anonymous = tmp_path / "model.pth"
    anonymous.write_bytes(vits_official.read_bytes())
    with pytest.raises(CheckpointError, match="V1 or V2.*version="):
        DepthAnything.from_checkpoint(anonymous)


def test_wrong_encoder_size_is_a_clear_error(vits_official: Path) -> None:
    with pytest.raises(CheckpointError, match=r"vits encoder \(width 384, 12 blocks\).*encoder='vitb'"):
        DepthAnything.from_checkpoint(vits_official, encoder="vitb")


def test_vitg_weights_use_the_official_swiglu_names(tmp_path: Path) -> None:
    """The official vitg names (w12 / w3), on a small SwiGLU encoder: converted both ways by the key mapping."""
    model = DepthAnything(
        encoder="custom", embed_dim=48, depth=4, num_heads=2, swiglu=True, features=16, out_channels=(8, 16, 32, 48)
    )
    torch.save(native_to_official(model.state_dict(), swiglu=True), tmp_path / "depth_anything_v2_custom.pth")
    saved = torch.load(tmp_path / "depth_anything_v2_custom.pth", weights_only=True)
    assert "pretrained.blocks.0.mlp.w12.weight" in saved and "pretrained.blocks.0.mlp.w3.weight" in saved
    assert not any(".mlp.fc1." in k for k in saved)
    loaded = DepthAnything.from_checkpoint(tmp_path / "depth_anything_v2_custom.pth", num_heads=2)
    assert loaded.config.swiglu and torch.equal(outputs(loaded), outputs(model))


def test_anydepth_format_round_trip_keeps_custom_sizes(tmp_path: Path) -> None:
    model = perturb_(DepthAnything(version="v1", **TINY))
    model.save_checkpoint(tmp_path / "tiny.ckpt", format="anydepth")
    loaded = DepthAnything.from_checkpoint(tmp_path / "tiny.ckpt")
    assert loaded.config == model.config
    assert torch.equal(outputs(loaded), outputs(model))
    with pytest.raises(CheckpointError, match="v1 model, but version='v2'"):
        DepthAnything.from_checkpoint(tmp_path / "tiny.ckpt", version="v2")


class TinyDepthModule(L.LightningModule):
    """The checkpoint contract anydepth's LightningModules follow: model at ``self.model``."""

    def __init__(self) -> None:
        super().__init__()
        self.model = DepthAnything(version="v2", **TINY)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return self.model(batch).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        add_anydepth_metadata(checkpoint, self.model)


def test_lightning_checkpoint_loads_the_trained_model(tmp_path: Path) -> None:
    module = TinyDepthModule()
    trainer = L.Trainer(
        max_steps=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, torch.utils.data.DataLoader(torch.randn(4, 3, 28, 42), batch_size=2))
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    loaded = DepthAnything.from_checkpoint(tmp_path / "last.ckpt")
    assert loaded.config == module.model.config
    assert torch.equal(outputs(loaded), outputs(module.model))


def test_lightning_checkpoint_without_metadata_is_rejected(tmp_path: Path) -> None:
    torch.save({"state_dict": {"model.x": torch.zeros(1)}, "epoch": 0}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="without anydepth metadata"):
        DepthAnything.from_checkpoint(tmp_path / "other.ckpt")


def test_dinov2_backbone_initialises_the_encoder_only(tmp_path: Path) -> None:
    source = perturb_(DepthAnything(version="v2", **TINY))
    backbone = native_to_official(source.pretrained.state_dict(), swiglu=False)
    torch.save(backbone, tmp_path / "dinov2_custom14_pretrain.pth")
    with pytest.raises(CheckpointError, match="DINOv2 backbone.*version="):
        DepthAnything.from_checkpoint(tmp_path / "dinov2_custom14_pretrain.pth")
    model = DepthAnything.from_checkpoint(
        tmp_path / "dinov2_custom14_pretrain.pth", version="v2", num_heads=2, features=16, out_channels=(8, 16, 32, 32)
    )
    for key, value in source.pretrained.state_dict().items():
        assert torch.equal(model.pretrained.state_dict()[key], value), key
    assert not torch.equal(model.depth_head.projects[0].weight, source.depth_head.projects[0].weight)


# ---------------------------------------------------------------- what a format cannot represent


def test_every_released_model_is_official() -> None:
    for encoder in ENCODERS:
        for version in VERSIONS:
            assert official_differences(resolve_config(encoder, version)) == [], (encoder, version)


OFFICIAL_REFUSALS = {
    "custom encoder": (TINY, "encoder is 'custom', not one of the official vits, vitb, vitl, vitg"),
    "V1 blocks, V2 model": (
        dict(encoder="vits", layer_indices=(8, 9, 10, 11)),
        r"layer_indices is \(8, 9, 10, 11\) where the official vits V2 has \(2, 5, 8, 11\)",
    ),
    "V2 blocks, V1 model": (
        dict(encoder="vitl", version="v1", layer_indices=(4, 11, 17, 23)),
        r"where the official vitl V1 has \(20, 21, 22, 23\)",
    ),
    "head sizes": (
        dict(encoder="vitb", features=64, out_channels=(96, 192, 384, 384)),
        r"features is 64 where the official vitb V2 has 128; out_channels is \(96, 192, 384, 384\) where",
    ),
    "head count": (dict(encoder="vits", num_heads=12), "num_heads is 12 where the official vits V2 has 6"),
    "batch norm": (dict(encoder="vitg", use_bn=True), "use_bn is True where the official vitg V2 has False"),
}


@pytest.mark.parametrize("case", OFFICIAL_REFUSALS, ids=str)
def test_official_format_refuses_what_it_cannot_represent(case: str) -> None:
    kwargs, message = OFFICIAL_REFUSALS[case]
    with pytest.raises(CheckpointError, match=message) as err:
        check_official(resolve_config(**kwargs))
    assert "would load as a different model" in str(err.value) and "--format anydepth" in str(err.value)


def test_refused_formats_write_nothing(vits: DepthAnything, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="encoder is 'custom'"):
        DepthAnything(**TINY).save_checkpoint(tmp_path / "official" / "tiny.pth", format="official")
    with pytest.raises(CheckpointError, match=r"says Depth Anything V1, but the model is V2 .*depth_anything_v2_vits"):
        vits.save_checkpoint(tmp_path / "official" / "depth_anything_vits14.pth", format="official")
    with pytest.raises(CheckpointError, match=r"layer_indices \[3, 2, 1, 0\] not strictly increasing"):
        DepthAnything(**TINY, layer_indices=(3, 2, 1, 0)).save_checkpoint(tmp_path / "hf", format="hf")
    with pytest.raises(CheckpointError, match="transformers' DepthAnything cannot represent this model .use_bn.;"):
        DepthAnything(**TINY, use_bn=True).save_checkpoint(tmp_path / "hf", format="hf")
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- bad input


def test_missing_and_unexpected_keys_are_all_reported(vits_official: Path, tmp_path: Path) -> None:
    sd = torch.load(vits_official, weights_only=True)
    del sd["pretrained.blocks.3.ls1.gamma"], sd["depth_head.scratch.output_conv1.bias"]
    sd["depth_head.extra.weight"] = torch.zeros(1)
    sd["depth_head.projects.0.bias"] = torch.zeros(7)
    torch.save(sd, tmp_path / "depth_anything_v2_vits.pth")
    with pytest.raises(CheckpointError) as err:
        DepthAnything.from_checkpoint(tmp_path / "depth_anything_v2_vits.pth")
    message = str(err.value)
    for expected in (
        "missing keys (2)",
        "pretrained.blocks.3.ls1.gamma",
        "depth_head.scratch.output_conv1.bias",
        "unexpected keys (1)",
        "depth_head.extra.weight",
        "shape mismatches (1)",
        "depth_head.projects.0.bias: checkpoint (7,) vs model (48,)",
    ):
        assert expected in message


def test_truncated_file_is_a_clear_error(vits_official: Path, tmp_path: Path) -> None:
    data = vits_official.read_bytes()
    (tmp_path / "depth_anything_v2_vits.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupt or not a PyTorch checkpoint"):
        DepthAnything.from_checkpoint(tmp_path / "depth_anything_v2_vits.pth")


def test_random_bytes_are_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "model.pth").write_bytes(bytes(range(256)) * 10)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        DepthAnything.from_checkpoint(tmp_path / "model.pth")


def test_unknown_format_is_a_clear_error(tmp_path: Path) -> None:
    torch.save({"encoder.weight": torch.zeros(2), "decoder.bias": torch.zeros(2)}, tmp_path / "resnet.pth")
    with pytest.raises(CheckpointError, match="unknown checkpoint format.*encoder.weight"):
        DepthAnything.from_checkpoint(tmp_path / "resnet.pth")


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    torch.save({"state_dict": {}, "anydepth": object()}, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        DepthAnything.from_checkpoint(tmp_path / "evil.ckpt")


@pytest.mark.parametrize(
    "setup,match",
    [
        (lambda d: None, "not a transformers model directory: no config.json"),
        (lambda d: (d / "config.json").write_text("{oops"), "not valid JSON"),
        (lambda d: (d / "config.json").write_text('{"model_type": "dpt"}'), "model_type is 'dpt'"),
    ],
)
def test_bad_hf_directory_is_a_clear_error(tmp_path: Path, setup, match: str) -> None:
    setup(tmp_path)
    with pytest.raises(CheckpointError, match=match):
        DepthAnything.from_checkpoint(tmp_path)


def test_hf_directory_without_weights_lists_what_it_found(tmp_path: Path) -> None:
    DepthAnything(**TINY).save_checkpoint(tmp_path / "hf", format="hf")
    (tmp_path / "hf" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"no weights.*found \['config.json', 'preprocessor_config.json'\]"):
        DepthAnything.from_checkpoint(tmp_path / "hf")


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        DepthAnything.from_checkpoint(tmp_path / "nope.pth")


def test_unknown_save_format_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format must be one of"):
        DepthAnything(**TINY).save_checkpoint(tmp_path / "x", format="onnx")


def test_custom_width_without_head_count_warns(tmp_path: Path) -> None:
    """Official-layout files of other sizes (written by other code) load with sizes read off the tensors."""
    torch.save(native_to_official(DepthAnything(**TINY).state_dict(), False), tmp_path / "depth_anything_v2_tiny.pth")
    with pytest.warns(UserWarning, match="assuming 1 .*pass num_heads="):
        DepthAnything.from_checkpoint(tmp_path / "depth_anything_v2_tiny.pth")


def test_text_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notes.pth").write_text("hello world, this is not a checkpoint\n" * 20)
    with pytest.raises(CheckpointError, match="notes.pth .*truncated, corrupt or not a PyTorch checkpoint"):
        DepthAnything.from_checkpoint(tmp_path / "notes.pth")
