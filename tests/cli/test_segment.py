"""``anydepth eval --task seg`` and ``anydepth infer --task seg`` on a real tiny segmentation checkpoint (a Lightning
fit of ``SegmentationModule``) and real demo-seg shards: the CLI's mIoU equals ``evaluate_segmentation``'s, perfect
predictions score 100 %, palette PNGs hold what ``segment_images`` predicts; every bad argument is one error line."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch  # noqa: F401  (before the CLI captures stderr: Lightning's import-time warnings)
import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

from anydepth.cli import main
from anydepth.data.segmentation import SegmentationDataModule
from anydepth.evaluation.segmentation import InferenceSettings, evaluate_segmentation, palette, segment_images
from anydepth.models import DepthAnything
from anydepth.models.segmentation import SEGMENTATION_KEY, SegmentationModel
from anydepth.shards.manifest import Manifest, ShardRecord
from anydepth.shards.schema import Sample, encode_sample
from anydepth.sources.build import build_shards
from anydepth.sources.demo import DemoSegSource
from anydepth.sources.demo.raycast import DEMO_CLASSES
from anydepth.sources.segmentation import CITYSCAPES_CLASSES

from helpers import TINY
from helpers.fuzz import BAD_FILES, error_line
from helpers.lightning_modules import trainer
from helpers.shards import write_shards

SCENES = dict(num_scenes=3, size=(36, 48))
SIZE = 28
RUN = ["--input-size", str(SIZE), "--num-workers", "0", "--accelerator", "cpu"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``val``: 3 demo-seg scenes (PNG images, lossless); ``depth``: depth shards (no seg.png)."""
    root = tmp_path_factory.mktemp("segdata")
    out = root / "val"
    build_shards("demo-seg", out, out, split="val", samples_per_shard=2, image_format="png", source_kwargs=SCENES)
    write_shards(root / "depth", "d", "depth", [2])
    return root


@pytest.fixture(scope="module")
def checkpoint(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A segmentation run's checkpoint: two training steps of ``SegmentationModule`` on the demo shards."""
    from anydepth.training.segmentation import SegmentationModule

    tmp = tmp_path_factory.mktemp("segckpt")
    torch.manual_seed(0)
    module = SegmentationModule(
        DepthAnything(**{**TINY, "version": "v1"}), classes="demo", head="light", light_channels=8, warmup_steps=0
    )
    fit = trainer(tmp, max_steps=2, limit_val_batches=0)
    data = SegmentationDataModule([str(data_root / "val")], batch_size=2, num_workers=0, size=SIZE, shuffle_buffer=2)
    fit.fit(module, datamodule=data)
    fit.save_checkpoint(tmp / "seg.ckpt")
    return tmp / "seg.ckpt"


@pytest.fixture(scope="module")
def model(checkpoint: Path) -> SegmentationModel:
    return SegmentationModel.from_checkpoint(checkpoint).eval()


def samples() -> list[Sample]:
    source = DemoSegSource(Path("unused"), "val", **SCENES)
    return [source.load(item) for item in source.items()]


def seg_eval(checkpoint: Path, data_root: Path, *extra: str) -> int:
    return main(["eval", "--task", "seg", "--checkpoint", str(checkpoint), "--data-root", str(data_root), *RUN, *extra])


def test_eval_equals_evaluate_segmentation(checkpoint: Path, data_root: Path, tmp_path: Path, capsys) -> None:
    """Multi-scale, flipped, sliding windows: the printed and written numbers are ``evaluate_segmentation``'s."""
    window = ["--input-size", "56", "--multi-scale", "--flip", "--sliding-window", "--crop", "56"]
    assert seg_eval(checkpoint, data_root, "--benchmarks", "val", *window, "--output", str(tmp_path / "m.json")) == 0
    settings = InferenceSettings((0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0), flip=True, crop=56, stride=28)
    expected = evaluate_segmentation(checkpoint, [str(data_root / "val")], size=56, settings=settings, num_workers=0)
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["inference"] == {"scales": list(settings.scales), "flip": True, "crop": 56, "stride": 28}
    got = report["metrics"]["val"]
    assert got["images"] == 3 and list(got["IoU"]) == list(DEMO_CLASSES)
    assert got["mIoU"] == pytest.approx(expected["mIoU"]) and got["aAcc"] == pytest.approx(expected["aAcc"])
    for name, value in expected["IoU"].items():
        assert got["IoU"][name] == (None if np.isnan(value) else pytest.approx(value))
    out = capsys.readouterr().out
    assert f"| val | {100 * expected['mIoU']:.2f} | {100 * expected['aAcc']:.2f} |" in out, out


def test_perfect_predictions_score_one_hundred(
    checkpoint: Path, model: SegmentationModel, tmp_path: Path, capsys
) -> None:
    """Shards whose labels are the model's own predictions: mIoU, pixel and class accuracy 100 %; classes in neither
    labels nor predictions are n/a (null in JSON), not 0."""
    scenes = samples()
    predicted = segment_images(model, [s.image for s in scenes], size=SIZE)
    directory = tmp_path / "perfect"
    directory.mkdir()
    with wds.TarWriter(str(directory / "shard-000000.tar")) as writer:
        for scene, ids in zip(scenes, predicted):
            writer.write(encode_sample(Sample(key=scene.key, image=scene.image, seg=ids.astype(np.uint8)), "png"))
    record = ShardRecord("shard-000000.tar", len(scenes), (directory / "shard-000000.tar").stat().st_size, "")
    Manifest(source="mine", builder_version="0", shards=[record]).save(directory)
    assert seg_eval(checkpoint, tmp_path, "--benchmarks", "perfect", "--output", str(tmp_path / "m.json")) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())["metrics"]["perfect"]
    assert metrics["mIoU"] == metrics["aAcc"] == metrics["mAcc"] == 1.0 and metrics["images"] == 3
    seen = set(np.unique(np.concatenate([p.ravel() for p in predicted])).tolist())
    assert {c for i, c in enumerate(DEMO_CLASSES) if i in seen} == {c for c, v in metrics["IoU"].items() if v == 1.0}
    assert all(metrics["IoU"][c] is None for i, c in enumerate(DEMO_CLASSES) if i not in seen)
    assert "| perfect | 100.00 | 100.00 | 100.00 | 3 |" in capsys.readouterr().out


