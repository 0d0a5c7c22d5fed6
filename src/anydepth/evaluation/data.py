"""Benchmark shards: where each benchmark is read from, what is wrong with it when it cannot be, and the
:class:`BenchmarkDataModule` that reads every sample once, dealt to the ranks."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from anydepth.data.transforms import EvalTransform
from anydepth.evaluation.protocols import (
    PROTOCOLS,
    EvaluationError,
    Protocol,
    expand_benchmarks,
    kb_crop,
    load_protocols,
)
from anydepth.prediction import check_prediction_settings
from anydepth.shards.dealing import deal, rank_and_world_size, require_one_per_rank
from anydepth.shards.manifest import MANIFEST_NAME, Manifest
from anydepth.shards.reader import ShardDataset, ShardList, ShardLoader, resolve_shards
from anydepth.shards.schema import LABEL_KINDS, Sample
from anydepth.sources import SOURCES

__all__ = ["BenchmarkDataModule", "benchmark_shards"]

logger = logging.getLogger(__name__)


def _listing(directory: Path, limit: int = 12) -> str:
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in directory.iterdir())
    if not entries:
        return "nothing (empty directory)"
    more = f" and {len(entries) - limit} more" if len(entries) > limit else ""
    return ", ".join(entries[:limit]) + more


def _build_hint(protocol: Protocol, directory: Path, data_root: Path) -> str:
    """The build command of a protocol's shards: its reader is the kind named like the protocol (the paper
    benchmarks) or like the first part of the shard directory (``nyuv2-metric`` reads ``nyuv2``), and a directory
    named ``<kind>-<split>`` (the Makefile's shard names: ``hypersim-val``) adds ``--split <split>``."""
    relative = directory.relative_to(data_root) if directory.is_relative_to(data_root) else directory
    first = relative.parts[0] if relative.parts else ""
    kind_split = first.rsplit("-", 1) if "-" in first else [first]
    candidates = (protocol.name, first, kind_split[0])
    kind = next((c for c in candidates if c in SOURCES), None)
    split = f" --split {kind_split[1]}" if kind == kind_split[0] and len(kind_split) == 2 else ""
    root = f"<{kind or protocol.name} dataset root>"
    return f"anydepth shards build --source {kind or '<reader kind>'} --root {root}{split} --out {directory}"


def _benchmark_problem(protocol: Protocol, data_root: Path) -> str | None:
    """What is wrong with the protocol's shard directories under ``data_root``, or None when they are complete."""
    problems = [_directory_problem(protocol, d, data_root) for d in protocol.shard_dirs(data_root)]
    return "\n  ".join(p for p in problems if p) or None


def _directory_problem(protocol: Protocol, directory: Path, data_root: Path) -> str | None:
    """What is wrong with one shard directory of ``protocol``, or None when it is complete."""
    name = protocol.name
    expected = f"expected {directory / MANIFEST_NAME} built with `{_build_hint(protocol, directory, data_root)}`"
    if not directory.is_dir():
        parent = directory.parent
        if not parent.is_dir():
            return f"{name}: {expected}, but {'the data root ' if parent == data_root else ''}{parent} does not exist"
        return f"{name}: {expected}, but {parent} holds {_listing(parent)}"
    if not (directory / MANIFEST_NAME).is_file():
        return f"{name}: {expected}, but {directory} holds {_listing(directory)} (no manifest: an unfinished build?)"
    manifest = Manifest.load(directory)
    if not manifest.shards:
        return f"{name}: {directory / MANIFEST_NAME} lists no shards (every input was skipped?); rebuild: {expected}"
    missing = [s.name for s in manifest.shards if not (directory / s.name).is_file()]
    if missing:
        listed = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        return (
            f"{name}: {directory / MANIFEST_NAME} lists {len(manifest.shards)} shards but {len(missing)} are missing "
            f"({listed}); {directory} holds {_listing(directory)}. Finish or redo the build (`--resume`)"
        )
    if manifest.label_kind not in LABEL_KINDS:
        return (
            f"{name}: the shards in {directory} hold label_kind={manifest.label_kind!r}, but zero-shot evaluation "
            f"needs ground truth ({', '.join(LABEL_KINDS)}); {expected}"
        )
    if protocol.mode == "metric" and manifest.label_kind != "depth":
        return (
            f"{name}: the shards in {directory} hold label_kind={manifest.label_kind!r}, but metric evaluation "
            "compares metres with metric depth ground truth (label_kind 'depth')"
        )
    if manifest.source != name and protocol.shards is None:  # a protocol naming its shards chose them knowingly
        logger.warning(
            "%s: %s was built by the %r reader; evaluating it with the %r protocol",
            name,
            directory,
            manifest.source,
            name,
        )
    return None


def benchmark_shards(
    benchmarks: Sequence[str], data_root: str | os.PathLike, protocols: Mapping[str, Protocol] | None = None
) -> dict[str, Path | list[Path]]:
    """``{benchmark: shard directory}`` (:meth:`Protocol.shard_dirs`, by default ``data_root/benchmark``; a list for
    a protocol reading several) after checking every benchmark has a protocol (default: the registry's
    :data:`PROTOCOLS`) and complete, labeled shards; one :class:`EvaluationError` lists every problem (what was
    expected, what was found)."""
    protocols = PROTOCOLS if protocols is None else protocols
    if not benchmarks:
        raise EvaluationError(f"no benchmark given; choose from {', '.join(protocols)}")
    unknown = [b for b in benchmarks if b not in protocols]
    if unknown:
        raise EvaluationError(
            f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(protocols)} "
            "(add others with a protocols YAML such as `scannet: {min_depth: 0.001, max_depth: 10}`)"
        )
    data_root = Path(data_root)
    problems = [p for p in (_benchmark_problem(protocols[name], data_root) for name in benchmarks) if p]
    if problems:
        raise EvaluationError("benchmark shards missing or incomplete:\n  " + "\n  ".join(problems))
    dirs = {name: protocols[name].shard_dirs(data_root) for name in benchmarks}
    return {name: d[0] if len(d) == 1 else d for name, d in dirs.items()}


