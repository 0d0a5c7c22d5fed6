"""``anydepth pseudo-label`` (anydepth.pseudo_label): a tiny teacher labels fabricated unlabeled shards (7
images of a few sizes in 4 shards, input size 28) in process, on resume, through the CLI parser and as a real
2-process DDP run on CPU (gloo); labels are checked against the model's own inference, images byte for byte."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from webdataset import TarWriter

from anydepth.checkpoints import CheckpointError
from anydepth.cli import main
from anydepth.data.datamodules import UnlabeledDataModule
from anydepth.data.transforms import normalize_per_map
from anydepth.files import tree_digest
from anydepth.models.preprocess import prepare_images, upsample_prediction
from anydepth.pseudo_label import STATE_NAME, PseudoLabelError, pseudo_label
from anydepth.pseudo_label.writer import pseudo_label_record
from anydepth.shards.manifest import Manifest
from anydepth.shards.schema import Sample, SampleError, decode_sample, encode_sample, relabel_record
from anydepth.shards.verify import verify_shards
from anydepth.sources.build import build_shards

from helpers.fabricate import tiny_checkpoint, write_image

INPUT_SIZE = 28
SIZES = [(40, 56), (48, 40), (40, 56), (56, 42), (40, 56), (44, 44), (40, 56)]  # 4 shards of 2, 2, 2, 1
RUN = dict(input_size=INPUT_SIZE, num_workers=0, accelerator="cpu", devices=1, enable_progress_bar=False)


def read_records(directory: Path) -> dict[str, dict[str, Any]]:
    """Every sample of the ``shard-*.tar`` files of ``directory``: key -> {field: bytes, "shard": tar name}; a key
    seen twice fails."""
    samples: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("shard-*.tar")):
        with tarfile.open(path) as tar:
            for member in tar:
                key, field = member.name.split(".", 1)
                extracted = tar.extractfile(member)
                assert extracted is not None
                record = samples.setdefault(key, {"shard": path.name})
                assert record["shard"] == path.name, f"{key} in two shards"
                assert field not in record, f"{key}.{field} twice"
                record[field] = extracted.read()
    return samples


def rgb(record: dict[str, Any]) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(record["image.jpg"])).convert("RGB"))


def label(record: dict[str, Any]) -> np.ndarray:
    value = np.load(io.BytesIO(record["label.npy"]))
    assert value.dtype == np.float16
    return value.astype(np.float32)


@pytest.mark.parametrize("holes", [0, 5])
def test_a_pseudo_label_is_the_normalised_prediction_in_float16(holes: int) -> None:
    """``label.npy`` holds numpy's float16 of the per-map normalised prediction, ``mask.png`` its finite pixels."""
    rng = np.random.default_rng(holes)
    disparity = (rng.random((37, 53)) * 4 + 1).astype(np.float32)
    disparity[0, :holes] = np.nan
    image = rng.integers(0, 255, (37, 53, 3), np.uint8)
    record = {**encode_sample(Sample("k", image, meta={"label_kind": None})), "__url__": "in.tar"}
    out = pseudo_label_record(record, disparity)
    valid = np.isfinite(disparity)
    expected = normalize_per_map(disparity, valid).astype(np.float16)
    np.testing.assert_array_equal(np.load(io.BytesIO(out["label.npy"])), expected)
    np.testing.assert_array_equal(decode_sample(out).mask, valid)


