"""``anydepth fit|validate|test|predict`` hand over to LightningCLI: zero-shot evaluation through ``anydepth test
--config configs/eval/test.yaml`` gives the metrics of ``evaluate()``, in process and as a real 2-process DDP run on
CPU (gloo), on fabricated benchmark shards with a tiny checkpoint (offline)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from anydepth.cli import main
from anydepth.cli.lightning import LIGHTNING_SUBCOMMANDS
from anydepth.evaluation import IMAGES, evaluate, format_markdown_table
from anydepth.metrics import METRIC_NAMES

from helpers import REPO_ROOT, ddp_run
from helpers.fabricate import fabricate_benchmark, tiny_checkpoint

CONFIG = REPO_ROOT / "configs" / "eval" / "test.yaml"
BENCHMARKS = ["nyuv2", "kitti"]
INPUT_SIZE = 28


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, dict[str, float]]]:
    """A tiny checkpoint, benchmark shards (nyuv2: 1 shard of 2; kitti: 3 shards of 1, so with 2 ranks one rank has
    no nyuv2 shard) and the reference metrics of ``evaluate()`` on them."""
    tmp = tmp_path_factory.mktemp("lightning_cli")
    ckpt = tmp / "tiny.pth"
    tiny_checkpoint(ckpt)
    root = tmp / "data"
    fabricate_benchmark(root, "nyuv2", 2, per_shard=2, seed=0)
    fabricate_benchmark(root, "kitti", 3, per_shard=1, seed=1)
    reference = evaluate(
        ckpt, BENCHMARKS, root, input_size=INPUT_SIZE, num_workers=0, accelerator="cpu", progress=False
    )
    return ckpt, root, reference


def cli_args(ckpt: Path, root: Path, out: Path, *extra: str, benchmarks: str = "[nyuv2,kitti]") -> list[str]:
    """``anydepth test`` with the shipped config on the fabricated data; outputs under ``out``."""
    return [
        "test",
        "--config",
        str(CONFIG),
        "--model.init_args.checkpoint",
        str(ckpt),
        "--model.init_args.output",
        str(out / "metrics.json"),
        "--data.init_args.data_root",
        str(root),
        "--data.init_args.benchmarks",
        benchmarks,
        "--data.init_args.input_size",
        str(INPUT_SIZE),
        "--data.init_args.num_workers",
        "0",
        "--trainer.accelerator",
        "cpu",
        "--trainer.default_root_dir",
        str(out / "run"),
        *extra,
    ]


def assert_same_metrics(got: dict, expected: dict, rel: float) -> None:
    assert list(got) == list(expected)
    for name, metrics in expected.items():
        assert got[name][IMAGES] == metrics[IMAGES], name
        for key in METRIC_NAMES:
            assert got[name][key] == pytest.approx(metrics[key], rel=rel, abs=1e-7), (name, key)


def markdown_tables(stdout: str) -> list[list[str]]:
    """The Markdown tables in ``stdout`` (each: its header, separator and rows)."""
    lines, tables = stdout.splitlines(), []
    for i, line in enumerate(lines):
        if line.startswith("| benchmark |"):
            end = i
            while end < len(lines) and lines[end].startswith("| "):
                end += 1
            tables.append(lines[i:end])
    return tables


def test_help_lists_the_lightning_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("infer", "convert", "shards", "eval", *LIGHTNING_SUBCOMMANDS):
        assert f"    {name} " in out, name
    assert "configs/eval/test.yaml" in out
    assert main(["test", "--help"]) == 0  # LightningCLI's own help
    out = capsys.readouterr().out
    assert "--model" in out and "--data" in out and "--trainer.devices" in out


def test_lightning_test_matches_evaluate(
    setup: tuple[Path, Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt, root, reference = setup
    args = cli_args(ckpt, root, tmp_path, "--model.init_args.benchmarks", "[nyuv2,kitti]", "--trainer.devices", "1")
    assert main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    # The Markdown table is printed once, last, after Lightning's own table of the logged <benchmark>/<metric>.
    tables = markdown_tables(out)
    assert tables == [format_markdown_table(reference).splitlines()]
    assert out.rstrip().endswith(tables[0][-1])
    assert "nyuv2/abs_rel" in out and "kitti/d1" in out
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert_same_metrics(report["metrics"], reference, rel=1e-6)
    assert report["checkpoint"] == str(ckpt) and report["input_size"] == INPUT_SIZE
    assert list(report["protocols"]) == BENCHMARKS
    assert (tmp_path / "run" / "config.yaml").is_file()  # LightningCLI saved the parsed config


def test_model_takes_the_data_modules_benchmarks_and_refuses_others(
    setup: tuple[Path, Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt, root, reference = setup
    # The shipped config leaves the model's benchmarks unset: it scores the data module's, in its order.
    assert main(cli_args(ckpt, root, tmp_path, "--trainer.devices", "1", benchmarks="[kitti]")) == 0
    assert markdown_tables(capsys.readouterr().out)[0][2].startswith("| kitti |")
    kitti = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert_same_metrics(kitti, {"kitti": reference["kitti"]}, rel=1e-6)

    args = cli_args(ckpt, root, tmp_path, "--model.init_args.benchmarks", "[kitti,nyuv2]", "--trainer.devices", "1")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "anydepth test: error: the model scores benchmarks ['kitti', 'nyuv2'] but the data module reads" in err


def test_user_errors_are_one_line(
    setup: tuple[Path, Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt, root, _ = setup
    assert main(cli_args(ckpt, root, tmp_path, benchmarks="[nyuv2,sintel]")) == 2
    err = capsys.readouterr().err
    assert err.startswith("anydepth test: error: benchmark shards missing or incomplete")
    assert f"--out {root / 'sintel'}" in err
    # the shipped config's placeholder checkpoint says what to set
    assert main(["test", "--config", str(CONFIG), "--data.init_args.data_root", str(root)]) == 2
    assert "checkpoint <set --model.init_args.checkpoint> does not exist" in capsys.readouterr().err
    assert main(["test", "--config", str(CONFIG), "--model.init_args.bogus", "1"]) == 2  # LightningCLI parse error
    capsys.readouterr()
    # fewer shards (4) than devices: one message before any DDP process starts
    assert main(cli_args(ckpt, root, tmp_path, "--trainer.strategy", "ddp", "--trainer.devices", "5")) == 2
    assert "anydepth test: error: benchmarks nyuv2, kitti hold 4 shard(s) for 5 ranks" in capsys.readouterr().err


@pytest.mark.slow
def test_ddp_two_processes_match_single_process(setup: tuple[Path, Path, dict], tmp_path: Path) -> None:
    """A real ``--trainer.strategy ddp --trainer.devices 2`` run on CPU (gloo) in a subprocess: every shard read by
    one rank, metric states summed across ranks, so the metrics are the single-process ones."""
    ckpt, root, reference = setup
    args = cli_args(
        ckpt,
        root,
        tmp_path,
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--trainer.callbacks=[]",
        "--trainer.enable_progress_bar",
        "false",
    )
    start = time.perf_counter()
    proc = ddp_run(list(args), tmp_path, timeout=120)
    elapsed = time.perf_counter() - start
    assert markdown_tables(proc.stdout) == [format_markdown_table(reference).splitlines()]  # rank 0 only
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert_same_metrics(report["metrics"], reference, rel=1e-5)  # same up to the float summation order
    print(f"DDP run: {elapsed:.1f} s")
