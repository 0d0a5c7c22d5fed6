"""Zero-shot evaluation: protocol maths on constructed cases, YAML overrides, the results table, and ``anydepth eval``
end to end on fabricated benchmark shards and the real demo-eval shard (disparity ground truth) with tiny models,
one or several checkpoints (offline, CPU)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from anydepth.cli import build_parser, main
from anydepth.cli.eval import BENCHMARKS, _model_names
from anydepth.evaluation import (
    CROPS,
    DEFAULT_PROTOCOLS_YAML,
    IMAGES,
    PROTOCOLS,
    BenchmarkDataModule,
    DepthEvaluator,
    EvaluationError,
    Protocol,
    benchmark_shards,
    evaluate,
    format_markdown_table,
    load_protocols,
    protocol_table,
)
from anydepth.metrics import METRIC_NAMES, depth_from_label
from anydepth.models import DepthAnything
from anydepth.shards.manifest import Manifest
from anydepth.shards.schema import Sample
from anydepth.sources.build import build_shards
from anydepth.sources.demo import DemoEvalSource

from helpers import REPO_ROOT
from helpers.fabricate import fabricate_benchmark, tiny_checkpoint

INPUT_SIZE = 28
DEMO_PROTOCOLS = REPO_ROOT / "configs" / "demo" / "protocols.yaml"


def score(protocol: Protocol, pred: torch.Tensor, depth: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
    """What ``DepthEvaluator.test_step`` + ``on_test_epoch_end`` do with a prediction already at GT resolution."""
    metric = protocol.metric()
    metric.update(pred, depth, protocol.valid_mask(depth, mask))
    out = {k: float(v) for k, v in metric.compute().items()}
    out[IMAGES] = int(metric.count)
    return out


def depth_in_range(protocol: Protocol, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Log-uniform depth strictly inside the protocol's range (up to 200 m when it has no cap)."""
    low = max(protocol.min_depth, 0.05) * 1.05
    high = (protocol.max_depth if protocol.max_depth is not None else 200.0) * 0.95
    u = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.exp(math.log(low) + u * (math.log(high) - math.log(low))).float()


# ---------------------------------------------------------------------------------------------- protocol maths


@pytest.mark.parametrize("name", list(PROTOCOLS))
def test_affine_disparity_is_perfect_under_every_protocol(name: str) -> None:
    protocol = PROTOCOLS[name]
    b, h, w = 2, 96, 128
    depth = depth_in_range(protocol, (b, h, w), seed=1)
    pred = 3.0 / depth + 0.25  # exact affine function of the true disparity
    mask = torch.ones(b, h, w, dtype=torch.bool)
    mask[:, 50:60, 60:70] = False
    # Garbage wherever a pixel must not count: masked, out of range (too near / too far) and outside the crop.
    pred[~mask] = 1e4
    depth[:, 0:4, 64:] = protocol.min_depth / 2  # below the range
    pred[:, 0:4, 64:] = -50.0
    if protocol.max_depth is not None:
        depth[:, -4:, :64] = protocol.max_depth * 2  # beyond the range
        pred[:, -4:, :64] = 77.0
    outside_crop = ~protocol.crop_mask(h, w)
    pred[:, outside_crop] = 1e3
    result = score(protocol, pred, depth, mask)
    assert result["abs_rel"] == pytest.approx(0.0, abs=2e-5)
    assert result["d1"] == 1.0 and result["d2"] == 1.0 and result["d3"] == 1.0
    assert result["rmse_log"] == pytest.approx(0.0, abs=5e-5)
    assert result[IMAGES] == b
    # Control: the same garbage inside the evaluated region does hurt.
    bad = pred.clone()
    bad[:, 30:40, 30:40] = 1e3
    assert score(protocol, bad, depth, mask)["abs_rel"] > 0.01


@pytest.mark.parametrize(
    ("factor", "abs_rel", "d1"), [(1.1, 0.1, 1.0), (0.85, 0.15, 1.0), (0.7, 0.3, 0.0), (1.3, 0.3, 0.0)]
)
def test_constant_multiplicative_error_without_alignment(factor: float, abs_rel: float, d1: float) -> None:
    protocol = dataclasses.replace(PROTOCOLS["nyuv2"], align="none")
    depth = 1.0 + 6.0 * torch.rand(3, 48, 64)  # factor * depth stays inside (1e-3, 10): the clamp does nothing
    result = score(protocol, factor * depth, depth)
    assert result["abs_rel"] == pytest.approx(abs_rel, rel=1e-5)
    assert result["d1"] == d1
    assert result["rmse_log"] == pytest.approx(abs(math.log(factor)), rel=1e-4)
    assert result["silog"] == pytest.approx(0.0, abs=1e-2)  # a constant log error is scale, which SILog ignores
    # With disparity alignment the same constant factor is absorbed completely.
    aligned = score(PROTOCOLS["nyuv2"], 1.0 / (factor * depth), depth)
    assert aligned["abs_rel"] == pytest.approx(0.0, abs=1e-5) and aligned["d1"] == 1.0