def test_infer_writes_palette_pngs_of_the_predictions(
    checkpoint: Path, model: SegmentationModel, tmp_path: Path, capsys
) -> None:
    scenes = samples()
    (tmp_path / "in" / "sub").mkdir(parents=True)
    Image.fromarray(scenes[0].image).save(tmp_path / "in" / "a.png")
    Image.fromarray(scenes[1].image[:30, :40]).save(tmp_path / "in" / "sub" / "b.png")
    (tmp_path / "in" / "broken.jpg").write_bytes(b"not an image")
    argv = ["infer", "--task", "seg", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "in")]
    assert main([*argv, "--output", str(tmp_path / "out"), "--input-size", str(SIZE), "--flip", "--device", "cpu"]) == 1
    captured = capsys.readouterr()
    assert "anydepth infer: warning: skipping" in captured.err and "broken.jpg" in captured.err
    assert "wrote 2 segmentation maps" in captured.out and "skipped 1 unreadable input" in captured.out
    colors = palette(DEMO_CLASSES)
    for name, rgb in (("a.png", scenes[0].image), ("sub/b.png", scenes[1].image[:30, :40])):
        written = Image.open(tmp_path / "out" / name)
        assert written.mode == "P" and written.size == (rgb.shape[1], rgb.shape[0])
        assert written.getpalette()[: 3 * len(DEMO_CLASSES)] == colors.ravel().tolist()
        expected = segment_images(model, [rgb], size=SIZE, settings=InferenceSettings(flip=True))[0]
        np.testing.assert_array_equal(np.asarray(written), expected)
    legend = json.loads((tmp_path / "out" / "legend.json").read_text())
    assert [(c["id"], c["class"], c["color"]) for c in legend["classes"]] == [
        (i, name, colors[i].tolist()) for i, name in enumerate(DEMO_CLASSES)
    ]
    (tmp_path / "out" / "a.png").unlink()  # as if a run had been killed before writing it
    kept = (tmp_path / "out" / "sub" / "b.png").stat().st_mtime_ns
    assert main([*argv, "--output", str(tmp_path / "out"), "--input-size", str(SIZE), "--skip-existing"]) == 1, (
        capsys.readouterr().err
    )
    assert f"wrote 1 segmentation map to {tmp_path / 'out'}; kept 1 existing" in capsys.readouterr().out
    assert (tmp_path / "out" / "a.png").is_file() and (tmp_path / "out" / "sub" / "b.png").stat().st_mtime_ns == kept


def cityscapes_checkpoint(tmp: Path) -> Path:
    """A Cityscapes (19 classes) model in the checkpoint layout ``SegmentationModule`` writes."""
    model = SegmentationModel(DepthAnything(**{**TINY, "version": "v1"}).config, CITYSCAPES_CLASSES, head="light")
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, SEGMENTATION_KEY: model.checkpoint_metadata()}, tmp / "cityscapes.ckpt")
    return tmp / "cityscapes.ckpt"


