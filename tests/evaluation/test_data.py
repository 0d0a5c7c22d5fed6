"""Benchmark shards: where each benchmark is read from, one clear error for every missing or partial directory,
and the data module's dealing of shards to ranks."""

from __future__ import annotations

from pathlib import Path

import pytest

from anydepth.evaluation import BenchmarkDataModule, EvaluationError, benchmark_shards, load_protocols
from anydepth.shards.manifest import Manifest
from anydepth.shards.schema import Sample

from helpers.fabricate import fabricate_benchmark

SCANNET = {"scannet": {"min_depth": 0.001, "max_depth": 10.0}}  # a user's benchmark without a reader of its name


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


def test_missing_shards_name_the_reader_that_builds_them(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError) as info:
        benchmark_shards(["nyuv2-metric", "hypersim-metric", "scannet"], tmp_path, load_protocols(overrides=SCANNET))
    message = str(info.value)  # metric protocols read the shards of their reader's kind
    assert f"--source nyuv2 --root <nyuv2 dataset root> --out {tmp_path / 'nyuv2'}`" in message
    assert f"--source hypersim --root <hypersim dataset root> --split val --out {tmp_path / 'hypersim-val'}`" in message
    assert f"--source <reader kind> --root <scannet dataset root> --out {tmp_path / 'scannet'}`" in message


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
    with pytest.raises(EvaluationError, match="benchmarks nyuv2, kitti, diode-indoor hold 5 shard\\(s\\) for 6 ranks"):
        data.rank_shards(0, 6)


def test_disparity_shards_are_accepted_and_unlabeled_ones_refused(tmp_path: Path) -> None:
    fabricate_benchmark(tmp_path, "nyuv2", 1)
    manifest = Manifest.load(tmp_path / "nyuv2")
    manifest.label_kind = "disparity"
    manifest.save(tmp_path / "nyuv2")
    assert benchmark_shards(["nyuv2"], tmp_path) == {"nyuv2": tmp_path / "nyuv2"}
    with pytest.raises(EvaluationError, match="label_kind='disparity', but metric evaluation compares metres"):
        benchmark_shards(["nyuv2-metric"], tmp_path)  # the same shards: no metres to compare with
    manifest.label_kind = None
    manifest.save(tmp_path / "nyuv2")
    with pytest.raises(EvaluationError, match="label_kind=None, but zero-shot evaluation needs ground truth"):
        benchmark_shards(["nyuv2"], tmp_path)


def test_data_module_settings_and_arguments_are_checked(data_root: tuple[Path, dict[str, list[Sample]]]) -> None:
    root, _ = data_root
    with pytest.raises(EvaluationError, match="num_workers must be >= 0, got -1"):
        BenchmarkDataModule(["nyuv2"], str(root), num_workers=-1)
    with pytest.raises(EvaluationError, match="data_root is required"):
        BenchmarkDataModule(["nyuv2"])
    with pytest.raises(EvaluationError, match="not with a {benchmark: shards} mapping"):
        BenchmarkDataModule({"nyuv2": str(root / "nyuv2")}, str(root))
    data = BenchmarkDataModule("kitti, nyuv2", str(root), num_workers=0)  # a comma list, as from the command line
    assert data.benchmarks == ["kitti", "nyuv2"]
    loaders = data.test_dataloader()  # no Trainer: one process reads every shard
    assert [loader.dataset.shards.urls for loader in loaders] == [s.urls for s in data.shard_lists().values()]