def test_eigen_crop_keeps_426_by_560_of_480_by_640() -> None:
    keep = PROTOCOLS["nyuv2"].crop_mask(480, 640)
    assert int(keep.sum()) == 426 * 560
    rows, cols = keep.any(dim=1).nonzero().flatten(), keep.any(dim=0).nonzero().flatten()
    assert (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1) == (45, 471, 41, 601)
    assert bool(keep[45:471, 41:601].all())


@pytest.mark.parametrize(("h", "w", "box"), [(375, 1242, (153, 371, 44, 1197)), (352, 1216, (143, 349, 43, 1172))])
def test_garg_crop_matches_the_reference_integer_bounds(h: int, w: int, box: tuple[int, int, int, int]) -> None:
    top, bottom, left, right = box
    keep = PROTOCOLS["kitti"].crop_mask(h, w)
    assert int(keep.sum()) == (bottom - top) * (right - left)
    assert bool(keep[top:bottom, left:right].all())
    t, b_, l_, r = CROPS["garg"]
    assert (int(t * h), int(b_ * h), int(l_ * w), int(r * w)) == box


def test_no_crop_keeps_everything() -> None:
    for name in ("sintel", "ddad", "eth3d", "diode-indoor", "diode-outdoor"):
        assert bool(PROTOCOLS[name].crop_mask(7, 9).all())


def test_range_caps_remove_exactly_the_out_of_range_pixels() -> None:
    values = [0.0, 5e-4, 1e-3, 0.0011, 0.5, 9.99, 10.0, 10.5, float("nan"), float("inf"), -1.0, 3.0]
    depth = torch.tensor(values).view(1, 1, -1)
    protocol = dataclasses.replace(PROTOCOLS["nyuv2"], crop="none")
    valid = protocol.valid_mask(depth)
    assert valid.flatten().tolist() == [v > 1e-3 and v < 10.0 for v in values]  # strict bounds, NaN/inf out
    mask = torch.ones_like(valid)
    mask[..., -1] = False
    assert protocol.valid_mask(depth, mask).sum() == valid.sum() - 1
    diode = PROTOCOLS["diode-outdoor"]
    assert diode.valid_mask(torch.tensor([[[0.5, 0.6, 0.61, 349.0, 350.0, 400.0]]])).flatten().tolist() == [
        False, False, True, True, False, False,
    ]  # fmt: skip
    eth3d = PROTOCOLS["eth3d"]  # no upper cap
    assert eth3d.valid_mask(torch.tensor([[[1e-4, 2.0, 1e5]]])).flatten().tolist() == [False, True, True]


def test_protocol_validation() -> None:
    with pytest.raises(EvaluationError, match="crop"):
        Protocol("x", 0.1, 10.0, crop="bogus")  # type: ignore[arg-type]
    with pytest.raises(EvaluationError, match="align"):
        Protocol("x", 0.1, 10.0, align="log")  # type: ignore[arg-type]
    with pytest.raises(EvaluationError, match="exceed"):
        Protocol("x", 10.0, 1.0)
    with pytest.raises(EvaluationError, match="shards must be a directory path"):
        Protocol("x", 0.1, 10.0, shards="")


def test_protocol_shard_directory(tmp_path: Path) -> None:
    named = Protocol("scannet", 0.001, 10.0, shards="scannet/test")
    assert named.shard_dir(tmp_path) == tmp_path / "scannet" / "test"
    assert Protocol("x", 0.1, 10.0, shards=str(tmp_path / "x")).shard_dir("/elsewhere") == tmp_path / "x"
    assert PROTOCOLS["kitti"].shard_dir(tmp_path) == tmp_path / "kitti"  # default: the name
    assert named.to_dict()["shards"] == "scannet/test" and "shards" not in PROTOCOLS["kitti"].to_dict()


