"""``python -m anydepth.cli``: the ``anydepth`` command."""

from anydepth.cli.main import main

raise SystemExit(main())
