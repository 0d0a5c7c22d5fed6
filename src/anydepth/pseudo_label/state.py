"""The pseudo-label output directory's state: ``pseudo.json`` (the settings), what is done, what a resume may
continue, and the final ``manifest.json`` (layout and resume rules: :mod:`anydepth.pseudo_label`)."""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from anydepth import __version__
from anydepth.files import atomic_write_json
from anydepth.shards.manifest import MANIFEST_NAME, Manifest, ShardRecord
from anydepth.shards.reader import ShardList, resolve_shards
from anydepth.shards.writer import ShardWriter, completed_shard

__all__ = [
    "LABEL_DTYPE",
    "LABEL_KIND",
    "SOURCE",
    "STATE_NAME",
    "PseudoLabelError",
    "check_output",
    "input_shards",
    "prepare_output",
    "write_manifest",
]

logger = logging.getLogger(__name__)

STATE_NAME = "pseudo.json"
SOURCE = "pseudo-label"
LABEL_KIND = "relative_disparity"
LABEL_DTYPE = "float16"
_IDENTITY = ("teacher_sha256", "flip_tta", "input_size", "inputs", "input_samples", "reduced_decode")
"""The ``pseudo.json`` settings a resumed run must share (the teacher's path may change, its sha256 may not)."""


class PseudoLabelError(ValueError):
    """Inputs or an output directory that cannot be pseudo-labelled as asked; the message names the path."""


def _shard_url(url: str) -> str:
    """A local shard path resolved (absolute, symlinks followed), so that one shard has one spelling however it was
    given (relative, ``./``, absolute, via a symlink); remote URLs and ``pipe:`` specs unchanged."""
    return url if "://" in url or url.startswith("pipe:") else str(Path(url).resolve())


def input_shards(inputs: Sequence[str | os.PathLike]) -> ShardList:
    """``resolve_shards(inputs)`` with :func:`_shard_url` paths, every shard with a manifest sample count and listed
    once."""
    try:
        found = resolve_shards([str(spec) for spec in inputs])
    except (OSError, ValueError) as err:  # FileNotFoundError, ManifestError, "no shards given"
        raise PseudoLabelError(f"cannot read the input shards: {err}") from err
    shards = ShardList(tuple(_shard_url(url) for url in found.urls), found.counts)
    uncounted = [url for url, count in zip(shards.urls, shards.counts) if count is None]
    if uncounted:
        raise PseudoLabelError(
            f"input shards {', '.join(uncounted[:3])}{' ...' if len(uncounted) > 3 else ''} have no sample count (no "
            f"{MANIFEST_NAME} beside them lists them): pass shard directories built by anydepth shards build"
        )
    repeated = sorted(url for url, times in Counter(shards.urls).items() if times > 1)
    if repeated:
        raise PseudoLabelError(f"input shards listed more than once: {', '.join(repeated[:3])}")
    return shards


def _difference(name: str, old: Any, new: Any) -> str:
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        i = next(i for i, (a, b) in enumerate(zip(old, new)) if a != b)
        return f"{name}[{i}]: {old[i]!r} -> {new[i]!r}"
    if isinstance(old, list) and isinstance(new, list):
        return f"{name}: {len(old)} -> {len(new)} entries"
    return f"{name}: {old!r} -> {new!r}"


def check_output(out: Path, state: Mapping[str, Any], resume: bool) -> None:
    """Raise :class:`PseudoLabelError` unless ``out`` is absent, holds no shards, or (with ``resume``) is a
    pseudo-label directory whose ``pseudo.json`` has the same teacher sha256, ``flip_tta``, ``input_size`` and inputs
    as ``state``. Reads only."""
    if out.exists() and not out.is_dir():
        raise PseudoLabelError(f"output {out} exists and is not a directory")
    state_path = out / STATE_NAME
    if not state_path.is_file():
        foreign = sorted(p.name for p in out.glob("*") if p.name == MANIFEST_NAME or p.name.startswith("shard-"))
        if foreign:
            raise PseudoLabelError(
                f"output {out} holds shards not written by anydepth pseudo-label ({', '.join(foreign[:3])}, no "
                f"{STATE_NAME}): write the pseudo labels into a new directory"
            )
        return
    if not resume:
        raise PseudoLabelError(f"output {out} already holds pseudo labels: resume it, or write into a new directory")
    try:
        old = json.loads(state_path.read_text())
        old["inputs"] = [_shard_url(url) for url in old["inputs"]]  # older files hold paths as given
        old.setdefault("reduced_decode", False)  # older files: every JPEG was decoded at full size
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise PseudoLabelError(f"cannot resume {out}: unreadable {STATE_NAME} ({err}); delete {out} and rerun") from err
    changed = [_difference(k, old.get(k), state.get(k)) for k in _IDENTITY if old.get(k) != state.get(k)]
    if changed:
        raise PseudoLabelError(
            f"cannot resume {out}: it holds pseudo labels made with other settings ({'; '.join(changed)}); rerun with "
            f"the same teacher and settings, or write into a new --out directory (or delete {out})"
        )


def prepare_output(out: Path, state: Mapping[str, Any], resume: bool = True) -> list[int]:
    """Rank 0 before predicting: :func:`check_output`, write ``pseudo.json``, remove ``.tmp`` leftovers and a stale
    ``manifest.json``; return the indices of the input shards without a finished output shard."""
    check_output(out, state, resume)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / STATE_NAME, dict(state))
    for leftover in out.glob("*.tmp"):
        logger.info("removing leftover %s", leftover.name)
        leftover.unlink()
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    return [i for i in range(len(state["inputs"])) if completed_shard(out, i, check_sha256=False) is None]


def write_manifest(out: Path, written: Sequence[Mapping[str, Any]] = ()) -> Manifest:
    """Rank 0 after every rank finished: ``manifest.json`` over all shards (settings and inputs from ``pseudo.json``),
    taking the completion records ``written`` in this run as given (other ranks' files may not be visible to rank 0
    yet on NFS-like file systems) and reading the others; an input shard without any record yielded nothing and gets
    a 0-sample record. Returns the manifest."""
    state = json.loads((out / STATE_NAME).read_text())
    given = {record["index"]: record for record in written}
    records = []
    for index, (url, count) in enumerate(zip(state["inputs"], state["input_samples"])):
        record = given.get(index) or completed_shard(out, index, check_sha256=False)
        if record is None:  # pending, read, and not one sample of it was readable
            skipped = [{"input": url, "reason": f"none of its {count} samples was readable (see the log)"}]
            record = ShardWriter(out, index).finish(count, skipped)
        records.append(record)
    manifest = Manifest(
        source=SOURCE,
        builder_version=__version__,
        shards=[ShardRecord(r["name"], r["samples"], r["bytes"], r["sha256"]) for r in records if r["samples"]],
        label_kind=LABEL_KIND,
        settings={"input_size": state["input_size"], "flip_tta": state["flip_tta"], "label_dtype": LABEL_DTYPE},
        skipped=[s for r in records for s in r["skipped"]],
        extra=state,
    )
    manifest.save(out)
    return manifest
