"""Training infrastructure: the hardware configs ``configs/trainer/{cpu,ddp,fsdp}.yaml`` parse and build under
LightningCLI and compose with the stage configs; Lightning picks its SLURMEnvironment (auto-requeue on the sbatch
scripts' signal) from SLURM_* variables alone; FSDP wraps timm's ViT blocks and its "full" checkpoints are read by
``DepthAnything.from_checkpoint``; :class:`RunLogger` (wandb run id from the name, offline without credentials)
logs an offline run; the SLURM scripts pass ``bash -n`` and resume from the newest checkpoint. Offline, CPU only
except the ``gpu`` test (a real FSDP fit)."""

from __future__ import annotations

import logging
import os
import re
import signal
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import wandb
import yaml
from jsonargparse import ArgumentParser, Namespace
from lightning import LightningDataModule, LightningModule
from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy, Strategy
from timm.models.vision_transformer import Block
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing
from torch.distributed.fsdp import FullyShardedDataParallel, ShardingStrategy
from torch.distributed.fsdp.wrap import ModuleWrapPolicy

from anydepth import DepthAnything
from anydepth.training.loggers import MAX_RUN_ID_LENGTH, RunLogger, has_wandb_credentials, run_id

from helpers import REPO_ROOT, TINY, ddp_run
from helpers.lightning_modules import RandomImages, TinyDepthModule

ROOT = REPO_ROOT
TRAINER = ROOT / "configs" / "trainer"
SLURM_SCRIPTS = sorted((ROOT / "configs" / "slurm").glob("*.sbatch"))
BORING = [
    "--model=lightning.pytorch.demos.boring_classes.BoringModel",
    "--data=lightning.pytorch.demos.boring_classes.BoringDataModule",
    "--trainer.logger=false",
]
SLURM_ENV = {
    "SLURM_NTASKS": "1",
    "SLURM_NTASKS_PER_NODE": "1",
    "SLURM_NNODES": "1",
    "SLURM_NODEID": "0",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_JOB_ID": "4242",
    "SLURM_JOB_NAME": "anydepth-teacher",
    "SLURM_NODELIST": "gpu[01-02]",
}

pytestmark = pytest.mark.filterwarnings(
    "ignore:LightningCLI's args parameter", "ignore:No seed found", "ignore::FutureWarning"
)


class ParseOnlyCLI(LightningCLI):
    """LightningCLI that parses (configs, class paths, types) and instantiates nothing."""

    def instantiate_classes(self) -> None:
        pass


def cli(*args: str, build: bool = True) -> LightningCLI:
    """LightningCLI as ``anydepth fit`` sets it up (any model/data class path), without running a subcommand."""
    return (LightningCLI if build else ParseOnlyCLI)(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=None,
        run=False,
        args=list(args),
    )


def build_strategy(config: Namespace) -> Strategy:
    """The ``trainer.strategy`` of a parsed config, instantiated alone (FSDP needs CUDA for a whole Trainer)."""
    parser = ArgumentParser()
    parser.add_subclass_arguments(Strategy, "strategy")
    return parser.instantiate_classes(parser.parse_object({"strategy": config.trainer.strategy})).strategy


@pytest.fixture
def slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    """A (non-interactive) SLURM task's environment; MASTER_* set so whatever Lightning writes there is undone."""
    for name in SLURM_ENV:
        monkeypatch.setenv(name, SLURM_ENV[name])
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")


@pytest.fixture
def no_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("SLURM_")]:
        monkeypatch.delenv(name)


# ---------------------------------------------------------------- hardware configs


@pytest.mark.parametrize("name", ["cpu", "ddp", "fsdp"])
def test_trainer_config_parses(name: str) -> None:
    path = TRAINER / f"{name}.yaml"
    assert list(yaml.safe_load(path.read_text())) == ["trainer"], "hardware configs hold trainer keys only"
    config = cli(*BORING, "--config", str(path), build=False).config
    assert config.trainer.num_nodes == 1 and config.trainer.gradient_clip_val in (1.0, None)


