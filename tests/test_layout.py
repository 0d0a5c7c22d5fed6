"""The package's shape: dependencies point one way, models import nothing else of anydepth, files stay readable."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

from helpers import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "anydepth"
MAX_LINES = 450
LEAVES = ("losses", "metrics", "augment", "files", "images", "visualize")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """The layer a module belongs to: ``anydepth.<first part>`` (a subpackage or a top-level module)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "anydepth"


def imports(path: Path, top_level_only: bool) -> set[str]:
    """The anydepth modules ``path`` imports (at module level only, or anywhere)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("anydepth"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("anydepth")}
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_no_import_cycle_between_layers() -> None:
    """Module-level imports between the layers (subpackages and top-level modules) form a DAG."""
    graph: dict[str, set[str]] = {}
    for path in SOURCES:
        source = unit(module_name(path))
        graph.setdefault(source, set()).update(
            unit(m) for m in imports(path, top_level_only=True) if unit(m) not in (source, "anydepth")
        )
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as err:
        pytest.fail(f"import cycle between layers: {err.args[1]}")
    assert order.index("models") < order.index("checkpoints") < order.index("training") < order.index("cli")
    assert order.index("shards") < order.index("sources") and order.index("shards") < order.index("data")


@pytest.mark.parametrize("layer", ["models", *LEAVES])
def test_bottom_layers_import_nothing_above_them(layer: str) -> None:
    """models/ is pure torch (it reaches checkpoints/ only at call time, in from_checkpoint / save_checkpoint); the
    leaf modules import at most the shard schema (metrics: the label kinds)."""
    allowed = {"models": {"models"}, "metrics": {"metrics", "shards"}}.get(layer, {layer})
    paths = [p for p in SOURCES if unit(module_name(p)) == layer]
    assert paths
    for path in paths:
        above = {m for m in imports(path, top_level_only=True) if unit(m) not in allowed}
        assert not above, f"{path.relative_to(REPO_ROOT)} imports {sorted(above)}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_source_files_stay_readable_in_one_sitting(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(REPO_ROOT)} has {lines} lines; split it by concern"


def test_every_package_directory_is_a_regular_package() -> None:
    """A directory without ``__init__.py`` imports in a source checkout but is left out of a wheel."""
    missing = [
        d for d in PACKAGE.rglob("*") if d.is_dir() and d.name != "__pycache__" and not (d / "__init__.py").is_file()
    ]
    assert not missing, f"no __init__.py in {[str(d.relative_to(REPO_ROOT)) for d in missing]}"


def test_tests_mirror_the_package() -> None:
    """Every subpackage has a test directory of the same name."""
    packages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    missing = [name for name in packages if not (REPO_ROOT / "tests" / name).is_dir()]
    assert not missing, f"no tests/<name>/ for the subpackages {missing}"
