"""The ``anydepth`` command line: one module per command (:mod:`.infer`, :mod:`.convert`, :mod:`.shards`,
:mod:`.eval`, :mod:`.pseudo_label`, :mod:`.lightning` for fit / validate / test / predict), shared options in
:mod:`.common`, the parser and dispatch in :mod:`.main`."""

from anydepth.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
