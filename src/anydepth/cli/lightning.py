"""``anydepth fit|validate|test|predict``: LightningCLI over any anydepth LightningModule and DataModule."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from anydepth.cli.common import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, PROG, USER_ERRORS, UsageError
from anydepth.locks import OutputLock

LIGHTNING_SUBCOMMANDS: dict[str, str] = {
    "fit": "LightningCLI: train a --model on --data (Trainer.fit)",
    "validate": "LightningCLI: one validation pass (Trainer.validate)",
    "test": "LightningCLI: one test pass (Trainer.test), e.g. zero-shot evaluation with configs/eval/test.yaml",
    "predict": "LightningCLI: predictions of a --model on --data (Trainer.predict)",
}
"""The subcommands :func:`main` hands to :class:`lightning.pytorch.cli.LightningCLI`."""


OPTIMIZER_FLAGS = ("--optimizer", "--lr_scheduler")
"""LightningCLI's optimiser options, which anydepth does not offer (see :func:`run_lightning`)."""

RUN_ID_IGNORES = ("config", "ckpt_path", "trainer.logger", "trainer.devices", "trainer.num_nodes")
"""Keys left out of a run's config digest: how a run was given or where it resumes from, not what it trains."""

RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")
"""Environment variables through which launchers (Lightning's, torchrun, srun, jsrun) tell a process its rank."""


