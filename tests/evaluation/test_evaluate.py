"""``anydepth eval`` and ``evaluate()`` end to end on fabricated benchmark shards and the real demo-eval shard
(disparity ground truth) with tiny models, one or several checkpoints, against the official inference path image by
image (offline, CPU); metric mode with tiny metric models, one whose metres are known exactly (coded images)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from anydepth.cli import build_parser, main
from anydepth.cli.eval import _model_names
from anydepth.evaluation import IMAGES, PROTOCOLS, DepthEvaluator, EvaluationError, evaluate
from anydepth.metrics import METRIC_NAMES, depth_from_label
from anydepth.models import DepthAnything
from anydepth.shards.schema import Sample
from anydepth.sources.build import build_shards

from helpers.fabricate import coded_nyuv2, tiny_checkpoint, tiny_metric_checkpoint
from helpers.fuzz import error_line
from helpers.metric import CodedDepth

INPUT_SIZE = 28


def reference_metrics(model: DepthAnything, name: str, samples: list[Sample]) -> dict[str, float]:
    """The same evaluation by hand through the official inference path (``infer_image``), one image at a time."""
    protocol = PROTOCOLS[name]
    metric = protocol.metric()
    for sample in samples:
        pred = torch.from_numpy(model.infer_image(sample.image, input_size=INPUT_SIZE))[None]
        depth = torch.from_numpy(sample.label)[None]
        mask = torch.from_numpy(sample.valid_mask())[None]
        metric.update(pred, depth, protocol.valid_mask(depth, mask))
    return {k: float(v) for k, v in metric.compute().items()}


def run_eval(ckpt: Path, root: Path, benchmarks: str, *extra: str) -> int:
    return main(
        [
            "eval",
            "--checkpoint",
            str(ckpt),
            "--benchmarks",
            benchmarks,
            "--data-root",
            str(root),
            "--input-size",
            str(INPUT_SIZE),
            "--num-workers",
            "0",
            "--accelerator",
            "cpu",
            *extra,
        ]
    )


def test_eval_cli_end_to_end(
    tiny: tuple[Path, DepthAnything],
    data_root: tuple[Path, dict[str, list[Sample]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ckpt, model = tiny
    root, samples = data_root
    output = tmp_path / "out" / "metrics.json"
    code = run_eval(ckpt, root, "kitti,nyuv2,diode-indoor", "--output", str(output))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.strip().splitlines()
    assert lines[0].startswith("| benchmark | AbsRel | δ1 | SqRel |") and lines[0].endswith("| images |")
    assert lines[1].startswith("| --- | --- |")
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| kitti", "| nyuv2", "| diode-indoor"]
    assert len(lines) == 5  # only the table on stdout (progress and notes go to stderr)
    report = json.loads(output.read_text())
    assert list(report["metrics"]) == ["kitti", "nyuv2", "diode-indoor"]
    assert report["protocols"]["kitti"] == PROTOCOLS["kitti"].to_dict()
    assert report["input_size"] == INPUT_SIZE
    for name, metrics in report["metrics"].items():
        assert set(metrics) == {*METRIC_NAMES, IMAGES}
        assert metrics[IMAGES] == len(samples[name])
        assert all(math.isfinite(v) for v in metrics.values())
        assert 0.0 < metrics["abs_rel"] and 0.0 <= metrics["d1"] <= 1.0
        # The CLI's numbers are those of the official inference path + the protocol, image by image.
        expected = reference_metrics(model, name, samples[name])
        for key in METRIC_NAMES:
            assert metrics[key] == pytest.approx(expected[key], rel=1e-4, abs=1e-6), (name, key)
        row = next(line for line in lines if line.startswith(f"| {name} |"))
        assert row.split(" | ")[1:3] == [f"{metrics['abs_rel']:.3f}", f"{metrics['d1']:.3f}"]


def test_missing_benchmark_is_a_clear_usage_error(
    tiny: tuple[Path, DepthAnything],
    data_root: tuple[Path, dict[str, list[Sample]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ckpt, _ = tiny
    root, _ = data_root
    assert run_eval(ckpt, root, "nyuv2,sintel") == 2
    err = capsys.readouterr().err
    assert err.startswith("anydepth eval: error: ")
    assert str(root / "sintel" / "manifest.json") in err
    assert f"anydepth shards build --source sintel --root <sintel dataset root> --out {root / 'sintel'}" in err
    assert "diode-indoor/, kitti/, nyuv2/" in err  # what the data root holds
    assert "nyuv2:" not in err  # the complete benchmark is not reported

    assert run_eval(ckpt, root / "nowhere", "kitti") == 2
    assert "does not exist" in capsys.readouterr().err

    assert run_eval(ckpt, root, "nyu") == 2
    assert "unknown benchmark(s) nyu; known: kitti, nyuv2" in capsys.readouterr().err


def test_eval_parser_defaults() -> None:  # the default --benchmarks: test_protocols.py
    args = build_parser().parse_args(["eval", "--checkpoint", "c.pth", "--benchmarks", "kitti", "--data-root", "d"])
    assert (args.input_size, args.batch_size, args.devices, args.accelerator, args.output, args.protocols) == (
        518,
        1,
        1,
        "auto",
        None,
        None,
    )
    assert build_parser().parse_args(
        ["eval", "--checkpoint", "c", "--benchmarks", "kitti", "--data-root", "d", "--devices", "0,1"]
    ).devices == [0, 1]


def test_evaluate_api_batches_and_matches_the_reference(
    tiny: tuple[Path, DepthAnything], data_root: tuple[Path, dict[str, list[Sample]]]
) -> None:
    _, model = tiny
    root, samples = data_root
    results = evaluate(
        model, ["nyuv2"], root, input_size=INPUT_SIZE, batch_size=2, num_workers=0, accelerator="cpu", progress=False
    )
    assert list(results) == ["nyuv2"] and results["nyuv2"][IMAGES] == 3  # 3 images in batches of 2 + 1
    expected = reference_metrics(model, "nyuv2", samples["nyuv2"])
    for key in METRIC_NAMES:
        assert results["nyuv2"][key] == pytest.approx(expected[key], rel=1e-4, abs=1e-6), key


def test_evaluator_refuses_samples_without_ground_truth(tiny: tuple[Path, DepthAnything]) -> None:
    evaluator = DepthEvaluator.from_model(tiny[1], benchmarks=["nyuv2"])
    batch = {"image": torch.rand(1, 3, 28, 28), "key": ["a"], "label_kind": [None]}
    with pytest.raises(EvaluationError, match="no depth label"):
        evaluator.test_step(batch, 0)
    batch |= {"label": torch.ones(1, 4, 4), "mask": torch.ones(1, 4, 4, dtype=torch.bool)}
    with pytest.raises(EvaluationError, match=r"nyuv2: samples \['a'\]: unknown label kind None"):
        evaluator.test_step(batch, 0)


# ---------------------------------------------------------------------------------------------- several checkpoints


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DepthAnything]:
    path = tmp_path_factory.mktemp("ckpt") / "student.pth"
    return path, tiny_checkpoint(path, seed=4)


def test_eval_cli_compares_several_checkpoints_in_one_table(
    tiny: tuple[Path, DepthAnything],
    student: tuple[Path, DepthAnything],
    data_root: tuple[Path, dict[str, list[Sample]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, samples = data_root
    output = tmp_path / "metrics.json"
    code = run_eval(
        tiny[0],
        root,
        "kitti,nyuv2",
        "--checkpoint",
        str(student[0]),
        "--name",
        "teacher",
        "--name",
        "student",
        "--output",
        str(output),
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.strip().splitlines()
    assert lines[0].startswith("| benchmark | model | AbsRel | δ1 | SqRel |") and lines[0].endswith("| images |")
    assert [line.split(" | ")[:2] for line in lines[2:]] == [
        ["| kitti", "teacher"],
        ["| kitti", "student"],
        ["| nyuv2", "teacher"],
        ["| nyuv2", "student"],
    ]
    report = json.loads(output.read_text())
    assert list(report) == ["models", "protocols", "input_size"] and list(report["protocols"]) == ["kitti", "nyuv2"]
    assert {name: entry["checkpoint"] for name, entry in report["models"].items()} == {
        "teacher": str(tiny[0]),
        "student": str(student[0]),
    }
    for name, model in (("teacher", tiny[1]), ("student", student[1])):
        for benchmark in ("kitti", "nyuv2"):
            metrics = report["models"][name]["metrics"][benchmark]
            expected = reference_metrics(model, benchmark, samples[benchmark])
            for key in METRIC_NAMES:
                assert metrics[key] == pytest.approx(expected[key], rel=1e-4, abs=1e-6), (name, benchmark, key)
            row = next(line for line in lines if line.startswith(f"| {benchmark} | {name} |"))
            assert row.split(" | ")[2] == f"{metrics['abs_rel']:.3f}"
    teacher, student_ = (report["models"][m]["metrics"]["kitti"]["abs_rel"] for m in ("teacher", "student"))
    assert teacher != student_  # two different models were scored


def test_model_names_default_to_file_stems_and_must_be_distinct(
    tiny: tuple[Path, DepthAnything],
    data_root: tuple[Path, dict[str, list[Sample]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _model_names([Path("runs/teacher.ckpt"), Path("hf/student-hf")], None) == ["teacher", "student-hf"]
    assert _model_names([Path("a/last.ckpt"), Path("b/last.ckpt")], ["a", "b"]) == ["a", "b"]
    ckpt, root = tiny[0], data_root[0]
    assert run_eval(ckpt, root, "kitti", "--checkpoint", str(ckpt)) == 2  # both named "tiny"
    assert "model name(s) tiny label several checkpoints; give distinct --name values" in capsys.readouterr().err
    assert run_eval(ckpt, root, "kitti", "--name", "a", "--name", "b") == 2
    assert "give one --name per --checkpoint: 1 checkpoint(s), 2 name(s)" in capsys.readouterr().err
    assert run_eval(ckpt, root, "kitti", "--checkpoint", str(root / "gone.pth")) == 2  # before evaluating the first
    assert f"no such file or directory: {root / 'gone.pth'}" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- demo set (disparity)


def test_eval_cli_on_the_demo_disparity_shard(
    tiny: tuple[Path, DepthAnything],
    demo_sample: Sample,
    score: Callable[..., dict],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    build_shards("demo-eval", tmp_path, tmp_path / "demo" / "eval", image_format="png")  # as make shards-demo
    ckpt, model = tiny
    output = tmp_path / "metrics.json"
    code = run_eval(ckpt, tmp_path, "demo", "--output", str(output))  # as make demo: the registry has the protocol
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.strip().splitlines()
    assert len(lines) == 3 and lines[2].startswith("| demo | ") and lines[2].endswith(" | 1 |")
    assert not [r for r in caplog.records if "built by" in r.getMessage()]  # the protocol chose these shards
    metrics = json.loads(output.read_text())["metrics"]["demo"]
    # By hand: official inference path, disparity -> depth up to scale, the demo protocol.
    pred = torch.from_numpy(model.infer_image(demo_sample.image, input_size=INPUT_SIZE))[None]
    label, mask = torch.from_numpy(demo_sample.label)[None], torch.from_numpy(demo_sample.mask)[None]
    expected = score(PROTOCOLS["demo"], pred, depth_from_label(label, mask, ["disparity"]), mask)
    for key in METRIC_NAMES:
        assert metrics[key] == pytest.approx(expected[key], rel=1e-4, abs=1e-6), key
    assert metrics[IMAGES] == 1


# ---------------------------------------------------------------------------------------------- metric depth


@pytest.fixture(scope="module")
def coded_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with nyuv2 shards built by the nyuv2 reader from coded NYU files (3 test images)."""
    raw, root = tmp_path_factory.mktemp("coded-nyu"), tmp_path_factory.mktemp("coded-shards")
    coded_nyuv2(raw)
    build_shards("nyuv2", raw, root / "nyuv2", samples_per_shard=2, image_format="png")
    return root


