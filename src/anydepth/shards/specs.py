"""Shard specs: the ``list[str]`` by which every stage names shards, resolved to paths and sample counts.

Each spec is a shard directory holding ``manifest.json`` (or the manifest file itself), a brace pattern
(``data/nyu/shard-{000000..000009}.tar``), a glob (``data/nyu/*.tar``) or one tar path. The manifest gives each
shard's sample count, hence the epoch length, without reading the shards; shards named by a pattern take their counts
from a ``manifest.json`` beside them when there is one.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import braceexpand

from anydepth.shards.manifest import MANIFEST_NAME, Manifest

__all__ = ["ShardList", "ShardSpecError", "resolve_shards"]


@dataclass(frozen=True)
class ShardList:
    """Shard paths and their sample counts (None where no manifest names the shard)."""

    urls: tuple[str, ...]
    counts: tuple[int | None, ...]

    @property
    def num_samples(self) -> int | None:
        return None if any(c is None for c in self.counts) else sum(c for c in self.counts if c is not None)


def _manifest_counts(directory: Path, cache: dict[Path, dict[str, int]]) -> dict[str, int]:
    if directory not in cache:
        manifest_path = directory / MANIFEST_NAME
        cache[directory] = (
            {s.name: s.samples for s in Manifest.load(manifest_path).shards} if manifest_path.is_file() else {}
        )
    return cache[directory]


class ShardSpecError(ValueError):
    """Shard specs that name no readable shards (a missing file, a pattern matching nothing, an empty list)."""


def resolve_shards(specs: str | Sequence[str]) -> ShardList:
    """Expand shard specs (see the module docstring) in order into paths and manifest sample counts; raises
    ``ShardSpecError`` (or ``ManifestError`` for a directory without a valid manifest) naming the spec."""
    specs = [specs] if isinstance(specs, str | Path) else list(specs)
    if not specs:
        raise ShardSpecError("no shards given")
    urls: list[str] = []
    counts: list[int | None] = []
    cache: dict[Path, dict[str, int]] = {}
    for spec in map(str, specs):
        path = Path(spec)
        if path.is_dir() or path.name == MANIFEST_NAME:
            directory = path if path.is_dir() else path.parent
            manifest = Manifest.load(path)
            if not manifest.shards:
                raise ShardSpecError(f"{directory / MANIFEST_NAME} lists no shards")
            urls += [str(p) for p in manifest.shard_paths(directory)]
            counts += [s.samples for s in manifest.shards]
            continue
        for pattern in braceexpand.braceexpand(spec):
            matched = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
            if not matched:
                raise ShardSpecError(f"shard pattern {pattern!r} matches no file")
            for name in matched:
                if "://" not in name and not name.startswith("pipe:") and not Path(name).is_file():
                    raise ShardSpecError(
                        f"shard {name} does not exist (from {spec!r}): give a shard directory (with manifest.json), "
                        "a .tar file, a glob or a brace pattern"
                    )
                urls.append(name)
                counts.append(_manifest_counts(Path(name).parent, cache).get(Path(name).name))
    return ShardList(tuple(urls), tuple(counts))