def run_lightning(argv: Sequence[str]) -> int:
    """``anydepth fit|validate|test|predict ...``: run LightningCLI on ``argv`` (subcommand first).

    Models are any ``lightning.LightningModule`` and data any ``lightning.LightningDataModule``, named by
    ``class_path`` (subclass mode, so one command serves the evaluator and the training modules); the parsed config
    is saved to the Trainer's log directory (``config.yaml``, overwritten). ``fit`` also:

    - holds :class:`~anydepth.locks.OutputLock` on the run directory (``trainer.default_root_dir``) and every
      checkpoint directory outside it for the whole run, in the launching process only (ranks that a launcher
      started share their parent's run), so a second ``fit`` into the same directories stops at once;
    - names the wandb run after the run name and the config (:func:`pin_run_ids`): a requeued job continues its
      run, a changed recipe starts another;
    - refuses LightningCLI's ``--optimizer``/``--lr_scheduler``: the training modules build the paper's AdamW with
      named encoder/decoder groups and the linear decay (Sec. 4.1), which a generic optimiser would drop; their
      rates and decay are ``--model.init_args.*`` options.

    Returns 0 when the run finished, LightningCLI's exit code for ``--help`` (0) and parse errors (2), and 2 with one
    ``anydepth <command>: error: ...`` line for user errors (missing shards, bad values, a locked run directory).
    """
    from lightning import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    from anydepth.evaluation import BenchmarkDataModule, EvaluationError

    argv = list(argv)
    command = argv[0] if argv else "?"
    locks = contextlib.ExitStack()
    user_errors = (*USER_ERRORS, EvaluationError)

    class AnydepthCLI(LightningCLI):
        def _parse_ckpt_path(self) -> None:
            """The config comes from the command line and its YAML files only; ``--ckpt_path`` restores the run's
            state in the Trainer (LightningCLI would first unpickle the file to merge its hyperparameters)."""

        def before_instantiate_classes(self) -> None:
            if self.subcommand == "fit":
                pin_run_ids(self.config["fit"])

        def instantiate_classes(self) -> None:
            try:
                super().instantiate_classes()
            except Exception as err:
                usage = configuration_error(err, user_errors)
                if usage is None:
                    raise
                raise usage from err

        def before_fit(self) -> None:
            if launching_process():
                for directory in run_directories(self.trainer):
                    locks.enter_context(OutputLock(directory, f"{PROG} fit"))

        def before_test(self) -> None:
            # too few shards for the devices: one error before DDP starts (not one per rank after)
            if isinstance(self.datamodule, BenchmarkDataModule):
                self.datamodule.check_world_size(self.trainer.world_size)

    try:
        refuse_optimizer_flags(command, argv)
        check_config_files(argv)
        with locks, warnings.catch_warnings():
            # main(argv) is how anydepth passes its own command line (even when it equals sys.argv[1:])
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
            AnydepthCLI(
                LightningModule,
                LightningDataModule,
                subclass_mode_model=True,
                subclass_mode_data=True,
                save_config_kwargs={"overwrite": True},
                parser_kwargs={"prog": PROG},
                auto_configure_optimizers=False,
                args=argv,
            )
    except SystemExit as exit_:  # --help, parse errors, Ctrl+C (Lightning exits with 1)
        return exit_.code if isinstance(exit_.code, int) else (EXIT_OK if exit_.code is None else EXIT_USAGE)
    except Exception as err:
        user_error = _user_error(err, user_errors)
        if user_error is None:
            raise
        print(f"{PROG} {command}: error: {user_error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # before the Trainer runs (Lightning handles it during a run)
        print(f"{PROG} {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def refuse_optimizer_flags(command: str, argv: Sequence[str]) -> None:
    """``UsageError`` for LightningCLI's ``--optimizer``/``--lr_scheduler`` (in any spelling) on the command line."""
    given = sorted({f for arg in argv for f in OPTIMIZER_FLAGS if arg == f or arg.startswith((f"{f}=", f"{f}."))})
    if given:
        raise UsageError(
            f"{'/'.join(given)} is not supported: the training modules build the paper's AdamW with named "
            "encoder/decoder learning-rate groups and the linear decay (Sec. 4.1); change them with "
            "--model.init_args.encoder_lr, decoder_lr_multiplier, weight_decay and betas"
        )


def check_config_files(argv: Sequence[str]) -> None:
    """``UsageError`` naming the file for a ``--config``/``-c`` file that is missing or not valid YAML (jsonargparse
    reports the YAML error without the file name)."""
    import yaml

    for flag, value in zip(argv, [*argv[1:], None]):
        if flag.startswith("--config="):
            value = flag.split("=", 1)[1]
        elif flag not in ("--config", "-c") or value is None:
            continue
        path = Path(value)
        if not path.is_file():
            raise UsageError(f"--config {value}: no such file")
        try:
            yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise UsageError(f"--config {value} is not valid YAML: {' '.join(str(err).split())}") from None


def configuration_error(err: Exception, user_errors: tuple[type[BaseException], ...]) -> UsageError | None:
    """A failure to build the model, data or Trainer from the config, as ``UsageError`` with the message of the
    error at the root of ``err``'s chain when that is a value, type, file or Lightning configuration error
    (jsonargparse wraps a constructor's error in its own, which lists every class it tried). None when the root is
    already a user error (reported as it is) or anything else (a bug: keep the traceback)."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    root = err
    while root.__cause__ is not None and isinstance(root.__cause__, Exception):
        root = root.__cause__
    config_kinds = (ValueError, TypeError, OSError, MisconfigurationException)
    if isinstance(root, user_errors) or not isinstance(root, config_kinds):
        return None
    return UsageError(f"invalid configuration: {root}")


def launching_process() -> bool:
    """Whether this process started the run (rank 0, before or without a launcher), not a rank started for it."""
    return all(os.environ.get(name, "0") == "0" for name in RANK_VARIABLES)


def run_directories(trainer: Any) -> list[Path]:
    """The directories a fit writes: ``trainer.default_root_dir`` and every ``ModelCheckpoint.dirpath`` outside it."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    root = Path(trainer.default_root_dir).resolve()
    directories = [root]
    for callback in trainer.callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            path = Path(callback.dirpath).resolve()
            if not any(path == d or path.is_relative_to(d) for d in directories):
                directories.append(path)
    return directories


def config_digest(config: Any) -> str:
    """8 hex digits of the SHA-1 of a parsed config (a jsonargparse ``Namespace``) without ``RUN_ID_IGNORES``."""
    values = config.clone()
    for key in RUN_ID_IGNORES:
        if key in values:
            del values[key]
    text = json.dumps(values.as_dict(), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def pin_run_ids(config: Any) -> None:
    """Give every :class:`~anydepth.training.loggers.RunLogger` of ``config`` that has a ``name`` but no ``id``
    the id :func:`~anydepth.training.loggers.run_id` of ``<name>-<config digest>``: the same command (a requeued or
    resubmitted job) continues its wandb run; a run with another recipe, data or model gets its own. The id lands in
    the saved ``config.yaml``."""
    from jsonargparse import Namespace

    from anydepth.training.loggers import RunLogger, run_id

    entries = config.trainer.logger if isinstance(config.trainer.logger, list) else [config.trainer.logger]
    for entry in entries:
        if not isinstance(entry, Namespace) or not _is_subclass(entry.get("class_path"), RunLogger):
            continue
        args = entry.init_args
        if args.get("name") and not (args.get("id") or args.get("version")):
            args.id = run_id(f"{args.name}-{config_digest(config)}")


def _is_subclass(class_path: str | None, base: type) -> bool:
    """Whether the class at ``class_path`` (parsed, so importable) is ``base`` or a subclass of it."""
    if not class_path:
        return False
    module, _, name = class_path.rpartition(".")
    found = getattr(importlib.import_module(module), name, None)
    return isinstance(found, type) and issubclass(found, base)


def _user_error(err: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """``err`` or the exception it was raised from, when one is a user error: jsonargparse reports a failing
    ``--model``/``--data`` constructor as a ValueError raised from the constructor's exception."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


def add_lightning_parsers(subparsers: Any) -> None:
    """List ``fit``, ``validate``, ``test`` and ``predict`` in ``anydepth --help`` (``main`` hands them to
    LightningCLI before argparse parses them; their options are in ``anydepth <command> --help``)."""
    for name, text in LIGHTNING_SUBCOMMANDS.items():
        parser = subparsers.add_parser(
            name,
            help=text,
            add_help=False,
            description=f"{text}. Options: anydepth {name} --help (LightningCLI).",
        )
        parser.add_argument("args", nargs=argparse.REMAINDER, help="LightningCLI arguments")
        parser.set_defaults(func=lambda args: run_lightning([args.command, *args.args]))
