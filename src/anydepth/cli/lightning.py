"""``anydepth fit|validate|test|predict``: LightningCLI over any anydepth LightningModule and DataModule."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from anydepth.cli.common import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, PROG, USER_ERRORS

LIGHTNING_SUBCOMMANDS: dict[str, str] = {
    "fit": "LightningCLI: train a --model on --data (Trainer.fit)",
    "validate": "LightningCLI: one validation pass (Trainer.validate)",
    "test": "LightningCLI: one test pass (Trainer.test), e.g. zero-shot evaluation with configs/eval/test.yaml",
    "predict": "LightningCLI: predictions of a --model on --data (Trainer.predict)",
}
"""The subcommands :func:`main` hands to :class:`lightning.pytorch.cli.LightningCLI`."""


def run_lightning(argv: Sequence[str]) -> int:
    """``anydepth fit|validate|test|predict ...``: run LightningCLI on ``argv`` (subcommand first).

    Models are any ``lightning.LightningModule`` and data any ``lightning.LightningDataModule``, named by
    ``class_path`` (subclass mode, so one command serves the evaluator now and training modules later); the parsed
    config is saved to the Trainer's log directory (``config.yaml``, overwritten); ``--optimizer`` and
    ``--lr_scheduler`` stay available for ``fit`` (LightningCLI's ``auto_configure_optimizers`` default; a model's
    own ``configure_optimizers`` is used when they are not given). Returns 0 when the run finished,
    LightningCLI's exit code for ``--help`` (0) and parse errors (2), and 2 with one
    ``anydepth <command>: error: ...`` line for user errors (e.g. missing benchmark shards).
    """
    from lightning import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    from anydepth.evaluation import BenchmarkDataModule, EvaluationError

    class AnydepthCLI(LightningCLI):
        def before_test(self) -> None:
            # too few shards for the devices: one error before DDP starts (not one per rank after)
            if isinstance(self.datamodule, BenchmarkDataModule):
                self.datamodule.check_world_size(self.trainer.world_size)

    argv = list(argv)
    command = argv[0] if argv else "?"
    try:
        with warnings.catch_warnings():
            # main(argv) is how anydepth passes its own command line (even when it equals sys.argv[1:])
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
            AnydepthCLI(
                LightningModule,
                LightningDataModule,
                subclass_mode_model=True,
                subclass_mode_data=True,
                save_config_kwargs={"overwrite": True},
                parser_kwargs={"prog": PROG},
                args=argv,
            )
    except SystemExit as exit_:  # --help, parse errors, Ctrl+C (Lightning exits with 1)
        return exit_.code if isinstance(exit_.code, int) else (EXIT_OK if exit_.code is None else EXIT_USAGE)
    except Exception as err:
        user_error = _user_error(err, (*USER_ERRORS, EvaluationError))
        if user_error is None:
            raise
        print(f"{PROG} {command}: error: {user_error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # before the Trainer runs (Lightning handles it during a run)
        print(f"{PROG} {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


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