def test_benchmarks_are_read_from_the_directory_their_protocol_names(tmp_path: Path) -> None:
    fabricate_benchmark(tmp_path / "v2", "nyuv2", 1)
    moved = load_protocols(overrides={"nyuv2": {"shards": "v2/nyuv2"}})
    assert benchmark_shards(["nyuv2"], tmp_path, moved) == {"nyuv2": tmp_path / "v2" / "nyuv2"}
    absolute = load_protocols(overrides={"nyuv2": {"shards": str(tmp_path / "v2" / "nyuv2")}})
    assert benchmark_shards(["nyuv2"], tmp_path / "nowhere", absolute) == {"nyuv2": tmp_path / "v2" / "nyuv2"}
    with pytest.raises(EvaluationError, match=f"expected {tmp_path / 'nyuv2' / 'manifest.json'} .* holds v2/"):
        benchmark_shards(["nyuv2"], tmp_path)  # the default directory
    wrong = load_protocols(overrides={"nyuv2": {"shards": "v2/test"}})
    with pytest.raises(EvaluationError, match=f"but {tmp_path / 'v2'} holds nyuv2/"):  # lists the named parent
        benchmark_shards(["nyuv2"], tmp_path, wrong)


# ---------------------------------------------------------------------------------------------- YAML and tables


def test_shipped_yaml_is_the_registry() -> None:
    entries = yaml.safe_load(DEFAULT_PROTOCOLS_YAML.read_text())
    assert entries == {name: p.to_dict() for name, p in PROTOCOLS.items()}
    assert load_protocols(DEFAULT_PROTOCOLS_YAML) == PROTOCOLS
    assert tuple(PROTOCOLS) == BENCHMARKS  # the CLI's list (kept there so the CLI starts without Lightning)


def test_yaml_override_changes_one_field_only(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("kitti:\n  max_depth: 50.0\nscannet:\n  min_depth: 0.001\n  max_depth: 10\n  crop: eigen\n")
    protocols = load_protocols(path)
    assert protocols["kitti"] == dataclasses.replace(PROTOCOLS["kitti"], max_depth=50.0)
    assert {k: v for k, v in protocols.items() if k not in ("kitti", "scannet")} == {
        k: v for k, v in PROTOCOLS.items() if k != "kitti"
    }
    assert protocols["scannet"] == Protocol("scannet", 0.001, 10.0, "eigen")
    # overrides apply after the file, field by field again
    both = load_protocols(path, overrides={"kitti": {"crop": "eigen"}, "eth3d": {"max_depth": 72}})
    assert both["kitti"] == dataclasses.replace(PROTOCOLS["kitti"], max_depth=50.0, crop="eigen")
    assert both["eth3d"].max_depth == 72.0 and both["eth3d"].min_depth == PROTOCOLS["eth3d"].min_depth
    assert PROTOCOLS["kitti"].max_depth == 80.0  # the registry itself is untouched


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("kitti:\n  max_depht: 50\n", "unknown field"),
        ("newset:\n  min_depth: 0.1\n", "must set max_depth"),
        ("kitti:\n  crop: middle\n", "crop must be one of"),
        ("- kitti\n", "expected a mapping"),
    ],
)
def test_bad_protocol_files_are_clear_errors(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(EvaluationError, match=match):
        load_protocols(path)


def test_format_markdown_table() -> None:
    full = {name: 0.1234 * (i + 1) for i, name in enumerate(METRIC_NAMES)}
    results = {"nyuv2": {**full, IMAGES: 654}, "kitti": {**full, "abs_rel": 0.07649, "d1": float("nan"), IMAGES: 2}}
    lines = format_markdown_table(results).splitlines()
    assert lines[0] == "| benchmark | AbsRel | δ1 | SqRel | RMSE | RMSE log | log10 | SILog | δ2 | δ3 | images |"
    assert lines[1] == "| " + " | ".join(["---"] * 11) + " |"
    assert lines[2] == "| nyuv2 | 0.123 | 0.864 | 0.247 | 0.370 | 0.494 | 0.617 | 0.740 | 0.987 | 1.111 | 654 |"
    assert lines[3].startswith("| kitti | 0.076 | n/a | 0.247 |") and lines[3].endswith("| 2 |")
    assert len(lines) == 4
    assert format_markdown_table({"x": {"d1": 0.5, "abs_rel": 0.25}}).splitlines()[2] == "| x | 0.250 | 0.500 |"


def test_format_markdown_table_of_several_models() -> None:
    teacher = {"kitti": {"abs_rel": 0.1, "d1": 0.9, IMAGES: 2}, "nyuv2": {"abs_rel": 0.2, "d1": 0.8, IMAGES: 3}}
    student = {"nyuv2": {"abs_rel": 0.05, "d1": float("nan"), IMAGES: 3}}
    assert format_markdown_table({"teacher": teacher, "student": student}).splitlines() == [
        "| benchmark | model | AbsRel | δ1 | images |",
        "| --- | --- | --- | --- | --- |",
        "| kitti | teacher | 0.100 | 0.900 | 2 |",  # grouped by benchmark: the rows to compare are adjacent
        "| nyuv2 | teacher | 0.200 | 0.800 | 3 |",
        "| nyuv2 | student | 0.050 | n/a | 3 |",
    ]


def test_readme_shows_the_current_protocol_table() -> None:
    assert protocol_table() in (REPO_ROOT / "README.md").read_text()


def test_protocol_table_lists_every_protocol() -> None:
    lines = protocol_table().splitlines()
    assert lines[0].startswith("| benchmark | min depth (m) | max depth (m) | crop |")
    assert [line.split(" | ")[0] for line in lines[2:]] == [f"| `{name}`" for name in PROTOCOLS]
    assert "| `eth3d` | 0.001 | none | none | disparity |" in protocol_table()


# ---------------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DepthAnything]:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    model = tiny_checkpoint(path)
    return path, model


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[Sample]]]:
    root = tmp_path_factory.mktemp("data_root")
    samples = {name: fabricate_benchmark(root, name, count, seed=i) for i, (name, count) in
               enumerate([("nyuv2", 3), ("kitti", 3), ("diode-indoor", 2)])}  # fmt: skip
    return root, samples


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
        ["eval", "--checkpoint", str(ckpt), "--benchmarks", benchmarks, "--data-root", str(root),
         "--input-size", str(INPUT_SIZE), "--num-workers", "0", "--accelerator", "cpu", *extra]
    )  # fmt: skip


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


