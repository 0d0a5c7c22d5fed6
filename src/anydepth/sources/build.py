"""The shard builder: any ``Source`` -> WebDataset shards plus ``manifest.json``.

``build_shards`` lists the source's items, sorts them by key and shuffles them with ``np.random.default_rng(seed)``
(so every shard mixes scenes, and the same seed gives the same order), then cuts that order into chunks of
``samples_per_shard`` items: chunk ``i`` becomes ``shard-{i:06d}.tar``. Each chunk is built by one worker (a process
pool of ``workers`` processes, spawn-safe; ``workers=1`` builds in-process):

- every item is loaded with ``source.load``; *any* exception skips that item with ``"<ExcType>: <message>"`` as the
  reason (logged as a warning, recorded in the manifest), so one bad file never aborts a build;
- samples whose longer side exceeds ``max_side`` are downscaled (image: Lanczos; label, mask, sky: nearest
  neighbour, so invalid label values never blend into valid ones), with ``meta["scale"]`` multiplied by the factor
  and ``meta["original_size"]`` kept;
- a sample is skipped like an unreadable item when it breaks the schema (``validate_sample``: e.g. a label
  without a single valid pixel, before or after downscaling) or when the shorter side of its stored (downscaled)
  image is below ``min_side`` (default one ViT patch, 14 px, the smallest image the model takes);
- with ``sky_model``, labeled samples without a sky mask of their own get one predicted by that segmentation model
  (paper Sec. 3.1; :mod:`anydepth.sources.sky`), in the shard's worker process;
- the shard is written by a :class:`ShardWriter` (webdataset's ``TarWriter`` with fixed mtime and owner, so the
  bytes only depend on the data and the settings) into ``shard-NNNNNN.tar.tmp``, fsynced, then renamed to
  ``shard-NNNNNN.tar``: a shard file is never half-written;
- a completion record ``shard-NNNNNN.json`` (``samples``, ``bytes``, ``sha256``, ``skipped``) is written last,
  atomically.

A chunk whose items were all skipped writes no tar (only its ``.json``, with 0 samples) and is left out of the
manifest: shard names follow the chunk index, so names can have gaps, but chunk ``i`` is always ``shard-{i:06d}``
whatever happened to the other chunks (which is what lets a resumed build reuse finished shards).

``build.json`` (settings plus a hash of the ordered input keys) is written before the first shard. ``resume=True``
reuses every shard whose ``.tar`` and ``.json`` exist and whose size and sha256 match the record, deletes ``*.tmp``
leftovers and rebuilds the rest; resuming with other settings or a changed input list raises ``BuildError``. The
``build.json`` and per-shard ``.json`` files stay next to the shards after ``manifest.json`` is written (a few
hundred bytes each), so resuming a finished build is a no-op that only re-hashes the shards. Without ``resume``, a
directory that already holds a build is refused.

``num_parts=N, part=I`` builds only the shards whose index is ``I mod N`` (same shard list, names and bytes as the
single-node build), so N nodes can build one directory together; each part records itself in
``parts/part-I-of-N.json`` instead of ``build.json``, resumes on its own, and the last part to finish writes
``manifest.json`` (:mod:`anydepth.sources.parts`, which also holds the output-directory checks and locks).
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from anydepth.images import max_side_size
from anydepth.models.encoder import PATCH_SIZE
from anydepth.shards.manifest import Manifest, ShardRecord
from anydepth.shards.schema import Sample, SampleError, encode_sample, validate_sample
from anydepth.shards.verify import describe_failure
from anydepth.shards.writer import ShardWriter, completed_shard
from anydepth.sources import ROOTLESS, Source, SourceError, SourceItem, get_source
from anydepth.sources.parts import BuildError, Part, build_lock, finish_part, start_build
from anydepth.sources.sky import SkySegmenter

logger = logging.getLogger(__name__)

IMAGE_FORMATS: tuple[str, ...] = ("jpg", "png")
LABEL_DTYPES: tuple[str, ...] = ("float16", "float32")

# ---------------------------------------------------------------- per-sample work


def _nearest(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize by pixel centres: every output value is one of the input values."""
    rows = np.minimum(((np.arange(height) + 0.5) * array.shape[0] / height).astype(np.int64), array.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * array.shape[1] / width).astype(np.int64), array.shape[1] - 1)
    return array[rows[:, None], cols[None, :]]


