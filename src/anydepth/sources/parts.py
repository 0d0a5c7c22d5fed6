"""Shard builds split across nodes (``--num-parts N --part I``), and the output-directory state all builds share.

A split build computes the shard list exactly as a single-node build does (same inputs, order, shard boundaries and
names; a shard's bytes depend on nothing else but the settings) and part ``I`` builds the shards whose index is
``I mod N``: round robin, so parts differ by at most one shard for any data set, and more parts than shards is fine
(the extra parts are empty). Part ``I`` records itself in ``parts/part-I-of-N.json``, a partial manifest (its shards
and skipped inputs, ``extra`` adding ``part``, ``num_parts`` and ``complete``) written when it starts (not complete)
and when it ends (complete). :func:`merge_parts` (``anydepth shards merge``, and the last part to finish by itself)
checks that all N parts are complete, were built with the same settings, inputs, root and builder version and still
have their shards (by size; ``anydepth shards verify`` re-hashes), and writes ``manifest.json``: the single-node
build's manifest, field for field (the split is recorded in ``parts/`` only).

State files: ``build.json`` (a single-node build: its settings and a hash of the ordered inputs, written before the
first shard), ``manifest.json`` and ``parts/*.json``. Every one of them must record the build's settings and inputs
for a build to resume (or a part to start beside other parts): a single-node ``--resume`` may finish a split build and
a part may ``--resume`` a single-node one, as their shards are the same; parts of another part count are refused.

Locks (``fcntl.flock``: the operating system releases them when a holder dies):

- ``.anydepth.lock`` (:class:`~anydepth.locks.OutputLock`'s file): a single-node build holds it exclusively, part
  builds and merges hold it shared, so a single-node build and a split build never run in one directory at once;
- ``.anydepth.part-I.lock``: held exclusively by part ``I``'s builder, so a part never runs twice at once;
- ``.anydepth.state.lock``: held exclusively for a moment while a part or a merge reads and writes the state files,
  so a starting part sees every part that started before it, and the last part to finish sees all others complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from anydepth.files import atomic_write_json
from anydepth.locks import LOCK_NAME, OutputLock, OutputLockedError
from anydepth.shards.manifest import MANIFEST_NAME, Manifest
from anydepth.shards.writer import SHARD_PATTERN

logger = logging.getLogger(__name__)

STATE_NAME = "build.json"
PARTS_DIR = "parts"
PART_FIELDS = ("part", "num_parts", "complete")
STATE_LOCK = ".anydepth.state.lock"
_PART_FILE = re.compile(r"^part-(\d+)-of-(\d+)\.json$")


class BuildError(ValueError):
    """Bad build settings, or an output directory that does not fit the requested build."""


class MergeError(BuildError):
    """Parts that cannot be merged: missing, unfinished, with lost shards or built with other settings."""


@dataclass(frozen=True)
class Part:
    """Part ``index`` of a build split into ``count`` parts; ``Part(0, 1)`` is a single-node build."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1:
            raise BuildError(f"num_parts must be at least 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise BuildError(f"part must be in 0..{self.count - 1} for num_parts {self.count}, got {self.index}")

    def __str__(self) -> str:
        return f"part {self.index} of {self.count}"

    @property
    def partial(self) -> bool:
        """Whether this is one of several parts (not a single-node build)."""
        return self.count > 1

    @property
    def file(self) -> str:
        """The part's record, relative to the output directory."""
        return f"{PARTS_DIR}/part-{self.index}-of-{self.count}.json"

    def owns(self, shard: int) -> bool:
        """Whether shard ``shard`` (a chunk index) is this part's to build."""
        return shard % self.count == self.index


# ---------------------------------------------------------------- locks


@contextlib.contextmanager
def _flock(path: Path, operation: int) -> Iterator[None]:
    """``fcntl.flock(operation)`` on ``path`` (created if missing) for the block; with ``LOCK_NB``, a lock held
    elsewhere raises ``BlockingIOError``."""
    with open(path, "a") as stream:
        fcntl.flock(stream.fileno(), operation)
        yield  # closing the file releases the lock


def _holder(path: Path) -> str:
    """``pid P on HOST since T``: the holder :class:`OutputLock` records in its file."""
    try:
        info = json.loads(path.read_text())
        return f"pid {info['pid']} on {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


@contextlib.contextmanager
def _shared_lock(out: Path, what: str) -> Iterator[None]:
    """``out``'s directory lock, shared (beside part builds and merges); refused while a single-node build holds it."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(_flock(out / LOCK_NAME, fcntl.LOCK_SH | fcntl.LOCK_NB))
        except BlockingIOError:
            raise OutputLockedError(
                f"{out} is in use by a single-node shards build ({_holder(out / LOCK_NAME)}); {what} cannot run "
                "beside it: wait for it to end, or use another directory"
            ) from None
        yield


class _PartLock(OutputLock):
    """:class:`OutputLock` on ``.anydepth.part-I.lock``: one builder per part."""

    def __init__(self, out: Path, part: Part) -> None:
        super().__init__(out, f"shards build of {part}")
        self.path = out / f".anydepth.part-{part.index}.lock"


def _held_exclusively(out: Path) -> bool:
    """Whether a single-node build (not part builds or merges, which share it) holds ``out``'s directory lock."""
    try:
        with _flock(out / LOCK_NAME, fcntl.LOCK_SH | fcntl.LOCK_NB):
            return False
    except BlockingIOError:
        return True


@contextlib.contextmanager
def build_lock(out: Path, part: Part) -> Iterator[None]:
    """Hold ``out`` for the build of ``part``: all of it for a single-node build, beside the other parts for a part;
    raises ``OutputLockedError`` naming what holds it."""
    with contextlib.ExitStack() as stack:
        if part.partial:
            stack.enter_context(_shared_lock(out, f"a build of {part}"))
            stack.enter_context(_PartLock(out, part))
        else:
            try:
                stack.enter_context(OutputLock(out, "shards build"))
            except OutputLockedError:
                if _held_exclusively(out):
                    raise
                raise OutputLockedError(
                    f"{out} is in use by part builds (anydepth shards build --num-parts) or a shards merge; a "
                    "single-node build cannot run beside them: wait for them to end, or build into another directory"
                ) from None
        yield


# ---------------------------------------------------------------- state files


def _part_files(out: Path) -> list[tuple[int, int, Path]]:
    """(N, I, path) of every ``out/parts/part-I-of-N.json``, sorted."""
    found = ((_PART_FILE.match(p.name), p) for p in (out / PARTS_DIR).glob("part-*.json"))
    return sorted((int(m[2]), int(m[1]), p) for m, p in found if m)


def _state(manifest: Manifest) -> dict[str, Any]:
    """What a resumed build must match: ``settings``, ``num_inputs``, ``inputs_sha256`` (and ``num_parts``)."""
    extra = {k: v for k, v in manifest.extra.items() if k in ("num_inputs", "inputs_sha256", "num_parts")}
    return {"settings": manifest.settings, **extra}


def _recorded(out: Path) -> list[tuple[str, dict[str, Any]]]:
    """(file name, :func:`_state`) of every state file in ``out``."""
    found = []
    if (out / STATE_NAME).is_file():
        found.append((STATE_NAME, json.loads((out / STATE_NAME).read_text())))
    for path in [out / MANIFEST_NAME, *(p for *_, p in _part_files(out))]:
        if path.is_file():
            found.append((path.relative_to(out).as_posix(), _state(Manifest.load(path))))
    return found


def _changes(old: dict[str, Any], new: dict[str, Any], depth: int = 0, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every differing key; dictionaries ``depth`` levels down as ``outer.inner: ...``."""
    found = []
    for key in sorted({*old, *new}):
        before, after = old.get(key), new.get(key)
        if depth and isinstance(before, dict) and isinstance(after, dict):
            found += _changes(before, after, depth - 1, f"{prefix}{key}.")
        elif before != after:
            found.append(f"{prefix}{key}: {before!r} -> {after!r}")
    return found


def _check_recorded(out: Path, header: Manifest, part: Part) -> None:
    """Raise ``BuildError`` when a state file of ``out`` records other settings or inputs than ``header``, or (for a
    part) another part count."""
    new = _state(header)
    action = f"build {part} into {out}" if part.partial else f"resume {out}"
    for name, old in _recorded(out):
        if part.partial and old.get("num_parts", part.count) != part.count:
            raise BuildError(
                f"cannot {action}: its {name} belongs to a build split into {old['num_parts']} parts; pass "
                f"--num-parts {old['num_parts']}, or build into a new directory"
            )
        changes = _changes(old.get("settings", {}), new["settings"])
        if changes:
            raise BuildError(
                f"cannot {action}: its {name} was built with other settings ({'; '.join(changes)}); build with the "
                "same settings or into a new directory"
            )
        if old.get("inputs_sha256", new["inputs_sha256"]) != new["inputs_sha256"]:
            raise BuildError(
                f"cannot {action}: the source's inputs changed since the build started "
                f"({old.get('num_inputs')} inputs then, {new['num_inputs']} now); build into a new directory"
            )


def _owned_shard(name: str, part: Part) -> bool:
    """Whether ``name`` is a shard file (or its record, or their temporary file) of ``part``."""
    match = SHARD_PATTERN.match(name)
    return match is not None and part.owns(int(match.group(1)))


def _existing(out: Path, part: Part) -> list[str]:
    """What ``part``'s build would continue in ``out``: state files and its shards (for a part: its own only)."""
    names = sorted(p.name for p in out.iterdir() if p.name in (MANIFEST_NAME, STATE_NAME) or _owned_shard(p.name, part))
    mine = (part.count, part.index)
    return names + [f"{PARTS_DIR}/{p.name}" for n, i, p in _part_files(out) if not part.partial or (n, i) == mine]


def _write_part(out: Path, manifest: Manifest, part: Part, complete: bool) -> Manifest:
    """Write ``part``'s record: ``manifest`` with the part fields in ``extra``; returns what was written."""
    record = replace(
        manifest, extra={**manifest.extra, "part": part.index, "num_parts": part.count, "complete": complete}
    )
    (out / PARTS_DIR).mkdir(exist_ok=True)
    atomic_write_json(out / part.file, record.to_dict())
    return record


def start_build(out: Path, header: Manifest, part: Part, resume: bool) -> None:
    """Check that ``out`` fits the build of ``part`` (``header``: its manifest without shards) and record its start:
    ``build.json`` for a single-node build, the unfinished record for a part; with ``resume``, first remove the
    build's temporary leftovers. Raises ``BuildError`` for an existing build without ``resume``, or state files of
    other settings, inputs or part count. Call it holding :func:`build_lock`."""
    with contextlib.ExitStack() as stack:
        if part.partial:
            stack.enter_context(_flock(out / STATE_LOCK, fcntl.LOCK_EX))
        existing = _existing(out, part)
        if existing and not resume:
            listed = ", ".join(existing[:3]) + (", ..." if len(existing) > 3 else "")
            raise BuildError(
                f"{out} already holds a build ({listed}); pass --resume (resume=True) to continue it, or build into "
                "an empty directory"
            )
        _check_recorded(out, header, part)
        for leftover in out.glob("*.tmp") if resume else ():
            if not part.partial or _owned_shard(leftover.name, part):
                logger.info("removing leftover %s", leftover.name)
                leftover.unlink()
        if part.partial:
            _write_part(out, header, part, complete=False)
        else:
            atomic_write_json(out / STATE_NAME, _state(header))


def finish_part(out: Path, manifest: Manifest, part: Part) -> tuple[Manifest, Manifest | None]:
    """Record ``part`` complete with ``manifest`` (its shards and skips) and merge when every part of its build is
    complete: (the part's record, the merged manifest or None). Call it holding :func:`build_lock`."""
    with _flock(out / STATE_LOCK, fcntl.LOCK_EX):
        record = _write_part(out, manifest, part, complete=True)
        paths = [out / Part(i, part.count).file for i in range(part.count)]
        if all(path.is_file() and Manifest.load(path).extra.get("complete") for path in paths):
            return record, _merge(out, part.count)
    return record, None


# ---------------------------------------------------------------- merge


def _header(manifest: Manifest) -> dict[str, Any]:
    """What all parts of one build record alike: a part's manifest without its shards, skips and part fields."""
    data = replace(manifest, shards=[], skipped=[]).to_dict()
    data["extra"] = {k: v for k, v in manifest.extra.items() if k not in PART_FIELDS}
    return data


def _intact(path: Path, size: int) -> bool:
    return path.is_file() and path.stat().st_size == size


def _merge(out: Path, count: int) -> Manifest:
    """Merge the ``count`` parts of ``out`` into ``manifest.json`` (see :func:`merge_parts`), holding the state lock."""
    problems, done = [], []
    for part in (Part(i, count) for i in range(count)):
        rerun = f"run anydepth shards build ... --num-parts {count} --part {part.index} --resume"
        path = out / part.file
        manifest = Manifest.load(path) if path.is_file() else None
        if manifest is None or not manifest.extra.get("complete"):
            why = f"no {part.file}" if manifest is None else f"{part.file} records an unfinished build"
            problems.append(f"{part} has not finished ({why}): {rerun}")
            continue
        lost = [s.name for s in manifest.shards if not _intact(out / s.name, s.bytes)]
        if lost:
            problems.append(f"{part} lost {', '.join(lost)} (missing, or not the recorded size): {rerun}")
        done.append((part, manifest))
    for part, manifest in done[1:]:
        changes = _changes(_header(done[0][1]), _header(manifest), depth=1)
        if changes:
            problems.append(
                f"{part} was built with other settings than {done[0][0]} ({', '.join(changes)}): build every part "
                "with the same options"
            )
    if problems:
        raise MergeError(f"cannot merge {out}: {'; '.join(problems)}")
    first = done[0][1]
    merged = replace(
        first,
        shards=sorted((s for _, m in done for s in m.shards), key=lambda s: s.name),
        skipped=sorted((s for _, m in done for s in m.skipped), key=lambda s: s["input"]),
        extra=_header(first)["extra"],
    )
    merged.save(out)
    return merged


def merge_parts(out_dir: str | os.PathLike[str]) -> Manifest:
    """Write ``manifest.json`` of the split build in ``out_dir`` from its parts (see the module doc) and return it.
    Raises ``MergeError`` for a directory without parts, or naming every part that is missing, unfinished, lost a
    shard or was built with other settings; ``OutputLockedError`` while a single-node build runs there."""
    out = Path(out_dir)
    counts = sorted({n for n, _, _ in _part_files(out)})
    if not counts:
        raise MergeError(
            f"{out} holds no part builds (no {PARTS_DIR}/part-I-of-N.json): build them with anydepth shards build "
            "--num-parts N --part I"
        )
    if len(counts) > 1:
        raise MergeError(f"{out} holds parts of builds split into {' and '.join(map(str, counts))} parts; keep one")
    with _shared_lock(out, "a shards merge"), _flock(out / STATE_LOCK, fcntl.LOCK_EX):
        return _merge(out, counts[0])