def reference(model: torch.nn.Module, image: np.ndarray, flip_tta: bool = False) -> np.ndarray:
    """The teacher's relative disparity of ``image`` by the inference path (``prepare_images``, model, upsampling),
    normalised to [0, 1]."""
    with torch.no_grad():
        x = prepare_images([image], INPUT_SIZE)
        disparity = model(x)
        if flip_tta:
            disparity = (disparity + model(x.flip(-1)).flip(-1)) / 2
        disparity = upsample_prediction(disparity, image.shape[:2], model.config.version)[0].numpy()
    if not flip_tta:
        np.testing.assert_allclose(disparity, model.infer_image(image, INPUT_SIZE), rtol=1e-5, atol=1e-6)
    return normalize_per_map(disparity, np.isfinite(disparity))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, torch.nn.Module, Path, Manifest]:
    """Unlabeled input shards, a tiny teacher checkpoint (and its model) and a first single-process run with two
    DataLoader workers."""
    tmp = tmp_path_factory.mktemp("pseudo")
    for i, (h, w) in enumerate(SIZES):
        write_image(tmp / "images" / f"img{i}.png", seed=i, h=h, w=w)
    build_shards("images", tmp / "images", tmp / "unlabeled", samples_per_shard=2)
    ckpt = tmp / "teacher.pth"
    model = tiny_checkpoint(ckpt)
    out = tmp / "pseudo"
    manifest = pseudo_label(ckpt, [str(tmp / "unlabeled")], out, **{**RUN, "num_workers": 2})
    return tmp / "unlabeled", ckpt, model, out, manifest


def test_labels_encoded_in_threads_or_inline_give_the_same_bytes(setup, tmp_path: Path) -> None:
    """The writer's encode threads (the setup run's default) only overlap encoding with the model: the shards of a
    run encoding in the predict loop (``encode_threads=0``) are byte for byte the same."""
    inputs, ckpt, _, out, manifest = setup
    inline = pseudo_label(ckpt, [str(inputs)], tmp_path / "inline", **{**RUN, "encode_threads": 0})
    assert [s.sha256 for s in inline.shards] == [s.sha256 for s in manifest.shards]
    assert all((tmp_path / "inline" / s.name).read_bytes() == (out / s.name).read_bytes() for s in manifest.shards)
    with pytest.raises(PseudoLabelError, match="encode_threads must be >= 0"):
        pseudo_label(ckpt, [str(inputs)], tmp_path / "bad", **{**RUN, "encode_threads": -1})


def test_single_process_run(setup: tuple[Path, Path, torch.nn.Module, Path, Manifest]) -> None:
    inputs, ckpt, model, out, manifest = setup
    source = read_records(inputs)
    written = read_records(out)
    assert sorted(written) == sorted(source) and len(source) == len(SIZES)
    for key, record in written.items():
        assert record["shard"] == source[key]["shard"]  # output shard i holds input shard i
        assert record["image.jpg"] == source[key]["image.jpg"]  # the original bytes
        image = rgb(record)
        got = label(record)
        assert got.shape == image.shape[:2] and got.min() == 0.0 and got.max() == 1.0
        np.testing.assert_allclose(got, reference(model, image), atol=1e-3)
        assert np.asarray(Image.open(io.BytesIO(record["mask.png"]))).all()  # the farthest pixel (0) is valid
        meta, source_meta = json.loads(record["meta.json"]), json.loads(source[key]["meta.json"])
        assert meta == {**source_meta, "label_kind": "relative_disparity"}

    assert manifest.to_dict() == Manifest.load(out).to_dict()
    assert [s.name for s in manifest.shards] == [f"shard-{i:06d}.tar" for i in range(4)]
    assert [s.samples for s in manifest.shards] == [2, 2, 2, 1] and not manifest.skipped
    assert manifest.source == "pseudo-label" and manifest.label_kind == "relative_disparity"
    extra = manifest.extra
    assert extra["teacher"] == str(ckpt) and extra["teacher_sha256"] == tree_digest(ckpt)
    assert extra["flip_tta"] is False and extra["input_size"] == INPUT_SIZE
    assert extra["inputs"] == [str(p) for p in Manifest.load(inputs).shard_paths(inputs.resolve())]
    assert json.loads((out / STATE_NAME).read_text()) == extra
    assert verify_shards(out).ok, verify_shards(out).summary()
    assert not list(out.glob("*.tmp"))

    data = UnlabeledDataModule([str(out)], batch_size=2, num_workers=0, size=INPUT_SIZE, rank=0, world_size=1)
    batch = next(iter(data.train_dataloader()))
    assert batch["label"].shape == (2, INPUT_SIZE, INPUT_SIZE) and batch["mask"].all()
    assert batch["label_kind"] == ["relative_disparity"] * 2