def downscale_sample(sample: Sample, max_side: int | None) -> Sample:
    """``sample`` with ``meta["original_size"]`` and ``meta["scale"]`` set (kept when the source set them),
    shrunk so its longer side is ``max_side`` when it is longer (image Lanczos, label/mask/sky nearest)."""
    height, width = sample.image.shape[:2]
    meta = dict(sample.meta)
    meta.setdefault("original_size", [height, width])
    meta["scale"] = float(meta.get("scale", 1.0))
    size = max_side_size(height, width, max_side)
    if size is None:
        return replace(sample, meta=meta)
    new_h, new_w = size
    image = np.asarray(Image.fromarray(sample.image).resize((new_w, new_h), Image.Resampling.LANCZOS))
    meta["scale"] *= max_side / max(height, width)

    def shrink(array: np.ndarray | None) -> np.ndarray | None:
        return None if array is None else _nearest(array, new_h, new_w)

    return replace(
        sample,
        image=image,
        label=shrink(sample.label),
        mask=shrink(sample.mask),
        sky=shrink(sample.sky),
        seg=shrink(sample.seg),
        meta=meta,
    )


@dataclass(frozen=True)
class _Options:
    """What a worker needs besides the source (picklable)."""

    source_name: str
    label_kind: str | None
    max_side: int | None
    min_side: int
    image_format: str
    label_dtype: str


def _check_min_side(loaded: Sample, stored: Sample, min_side: int) -> None:
    """Raise ``SampleError`` when the shorter side of ``stored`` (``loaded`` after downscaling) is below
    ``min_side``; the message gives both sizes when they differ."""
    height, width = stored.image.shape[:2]
    if min(height, width) >= min_side:
        return
    before = tuple(stored.meta.get("original_size", loaded.image.shape[:2]))
    resized = "" if before == (height, width) else f" (downscaled from {before[0]}x{before[1]} by --max-side)"
    raise SampleError(
        f"sample {stored.key!r}: image {height}x{width} (H x W){resized} is smaller than --min-side {min_side}"
    )


def _prepare(source: Source, item: SourceItem, options: _Options) -> Sample:
    """Load, complete the metadata, validate, downscale and size-check one item: the sample to store (raises if bad)."""
    sample = source.load_within(item, options.max_side)
    if not isinstance(sample, Sample):
        raise TypeError(f"{type(source).__name__}.load returned {type(sample).__name__}, not a Sample")
    if sample.key != item.key:
        raise ValueError(f"load returned key {sample.key!r} for item {item.key!r}")
    meta = dict(sample.meta)
    meta.setdefault("source", options.source_name)
    meta.setdefault("label_kind", options.label_kind if sample.label is not None else None)
    sample = replace(sample, meta=meta)
    validate_sample(sample)
    stored = downscale_sample(sample, options.max_side)
    _check_min_side(sample, stored, options.min_side)
    validate_sample(stored)
    return stored


@dataclass(frozen=True)
class _ShardTask:
    index: int
    items: tuple[SourceItem, ...]
    out_dir: str
    options: _Options


def _prepared(source: Source, task: _ShardTask, skipped: list[dict[str, str]]) -> Iterator[Sample]:
    """The task's samples to store, in order; an item that fails is appended to ``skipped`` instead."""
    for item in task.items:
        try:
            sample = _prepare(source, item, task.options)
        except Exception as err:  # one bad input never aborts the build
            skipped.append({"input": item.key, "reason": describe_failure(err)})
            continue
        yield sample


def _build_shard(source: Source, sky: SkySegmenter | None, task: _ShardTask) -> dict[str, Any]:
    """Write one shard with a :class:`ShardWriter`, sky masks by ``sky`` if given; returns its completion record."""
    shard = ShardWriter(Path(task.out_dir), task.index)
    skipped: list[dict[str, str]] = []
    try:
        samples = _prepared(source, task, skipped)
        for sample in samples if sky is None else sky.add_sky(samples):
            shard.write(encode_sample(sample, task.options.image_format, task.options.label_dtype))
    except BaseException:
        shard.abort()
        raise
    return shard.finish(len(task.items), skipped)


# Worker processes: the source (and sky model) are built once per process by the pool initializer.
_WORKER: tuple[Source, SkySegmenter | None] | None = None


def _init_worker(spec: tuple[Any, ...], sky: SkySegmenter | None) -> None:
    global _WORKER
    _WORKER = _make_source(spec), sky


def _run_task(task: _ShardTask) -> dict[str, Any]:
    assert _WORKER is not None, "worker not initialised"
    return _build_shard(*_WORKER, task)


def _make_source(spec: tuple[Any, ...]) -> Source:
    """``("instance", source)`` or ``("class", cls, root, split, kwargs)`` -> a source."""
    if spec[0] == "instance":
        return spec[1]
    _, cls, root, split, kwargs = spec
    return cls(root, split, **kwargs)


# ---------------------------------------------------------------- build


