"""The ``anydepth`` command line: the tools ``anydepth infer``, ``convert``, ``shards``, ``eval`` and
``pseudo-label``, and the LightningCLI subcommands ``anydepth fit``, ``validate``, ``test`` and ``predict``.

Every tool is one subparser registered by an ``add_<name>_parser(subparsers)`` function
that sets ``func`` (``args -> exit code``) as a parser default; ``main`` parses, dispatches and
turns user mistakes (``USER_ERRORS``) into one ``anydepth <command>: error: ...`` message and
exit code 2, like argparse's own usage errors.

``anydepth fit|validate|test|predict ARGS`` hands ``ARGS`` to :class:`lightning.pytorch.cli.LightningCLI`
(:func:`run_lightning`): any LightningModule as ``--model`` and any LightningDataModule as ``--data``
(``class_path`` + ``init_args``, usually from ``--config cfg.yaml``), ``--trainer.*`` for the Trainer, e.g.
``anydepth test --config configs/eval/test.yaml --model.init_args.checkpoint ckpt.pth`` (zero-shot evaluation,
DDP with ``--trainer.devices N``). Those four are registered in the parser only so ``anydepth --help`` lists
them; ``main`` routes them to LightningCLI before argparse sees the rest of the line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from anydepth.cli.common import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, PROG, USER_ERRORS
from anydepth.cli.convert import add_convert_parser
from anydepth.cli.eval import add_eval_parser
from anydepth.cli.export import add_export_parser
from anydepth.cli.infer import add_infer_parser
from anydepth.cli.lightning import LIGHTNING_SUBCOMMANDS, add_lightning_parsers, run_lightning
from anydepth.cli.pseudo_label import add_pseudo_label_parser
from anydepth.cli.shards import add_shards_parser

SUBCOMMANDS: tuple[Callable[[Any], argparse.ArgumentParser | None], ...] = (
    add_infer_parser,
    add_convert_parser,
    add_shards_parser,
    add_eval_parser,
    add_pseudo_label_parser,
    add_export_parser,
    add_lightning_parsers,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``anydepth`` parser with one subparser per entry of ``SUBCOMMANDS``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Depth Anything style monocular depth models. infer, convert, shards, eval and pseudo-label are tools; "
            "fit, validate, test and predict run LightningCLI (jsonargparse: --config cfg.yaml, --model, --data, "
            "--trainer.*; later configs override earlier ones), e.g. anydepth fit --config configs/trainer/ddp.yaml "
            "--config configs/recipes/v1/teacher.yaml --config configs/model/vits.yaml (hardware, recipe, model "
            "preset), "
            "anydepth test --config configs/eval/test.yaml --model.init_args.checkpoint CKPT "
            "--data.init_args.data_root DIR (zero-shot evaluation; --trainer.devices N runs DDP)."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``anydepth``; returns the exit code (console scripts call ``sys.exit(main())``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in LIGHTNING_SUBCOMMANDS:
        return run_lightning(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and argparse usage errors
        return exit_.code if isinstance(exit_.code, int) else (EXIT_OK if exit_.code is None else EXIT_USAGE)
    try:
        return args.func(args)
    except USER_ERRORS as err:
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