def test_flip_tta_through_the_cli_parser(
    setup: tuple[Path, Path, torch.nn.Module, Path, Manifest], tmp_path: Path
) -> None:
    inputs, ckpt, model, plain, _ = setup
    assert (
        main(
            [
                "pseudo-label",
                "--checkpoint",
                str(ckpt),
                "--input",
                str(inputs),
                "--out",
                str(tmp_path / "flip"),
                "--input-size",
                str(INPUT_SIZE),
                "--flip-tta",
                "--num-workers",
                "0",
                "--accelerator",
                "cpu",
                "--devices",
                "1",
            ]
        )
        == 0
    )
    assert Manifest.load(tmp_path / "flip").extra["flip_tta"] is True
    flipped, unflipped = read_records(tmp_path / "flip"), read_records(plain)
    for key, record in flipped.items():
        got = label(record)
        np.testing.assert_allclose(got, reference(model, rgb(record), flip_tta=True), atol=1e-3)
        assert np.abs(got - label(unflipped[key])).max() > 1e-2  # the flipped pass changes the labels


def test_resume_redoes_only_missing_shards(
    setup: tuple[Path, Path, torch.nn.Module, Path, Manifest], tmp_path: Path
) -> None:
    inputs, ckpt, _, first, manifest = setup
    out = tmp_path / "pseudo"
    shutil.copytree(first, out)
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*") if not p.name.startswith("shard-000001")}
    (out / "shard-000001.tar").unlink()
    (out / "shard-000001.json").unlink()
    (out / "shard-000002.tar.tmp").write_bytes(b"half a shard from a crashed run")
    again = pseudo_label(ckpt, [str(inputs)], out, **RUN)
    assert again.to_dict() == manifest.to_dict()  # shard 1 redone with the same bytes (sha256)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*") if p.name in kept} == kept
    assert (out / "shard-000001.tar").is_file() and not list(out.glob("*.tmp"))

    other = tmp_path / "other.pth"
    tiny_checkpoint(other, seed=4)
    with pytest.raises(PseudoLabelError, match="teacher_sha256") as refused:
        pseudo_label(other, [str(inputs)], out, **RUN)
    assert f"cannot resume {out}" in str(refused.value) and "new --out directory" in str(refused.value)
    with pytest.raises(PseudoLabelError, match=r"flip_tta: False -> True; input_size: 28 -> 42"):
        pseudo_label(ckpt, [str(inputs)], out, **{**RUN, "input_size": 42}, flip_tta=True)
    with pytest.raises(PseudoLabelError, match=r"reduced_decode: True -> False"):
        pseudo_label(ckpt, [str(inputs)], out, **RUN, reduced_decode=False)  # labels of other decoded pixels
    with pytest.raises(PseudoLabelError, match="already holds pseudo labels"):
        pseudo_label(ckpt, [str(inputs)], out, **RUN, resume=False)
    with pytest.raises(PseudoLabelError, match="holds shards not written by anydepth pseudo-label"):
        pseudo_label(ckpt, [str(inputs)], inputs, **RUN)
    assert Manifest.load(out).to_dict() == manifest.to_dict()  # refusals change nothing


