"""Protocols: the maths of ranges, crops and alignment on constructed cases, the metric protocols (nothing aligned),
the registry (package data, one source of the protocols and the default benchmarks of each mode), YAML overrides and
the protocol tables."""

from __future__ import annotations

import configparser
import dataclasses
import math
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

import anydepth.evaluation
from anydepth.cli import build_parser
from anydepth.cli.eval import run_benchmarks
from anydepth.evaluation import (
    CROPS,
    DEFAULT_BENCHMARKS,
    DEFAULT_PROTOCOLS_YAML,
    IMAGES,
    METRIC_BENCHMARKS,
    PROTOCOLS,
    EvaluationError,
    Protocol,
    check_mode,
    default_benchmarks,
    load_protocols,
    protocol_table,
)
from anydepth.metrics import depth_from_label
from anydepth.shards.schema import Sample

from helpers import REPO_ROOT

PAPER_BENCHMARKS = ("kitti", "nyuv2", "sintel", "ddad", "eth3d", "diode")
"""Table 2 of the paper, in its order (one DIODE column)."""
MARIGOLD = ("marigold-nyuv2", "marigold-kitti", "marigold-eth3d", "marigold-scannet", "marigold-diode")
METRIC_PROTOCOLS = {  # name -> (shards, crop, max depth); min depth 1e-3, align none
    "nyuv2-metric": ("nyuv2", "eigen", 10.0),
    "kitti-metric": ("kitti", "garg", 80.0),
    "hypersim-metric": ("hypersim-val", "none", 20.0),
    "vkitti2-metric": ("vkitti2-val", "garg", 80.0),
}
RELATIVE = [name for name, protocol in PROTOCOLS.items() if protocol.mode == "relative"]


def depth_in_range(protocol: Protocol, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Log-uniform depth strictly inside the protocol's range (up to 200 m when it has no cap)."""
    low = max(protocol.min_depth, 0.05) * 1.05
    high = (protocol.max_depth if protocol.max_depth is not None else 200.0) * 0.95
    u = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.exp(math.log(low) + u * (math.log(high) - math.log(low))).float()


# ---------------------------------------------------------------------------------------------- protocol maths


@pytest.mark.parametrize("name", RELATIVE)
def test_affine_disparity_is_perfect_under_every_relative_protocol(name: str, score: Callable[..., dict]) -> None:
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
def test_constant_multiplicative_error_without_alignment(
    factor: float, abs_rel: float, d1: float, score: Callable[..., dict]
) -> None:
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


@pytest.mark.parametrize("name", METRIC_PROTOCOLS)
def test_metric_protocols_score_metres_as_they_are(name: str, score: Callable[..., dict]) -> None:
    protocol = PROTOCOLS[name]
    depth = depth_in_range(protocol, (2, 96, 128), seed=2) / 1.2  # 1.1 x depth stays inside the range
    perfect = score(protocol, depth.clone(), depth)
    assert perfect["abs_rel"] == perfect["rmse"] == perfect["log10"] == 0.0 and perfect["d1"] == 1.0
    off = score(protocol, 1.1 * depth, depth)  # a 10 % scale error: nothing aligns it away
    assert off["abs_rel"] == pytest.approx(0.1, rel=1e-5) and off["d1"] == 1.0
    assert off["log10"] == pytest.approx(math.log10(1.1), rel=1e-4)
    assert off["rmse_log"] == pytest.approx(math.log(1.1), rel=1e-4)
    keep = protocol.crop_mask(96, 128)
    assert off["rmse"] == pytest.approx(sum(0.1 * float((d[keep] ** 2).mean().sqrt()) for d in depth) / 2, rel=1e-5)
    # the prediction is clamped to the range: anything beyond the cap scores as the cap
    capped = score(protocol, torch.full_like(depth, protocol.max_depth), depth)
    assert score(protocol, torch.full_like(depth, 1e6), depth) == capped
    # the crop and range are the protocol's: garbage outside them does not count
    pred = depth.clone()
    pred[:, ~protocol.crop_mask(96, 128)] = 1e3
    assert score(protocol, pred, depth)["abs_rel"] == 0.0


def test_metric_protocols_of_the_registry(tmp_path: Path) -> None:
    for name, (shards, crop, max_depth) in METRIC_PROTOCOLS.items():
        protocol = PROTOCOLS[name]
        assert (protocol.shards, protocol.crop, protocol.min_depth, protocol.max_depth) == (
            shards,
            crop,
            1e-3,
            max_depth,
        )
        assert protocol.align == "none" and protocol.mode == "metric"
    assert METRIC_BENCHMARKS == ("nyuv2-metric", "kitti-metric")  # Tables 3 and 4
    for name in METRIC_BENCHMARKS:  # the zero-shot benchmark's test shards, crop and range, scored without alignment
        metric, relative = PROTOCOLS[name], PROTOCOLS[name.removesuffix("-metric")]
        assert metric.shard_dir(tmp_path) == relative.shard_dir(tmp_path)
        assert dataclasses.replace(relative, name=name, align="none", note="", shards=metric.shards) == (
            dataclasses.replace(metric, note="")
        )
    assert [name for name in PROTOCOLS if name not in RELATIVE] == list(METRIC_PROTOCOLS)


def test_modes_never_mix_in_one_run(score: Callable[..., dict]) -> None:
    assert default_benchmarks("relative") == DEFAULT_BENCHMARKS and default_benchmarks("metric") == METRIC_BENCHMARKS
    check_mode(["kitti", "demo"], PROTOCOLS, "relative")
    check_mode(list(METRIC_PROTOCOLS), PROTOCOLS, "metric")
    with pytest.raises(EvaluationError, match=r"metric mode: benchmark\(s\) nyuv2 have relative protocols"):
        check_mode(["nyuv2-metric", "nyuv2"], PROTOCOLS, "metric")
    with pytest.raises(EvaluationError, match=r"relative mode: benchmark\(s\) kitti-metric have metric protocols"):
        check_mode(["kitti", "kitti-metric"], PROTOCOLS, "relative")
    with pytest.raises(EvaluationError, match="mode must be one of relative, metric"):
        default_benchmarks("absolute")
    # A metric model under a relative protocol: its depth, inverted, is aligned like any disparity.
    protocol = PROTOCOLS["nyuv2"]
    depth = depth_in_range(protocol, (2, 48, 64), seed=3) / 1.2
    assert score(protocol, protocol.as_disparity(1.1 * depth), depth)["abs_rel"] == pytest.approx(0.0, abs=1e-5)
    clamped = protocol.as_disparity(torch.tensor([0.0, 20.0], dtype=torch.float64))  # to the range, 1e-3-10 m
    assert clamped.tolist() == pytest.approx([1000.0, 0.1])


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
    for name in ("sintel", "eth3d", "diode", "diode-indoor", "diode-outdoor"):
        assert bool(PROTOCOLS[name].crop_mask(7, 9).all())
    assert not bool(PROTOCOLS["ddad"].crop_mask(7, 9).all())  # Garg, as the paper's ZoeDepth fork scores DDAD


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
        False,
        False,
        True,
        True,
        False,
        False,
    ]
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


