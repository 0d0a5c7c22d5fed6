"""What a dataset reader provides to the shard builder.

A source lists its inputs cheaply and deterministically (``items``), and turns one item into a
``Sample`` (``load``), which the builder calls in parallel workers and wraps in error handling:
an item that raises is skipped, logged and counted in the manifest, never fatal.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from anydepth.shards.schema import Sample


class SourceError(ValueError):
    """The dataset root does not have the expected layout; the message says what was expected and found."""


@dataclass(frozen=True)
class SourceItem:
    """One input of a source: a unique key (``[A-Za-z0-9_-/]``, no dots) and the files it is read from."""

    key: str
    paths: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)


class Source(ABC):
    """Base class of dataset readers. Subclasses set ``name``, ``label_kind`` and a docstring that
    documents the expected on-disk layout, label kind and invalid-value convention."""

    name: ClassVar[str]
    label_kind: ClassVar[str | None] = None

    def __init__(self, root: str | Path, split: str | None = None) -> None:
        self.root = Path(root)
        self.split = split
        if not self.root.exists():
            raise SourceError(f"{self.name}: dataset root {self.root} does not exist")

    @abstractmethod
    def items(self) -> list[SourceItem]:
        """All inputs, in a deterministic order (sorted by key); raises ``SourceError`` for a wrong layout."""

    @abstractmethod
    def load(self, item: SourceItem) -> Sample:
        """Read one item; any exception marks the item as skipped with its message as the reason."""

    def load_within(self, item: SourceItem, max_side: int | None) -> Sample:
        """``load(item)`` for a build with ``--max-side``: a reader that can decode fewer pixels (JPEG DCT scaling)
        may return the sample already shrunk to ``max_side``, its ``meta`` ``original_size`` and ``scale`` set as
        ``anydepth.sources.build.downscale_sample`` sets them; the builder stores it as it is. Default: ``load``."""
        return self.load(item)