class _KBCropped:
    """An evaluation transform applied to the sample cut to the KITTI benchmark crop (:func:`kb_crop`), for
    protocols with ``kb_crop: true``: the network sees the crop and the metrics its ground truth. The image is
    decoded at full scale (``decode_size`` None), so the crop's pixel offsets hold."""

    decode_size = None

    def __init__(self, transform: EvalTransform) -> None:
        self.transform = transform

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> dict[str, Any]:
        return self.transform(kb_crop(sample), rng)


class BenchmarkDataModule(pl.LightningDataModule):
    """One evaluation loader per benchmark (``test_dataloader`` returns them in order), each reading every sample of
    its shards once through :class:`~anydepth.data.transforms.EvalTransform` (no shuffling).

    Built from a config (LightningCLI ``--data``): ``benchmarks`` names the benchmarks and each is read from
    ``data_root/<benchmark>`` (or its protocol's ``shards`` directory), checked at construction by
    :func:`benchmark_shards` (unknown name, missing or partial shards: one :class:`EvaluationError` listing every
    problem). From Python, ``benchmarks`` may instead map each benchmark to its shards (a shard directory with
    ``manifest.json``, a shard path or pattern, or a list of them; no ``data_root``), read as given.

    Under DDP the loaders are built when the Trainer asks for them (after DDP is set up), and the shards of all
    benchmarks, taken in order as one list, are dealt to the ranks round-robin (:func:`~anydepth.shards.dealing.deal`):
    each sample is read by exactly one rank, and every rank gets a shard as long as there are at least as many shards
    as ranks (checked; a rank without any batch would skip ``on_test_epoch_end`` and hang the others' metric
    synchronisation). Within a rank, the DataLoader workers split that rank's shards. Build benchmark shards with a
    ``--samples-per-shard`` small enough for ``ranks x workers`` shards per benchmark to use every device and worker.

    Args:
        benchmarks: benchmark names, in dataloader order (read from :meth:`Protocol.shard_dir`, by default
            ``data_root/<name>``), or ``{name: shards}``.
        data_root: the directory holding one shard directory per benchmark (required with names, unused with a
            mapping).
        batch_size: images per batch; > 1 only for benchmarks whose images share one size.
        num_workers: DataLoader workers per device.
        input_size: shorter network input side, rounded to a multiple of 14 (518 in the paper).
        protocols: a protocols YAML (see :func:`load_protocols`) declaring benchmarks beyond the registry; a
            :class:`~anydepth.evaluation.DepthEvaluator` without protocols of its own scores with these.
        pin_memory: pin host memory (default: when CUDA is available).
    """

    def __init__(
        self,
        benchmarks: list[str] | dict[str, str | list[str]],
        data_root: str | None = None,
        batch_size: int = 1,
        num_workers: int = 2,
        input_size: int = 518,
        protocols: str | None = None,
        pin_memory: bool | None = None,
    ) -> None:
        super().__init__()
        check_prediction_settings(input_size, batch_size, num_workers, EvaluationError)
        self.protocols = None if protocols is None else load_protocols(protocols)  # None: the registry's
        if isinstance(benchmarks, Mapping):
            if data_root is not None:
                raise EvaluationError("give data_root with benchmark names, not with a {benchmark: shards} mapping")
            shards: Mapping[str, Any] = benchmarks
        else:
            if isinstance(benchmarks, str):  # "nyuv2,kitti" or "nyuv2"
                benchmarks = [b.strip() for b in benchmarks.split(",") if b.strip()]
            if data_root is None:
                raise EvaluationError("data_root is required: benchmarks are read from data_root/<benchmark>")
            names = expand_benchmarks(benchmarks)  # a set name (e.g. marigold) stands for its members
            shards = benchmark_shards(names, data_root, self.protocols)
        self.shards = {
            name: [str(s)] if isinstance(s, str | os.PathLike) else [str(x) for x in s] for name, s in shards.items()
        }
        self.data_root = data_root
        self.batch_size, self.num_workers, self.input_size = batch_size, num_workers, input_size
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory

    @property
    def benchmarks(self) -> list[str]:
        return list(self.shards)

    def shard_lists(self) -> dict[str, ShardList]:
        """Every benchmark's shards (all ranks)."""
        return {name: resolve_shards(shards) for name, shards in self.shards.items()}

    def check_world_size(self, world_size: int) -> None:
        """Raise :class:`EvaluationError` unless there are at least as many shards, all benchmarks together, as
        ``world_size`` ranks (run before any DDP launch, every rank failing alike rather than hanging)."""
        total = sum(len(shards.urls) for shards in self.shard_lists().values())
        require_one_per_rank(total, world_size, f"benchmarks {', '.join(self.shards)}", EvaluationError)

    def rank_shards(self, rank: int, world_size: int) -> dict[str, ShardList]:
        """The shards rank ``rank`` of ``world_size`` reads: positions ``rank, rank + world_size, ...`` of the
        concatenated shard lists, per benchmark (possibly none for some benchmarks)."""
        self.check_world_size(world_size)
        lists = self.shard_lists()
        every = [(name, url, count) for name, s in lists.items() for url, count in zip(s.urls, s.counts)]
        mine = deal(every, rank, world_size)
        return {
            name: ShardList(tuple(u for n, u, _ in mine if n == name), tuple(c for n, _, c in mine if n == name))
            for name in lists
        }

    def setup(self, stage: str) -> None:
        if self.trainer is not None:
            self.check_world_size(self.trainer.world_size)

    def test_dataloader(self) -> list[ShardLoader]:
        loaders = []
        protocols = self.protocols or PROTOCOLS
        for name, shards in self.rank_shards(*rank_and_world_size(self.trainer)).items():
            transform = EvalTransform(self.input_size)
            if name in protocols and protocols[name].kb_crop:
                transform = _KBCropped(transform)
            dataset = ShardDataset(shards, transform, self.batch_size, resampled=False, shuffle=False, name=name)
            loaders.append(ShardLoader(dataset, num_workers=self.num_workers, pin_memory=self.pin_memory))
        return loaders