def depth_checkpoint(tmp: Path) -> Path:
    DepthAnything(**TINY).save_checkpoint(tmp / "depth.ckpt", format="anydepth")
    return tmp / "depth.ckpt"


EVAL_ERRORS = {
    "missing checkpoint": (lambda t, c, d: (t / "none.ckpt", d, []), "no such file"),
    "checkpoint a directory": (lambda t, c, d: (t, d, []), "is a directory"),
    "depth checkpoint": (lambda t, c, d: (depth_checkpoint(t), d, []), "--task depth"),
    "missing data root": (lambda t, c, d: (c, t / "nowhere", []), "nowhere does not exist"),
    "missing benchmark": (lambda t, c, d: (c, d, ["--benchmarks", "ade20k"]), "ade20k-val/manifest.json"),
    "depth shards": (lambda t, c, d: (c, d, ["--benchmarks", "depth"]), "no seg.png"),
    "no default benchmark": (lambda t, c, d: (c, d, []), "--benchmarks"),
    "default benchmark": (lambda t, c, d: (cityscapes_checkpoint(t), d, []), "cityscapes-val/manifest.json"),
    "other classes": (lambda t, c, d: (cityscapes_checkpoint(t), d, ["--benchmarks", "val"]), "5 classes"),
    "depth option": (lambda t, c, d: (c, d, ["--mode", "relative", "--name", "x"]), "--name, --mode: only for"),
    "crop without window": (lambda t, c, d: (c, d, ["--crop", "28"]), "add --sliding-window"),
    "stride over crop": (lambda t, c, d: (c, d, ["--sliding-window", "--stride", "50"]), "stride"),
    "too small for multi-scale": (lambda t, c, d: (c, d, ["--multi-scale"]), "below 28 px"),
    "crop too small": (lambda t, c, d: (c, d, ["--sliding-window", "--crop", "14"]), "--crop must be at least 28"),
    "two checkpoints": (lambda t, c, d: (c, d, ["--checkpoint", str(c)]), "one --checkpoint"),
}


@pytest.mark.parametrize("case", EVAL_ERRORS, ids=str)
def test_eval_usage_errors(case: str, checkpoint: Path, data_root: Path, tmp_path: Path, capsys) -> None:
    make, message = EVAL_ERRORS[case]
    ckpt, root, extra = make(tmp_path, checkpoint, data_root)
    assert seg_eval(ckpt, root, *extra) == 2
    line = error_line(capsys.readouterr().err, "eval")
    assert message in line, line


@pytest.mark.parametrize("case", ["empty", "random bytes", "truncated", "malicious pickle", "metadata a list"])
def test_bad_checkpoint_files(case: str, data_root: Path, tmp_path: Path, capsys) -> None:
    bad = BAD_FILES[case][0](tmp_path / "bad.ckpt")
    assert seg_eval(bad, data_root, "--benchmarks", "val") == 2
    assert "bad.ckpt" in error_line(capsys.readouterr().err, "eval")
    (tmp_path / "in.png").write_bytes(b"")
    assert main(["infer", "--task", "seg", "--checkpoint", str(bad), "--input", str(tmp_path / "in.png")] + [
        "--output", str(tmp_path / "out")]) == 2  # fmt: skip
    assert "bad.ckpt" in error_line(capsys.readouterr().err, "infer")


def test_wrong_task_for_the_checkpoint_or_options(checkpoint: Path, data_root: Path, tmp_path: Path, capsys) -> None:
    """A segmentation checkpoint under the default ``--task depth``, and options of the other task."""
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "in.png")
    io = ["--input", str(tmp_path / "in.png"), "--output", str(tmp_path / "out")]
    cases = [
        (["eval", "--checkpoint", str(checkpoint), "--data-root", str(data_root), "--benchmarks", "nyuv2", *RUN[2:]],
         "is a semantic segmentation checkpoint"),
        (["infer", "--checkpoint", str(checkpoint), *io], "is a semantic segmentation checkpoint"),
        (["infer", "--checkpoint", str(checkpoint), *io, "--multi-scale", "--sliding-window"],
         "--multi-scale, --sliding-window: only for --task seg"),
        (["infer", "--task", "seg", "--checkpoint", str(checkpoint), *io, "--raw-npy"], "--raw-npy: only for --task"),
        (["infer", "--task", "seg", "--checkpoint", str(depth_checkpoint(tmp_path)), *io], "--task depth"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main(argv) == 2, argv
        line = error_line(capsys.readouterr().err, argv[0])
        assert message in line, line
    assert not (tmp_path / "out").exists()