def test_partial_benchmark_directories_are_reported(tmp_path: Path) -> None:
    fabricate_benchmark(tmp_path, "kitti", 3)
    (tmp_path / "kitti" / "shard-000001.tar").unlink()
    (tmp_path / "nyuv2").mkdir()
    (tmp_path / "nyuv2" / "shard-000000.tar.tmp").write_bytes(b"")
    with pytest.raises(EvaluationError) as info:
        benchmark_shards(["kitti", "nyuv2"], tmp_path)
    message = str(info.value)
    assert "kitti: " in message and "lists 2 shards but 1 are missing (shard-000001.tar)" in message
    assert "holds manifest.json, shard-000000.tar" in message
    assert f"nyuv2: expected {tmp_path / 'nyuv2' / 'manifest.json'}" in message
    assert "holds shard-000000.tar.tmp (no manifest" in message


def test_eval_parser_defaults() -> None:
    args = build_parser().parse_args(["eval", "--checkpoint", "c.pth", "--benchmarks", "kitti", "--data-root", "d"])
    assert (args.input_size, args.batch_size, args.devices, args.accelerator, args.output, args.protocols) == (
        518, 1, 1, "auto", None, None,
    )  # fmt: skip
    assert build_parser().parse_args(
        ["eval", "--checkpoint", "c", "--benchmarks", "kitti", "--data-root", "d", "--devices", "0,1"]
    ).devices == [0, 1]


def test_evaluate_api_batches_and_matches_the_reference(
    tiny: tuple[Path, DepthAnything], data_root: tuple[Path, dict[str, list[Sample]]]
) -> None:
    _, model = tiny
    root, samples = data_root
    results = evaluate(model, ["nyuv2"], root, input_size=INPUT_SIZE, batch_size=2, num_workers=0,
                       accelerator="cpu", progress=False)  # fmt: skip
    assert list(results) == ["nyuv2"] and results["nyuv2"][IMAGES] == 3  # 3 images in batches of 2 + 1
    expected = reference_metrics(model, "nyuv2", samples["nyuv2"])
    for key in METRIC_NAMES:
        assert results["nyuv2"][key] == pytest.approx(expected[key], rel=1e-4, abs=1e-6), key