@pytest.mark.parametrize("stage", ["teacher", "student"])
def test_trainer_configs_compose_with_stage_configs(stage: str) -> None:
    """The sbatch scripts' command line parses: hardware config + stage config + model preset + SLURM and data
    overrides."""
    shards = "labeled_shards" if stage == "student" else "train_shards"
    for name in ("ddp", "fsdp"):
        config = cli(
            "--config",
            str(TRAINER / f"{name}.yaml"),
            "--config",
            str(ROOT / "configs" / "recipes" / "v1" / f"{stage}.yaml"),
            "--config",
            str(ROOT / "configs" / "model" / "vits.yaml"),
            "--trainer.num_nodes",
            "2",
            "--trainer.devices",
            "4",
            f"--data.init_args.{shards}",
            "[a,b]",
            build=False,
        ).config
        assert (config.trainer.num_nodes, str(config.trainer.devices)) == (2, "4")  # devices parses as "4": fine
        assert config.trainer.precision == "bf16-mixed" and config.trainer.max_epochs >= 1
        assert config.data.init_args[shards] == ["a", "b"]
        assert config.trainer.logger.class_path == "anydepth.training.loggers.RunLogger"


def test_cpu_config_builds(no_slurm: None) -> None:
    trainer = cli(*BORING, "--config", str(TRAINER / "cpu.yaml")).trainer
    assert trainer.accelerator.__class__.__name__ == "CPUAccelerator" and trainer.num_devices == 1
    assert (trainer.gradient_clip_val, trainer.gradient_clip_algorithm) == (1.0, "norm")


def test_ddp_config_builds_without_slurm(no_slurm: None) -> None:
    """Outside SLURM, no SLURM plugin is forced on the run (a SLURMEnvironment plugin would fail here)."""
    trainer = cli(*BORING, "--config", str(TRAINER / "ddp.yaml"), "--trainer.accelerator", "cpu").trainer
    assert isinstance(trainer.strategy, DDPStrategy)
    assert trainer.strategy._ddp_kwargs["find_unused_parameters"] is False
    assert isinstance(trainer.strategy.cluster_environment, LightningEnvironment)
    assert trainer.precision == "bf16-mixed"


def sbatch_signal(path: Path) -> str:
    match = re.search(r"^#SBATCH --signal=(\w+)@\d+$", path.read_text(), re.MULTILINE)
    assert match, f"{path.name}: no #SBATCH --signal=SIG@seconds"
    return match[1]


@pytest.mark.parametrize("name", ["cpu", "ddp"])
def test_slurm_environment_detected(name: str, slurm: None) -> None:
    """SLURM variables alone select SLURMEnvironment, with auto-requeue on the signal the training scripts ask for."""
    trainer = cli(*BORING, "--config", str(TRAINER / f"{name}.yaml"), "--trainer.accelerator", "cpu").trainer
    environment = trainer._accelerator_connector.cluster_environment
    assert isinstance(environment, SLURMEnvironment) and environment.auto_requeue
    assert (environment.global_rank(), environment.world_size(), environment.job_id()) == (0, 1, 4242)
    for script in ("teacher.sbatch", "student.sbatch"):
        assert signal.Signals[sbatch_signal(ROOT / "configs" / "slurm" / script)] == environment.requeue_signal
    if name == "ddp":
        assert trainer.strategy.cluster_environment is environment


def test_fsdp_config_wraps_vit_blocks() -> None:
    config = cli(*BORING, "--config", str(TRAINER / "fsdp.yaml"), build=False).config
    strategy = build_strategy(config)
    assert isinstance(strategy, FSDPStrategy)
    policy = strategy.kwargs["auto_wrap_policy"]
    assert isinstance(policy, ModuleWrapPolicy) and policy._module_classes == {Block}
    assert strategy.kwargs["use_orig_params"] is True  # Lightning's default; the student mixes frozen and trainable
    assert strategy.sharding_strategy == ShardingStrategy.FULL_SHARD and strategy._state_dict_type == "full"
    assert strategy._activation_checkpointing_kwargs == {}
    assert config.trainer.precision == "bf16-mixed"
    assert config.trainer.gradient_clip_val == 1.0  # clipped through the FSDP root (DepthTrainingModule)
    encoder = DepthAnything(**TINY).pretrained
    assert len(encoder.blocks) == TINY["depth"] and all(type(b) is Block for b in encoder.blocks)

    with_ckpt = cli(
        *BORING,
        "--config",
        str(TRAINER / "fsdp.yaml"),
        "--trainer.strategy.init_args.activation_checkpointing_policy",
        "[timm.models.vision_transformer.Block]",
        build=False,
    ).config
    checkpointing = build_strategy(with_ckpt)._activation_checkpointing_kwargs["auto_wrap_policy"]
    assert checkpointing._module_classes == {Block}


