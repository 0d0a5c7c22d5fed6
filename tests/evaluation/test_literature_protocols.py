"""Protocols matching a literature: the paper's single DIODE column (``diode``), Marigold's published evaluation (the
``marigold-*`` set and its name), the KITTI crops (Eigen of KITTI, the KB crop before inference), depth-space
alignment and the disparity floor, on constructed cases."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from anydepth.cli.eval import run_benchmarks
from anydepth.data.transforms import EvalTransform
from anydepth.evaluation import (
    BENCHMARK_SETS,
    DEFAULT_BENCHMARKS,
    DEFAULT_PROTOCOLS_YAML,
    PROTOCOLS,
    BenchmarkDataModule,
    DepthEvaluator,
    EvaluationError,
    Protocol,
    benchmark_shards,
    load_protocols,
)
from anydepth.evaluation.data import _KBCropped
from anydepth.evaluation.protocols import CROPS, KB_CROP, expand_benchmarks, kb_crop
from anydepth.shards.schema import Sample

MARIGOLD = {  # name -> (shards, kb_crop, min depth, max depth, crop); Marigold's src/dataset/*_dataset.py
    "marigold-nyuv2": ("nyuv2", False, 1e-3, 10.0, "eigen"),
    "marigold-kitti": ("kitti", True, 1e-5, 80.0, "kitti-eigen"),
    "marigold-eth3d": ("eth3d", False, 1e-5, None, "none"),
    "marigold-scannet": ("scannet", False, 1e-3, 10.0, "none"),
    "marigold-diode": (("diode-indoor", "diode-outdoor"), False, 0.6, 350.0, "none"),
}


def test_the_paper_diode_column_is_one_protocol_on_the_indoor_split(tmp_path: Path) -> None:
    diode = PROTOCOLS["diode"]
    assert DEFAULT_BENCHMARKS == ("kitti", "nyuv2", "sintel", "ddad", "eth3d", "diode")
    assert (diode.shards, diode.min_depth, diode.max_depth, diode.crop, diode.align) == (
        "diode-indoor",
        0.6,
        350.0,
        "none",
        "disparity",
    )
    assert diode.shard_dir(tmp_path) == PROTOCOLS["diode-indoor"].shard_dir(tmp_path) == tmp_path / "diode-indoor"
    assert dataclasses.replace(diode, name="diode-indoor", shards=None, note="") == dataclasses.replace(
        PROTOCOLS["diode-indoor"], note=""
    )
    assert "issue #280" in diode.note


def test_the_marigold_set_has_marigolds_values() -> None:
    assert BENCHMARK_SETS == {"marigold": tuple(MARIGOLD)}
    for name, (shards, kb, low, high, crop) in MARIGOLD.items():
        p = PROTOCOLS[name]
        assert (p.shards, p.kb_crop, p.min_depth, p.max_depth, p.crop) == (shards, kb, low, high, crop), name
        assert (p.align, p.min_disparity, p.mode) == ("disparity", 1e-3, "relative")  # least_square_disparity
        assert p.note.startswith("Marigold:")
    assert not any(p.kb_crop for name, p in PROTOCOLS.items() if name != "marigold-kitti")
    # every member carries its evidence in the registry, and the set round-trips through the YAML layout
    registry = yaml.safe_load(DEFAULT_PROTOCOLS_YAML.read_text())
    assert registry["benchmark_sets"] == {"marigold": list(MARIGOLD)}
    assert registry["protocols"]["marigold-diode"]["shards"] == ["diode-indoor", "diode-outdoor"]


def test_a_set_name_expands_to_its_members() -> None:
    assert expand_benchmarks(["marigold"]) == list(MARIGOLD)
    assert expand_benchmarks(["kitti", "marigold", "marigold-kitti"]) == ["kitti", *MARIGOLD]  # each once
    assert expand_benchmarks(["a", "s"], {"s": ["b", "a"]}) == ["a", "b"]
    assert run_benchmarks("marigold", PROTOCOLS, "relative") == list(MARIGOLD)
    assert run_benchmarks("nyuv2, marigold-eth3d", PROTOCOLS, "relative") == ["nyuv2", "marigold-eth3d"]
    with pytest.raises(EvaluationError, match="metric mode"):
        run_benchmarks("marigold", PROTOCOLS, "metric")


def test_kitti_eigen_crop_matches_the_reference_integer_bounds() -> None:
    keep = PROTOCOLS["marigold-kitti"].crop_mask(*KB_CROP)  # Marigold crops the KB-cropped 352 x 1216 frame
    rows, cols = keep.any(dim=1).nonzero().flatten(), keep.any(dim=0).nonzero().flatten()
    assert (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1) == (117, 321, 43, 1172)
    assert int(keep.sum()) == (321 - 117) * (1172 - 43)
    assert CROPS["kitti-eigen"] != CROPS["eigen"] and CROPS["kitti-eigen"] != CROPS["garg"]


def _kitti_sample(height: int = 375, width: int = 1242) -> Sample:
    rows, cols = np.mgrid[0:height, 0:width]
    image = np.stack([rows % 256, cols % 256, (rows + cols) % 256], axis=-1).astype(np.uint8)
    label = (1.0 + rows + cols / 10000.0).astype(np.float32)
    mask = (rows + cols) % 3 > 0
    return Sample(key="k", image=image, label=label, mask=mask, meta={"label_kind": "depth"})


def test_kb_crop_cuts_image_and_ground_truth_alike() -> None:
    sample = _kitti_sample()
    cut = kb_crop(sample)
    top, left = 375 - 352, (1242 - 1216) // 2  # bottom rows, centred columns (BTS / ZoeDepth / Marigold)
    assert cut.image.shape == (352, 1216, 3) and cut.label.shape == cut.mask.shape == (352, 1216)
    assert np.array_equal(cut.image, sample.image[top:, left : left + 1216])
    assert np.array_equal(cut.label, sample.label[top:, left : left + 1216])
    assert np.array_equal(cut.mask, sample.mask[top:, left : left + 1216])
    assert float(cut.label[0, 0]) == pytest.approx(1.0 + top + left / 10000.0)
    with pytest.raises(EvaluationError, match="KB crop needs at least 352 x 1216"):
        kb_crop(_kitti_sample(300, 1242))
    out = _KBCropped(EvalTransform(70))(sample)  # what the data module feeds marigold-kitti
    assert out["original_size"].tolist() == [352, 1216] and out["label"].shape == (352, 1216)
    assert _KBCropped.decode_size is None  # full-scale decode: the crop offsets are in stored pixels


def test_depth_alignment_is_exact_for_affine_depth_and_disparity_alignment_for_affine_disparity(
    score: Callable[..., dict],
) -> None:
    depth = 1.0 + 8.0 * torch.rand(2, 48, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    depth = depth.float()
    by_depth = dataclasses.replace(PROTOCOLS["marigold-nyuv2"], align="depth")
    by_disparity = PROTOCOLS["marigold-nyuv2"]
    affine_depth = 0.3 * depth + 2.0  # a relative depth predictor's output: exact up to scale and shift of depth
    affine_disparity = 0.3 / depth + 2.0  # Depth Anything's: exact up to scale and shift of disparity
    assert score(by_depth, affine_depth, depth)["abs_rel"] == pytest.approx(0.0, abs=1e-5)
    assert score(by_disparity, affine_disparity, depth)["abs_rel"] == pytest.approx(0.0, abs=1e-5)
    assert score(by_disparity, affine_depth, depth)["abs_rel"] > 0.05  # the wrong space deforms the scene
    assert score(by_depth, affine_disparity, depth)["abs_rel"] > 0.05


def test_the_disparity_floor_caps_far_depth(score: Callable[..., dict]) -> None:
    depth = torch.full((1, 8, 8), 5.0)
    depth[0, :2] = 2000.0  # 16 of 64 pixels beyond 1000 m: valid without a cap
    depth[0, 4:] = 2.0
    exact = 1.0 / depth  # a perfect disparity
    assert score(PROTOCOLS["eth3d"], exact, depth)["abs_rel"] == pytest.approx(0.0, abs=1e-4)  # floor 1e-6
    marigold = score(PROTOCOLS["marigold-eth3d"], exact, depth)  # floor 1e-3: depth <= 1000 m, as Marigold's eval
    assert marigold["abs_rel"] == pytest.approx(16 / 64 * 0.5, rel=1e-4)
    assert PROTOCOLS["marigold-eth3d"].metric().min_disparity == 1e-3


def test_shards_may_list_several_directories(tmp_path: Path, data_root: tuple[Path, dict]) -> None:
    whole = PROTOCOLS["marigold-diode"]
    assert whole.shard_dirs(tmp_path) == [tmp_path / "diode-indoor", tmp_path / "diode-outdoor"]
    with pytest.raises(EvaluationError, match="reads 2 shard directories"):
        whole.shard_dir(tmp_path)
    assert whole.to_dict()["shards"] == ["diode-indoor", "diode-outdoor"]
    assert Protocol("x", 0.1, 1.0, shards=["a", "b"]).shards == ("a", "b")  # a YAML list
    with pytest.raises(EvaluationError, match="shards must be a directory path"):
        Protocol("x", 0.1, 1.0, shards=["a", ""])
    root, _ = data_root  # diode-indoor built, diode-outdoor not
    assert benchmark_shards(["diode"], root) == {"diode": root / "diode-indoor"}
    with pytest.raises(EvaluationError, match="marigold-eth3d: expected"):  # the set expands in the data module
        BenchmarkDataModule(["nyuv2", "marigold"], str(root))
    with pytest.raises(EvaluationError, match="marigold-diode: expected .*diode-outdoor"):
        benchmark_shards(["marigold-diode"], root)
    both = load_protocols(overrides={"marigold-diode": {"shards": ["diode-indoor", "kitti"]}})
    assert benchmark_shards(["marigold-diode"], root, both) == {
        "marigold-diode": [root / "diode-indoor", root / "kitti"]
    }


def test_new_fields_are_checked_and_overridable() -> None:
    with pytest.raises(EvaluationError, match="kb_crop must be true or false"):
        Protocol("x", 0.1, 1.0, kb_crop="yes")  # type: ignore[arg-type]
    with pytest.raises(EvaluationError, match="min_disparity must be > 0"):
        Protocol("x", 0.1, 1.0, min_disparity=0.0)
    mine = load_protocols(overrides={"kitti": {"kb_crop": True, "crop": "kitti-eigen"}})
    assert mine["kitti"].kb_crop and mine["kitti"].to_dict()["kb_crop"] is True
    assert "kb_crop" not in PROTOCOLS["kitti"].to_dict() and "min_disparity" not in PROTOCOLS["kitti"].to_dict()


def test_a_relative_model_is_refused_depth_alignment(tiny: tuple[Path, object]) -> None:
    _, model = tiny
    protocols = load_protocols(overrides={"marigold-nyuv2": {"align": "depth"}})
    with pytest.raises(EvaluationError, match="align depth .* predicts disparity"):
        DepthEvaluator.from_model(model, protocols, ["marigold-nyuv2"])
    DepthEvaluator.from_model(model, PROTOCOLS, list(MARIGOLD))  # the set as shipped: disparity alignment