def _resolve_source(
    source: str | type[Source] | Source, root: Any, split: str | None, source_kwargs: dict[str, Any] | None
) -> tuple[type[Source], str, tuple[Any, ...]]:
    """(class, name, worker spec) for a kind string, a ``Source`` subclass or a ``Source`` instance."""
    if isinstance(source, Source):
        if source_kwargs:
            raise BuildError("source_kwargs cannot be used with a Source instance (it is already constructed)")
        cls = type(source)
        return cls, getattr(cls, "name", cls.__name__), ("instance", source)
    if isinstance(source, str):
        cls = get_source(source)
        name = source
    elif isinstance(source, type) and issubclass(source, Source):
        cls = source
        name = getattr(cls, "name", cls.__name__)
    else:
        raise BuildError(f"source must be a registered kind, a Source subclass or a Source, got {source!r}")
    if root is None:
        if name not in ROOTLESS:
            raise BuildError(f"--source {name} reads a dataset root: pass --root DIR")
        root = Path(".")  # never read by a rootless reader
    return cls, name, ("class", cls, root, split, dict(source_kwargs or {}))


def _check_settings(
    max_side: int | None, min_side: int, samples_per_shard: int, workers: int, image_format: str, label_dtype: str
) -> None:
    if max_side is not None and max_side < 1:
        raise BuildError(f"max_side must be at least 1 (or None for no downscaling), got {max_side}")
    if min_side < 1:
        raise BuildError(f"min_side must be at least 1, got {min_side}")
    if max_side is not None and max_side < min_side:
        raise BuildError(f"max_side {max_side} is below min_side {min_side}: every image would be too small")
    if samples_per_shard < 1:
        raise BuildError(f"samples_per_shard must be at least 1, got {samples_per_shard}")
    if workers < 1:
        raise BuildError(f"workers must be at least 1, got {workers}")
    if image_format not in IMAGE_FORMATS:
        raise BuildError(f"image_format must be one of {', '.join(IMAGE_FORMATS)}, got {image_format!r}")
    if label_dtype not in LABEL_DTYPES:
        raise BuildError(f"label_dtype must be one of {', '.join(LABEL_DTYPES)}, got {label_dtype!r}")


def _ordered_items(items: list[SourceItem], seed: int, name: str) -> list[SourceItem]:
    """Sorted by key, then shuffled by ``seed``; unique keys required."""
    if not items:
        raise SourceError(f"{name}: the source lists no inputs")
    ordered = sorted(items, key=lambda item: item.key)
    duplicates = sorted({a.key for a, b in zip(ordered, ordered[1:]) if a.key == b.key})
    if duplicates:
        raise SourceError(f"{name}: duplicate item keys {', '.join(duplicates[:5])}")
    permutation = np.random.default_rng(seed).permutation(len(ordered))
    return [ordered[i] for i in permutation]


def _run_tasks(
    tasks: list[_ShardTask], source: Source, spec: tuple[Any, ...], sky: SkySegmenter | None, workers: int, method: str
) -> Iterator[dict[str, Any]]:
    """Completion records as shards finish: in-process with ``source`` and ``sky`` for one worker, else a process
    pool whose workers build their own source from ``spec`` and load their own copy of ``sky`` (it pickles as its
    directory)."""
    if workers == 1 or len(tasks) <= 1:
        for task in tasks:
            yield _build_shard(source, sky, task)
        return
    context = multiprocessing.get_context(method)
    executor = ProcessPoolExecutor(
        min(workers, len(tasks)), mp_context=context, initializer=_init_worker, initargs=(spec, sky)
    )
    try:
        pending = {executor.submit(_run_task, task) for task in tasks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                yield future.result()  # re-raises a worker's error (disk full, a broken pool, ...)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _build_owned(
    out: Path,
    chunks: list[tuple[SourceItem, ...]],
    part: Part,
    options: _Options,
    resume: bool,
    run: tuple[Source, tuple[Any, ...], SkySegmenter | None, int, str],
) -> list[dict[str, Any]]:
    """Build ``part``'s chunks into ``out`` (with ``resume``, keeping its intact shards); their completion records in
    chunk order. ``run``: the source, its worker spec, the sky model, the worker count and the start method."""
    owned = [i for i in range(len(chunks)) if part.owns(i)]
    done = {i: completed_shard(out, i) for i in owned} if resume else {}
    records = {i: record for i, record in done.items() if record is not None}
    if records:
        logger.info("resuming: %d of %d shards already complete", len(records), len(owned))
    tasks = [_ShardTask(i, chunks[i], str(out), options) for i in owned if i not in records]
    for record in _run_tasks(tasks, *run):
        records[record["index"]] = record
        for skip in record["skipped"]:
            logger.warning("skipped %s: %s", skip["input"], skip["reason"])
        counts = record["samples"], len(record["skipped"]), len(records), len(owned)
        logger.info("%s: %d written, %d skipped (%d/%d shards done)", record["name"], *counts)
    return [records[i] for i in owned]