def test_ddp_config_trains_depth_anything_on_two_processes(tmp_path: Path) -> None:
    """The shipped DDP settings (find_unused_parameters=False) in a real 2-process run (CPU, gloo) of a module on the
    training base, which freezes the parameters no forward uses (mask_token, refinenet4.resConfUnit1)."""
    args = [
        "fit",
        "--config",
        str(TRAINER / "ddp.yaml"),
        "--trainer.accelerator",
        "cpu",
        "--trainer.devices",
        "2",
        "--model",
        "helpers.lightning_modules.TinyDepthModule",
        "--data",
        "helpers.lightning_modules.RandomImages",
        "--trainer.max_steps",
        "3",
        "--trainer.logger",
        "false",
        "--trainer.enable_checkpointing",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.default_root_dir",
        str(tmp_path),
    ]
    ddp_run(args, tmp_path, max_steps=3, timeout=120, PYTHONPATH=str(ROOT / "tests"))


@pytest.fixture
def process_group(tmp_path: Path) -> Iterator[None]:
    """A one-process gloo group (FSDP needs one even on one device)."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_fsdp_full_checkpoint_is_read_by_anydepth(tmp_path: Path, process_group: None) -> None:
    """The shipped FSDP settings on CPU (one rank): the module wrapped per ViT block with activation checkpointing,
    the state dict taken as FSDPStrategy takes it for a "full" checkpoint: plain names that from_checkpoint reads."""
    config = cli(*BORING, "--config", str(TRAINER / "fsdp.yaml"), build=False).config
    strategy = build_strategy(config)
    module = TinyDepthModule()
    expected = {k: v.clone() for k, v in module.model.state_dict().items()}
    wrapped = FullyShardedDataParallel(
        module, device_id=torch.device("cpu"), sharding_strategy=strategy.sharding_strategy, **strategy.kwargs
    )
    apply_activation_checkpointing(wrapped, auto_wrap_policy=ModuleWrapPolicy({Block}))
    assert sum(isinstance(m, FullyShardedDataParallel) for m in wrapped.modules()) == 1 + 2 * TINY["depth"]
    wrapped(torch.rand(1, 3, 28, 28)).mean().backward()
    strategy.model = wrapped
    checkpoint = {"state_dict": strategy.lightning_module_state_dict()}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "fsdp.ckpt")
    assert not [k for k in checkpoint["state_dict"] if "_fsdp_wrapped_module" in k or "_checkpoint_wrapped" in k]
    loaded = DepthAnything.from_checkpoint(tmp_path / "fsdp.ckpt")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in expected.items())


@pytest.mark.gpu
def test_fsdp_fit_on_gpu(tmp_path: Path) -> None:
    """A real FSDP fit with the shipped config (activation checkpointing on, clipping by the module): last.ckpt is
    one file that DepthAnything.from_checkpoint reads."""
    cli_ = LightningCLI(
        TinyDepthModule,
        RandomImages,
        save_config_callback=None,
        args=[
            "fit",
            "--config",
            str(TRAINER / "fsdp.yaml"),
            "--trainer.devices",
            "1",
            "--trainer.max_steps",
            "3",
            "--trainer.logger",
            "false",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.gradient_clip_val",
            "1.0",
            "--trainer.default_root_dir",
            str(tmp_path),
            "--trainer.strategy.init_args.activation_checkpointing_policy",
            "[timm.models.vision_transformer.Block]",
            "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
            "--trainer.callbacks.dirpath",
            str(tmp_path / "checkpoints"),
            "--trainer.callbacks.save_last",
            "true",
        ],
    )
    assert isinstance(cli_.trainer.strategy, FSDPStrategy) and cli_.trainer.global_step == 3
    model = DepthAnything.from_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert model.config.embed_dim == TINY["embed_dim"]


# ---------------------------------------------------------------- RunLogger


def test_run_id_from_name() -> None:
    assert run_id("teacher-vits") == "teacher-vits"
    assert run_id("student/vit l:#2") == "student-vit-l--2"
    long = run_id("x" * 100)
    assert len(long) == MAX_RUN_ID_LENGTH and long != run_id("x" * 99) and re.fullmatch(r"x+-[0-9a-f]{8}", long)


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No wandb key anywhere and no WANDB_MODE; returns the (empty) netrc file wandb would read."""
    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL", "WANDB_MODE"):
        monkeypatch.delenv(name, raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("")
    monkeypatch.setenv("NETRC", str(netrc))
    return netrc


def test_wandb_credentials(no_credentials: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not has_wandb_credentials()
    no_credentials.write_text("machine example.org login user password secret\n")
    assert not has_wandb_credentials()
    no_credentials.write_text("machine api.wandb.ai login user password " + "k" * 40 + "\n")
    assert has_wandb_credentials()
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    assert not has_wandb_credentials()
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert has_wandb_credentials()


def test_run_logger_offline_without_credentials(
    no_credentials: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(logging.getLogger("lightning.pytorch"), "propagate", True)
    with caplog.at_level(logging.INFO):
        logger = RunLogger(name="teacher-vits", project="anydepth", save_dir="outputs")
    assert logger._wandb_init["id"] == "teacher-vits" and logger._wandb_init["resume"] == "allow"
    assert logger._wandb_init["mode"] == "offline"
    assert len([r for r in caplog.records if "offline" in r.getMessage()]) == 1
    assert RunLogger(name="teacher-vits", id="abc123")._wandb_init["id"] == "abc123"  # explicit id wins
    monkeypatch.setenv("WANDB_MODE", "disabled")  # the environment decides
    assert RunLogger(name="teacher-vits")._wandb_init["mode"] is None
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert RunLogger(name="teacher-vits")._wandb_init["mode"] is None  # online


def wandb_records(path: Path) -> Iterator[Any]:
    """The protobuf records of a ``.wandb`` transaction log: a 7-byte header (":W&B", magic, version), then
    LevelDB-log records (crc32 u32, length u16, type u8: 1 full, 2 first, 3 middle, 4 last) in 32 KiB blocks.
    wandb 0.31 ships no Python reader (its datastore moved to the Go core)."""
    from wandb.proto import wandb_internal_pb2

    block, header = 32768, 7
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a wandb transaction log"
    pos, chunks = 7, b""
    while pos + header <= len(data):
        if block - pos % block < header:  # a block's tail too short for a header is zero padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + header])
        chunks += data[pos + header : pos + header + length]
        pos += header + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            chunks = b""
            yield record


def finished_run_records(path: Path, timeout: float = 60.0) -> list[Any]:
    """The records of ``path`` once its ``exit`` record is there: wandb's core process writes the log
    asynchronously, so ``finish()`` may return before the file holds everything (seen under CI load)."""
    deadline = time.monotonic() + timeout
    while True:
        records = list(wandb_records(path))
        if any(r.HasField("exit") for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


class MetricsModel(BoringModel):
    """BoringModel logging the training modules' metric names."""

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        output = super().training_step(batch, batch_idx)
        self.log("train/loss", output["loss"])
        return output

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log_dict({"val/abs_rel": 0.25, "val/d1": 0.75})


def test_run_logger_offline_fit(no_credentials: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A fit logged by RunLogger from YAML, without credentials: an offline run whose id is the name and whose
    history holds the metrics. WANDB_BASE_URL points at a closed local port, so nothing could reach a network."""
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    wandb.teardown()  # wandb keeps process-wide settings from any earlier test that set it up; start from this env
    save_dir = tmp_path / "outputs"
    logger = (
        "{class_path: anydepth.training.loggers.RunLogger, init_args: "
        f"{{name: teacher-vits, project: anydepth, save_dir: {save_dir}}}}}"
    )
    fit = cli(
        "--model",
        f"{__name__}.MetricsModel",
        "--data",
        "lightning.pytorch.demos.boring_classes.BoringDataModule",
        "--config",
        str(TRAINER / "cpu.yaml"),
        "--trainer.logger",
        logger,
        "--trainer.max_epochs",
        "2",
        "--trainer.limit_train_batches",
        "2",
        "--trainer.limit_val_batches",
        "1",
        "--trainer.log_every_n_steps",
        "1",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_checkpointing",
        "false",
        "--trainer.default_root_dir",
        str(tmp_path),
    )
    try:
        fit.trainer.fit(fit.model, datamodule=fit.datamodule)
    finally:
        fit.trainer.logger.experiment.finish()
    (run,) = save_dir.glob("wandb/offline-run-*-teacher-vits")
    records = finished_run_records(next(run.glob("run-*.wandb")))
    (info,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (info.run_id, info.display_name, info.project) == ("teacher-vits", "teacher-vits", "anydepth")
    # wandb 0.31 stores a flat key as a one-element nested_key (nested dicts as several, shown joined by ".")
    history = [
        {item.key or ".".join(item.nested_key): item.value_json for item in r.history.item}
        for r in records
        if r.HasField("history")
    ]
    assert len([h for h in history if "train/loss" in h]) == 4
    assert [(h["val/abs_rel"], h["val/d1"]) for h in history if "val/abs_rel" in h] == [("0.25", "0.75")] * 2
    assert any(r.HasField("exit") for r in records)


def test_logger_false_turns_logging_off() -> None:
    """``--trainer.logger false`` after a stage-style config with a RunLogger: no logger at all."""
    logger = "{class_path: anydepth.training.loggers.RunLogger, init_args: {name: teacher-vits, project: anydepth}}"
    trainer = cli(
        *BORING, "--config", str(TRAINER / "cpu.yaml"), "--trainer.logger", logger, "--trainer.logger", "false"
    ).trainer
    assert trainer.logger is None and trainer.loggers == []


# ---------------------------------------------------------------- SLURM scripts


def test_slurm_scripts_exist() -> None:
    names = ["metric.sbatch", "pseudo_label.sbatch", "seg.sbatch", "shards.sbatch", "student.sbatch", "teacher.sbatch"]
    assert [p.name for p in SLURM_SCRIPTS] == names


GPU_SCRIPTS = [p for p in SLURM_SCRIPTS if p.name != "shards.sbatch"]  # shards.sbatch: a CPU array job (its own test)


@pytest.mark.parametrize("script", GPU_SCRIPTS, ids=lambda p: p.name)
def test_slurm_script_syntax(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "#SBATCH --requeue" in text and re.search(r"^#SBATCH --ntasks-per-node=(\d+)$", text, re.MULTILINE)
    assert re.search(r"^#SBATCH --ntasks-per-node=(\d+)\n#SBATCH --gpus-per-node=\1$", text, re.MULTILINE)


def run_sbatch(script: str, workdir: Path, **env: str) -> list[str]:
    """Run a training script as SLURM would, with an ``srun`` that prints its arguments; returns them."""
    bin_dir = workdir / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "srun").write_text('#!/bin/bash\nprintf "%s\\n" "$@"\n')
    (bin_dir / "srun").chmod(0o755)
    slurm = {
        "SLURM_SUBMIT_DIR": str(workdir),
        "SLURM_JOB_ID": "7",
        "SLURM_NNODES": "2",
        "SLURM_NTASKS_PER_NODE": "4",
        "SLURM_CPUS_PER_TASK": "10",
    }
    run_env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(workdir), **slurm, **env}
    out = subprocess.run(
        ["bash", str(ROOT / "configs" / "slurm" / script), "--trainer.max_epochs", "3"],
        env=run_env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.splitlines()[1:]  # after the job line


def test_training_script_resumes_from_newest_checkpoint(tmp_path: Path) -> None:
    args = run_sbatch("teacher.sbatch", tmp_path, ENCODER="vits", TRAIN_SHARDS="[a,b]")
    assert args[args.index("fit") :] == [
        "fit",
        "--config",
        "configs/trainer/ddp.yaml",
        "--config",
        "configs/recipes/v1/teacher.yaml",
        "--config",
        "configs/model/vits.yaml",
        "--trainer.default_root_dir",
        "outputs/teacher-vits",
        "--trainer.logger.init_args.name",
        "teacher-vits",
        "--trainer.logger.init_args.save_dir",
        "outputs/teacher-vits",
        "--trainer.callbacks.init_args.dirpath",
        "outputs/teacher-vits/checkpoints",
        "--trainer.num_nodes",
        "2",
        "--trainer.devices",
        "4",
        "--ckpt_path",
        "last",
        "--data.init_args.train_shards",
        "[a,b]",
        "--trainer.max_epochs",
        "3",
    ]
    run_dir = tmp_path / "outputs" / "student-vitl"
    (run_dir / "checkpoints").mkdir(parents=True)
    hpc, last = run_dir / "hpc_ckpt_1.ckpt", run_dir / "checkpoints" / "last.ckpt"
    hpc.touch()
    last.touch()
    os.utime(hpc, (1e9, 1e9))  # an older SIGUSR1 checkpoint, then a node failure: last.ckpt is newer
    args = run_sbatch("student.sbatch", tmp_path)
    assert args[args.index("--ckpt_path") + 1] == "outputs/student-vitl/checkpoints/last.ckpt"
    os.utime(last, (1e9 - 1, 1e9 - 1))  # a time-limit requeue: the SIGUSR1 checkpoint is the newest
    args = run_sbatch("student.sbatch", tmp_path)
    assert args[args.index("--ckpt_path") + 1] == "outputs/student-vitl/hpc_ckpt_1.ckpt"
