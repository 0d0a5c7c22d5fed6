"""``manifest.json``: what a shard directory holds, so loaders know epoch lengths without scanning
and builders can resume and verify.

Format (JSON)::

    {"format_version": 1, "builder_version": "0.1.0", "source": "rgbd-folder", "split": null,
     "label_kind": "depth" | ... | null, "synthetic": false, "settings": {...build options...},
     "shards": [{"name": "shard-000000.tar", "samples": 1000, "bytes": 123, "sha256": "..."}, ...],
     "num_samples": 1000, "skipped": [{"input": "...", "reason": "..."}, ...],
     "extra": {...anything else, e.g. the teacher checkpoint hash of pseudo labels...}}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from anydepth.files import atomic_write_json

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT_VERSION = 1


class ManifestError(ValueError):
    """A missing or malformed manifest; the message names the file."""


@dataclass
class ShardRecord:
    name: str
    samples: int
    bytes: int
    sha256: str


@dataclass
class Manifest:
    source: str
    builder_version: str
    shards: list[ShardRecord] = field(default_factory=list)
    split: str | None = None
    label_kind: str | None = None
    synthetic: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = MANIFEST_FORMAT_VERSION

    @property
    def num_samples(self) -> int:
        return sum(s.samples for s in self.shards)

    def shard_paths(self, directory: str | Path) -> list[Path]:
        return [Path(directory) / s.name for s in self.shards]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "num_samples": self.num_samples}

    def save(self, directory: str | Path) -> Path:
        """Write ``directory/manifest.json`` atomically and durably (:func:`~anydepth.files.atomic_write_json`)."""
        path = Path(directory) / MANIFEST_NAME
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Manifest:
        """Read ``directory/manifest.json`` (or the file itself when given)."""
        path = Path(directory)
        path = path if path.suffix == ".json" else path / MANIFEST_NAME
        if not path.is_file():
            raise ManifestError(f"{path} does not exist: build the shards first (anydepth shards build)")
        try:
            data = json.loads(path.read_text())
            data.pop("num_samples", None)
            data["shards"] = [ShardRecord(**s) for s in data["shards"]]
            return cls(**data)
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ManifestError(f"{path} is not a valid anydepth manifest ({err})") from err