def coded_eval(model: DepthAnything, benchmarks: list[str], root: Path) -> dict[str, dict[str, float]]:
    return evaluate(model, benchmarks, root, input_size=28, num_workers=0, accelerator="cpu", progress=False)


@pytest.mark.parametrize("scale", [1.0, 1.1, 0.9])
def test_a_metric_prediction_is_scored_without_alignment(coded_root: Path, scale: float) -> None:
    metrics = coded_eval(CodedDepth(scale), ["nyuv2-metric"], coded_root)["nyuv2-metric"]
    assert metrics[IMAGES] == 3
    assert metrics["abs_rel"] == pytest.approx(abs(scale - 1), abs=1e-6)  # perfect: 0; 10 % off: exactly 0.1
    assert metrics["log10"] == pytest.approx(abs(math.log10(scale)), abs=1e-6)
    assert metrics["rmse_log"] == pytest.approx(abs(math.log(scale)), abs=1e-6)
    assert metrics["d1"] == 1.0 and metrics["silog"] == pytest.approx(0.0, abs=1e-3)


def test_a_metric_model_in_relative_mode_is_inverted_and_aligned(coded_root: Path) -> None:
    metrics = coded_eval(CodedDepth(1.1), ["nyuv2"], coded_root)["nyuv2"]
    assert metrics["abs_rel"] == pytest.approx(0.0, abs=1e-5) and metrics["d1"] == 1.0  # the scale is aligned away


