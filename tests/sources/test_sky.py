"""``anydepth.sources.sky`` and ``shards build --sky-model``: sky masks predicted at build time (paper Sec. 3.1) by a
tiny random SegFormer saved to a temporary directory (nothing is downloaded), read back from real shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

from anydepth.cli import main
from anydepth.files import tree_digest
from anydepth.shards.manifest import Manifest
from anydepth.shards.schema import Sample, decode_sample
from anydepth.sources.build import BuildError, build_shards
from anydepth.sources.sky import SkyModelError, SkySegmenter, sky_class_id

from helpers.fabricate import write_image, write_npy, write_png8

LABELS = {0: "wall", 1: "sky", 2: "floor"}
SIZES = {"a": (20, 30), "b": (28, 24), "c": (20, 30), "own": (20, 30)}  # (H, W): two shapes in one batch
OWN_SKY = np.broadcast_to(np.arange(20)[:, None] < 5, SIZES["own"])  # the reader's sky/own.png: the top 5 rows


def save_segformer(directory: Path, labels: dict[int, str] = LABELS, seed: int = 0, processor: bool = True) -> Path:
    """A randomly initialised two-stage SegFormer with ``labels`` (plus a 32 x 32 image processor) in ``directory``."""
    torch.manual_seed(seed)
    config = SegformerConfig(
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[8, 16],
        patch_sizes=[7, 3],
        strides=[4, 2],
        num_attention_heads=[1, 1],
        mlp_ratios=[2, 2],
        decoder_hidden_size=16,
        num_labels=len(labels),
        id2label=labels,
        label2id={name: i for i, name in labels.items()},
    )
    SegformerForSemanticSegmentation(config).save_pretrained(directory)
    if processor:
        SegformerImageProcessor(size={"height": 32, "width": 32}).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("models")
    return {
        "processor": save_segformer(base / "processor"),
        "plain": save_segformer(base / "plain", processor=False),
        "other": save_segformer(base / "other", seed=1),
    }


def rgbd_root(root: Path) -> Path:
    """``rgbd-folder`` root: the ``SIZES`` images with constant depth; ``own`` ships ``sky/own.png`` (``OWN_SKY``)."""
    for seed, (key, (height, width)) in enumerate(SIZES.items()):
        write_image(root / "images" / f"{key}.png", seed, h=height, w=width)
        write_npy(root / "depth" / f"{key}.npy", np.full((height, width), 2.0, np.float32))
    write_png8(root / "sky" / "own.png", OWN_SKY * 255)
    return root


def read_samples(out: Path) -> dict[str, Sample]:
    """Every sample of the shards in ``out``, decoded, by key."""
    urls = [str(path) for path in Manifest.load(out).shard_paths(out)]
    return {s.key: s for s in (decode_sample(r) for r in wds.WebDataset(urls, shardshuffle=False))}


def expected_sky(model_dir: Path, image: np.ndarray) -> np.ndarray:
    """The model's own sky mask of ``image``, through transformers' processor and post-processing (the processor
    without resizing and with its ImageNet defaults stands in for a directory without one)."""
    model = SegformerForSemanticSegmentation.from_pretrained(model_dir).eval()
    has_processor = (model_dir / "preprocessor_config.json").is_file()
    processor = (
        SegformerImageProcessor.from_pretrained(model_dir)
        if has_processor
        else SegformerImageProcessor(do_resize=False)
    )
    with torch.no_grad():
        outputs = model(**processor(images=image.copy(), return_tensors="pt"))  # decoded arrays are read-only
    segmentation = processor.post_process_semantic_segmentation(outputs, target_sizes=[image.shape[:2]])[0]
    return segmentation.numpy() == 1


@pytest.mark.parametrize("kind", ["processor", "plain"])
def test_sky_png_is_the_models_argmax_and_a_sources_own_sky_wins(
    kind: str, models: dict[str, Path], tmp_path: Path
) -> None:
    root, out = rgbd_root(tmp_path / "rgbd"), tmp_path / "shards"
    manifest = build_shards(
        "rgbd-folder", root, out, image_format="png", samples_per_shard=3, sky_model=models[kind], sky_batch_size=2
    )
    assert manifest.settings["sky_model"] == {"path": str(models[kind].resolve()), "sha256": tree_digest(models[kind])}
    samples = read_samples(out)
    assert sorted(samples) == sorted(SIZES)
    for key in ("a", "b", "c"):
        sky = samples[key].sky
        assert sky is not None and sky.shape == SIZES[key]
        np.testing.assert_array_equal(sky, expected_sky(models[kind], samples[key].image))
    assert any(0 < samples[key].sky.mean() < 1 for key in ("a", "b", "c"))  # the comparison means something
    np.testing.assert_array_equal(samples["own"].sky, OWN_SKY)  # the reader's mask wins


def test_unlabeled_images_get_no_sky_and_workers_load_their_own_model(models: dict[str, Path], tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for seed in range(2):
        write_image(photos / f"p{seed}.png", seed)
    build_shards("images", photos, tmp_path / "unlabeled", sky_model=models["processor"])
    assert all(sample.sky is None for sample in read_samples(tmp_path / "unlabeled").values())

    root = rgbd_root(tmp_path / "rgbd")
    serial = build_shards("rgbd-folder", root, tmp_path / "serial", samples_per_shard=2, sky_model=models["plain"])
    parallel = build_shards(
        "rgbd-folder", root, tmp_path / "parallel", samples_per_shard=2, workers=2, sky_model=models["plain"]
    )
    assert parallel.to_dict() == serial.to_dict()  # the spawned workers' copies predict the same masks


def test_sky_class_is_looked_up_in_id2label(models: dict[str, Path], tmp_path: Path) -> None:
    assert sky_class_id({0: "wall", 1: "floor", 2: " Sky "}, "m") == 2
    assert sky_class_id({"0": "road", "5": "SKY"}, "m") == 5
    moved = SkySegmenter(save_segformer(tmp_path / "moved", {0: "wall", 1: "floor", 2: "sky"}), "cpu", 2)
    assert moved.sky_id == 2
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    model = SegformerForSemanticSegmentation.from_pretrained(tmp_path / "moved").eval()
    processor = SegformerImageProcessor.from_pretrained(tmp_path / "moved")
    with torch.no_grad():
        segmentation = processor.post_process_semantic_segmentation(
            model(**processor(images=image, return_tensors="pt")), target_sizes=[(20, 30)]
        )[0]
    np.testing.assert_array_equal(moved.predict([image])[0], segmentation.numpy() == 2)

    no_sky = save_segformer(tmp_path / "no-sky", {0: "wall", 1: "floor"})
    with pytest.raises(SkyModelError, match=rf"--sky-model {no_sky}: expected one class labeled 'sky'.*found no class"):
        SkySegmenter(no_sky)
    with pytest.raises(SkyModelError, match=r"found classes \[0, 1\]"):
        sky_class_id({0: "sky", 1: "Sky"}, "m")


def test_resume_with_another_sky_model_is_refused(models: dict[str, Path], tmp_path: Path) -> None:
    root, out = rgbd_root(tmp_path / "rgbd"), tmp_path / "shards"
    first = build_shards("rgbd-folder", root, out, samples_per_shard=2, sky_model=models["processor"])
    for other in (models["other"], None):
        with pytest.raises(BuildError, match=r"cannot resume .* other settings \(sky_model: "):
            build_shards("rgbd-folder", root, out, samples_per_shard=2, sky_model=other, resume=True)
    again = build_shards("rgbd-folder", root, out, samples_per_shard=2, sky_model=models["processor"], resume=True)
    assert again.to_dict() == first.to_dict()


def test_cli_sky_model(models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, out = rgbd_root(tmp_path / "rgbd"), tmp_path / "shards"
    argv = ["shards", "build", "--source", "rgbd-folder", "--root", str(root), "--out", str(out)]
    assert main([*argv, "--sky-model", str(models["processor"]), "--sky-batch-size", "3", "--device", "cpu"]) == 0
    assert Manifest.load(out).settings["sky_model"]["path"] == str(models["processor"].resolve())
    assert all(sample.sky is not None for sample in read_samples(out).values())
    assert main([*argv, "--resume"]) == 2  # resuming without the sky model
    assert "error: cannot resume" in capsys.readouterr().err