def test_shards_are_dealt_round_robin_across_benchmarks(data_root: tuple[Path, dict[str, list[Sample]]]) -> None:
    root, _ = data_root  # nyuv2: 2 shards, kitti: 2 shards, diode-indoor: 1 shard
    data = BenchmarkDataModule({name: root / name for name in ("nyuv2", "kitti", "diode-indoor")})
    lists = data.shard_lists()
    everything = [url for shards in lists.values() for url in shards.urls]
    for world in (1, 2, 3, 5):
        dealt = [data.rank_shards(rank, world) for rank in range(world)]
        for name, shards in lists.items():  # every shard read by exactly one rank
            assert sorted(u for d in dealt for u in d[name].urls) == sorted(shards.urls)
        assert all(any(d[name].urls for name in d) for d in dealt)  # no rank without work
        for rank, mine in enumerate(dealt):  # positions rank, rank + world, ... of the concatenated lists
            assert [u for name in lists for u in mine[name].urls] == everything[rank::world]
    with pytest.raises(EvaluationError, match="5 benchmark shard\\(s\\) for 6 devices"):
        data.rank_shards(0, 6)


def test_disparity_shards_are_accepted_and_unlabeled_ones_refused(tmp_path: Path) -> None:
    fabricate_benchmark(tmp_path, "nyuv2", 1)
    manifest = Manifest.load(tmp_path / "nyuv2")
    manifest.label_kind = "disparity"
    manifest.save(tmp_path / "nyuv2")
    assert benchmark_shards(["nyuv2"], tmp_path) == {"nyuv2": tmp_path / "nyuv2"}
    manifest.label_kind = None
    manifest.save(tmp_path / "nyuv2")
    with pytest.raises(EvaluationError, match="label_kind=None, but zero-shot evaluation needs ground truth"):
        benchmark_shards(["nyuv2"], tmp_path)


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
    code = run_eval(tiny[0], root, "kitti,nyuv2", "--checkpoint", str(student[0]), "--name", "teacher",
                    "--name", "student", "--output", str(output))  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.strip().splitlines()
    assert lines[0].startswith("| benchmark | model | AbsRel | δ1 | SqRel |") and lines[0].endswith("| images |")
    assert [line.split(" | ")[:2] for line in lines[2:]] == [
        ["| kitti", "teacher"], ["| kitti", "student"], ["| nyuv2", "teacher"], ["| nyuv2", "student"],
    ]  # fmt: skip
    report = json.loads(output.read_text())
    assert list(report) == ["models", "protocols", "input_size"] and list(report["protocols"]) == ["kitti", "nyuv2"]
    assert {name: entry["checkpoint"] for name, entry in report["models"].items()} == {
        "teacher": str(tiny[0]), "student": str(student[0]),
    }  # fmt: skip
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


def demo_sample() -> Sample:
    """The Middlebury motorcycle sample of the demo-eval reader (disparity ground truth in pixels)."""
    source = DemoEvalSource("unused")
    return source.load(source.items()[0])


def test_demo_protocol_adds_the_demo_set_only() -> None:
    protocols = load_protocols(DEMO_PROTOCOLS)
    demo = protocols["demo"]
    assert (demo.shards, demo.crop, demo.align) == ("demo/eval", "none", "disparity")
    assert {name: p for name, p in protocols.items() if name != "demo"} == PROTOCOLS  # not a default benchmark
    # The range (units of the median depth) keeps every Middlebury pixel with ground truth.
    sample = demo_sample()
    label, mask = torch.from_numpy(sample.label)[None], torch.from_numpy(sample.mask)[None]
    assert torch.equal(demo.valid_mask(depth_from_label(label, mask, ["disparity"]), mask), mask)


def test_eval_cli_on_the_demo_disparity_shard(
    tiny: tuple[Path, DepthAnything],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    build_shards("demo-eval", tmp_path, tmp_path / "demo" / "eval", image_format="png")  # as make shards-demo
    ckpt, model = tiny
    output = tmp_path / "metrics.json"
    code = run_eval(ckpt, tmp_path, "demo", "--protocols", str(DEMO_PROTOCOLS), "--output", str(output))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.strip().splitlines()
    assert len(lines) == 3 and lines[2].startswith("| demo | ") and lines[2].endswith(" | 1 |")
    assert not [r for r in caplog.records if "built by" in r.getMessage()]  # the protocol chose these shards
    metrics = json.loads(output.read_text())["metrics"]["demo"]
    # By hand: official inference path, disparity -> depth up to scale, the demo protocol.
    sample = demo_sample()
    pred = torch.from_numpy(model.infer_image(sample.image, input_size=INPUT_SIZE))[None]
    label, mask = torch.from_numpy(sample.label)[None], torch.from_numpy(sample.mask)[None]
    expected = score(load_protocols(DEMO_PROTOCOLS)["demo"], pred, depth_from_label(label, mask, ["disparity"]), mask)
    for key in METRIC_NAMES:
        assert metrics[key] == pytest.approx(expected[key], rel=1e-4, abs=1e-6), key
    assert metrics[IMAGES] == 1
