"""``anydepth fit`` as a user meets it: one run per run directory, wandb run ids that follow the config, the paper's
optimiser kept, and one clear line (exit code 2, no traceback) for every mistake of a fuzz corpus."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch  # noqa: F401  (its log handler binds stderr at import: the session's, not a test's capture)
import pytest
import wandb
import yaml

from anydepth.cli.main import main
from anydepth.locks import OutputLock
from anydepth.sources.build import build_shards

from helpers import REPO_ROOT

MODEL = "--model.init_args.model.init_args."


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic labeled train shards (2 of 4 scenes) and one validation shard."""
    tmp = tmp_path_factory.mktemp("fit")
    scenes = dict(size=(36, 48))
    build_shards("demo-train", tmp, tmp / "train", samples_per_shard=4, source_kwargs=dict(num_scenes=8, **scenes))
    build_shards("demo-train", tmp, tmp / "val", split="val", source_kwargs=dict(num_scenes=1, **scenes))
    return {"train": tmp / "train", "val": tmp / "val", "root": tmp}


def fit_args(shards: dict[str, Path], run: Path, *extra: str, steps: int = 1) -> list[str]:
    """The demo teacher recipe on the CPU config, tiny model, run directory ``run`` (checkpoints inside)."""
    return [
        *("fit", "--config", str(REPO_ROOT / "configs/trainer/cpu.yaml")),
        *("--config", str(REPO_ROOT / "configs/demo/teacher.yaml")),
        *("--data.init_args.train_shards", f"[{shards['train']}]", "--data.init_args.val_shards", f"[{shards['val']}]"),
        *("--data.init_args.size", "28", "--data.init_args.num_workers", "0"),
        *(f"{MODEL}embed_dim", "32", f"{MODEL}num_heads", "2", f"{MODEL}features", "16"),
        *(f"{MODEL}out_channels", "[8,16,32,32]", "--trainer.max_steps", str(steps)),
        *("--trainer.limit_val_batches", "0", "--trainer.enable_progress_bar", "false", "--trainer.logger", "false"),
        *("--trainer.default_root_dir", str(run), "--trainer.callbacks.init_args.dirpath", str(run / "checkpoints")),
        *extra,
    ]


def one_error_line(stderr: str, command: str = "fit") -> str:
    """The single ``anydepth <command>: error: ...`` line of ``stderr`` (no traceback anywhere)."""
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith(f"anydepth {command}: error: ")]
    assert len(errors) == 1, stderr[-3000:]
    return errors[0]


# ---------------------------------------------------------------- one run per directory