def build_shards(
    source_kind: str | type[Source] | Source,
    root: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    split: str | None = None,
    max_side: int | None = None,
    min_side: int = PATCH_SIZE,
    samples_per_shard: int = 1000,
    workers: int = 1,
    seed: int = 0,
    resume: bool = False,
    image_format: str = "jpg",
    label_dtype: str = "float32",
    source_kwargs: dict[str, Any] | None = None,
    start_method: str = "spawn",
    sky_model: str | os.PathLike[str] | None = None,
    sky_batch_size: int = 8,
    sky_device: str | None = None,
    num_parts: int = 1,
    part: int = 0,
) -> Manifest:
    """Build WebDataset shards and ``manifest.json`` in ``out_dir`` from a dataset reader (see the module doc).

    ``source_kind`` is a registered kind (``anydepth.sources.SOURCES``), a ``Source`` subclass (constructed as
    ``cls(root, split, **source_kwargs)``, in each worker) or a ``Source`` instance (used as is and pickled to the
    workers; ``root``/``split`` are then informational and ``source_kwargs`` must be empty); ``root`` may be None only
    for the kinds in ``ROOTLESS``. ``min_side`` is the smallest shorter side of a stored image. ``start_method`` is
    the multiprocessing start method of the worker pool. ``sky_model``: a local transformers segmentation model
    directory that predicts the sky masks of labeled samples (``sky_batch_size`` images per step on ``sky_device``,
    None: CUDA when available; :mod:`anydepth.sources.sky`); its path and file digest are build settings.
    ``num_parts`` > 1: build only part ``part`` (0-based) of the shards and return that part's record
    (``parts/part-I-of-N.json``); ``manifest.json`` is written by the last part to finish. Raises ``BuildError`` for
    bad settings, a missing root or an unfit ``out_dir`` (``MergeError`` when the last part finds the others unfit to
    merge), ``OutputLockedError`` when another build holds ``out_dir`` (or this part), ``SourceError`` for a wrong
    dataset layout or an unusable sky model; items that fail to load or to validate are skipped and listed in the
    manifest.
    """
    _check_settings(max_side, min_side, samples_per_shard, workers, image_format, label_dtype)
    this = Part(part, num_parts)
    cls, name, spec = _resolve_source(source_kind, root, split, source_kwargs)
    source = _make_source(spec)
    split = source.split if spec[0] == "instance" else split
    sky = None if sky_model is None else SkySegmenter(sky_model, sky_device, sky_batch_size)
    settings = {
        "source": name,
        "split": split,
        "max_side": max_side,
        "min_side": min_side,
        "samples_per_shard": samples_per_shard,
        "seed": seed,
        "image_format": image_format,
        "label_dtype": label_dtype,
        "source_kwargs": dict(source_kwargs or {}),
        "sky_model": None if sky is None else sky.record(),
    }
    try:
        settings = json.loads(json.dumps(settings))
    except TypeError as err:
        raise BuildError(f"source_kwargs must be JSON-serialisable to be recorded in the manifest ({err})") from err
    items = _ordered_items(source.items(), seed, name)
    keys = "\n".join(item.key for item in items).encode()
    header = Manifest(
        source=name,
        builder_version=_builder_version(),
        split=split,
        label_kind=source.label_kind,
        synthetic=bool(getattr(source, "synthetic", False)),
        settings=settings,
        extra={
            "root": None if root is None else str(root),
            "num_inputs": len(items),
            "inputs_sha256": hashlib.sha256(keys).hexdigest(),
        },
    )

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BuildError(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    with build_lock(out, this):  # a second build of the same directory (or part) stops here
        start_build(out, header, this, resume)
        options = _Options(name, source.label_kind, max_side, min_side, image_format, label_dtype)
        chunks = [tuple(items[i : i + samples_per_shard]) for i in range(0, len(items), samples_per_shard)]
        records = _build_owned(out, chunks, this, options, resume, (source, spec, sky, workers, start_method))
        manifest = replace(
            header,
            shards=[ShardRecord(r["name"], r["samples"], r["bytes"], r["sha256"]) for r in records if r["samples"]],
            skipped=sorted((s for r in records for s in r["skipped"]), key=lambda s: s["input"]),
        )
        if not this.partial:
            manifest.save(out)
            return manifest
        record, merged = finish_part(out, manifest, this)
    if merged is None:
        logger.info("%s done; the last part to finish writes manifest.json (or: anydepth shards merge %s)", this, out)
    else:
        logger.info("all %d parts done: wrote %s", num_parts, out / "manifest.json")
    return record


def _builder_version() -> str:
    from anydepth import __version__

    return __version__