# ---------------------------------------------------------------------------------------------- the registry


def test_the_registry_holds_every_protocol_and_the_default_benchmarks() -> None:
    assert DEFAULT_BENCHMARKS == PAPER_BENCHMARKS
    halves = ["diode-indoor", "diode-outdoor"]  # demo: a protocol, not a default
    assert list(PROTOCOLS) == [*PAPER_BENCHMARKS, *halves, *MARIGOLD, *METRIC_PROTOCOLS, "demo"]
    assert all(isinstance(p, Protocol) and p.name == name and p.note for name, p in PROTOCOLS.items())
    registry = yaml.safe_load(DEFAULT_PROTOCOLS_YAML.read_text())
    assert registry["default_benchmarks"] == list(DEFAULT_BENCHMARKS)
    assert registry["metric_benchmarks"] == list(METRIC_BENCHMARKS)
    assert registry["protocols"] == {name: p.to_dict() for name, p in PROTOCOLS.items()}  # every field explicit
    # package data inside the package (installed with it), not a file of the source checkout
    assert Path(str(DEFAULT_PROTOCOLS_YAML)).parent == Path(anydepth.evaluation.__file__).parent
    setup = configparser.ConfigParser()
    setup.read(REPO_ROOT / "setup.cfg")
    assert "evaluation/*.yaml" in setup["options.package_data"]["anydepth"].split()
    assert not list((REPO_ROOT / "configs").rglob("protocols.yaml")), "a second protocol registry under configs/"


def test_the_cli_the_lightning_config_and_the_makefile_take_the_registry_defaults() -> None:
    args = build_parser().parse_args(["eval", "--checkpoint", "c.pth", "--data-root", "d"])
    assert args.benchmarks is None and args.mode is None  # the checkpoint's head picks the registry's list
    assert run_benchmarks(None, PROTOCOLS, "relative") == list(DEFAULT_BENCHMARKS)
    assert run_benchmarks(None, PROTOCOLS, "metric") == list(METRIC_BENCHMARKS)
    assert run_benchmarks(" kitti-metric,", PROTOCOLS, "metric") == ["kitti-metric"]
    config = yaml.safe_load((REPO_ROOT / "configs" / "eval" / "test.yaml").read_text())
    assert config["data"]["init_args"]["benchmarks"] == list(DEFAULT_BENCHMARKS)
    makefile = (REPO_ROOT / "Makefile").read_text()
    if "kitti,nyuv2" in makefile:
        pytest.skip("the Makefile still hard-codes the benchmark list (BENCHMARKS ?= kitti,nyuv2,...)")
    assert re.search(r"^BENCHMARKS \?=\s*$", makefile, re.MULTILINE), "make eval should default to the CLI's list"


def test_demo_protocol_is_registered_but_not_a_default(demo_sample: Sample) -> None:
    demo = PROTOCOLS["demo"]
    assert (demo.shards, demo.crop, demo.align) == ("demo/eval", "none", "disparity")
    assert "demo" not in DEFAULT_BENCHMARKS
    # The range (units of the median depth) keeps every Middlebury pixel with ground truth.
    label, mask = torch.from_numpy(demo_sample.label)[None], torch.from_numpy(demo_sample.mask)[None]
    assert torch.equal(demo.valid_mask(depth_from_label(label, mask, ["disparity"]), mask), mask)


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


def test_readme_shows_the_current_protocol_tables() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert protocol_table() in readme
    assert protocol_table({name: PROTOCOLS[name] for name in METRIC_PROTOCOLS}) in readme


def test_protocol_table_lists_the_paper_benchmarks_by_default() -> None:
    lines = protocol_table().splitlines()
    assert lines[0].startswith("| benchmark | min depth (m) | max depth (m) | crop |")
    assert [line.split(" | ")[0] for line in lines[2:]] == [f"| `{name}`" for name in DEFAULT_BENCHMARKS]
    assert "| `eth3d` | 0.001 | none | none | disparity |" in protocol_table()
    every = protocol_table(PROTOCOLS).splitlines()
    assert [line.split(" | ")[0] for line in every[2:]] == [f"| `{name}`" for name in PROTOCOLS]
