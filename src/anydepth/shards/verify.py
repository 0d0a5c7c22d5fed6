"""``anydepth shards verify``: re-hash every shard against its manifest and decode every sample."""

from __future__ import annotations

import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anydepth.files import file_digest
from anydepth.shards.manifest import Manifest
from anydepth.shards.schema import SampleError, decode_sample


@dataclass
class VerifyReport:
    """What ``verify_shards`` found: ``ok`` when ``problems`` is empty."""

    directory: Path
    shards: int = 0
    samples: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self, max_listed: int = 20) -> str:
        """``OK: ...`` or the problem count followed by one problem per line."""
        checked = f"{self.shards} shard{'s' * (self.shards != 1)}, {self.samples} sample{'s' * (self.samples != 1)}"
        if self.ok:
            return f"OK: {checked} in {self.directory} match manifest.json and decode"
        lines = [
            f"{len(self.problems)} problem{'s' * (len(self.problems) != 1)} in {self.directory} ({checked} checked):"
        ]
        lines += [f"  {problem}" for problem in self.problems[:max_listed]]
        if len(self.problems) > max_listed:
            lines.append(f"  ... and {len(self.problems) - max_listed} more")
        return "\n".join(lines)


def describe_failure(err: BaseException) -> str:
    """``"<ExcType>: <message>"``: how a skipped sample or an unreadable shard is reported."""
    return f"{type(err).__name__}: {err}"


_MEMBER = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")  # webdataset's key/field split: first dot of the basename


def _records(path: Path) -> Iterator[dict[str, Any]]:
    """Raw webdataset records of a tar, grouping consecutive members by key."""
    current: dict[str, Any] | None = None
    with tarfile.open(path, "r:") as tar:
        for member in tar:
            if not member.isfile():
                continue
            match = _MEMBER.match(member.name)
            if match is None:
                raise SampleError(f"member {member.name!r} in shard {path.name} is not <key>.<field>")
            key, name = match.groups()
            if current is not None and current["__key__"] != key:
                yield current
                current = None
            if current is None:
                current = {"__key__": key}
            extracted = tar.extractfile(member)
            current[name] = extracted.read() if extracted is not None else b""
    if current is not None:
        yield current


def verify_shards(directory: str | os.PathLike[str]) -> VerifyReport:
    """Check every shard of ``directory`` against its manifest (size, sha256, sample count) and decode
    every sample with ``decode_sample``. Returns the report (``ok`` False with the problems listed);
    raises ``ManifestError`` when there is no readable manifest."""
    root = Path(directory)
    manifest = Manifest.load(root)
    report = VerifyReport(root)
    seen: dict[str, str] = {}
    for shard in manifest.shards:
        path = root / shard.name
        report.shards += 1
        if not path.is_file():
            report.problems.append(f"{shard.name}: missing (the manifest lists {shard.samples} samples)")
            continue
        size, sha256 = file_digest(path)
        if size != shard.bytes:
            report.problems.append(f"{shard.name}: {size} bytes, the manifest says {shard.bytes}")
        if sha256 != shard.sha256:
            report.problems.append(
                f"{shard.name}: sha256 {sha256[:16]}... does not match the manifest's "
                f"{str(shard.sha256)[:16]}... (the file changed after the build)"
            )
        count = 0
        try:
            for record in _records(path):
                count += 1
                key = record["__key__"]
                if key in seen:
                    report.problems.append(f"{shard.name}: sample {key!r} appears again (first in {seen[key]})")
                seen.setdefault(key, shard.name)
                try:
                    decode_sample(record, shard=shard.name)
                except Exception as err:  # SampleError names the key; anything else gets it added here
                    reason = str(err) if isinstance(err, SampleError) else f"sample {key!r}: {describe_failure(err)}"
                    report.problems.append(reason if shard.name in reason else f"{shard.name}: {reason}")
                else:
                    report.samples += 1
        except (tarfile.TarError, OSError, SampleError) as err:
            report.problems.append(f"{shard.name}: unreadable tar after {count} samples ({describe_failure(err)})")
        if count != shard.samples:
            report.problems.append(f"{shard.name}: {count} samples, the manifest says {shard.samples}")
    listed = {shard.name for shard in manifest.shards}
    for stray in sorted(root.glob("shard-*.tar")):
        if stray.name not in listed:
            report.problems.append(f"{stray.name}: not listed in manifest.json (left over from another build?)")
    return report