def test_a_relative_model_has_no_metres_to_score(tiny: tuple[Path, DepthAnything], coded_root: Path) -> None:
    with pytest.raises(EvaluationError, match="nyuv2-metric score metric depth.*the model is relative"):
        coded_eval(tiny[1], ["nyuv2-metric"], coded_root)


@pytest.fixture(scope="module")
def metric_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DepthAnything]:
    path = tmp_path_factory.mktemp("ckpt") / "metric.pth"
    return path, tiny_metric_checkpoint(path)


def test_eval_cli_scores_a_metric_checkpoint_in_metric_mode_by_default(
    metric_ckpt: tuple[Path, DepthAnything],
    data_root: tuple[Path, dict[str, list[Sample]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ckpt, model = metric_ckpt
    root, samples = data_root
    output = tmp_path / "metrics.json"
    argv = ["eval", "--checkpoint", str(ckpt), "--data-root", str(root), "--input-size", str(INPUT_SIZE)]
    code = main([*argv, "--num-workers", "0", "--accelerator", "cpu", "--output", str(output)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.strip().splitlines()
    assert lines[0].startswith("| benchmark | δ1 | δ2 | δ3 | AbsRel | RMSE | log10 | RMSE log |")  # Tables 3-4
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| nyuv2-metric", "| kitti-metric"]
    report = json.loads(output.read_text())
    assert report["protocols"]["kitti-metric"] == PROTOCOLS["kitti-metric"].to_dict()
    for name in ("nyuv2-metric", "kitti-metric"):
        expected = reference_metrics(model, name, samples[name.removesuffix("-metric")])  # the metres as they are
        for key in METRIC_NAMES:
            assert report["metrics"][name][key] == pytest.approx(expected[key], rel=1e-4, abs=1e-6), (name, key)
    # --mode relative scores the same checkpoint zero-shot: its depth inverted and aligned per image
    assert run_eval(ckpt, root, "kitti", "--mode", "relative") == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("| benchmark | AbsRel | δ1 |")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--mode", "metric"], "--mode metric: {tiny} is a relative model"),
        (
            ["--mode", "relative", "--benchmarks", "nyuv2-metric"],
            "relative mode: benchmark(s) nyuv2-metric have metric",
        ),
        (["--benchmarks", "kitti-metric"], "relative mode: benchmark(s) kitti-metric have metric protocols"),
        (["--benchmarks", "kitti", "--checkpoint", "{metric}"], "{metric} is a metric model but {tiny} is relative"),
    ],
)
def test_eval_cli_modes_are_checked(
    extra: list[str],
    message: str,
    tiny: tuple[Path, DepthAnything],
    metric_ckpt: tuple[Path, DepthAnything],
    data_root: tuple[Path, dict[str, list[Sample]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    paths = {"tiny": tiny[0], "metric": metric_ckpt[0]}
    argv = ["eval", "--checkpoint", str(tiny[0]), "--data-root", str(data_root[0]), "--input-size", str(INPUT_SIZE)]
    assert main([*argv, "--num-workers", "0", "--accelerator", "cpu", *(a.format(**paths) for a in extra)]) == 2
    assert message.format(**paths) in error_line(capsys.readouterr().err, "eval")