def test_fit_into_a_held_run_directory_stops_at_once(
    shards: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another process holding the run directory: one line naming its pid, nothing written, the lock then free."""
    run = tmp_path / "run"
    with OutputLock(run, "anydepth fit"):  # a second open file description conflicts like another process
        assert main(fit_args(shards, run)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"pid {os.getpid()}" in line and "in use by another anydepth fit" in line
    assert not (run / "checkpoints").exists() and not (run / "config.yaml").exists()
    assert main(fit_args(shards, run)) == 0  # released by the failed run too
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_a_checkpoint_directory_outside_the_run_directory_is_held_too(
    shards: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "shared-checkpoints"
    with OutputLock(elsewhere, "anydepth fit"):
        args = fit_args(shards, tmp_path / "run", "--trainer.callbacks.init_args.dirpath", str(elsewhere))
        assert main(args) == 2
    assert str(elsewhere) in one_error_line(capsys.readouterr().err)


@pytest.mark.slow
def test_two_concurrent_fits_into_one_run_directory(shards: dict, tmp_path: Path) -> None:
    """Two real processes started together on one run directory: one trains, the other stops with one line."""
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "anydepth.cli", *fit_args(shards, run, "--trainer.max_epochs", "-1", steps=150)]
    procs = [subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = sorted((proc.wait(timeout=300), proc.stderr.read()) for proc in procs if proc.stderr)
    (ok, _), (refused, stderr) = results
    assert (ok, refused) == (0, 2), results
    assert "in use by another anydepth fit (pid " in one_error_line(stderr)


# ---------------------------------------------------------------- wandb run ids


def logged_run_id(run: Path) -> str:
    config = yaml.safe_load((run / "config.yaml").read_text())
    return config["trainer"]["logger"]["init_args"]["id"]


def test_wandb_run_id_is_stable_across_requeues_and_follows_the_config(
    shards: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same command twice (a requeue, resuming from last.ckpt) logs to one run id; another learning rate or
    other data to another. The id starts with the run name and is recorded in the saved config."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    wandb.teardown()  # wandb keeps process-wide settings from earlier tests; start from this environment
    logger = "{class_path: anydepth.training.loggers.RunLogger, init_args: {name: teacher-tiny, save_dir: %s}}"

    def fit(run: Path, steps: int, *extra: str) -> str:
        args = fit_args(shards, run, "--trainer.logger", logger % run, "--ckpt_path", "last", *extra, steps=steps)
        assert main(args) == 0
        wandb.finish()  # the CLI's process would end here; in-process, close the run before the next one
        return logged_run_id(run)

    run = tmp_path / "run"
    first = fit(run, 1)
    assert first.startswith("teacher-tiny-") and len(first) == len("teacher-tiny-") + 8
    assert fit(run, 1) == first  # a requeue: the same command continues the same run
    assert fit(run, 1, "--model.init_args.encoder_lr", "1e-5") != first  # another recipe, another run
    assert fit(run, 1, "--data.init_args.seed", "5") != first  # another data order


# ---------------------------------------------------------------- the optimiser


@pytest.mark.parametrize("flag", ["--optimizer=AdamW", "--optimizer.lr", "--lr_scheduler"])
def test_optimizer_and_scheduler_flags_are_refused(
    flag: str, shards: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """LightningCLI's generic optimiser would drop the paper's named encoder/decoder groups: refused, naming the
    model options that change the rates instead."""
    args = fit_args(shards, tmp_path, *([flag] if "=" in flag else [flag, "1"]))
    assert main(args) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "not supported" in line and "--model.init_args.encoder_lr" in line


# ---------------------------------------------------------------- the fuzz corpus


def corrupt_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


FUZZ: dict[str, tuple[list[str], str]] = {
    "negative encoder lr": (["--model.init_args.encoder_lr", "-1"], "encoder_lr"),
    "zero decoder multiplier": (["--model.init_args.decoder_lr_multiplier", "0"], "decoder_lr_multiplier"),
    "missing shard directory": (["--data.init_args.train_shards", "[{tmp}/nowhere]"], "train_shards"),
    "empty shard directory": (["--data.init_args.train_shards", "[{empty}]"], "manifest.json"),
    "glob matching nothing": (["--data.init_args.val_shards", "[{tmp}/none-*.tar]"], "val_shards"),
    "missing DINOv2 weights": (["--model.init_args.pretrained", "{tmp}/dinov2.pth"], "dinov2.pth"),
    "random DINOv2 weights": (["--model.init_args.pretrained", "{random}"], "random.pth"),
    "empty DINOv2 weights": (["--model.init_args.pretrained", "{empty_file}"], "empty.pth"),
    "zero devices": (["--trainer.devices", "0"], "devices"),
    "unreadable resume checkpoint": (["--ckpt_path", "{random}"], "random.pth"),
    "missing resume checkpoint": (["--ckpt_path", "{tmp}/gone.ckpt"], "gone.ckpt"),
}


@pytest.mark.parametrize("case", sorted(FUZZ))
def test_fuzz_corpus_gives_one_clear_line(
    case: str, shards: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    paths = {
        "tmp": tmp_path,
        "empty": tmp_path / "empty",
        "random": corrupt_file(tmp_path / "random.pth", os.urandom(4096)),
        "empty_file": corrupt_file(tmp_path / "empty.pth", b""),
    }
    extra, named = FUZZ[case]
    assert main(fit_args(shards, tmp_path / "run", *(arg.format(**paths) for arg in extra))) == 2
    assert named in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "override, named",
    [
        (["--data.init_args.batch_size", "many"], "batch_size"),
        (["--trainer.max_steps", "1.5"], "max_steps"),
        (["--model.init_args.model.init_args.version", "v9"], "version"),
        (["--data", "anydepth.data.datamodules.NoSuchModule"], "NoSuchModule"),
    ],
)
def test_bad_values_are_parse_errors_without_traceback(
    override: list[str], named: str, shards: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(fit_args(shards, tmp_path, *override)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and named in err


def test_malformed_yaml_config_is_a_parse_error_without_traceback(
    shards: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer: [unclosed\n")
    assert main(fit_args(shards, tmp_path, "--config", str(bad))) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "bad.yaml" in err