def test_resume_compares_resolved_input_paths(
    setup: tuple[Path, Path, torch.nn.Module, Path, Manifest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same input shards spelled relative, with ``./``, via a symlink or as a brace pattern resume a run (also one
    whose pseudo.json recorded relative paths); other shards, even with equal bytes, are refused."""
    inputs, ckpt, _, first, manifest = setup
    out = tmp_path / "pseudo"
    shutil.copytree(first, out)
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")}
    (tmp_path / "link").symlink_to(inputs)
    monkeypatch.chdir(inputs.parent)
    state = json.loads((out / STATE_NAME).read_text())
    relative = {**state, "inputs": [os.path.relpath(url) for url in state["inputs"]]}
    (out / STATE_NAME).write_text(json.dumps(relative))  # as written by anydepth before paths were resolved
    for spec in (
        inputs.name,
        f"./{inputs.name}/",
        str(tmp_path / "link"),
        f"{inputs.name}/shard-{{000000..000003}}.tar",
    ):
        assert pseudo_label(ckpt, [spec], out, **RUN).to_dict() == manifest.to_dict(), spec
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")} == kept  # nothing redone
    assert json.loads((out / STATE_NAME).read_text()) == state  # resolved paths again

    shutil.copytree(inputs, tmp_path / "copy")
    copied = f"inputs[0]: '{inputs.resolve()}/shard-000000.tar' -> '{tmp_path.resolve()}/copy/shard-000000.tar'"
    with pytest.raises(PseudoLabelError, match=re.escape(copied)):
        pseudo_label(ckpt, [str(tmp_path / "copy")], out, **RUN)
    with pytest.raises(PseudoLabelError, match="inputs: 4 -> 1 entries"):
        pseudo_label(ckpt, [f"./{inputs.name}/shard-000000.tar"], out, **RUN)


def test_unreadable_samples_do_not_block_completion(
    setup: tuple[Path, Path, torch.nn.Module, Path, Manifest], tmp_path: Path
) -> None:
    """One corrupt image in shard 0 (of 2) and in shard 3 (its only sample): both shards are finished."""
    inputs, ckpt, _, _, _ = setup
    broken = tmp_path / "broken"
    shutil.copytree(inputs, broken)
    for name in ("shard-000000.tar", "shard-000003.tar"):
        records = list(read_records(broken).items())
        records = [(k, r) for k, r in records if r["shard"] == name]
        with open(broken / name, "wb") as stream, TarWriter(stream) as writer:
            for i, (key, record) in enumerate(records):
                fields = {f: v for f, v in record.items() if f != "shard"}
                writer.write({"__key__": key, **fields, "image.jpg": b"not a jpeg" if i == 0 else fields["image.jpg"]})
    out = tmp_path / "pseudo"
    manifest = pseudo_label(ckpt, [str(broken)], out, **RUN)
    assert [(s.name, s.samples) for s in manifest.shards] == [
        ("shard-000000.tar", 1),
        ("shard-000001.tar", 2),
        ("shard-000002.tar", 2),
    ]
    assert [s["reason"] for s in manifest.skipped] == [
        "1 of its 2 samples unreadable (see the log)",
        "none of its 1 samples was readable (see the log)",
    ]
    assert json.loads((out / "shard-000003.json").read_text())["samples"] == 0
    assert verify_shards(out).ok
    again = pseudo_label(ckpt, [str(broken)], out, **RUN)  # finished: nothing is retried
    assert again.to_dict() == manifest.to_dict()


def test_input_and_checkpoint_errors(setup: tuple[Path, Path, torch.nn.Module, Path, Manifest], tmp_path: Path) -> None:
    inputs, ckpt, _, _, _ = setup
    with pytest.raises(PseudoLabelError, match=f"cannot read the input shards: .*{tmp_path / 'missing'}"):
        pseudo_label(ckpt, [str(tmp_path / "missing")], tmp_path / "out", **RUN)
    loose = tmp_path / "loose"
    loose.mkdir()
    shutil.copy(inputs / "shard-000000.tar", loose)
    with pytest.raises(PseudoLabelError, match="have no sample count"):
        pseudo_label(ckpt, [str(loose / "*.tar")], tmp_path / "out", **RUN)
    with pytest.raises(PseudoLabelError, match="listed more than once"):
        pseudo_label(ckpt, [str(inputs), str(inputs / "shard-000000.tar")], tmp_path / "out", **RUN)
    with pytest.raises(CheckpointError):
        pseudo_label(tmp_path / "missing.pth", [str(inputs)], tmp_path / "out", **RUN)
    for setting, match in (
        ("input_size", "input_size must be at least 14"),
        ("batch_size", "batch_size must be at least 1"),
        ("num_workers", "num_workers must be >= 0"),
    ):
        with pytest.raises(PseudoLabelError, match=match):  # anydepth.prediction.check_prediction_settings
            pseudo_label(ckpt, [str(inputs)], tmp_path / "out", **{**RUN, setting: -1})
    assert not (tmp_path / "out").exists()


def test_relabel_record_keeps_every_other_byte() -> None:
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    sky = np.zeros((20, 30), bool)
    sky[:4] = True
    sample = Sample(
        "a",
        image,
        np.ones((20, 30), np.float32),
        np.ones((20, 30), bool),
        sky,
        {"source": "x", "label_kind": "depth", "original_size": [40, 60]},
    )
    record = {**encode_sample(sample), "__url__": "in.tar"}
    new_label = np.linspace(0, 1, 600, dtype=np.float32).reshape(20, 30)
    out = relabel_record(decode_sample(record).record, new_label, "relative_disparity", None, "float16")
    assert out["image.jpg"] == record["image.jpg"] and out["sky.png"] == record["sky.png"]
    assert "mask.png" not in out and "__url__" not in out  # the old mask described the old label
    meta = json.loads(out["meta.json"])
    assert meta == {"source": "x", "label_kind": "relative_disparity", "original_size": [40, 60]}
    decoded = decode_sample(out)
    np.testing.assert_allclose(decoded.label, new_label, atol=1e-3)
    with pytest.raises(SampleError, match="new label.npy is \\(30, 20\\), the image \\(20, 30\\)"):
        relabel_record(record, new_label.T, "relative_disparity")


DDP_SCRIPT = """
import json, logging, os, sys
from pathlib import Path
from anydepth.pseudo_label import pseudo_label
logging.basicConfig(level=logging.INFO, format="%(message)s")
checkpoint, inputs, out = sys.argv[1:]
run = dict(input_size=28, num_workers=0, accelerator="cpu", devices=2, strategy="ddp", enable_progress_bar=False)
first = pseudo_label(checkpoint, [inputs], out, **run)
if os.environ["LOCAL_RANK"] == "0":  # rank 0 plans the resume below; rank 1 waits for its broadcast meanwhile
    (Path(out) / "shard-000001.tar").unlink()
    (Path(out) / "shard-000001.json").unlink()
again = pseudo_label(checkpoint, [inputs], out, **run)  # only shard 1 is pending: rank 1 has no batch at all
assert again.to_dict() == first.to_dict()
os.write(2, f"resumed {os.environ['LOCAL_RANK']}\\n".encode())  # one write: the two ranks share stderr
"""


@pytest.mark.slow
def test_ddp_two_processes(setup: tuple[Path, Path, torch.nn.Module, Path, Manifest], tmp_path: Path) -> None:
    """A real ``strategy="ddp", devices=2`` run on CPU (gloo): each rank writes its own shards (2 each), together
    every input sample once, one manifest, the single-process labels. Then a resume with one pending shard, so one
    rank has nothing to read (and must still reach the end-of-run barrier)."""
    inputs, ckpt, _, single, manifest = setup
    script = tmp_path / "pseudo_ddp.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "pseudo"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("MASTER_PORT", None)  # Lightning picks a free port
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run(
        [sys.executable, str(script), str(ckpt), str(inputs), str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = proc.stderr
    for rank, shards in ((0, (0, 2)), (1, (1, 3))):  # pending shards dealt round-robin
        for index in shards:
            assert f"rank {rank}: wrote shard-{index:06d}.tar" in log, log[-4000:]
    assert log.count("rank 0: wrote shard-000001.tar") == 1 and "resumed 0" in log and "resumed 1" in log
    written, expected = read_records(out), read_records(single)
    assert sorted(written) == sorted(expected)  # every sample exactly once (read_records fails on repeats)
    for key, record in written.items():
        assert record["shard"] == expected[key]["shard"] and record["image.jpg"] == expected[key]["image.jpg"]
        np.testing.assert_allclose(label(record), label(expected[key]), atol=1e-3)
    ddp = Manifest.load(out)
    assert [(s.name, s.samples) for s in ddp.shards] == [(s.name, s.samples) for s in manifest.shards]
    assert ddp.extra == manifest.extra and verify_shards(out).ok
