"""Zero-shot relative depth evaluation on the paper's six benchmarks (Depth Anything, Table 2).

Protocol (paper, supplementary Sec. 1): "During inference, we do not crop images and only ensure both sides are
multipliers of 14 [...]. Evaluation is performed at the original resolution by interpolating the prediction.
Following MiDaS, in zero-shot evaluation, the scale and shift of our prediction are manually aligned with the ground
truth." Per image, here:

1. the image is resized (aspect kept, shorter side >= ``input_size``, sides multiples of 14: the data pipeline's
   :class:`~anydepth.data.transforms.EvalTransform`), ImageNet-normalised on the device, and run through the model;
2. the predicted relative disparity is upsampled bilinearly (``align_corners=True``, as the official
   ``infer_image``) to the ground-truth resolution;
3. ground truth stored as disparity becomes depth up to scale (median 1, :func:`~anydepth.metrics.depth_from_label`);
   valid pixels = the sample's mask (finite, positive depth, plus any validity mask the dataset ships) AND the
   protocol's depth range ``min_depth < d < max_depth`` AND the protocol's crop (Eigen / Garg, as fractions of the
   ground-truth size);
4. the prediction is aligned to ``1 / depth`` over the valid pixels by least-squares scale and shift (MiDaS,
   disparity space), inverted to depth, clamped to the range, and scored (AbsRel, delta_1, ...), see
   :mod:`anydepth.metrics`; each image counts once and the benchmark score is the mean over images.

The paper gives no depth ranges or crops; :data:`PROTOCOLS` documents the convention chosen for each benchmark and
where it comes from (``note``). ``configs/eval/protocols.yaml`` mirrors it and is the template for overrides:
:func:`load_protocols` merges a user YAML on top of the defaults field by field.

:func:`evaluate` runs a :class:`DepthEvaluator` (a LightningModule) with ``lightning.Trainer.test`` over the
benchmark shards (``data_root/<benchmark>/manifest.json``, built by ``anydepth shards build --source <benchmark>``,
or the directory a protocol names with ``shards``).
The metrics are torchmetrics states reduced by sum across ranks, and each rank reads a disjoint set of shards, so
``devices=N`` (DDP) gives the single-device result exactly (up to float summation order). The same two classes run
from a LightningCLI config: ``anydepth test --config configs/eval/test.yaml --model.init_args.checkpoint CKPT``
(``DepthEvaluator(checkpoint, ...)`` and ``BenchmarkDataModule(benchmarks, data_root, ...)`` take plain values).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

import lightning.pytorch as pl
import torch
import yaml
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from torch import Tensor, nn

from anydepth.data.datamodules import check_prediction_settings
from anydepth.data.transforms import EvalTransform
from anydepth.metrics import RelativeDepthMetrics, depth_from_label
from anydepth.models.depth_anything import DepthAnything
from anydepth.models.preprocess import normalize, upsample_prediction
from anydepth.shards.manifest import MANIFEST_NAME, Manifest
from anydepth.shards.reader import ShardDataset, ShardList, ShardLoader, resolve_shards
from anydepth.shards.schema import LABEL_KINDS

__all__ = [
    "CROPS",
    "DEFAULT_PROTOCOLS_YAML",
    "IMAGES",
    "PROTOCOLS",
    "BenchmarkDataModule",
    "DepthEvaluator",
    "EvalProgressBar",
    "EvaluationError",
    "Protocol",
    "Results",
    "benchmark_shards",
    "evaluate",
    "format_markdown_table",
    "load_protocols",
    "protocol_table",
    "upsample_prediction",
    "write_report",
]

logger = logging.getLogger(__name__)

CropName = Literal["none", "eigen", "garg"]
AlignName = Literal["disparity", "depth", "none"]

CROPS: dict[str, tuple[float, float, float, float] | None] = {
    "none": None,
    # Eigen et al. (NIPS 2014) crop of NYUv2's 480 x 640 frames: rows 45:471, columns 41:601 (as Marigold's
    # nyu_dataset.py and BTS). Written as fractions so it scales with the ground truth; exact on 480 x 640.
    "eigen": (45 / 480, 471 / 480, 41 / 640, 601 / 640),
    # Garg et al. (ECCV 2016) crop of KITTI, the fractions of the BTS / ZoeDepth / Marigold evaluation code.
    "garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),
}
"""Crop -> ``(top, bottom, left, right)`` fractions of the ground-truth height / width; the kept region is
``rows int(top * H) : int(bottom * H)``, ``columns int(left * W) : int(right * W)`` (the reference code's ``int``
truncation)."""

_CROP_TEXT = {
    "none": "none",
    "eigen": "Eigen (rows 45:471, cols 41:601 of 480×640)",
    "garg": "Garg ([0.4081 H, 0.9919 H) × [0.0359 W, 0.9641 W))",
}

IMAGES = "images"
"""Key of the number of images scored (images with at least one valid pixel) in each benchmark's results."""

Results = Mapping[str, Mapping[str, Any]]
"""One model's ``{benchmark: {metric: value}}`` (what :func:`evaluate` returns)."""

DEFAULT_PROTOCOLS_YAML = Path(__file__).resolve().parents[3] / "configs" / "eval" / "protocols.yaml"
"""The defaults as YAML (a source checkout's ``configs/eval/protocols.yaml``): identical to :data:`PROTOCOLS`
(tested), and the template for a user's overrides file."""


class EvaluationError(ValueError):
    """A benchmark that cannot be evaluated as asked (unknown name, missing or partial shards, bad protocol file)."""


@dataclass(frozen=True)
class Protocol:
    """How one benchmark is scored.

    Attributes:
        name: the benchmark, also the reader kind and (unless ``shards`` says otherwise) the shard directory name
            under ``data_root``.
        min_depth: ground truth at or below is invalid (metres; for disparity ground truth, units of the image's
            median depth, see :func:`~anydepth.metrics.depth_from_label`); also the lower clamp of the prediction.
        max_depth: ground truth at or above is invalid, or None for no cap; also the upper clamp of the prediction
            and, as ``1 / max_depth``, the floor of the aligned disparity.
        crop: evaluation crop (:data:`CROPS`), applied as fractions of the ground-truth size.
        align: ``"disparity"`` (MiDaS / Depth Anything zero-shot: least squares on ``1 / depth``), ``"depth"``
            (least squares on depth) or ``"none"`` (the prediction is metric depth).
        note: where the convention comes from (rendered by :func:`protocol_table`).
        shards: the benchmark's shard directory, relative to ``data_root`` or absolute (None: ``name``).
    """

    name: str
    min_depth: float
    max_depth: float | None
    crop: CropName = "none"
    align: AlignName = "disparity"
    note: str = ""
    shards: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise EvaluationError("a protocol needs a name")
        if self.crop not in CROPS:
            raise EvaluationError(f"protocol {self.name!r}: crop must be one of {list(CROPS)}, got {self.crop!r}")
        if self.align not in get_args(AlignName):
            raise EvaluationError(
                f"protocol {self.name!r}: align must be one of {list(get_args(AlignName))}, got {self.align!r}"
            )
        if self.shards is not None and (not isinstance(self.shards, str) or not self.shards):
            raise EvaluationError(f"protocol {self.name!r}: shards must be a directory path, got {self.shards!r}")
        for attr in ("min_depth", "max_depth"):
            value = getattr(self, attr)
            if value is None and attr == "max_depth":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise EvaluationError(f"protocol {self.name!r}: {attr} must be a finite number, got {value!r}")
            object.__setattr__(self, attr, float(value))
        if self.min_depth < 0:
            raise EvaluationError(f"protocol {self.name!r}: min_depth must be >= 0, got {self.min_depth}")
        if self.max_depth is not None and self.max_depth <= self.min_depth:
            raise EvaluationError(
                f"protocol {self.name!r}: max_depth ({self.max_depth}) must exceed min_depth ({self.min_depth})"
            )

    def crop_mask(self, height: int, width: int, device: torch.device | str | None = None) -> Tensor:
        """``height x width`` bool map of the pixels the crop keeps (all of them for ``"none"``)."""
        fractions = CROPS[self.crop]
        if fractions is None:
            return torch.ones(height, width, dtype=torch.bool, device=device)
        top, bottom, left, right = fractions
        keep = torch.zeros(height, width, dtype=torch.bool, device=device)
        keep[int(top * height) : int(bottom * height), int(left * width) : int(right * width)] = True
        return keep

    def valid_mask(self, depth: Tensor, mask: Tensor | None = None) -> Tensor:
        """Pixels that count: ``mask`` (default all) & finite depth & ``min_depth < depth < max_depth`` & crop.

        ``depth`` is ``[B x] H x W`` ground truth in metres; the result has its shape.
        """
        valid = torch.isfinite(depth) & (depth > self.min_depth)
        if self.max_depth is not None:
            valid &= depth < self.max_depth
        if mask is not None:
            valid &= mask.to(torch.bool)
        return valid & self.crop_mask(depth.shape[-2], depth.shape[-1], depth.device)

    def shard_dir(self, data_root: str | os.PathLike) -> Path:
        """The benchmark's shard directory: ``data_root / (shards or name)`` (an absolute ``shards`` as is)."""
        return Path(data_root) / (self.shards or self.name)

    def metric(self) -> RelativeDepthMetrics:
        """A fresh :class:`~anydepth.metrics.RelativeDepthMetrics` with this protocol's alignment and range."""
        return RelativeDepthMetrics(align=self.align, min_depth=self.min_depth, max_depth=self.max_depth)

    def to_dict(self) -> dict[str, Any]:
        """The fields except ``name``, and ``shards`` only when set (the YAML layout: ``name: {field: value}``)."""
        skip = ("name",) if self.shards is not None else ("name", "shards")
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


# Sources of the conventions (the paper states no ranges or crops): BTS (cleinc/bts, eval), ZoeDepth
# (isl-org/ZoeDepth, zoedepth/utils/config.py: min/max_depth_eval, garg_crop / eigen_crop per dataset) and Marigold
# (prs-eth/Marigold, src/dataset/<name>_dataset.py: min_depth / max_depth, crops, DIODE's mask).
PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol("kitti", 1e-3, 80.0, "garg", note="Garg crop, 1e-3-80 m: BTS, ZoeDepth (Marigold: Eigen crop)"),
        Protocol("nyuv2", 1e-3, 10.0, "eigen", note="Eigen crop, 1e-3-10 m: BTS, ZoeDepth, Marigold"),
        Protocol("sintel", 1e-3, 72.0, note="72 m cap, the usual MiDaS-style convention (the paper states none)"),
        Protocol("ddad", 1e-3, 80.0, note="1e-3-80 m: ZoeDepth; uncropped (Garg is a KITTI crop)"),
        Protocol("eth3d", 1e-3, None, note="no upper cap: Marigold"),
        Protocol("diode-indoor", 0.6, 350.0, note="DIODE's mask, 0.6-350 m (scanner range): Marigold's DIODE"),
        Protocol("diode-outdoor", 0.6, 350.0, note="DIODE's mask, 0.6-350 m (scanner range): Marigold's DIODE"),
    )
}
"""The default protocol of each benchmark (see each ``note`` and the README's "Zero-shot evaluation")."""


# ---------------------------------------------------------------------------------------------------- protocols


def _merge(base: dict[str, Protocol], entries: Mapping[str, Any], origin: str) -> dict[str, Protocol]:
    """Merge ``{name: {field: value}}`` into ``base`` field by field; a new name must give both depth bounds."""
    if not isinstance(entries, Mapping):
        raise EvaluationError(f"{origin}: expected a mapping of benchmark name -> protocol fields, got {entries!r}")
    known = [f.name for f in fields(Protocol) if f.name != "name"]
    merged = dict(base)
    for name, values in entries.items():
        values = {} if values is None else values
        if not isinstance(values, Mapping):
            raise EvaluationError(f"{origin}: {name!r} must map to protocol fields {known}, got {values!r}")
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise EvaluationError(f"{origin}: {name!r} has unknown field(s) {unknown}; protocol fields: {known}")
        name = str(name)
        if name in merged:
            merged[name] = dataclasses.replace(merged[name], **values)
        else:
            missing = [f for f in ("min_depth", "max_depth") if f not in values]
            if missing:
                raise EvaluationError(f"{origin}: new protocol {name!r} must set {' and '.join(missing)}")
            merged[name] = Protocol(name=name, **values)
    return merged


def load_protocols(
    path: str | os.PathLike | None = None, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Protocol]:
    """The default :data:`PROTOCOLS`, then the YAML file ``path``, then ``overrides``, merged field by field.

    The YAML (like ``configs/eval/protocols.yaml``) maps benchmark names to fields::

        kitti:
          max_depth: 50.0      # only this field changes; kitti keeps its crop, range minimum and alignment
        scannet:               # a new benchmark: data_root/scannet, both depth bounds required
          min_depth: 0.001
          max_depth: 10.0
          crop: eigen
          shards: scannet/test   # optional: read data_root/scannet/test instead

    Fields: ``min_depth``, ``max_depth`` (null: no cap), ``crop`` (none / eigen / garg), ``align``
    (disparity / depth / none), ``note``, ``shards`` (the shard directory, relative to the data root or absolute;
    default the name). Unknown names or fields raise :class:`EvaluationError`.
    """
    protocols = dict(PROTOCOLS)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise EvaluationError(f"protocol file {path} does not exist")
        try:
            entries = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise EvaluationError(f"protocol file {path} is not valid YAML: {err}") from err
        protocols = _merge(protocols, entries or {}, str(path))
    if overrides:
        protocols = _merge(protocols, overrides, "overrides")
    return protocols


def protocol_table(protocols: Mapping[str, Protocol] | None = None) -> str:
    """The protocols as a Markdown table (the README's protocol table is this output)."""

    def number(x: float | None) -> str:
        return "none" if x is None else f"{x:g}"

    rows = [
        "| benchmark | min depth (m) | max depth (m) | crop | alignment | convention |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for p in (PROTOCOLS if protocols is None else protocols).values():
        rows.append(
            f"| `{p.name}` | {number(p.min_depth)} | {number(p.max_depth)} | {_CROP_TEXT.get(p.crop, p.crop)} "
            f"| {p.align} | {p.note} |"
        )
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------------------- results

_COLUMNS = {
    "abs_rel": "AbsRel", "d1": "δ1", "sq_rel": "SqRel", "rmse": "RMSE", "rmse_log": "RMSE log",
    "log10": "log10", "silog": "SILog", "d2": "δ2", "d3": "δ3", IMAGES: "images",
}  # fmt: skip
_ORDER = ("abs_rel", "d1", "sq_rel", "rmse", "rmse_log", "log10", "silog", "d2", "d3", IMAGES)


def _cell(name: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if name == IMAGES:
        return str(int(value))
    return f"{float(value):.3f}"


def _per_model(results: Results | Mapping[str, Results]) -> bool:
    """Whether ``results`` is ``{model: {benchmark: {metric: value}}}`` (metric values are numbers, not mappings)."""
    return any(isinstance(value, Mapping) for inner in results.values() for value in inner.values())


def _benchmarks_of(per_model: Mapping[str, Results]) -> list[str]:
    """Every benchmark of ``{model: {benchmark: ...}}``, in order of first appearance."""
    return list(dict.fromkeys(name for results in per_model.values() for name in results))


def format_markdown_table(results: Results | Mapping[str, Results]) -> str:
    """One model's ``{benchmark: {metric: value}}`` as a Markdown table: one row per benchmark (in the given order),
    columns AbsRel and δ1 first, then SqRel, RMSE, RMSE log, log10, SILog, δ2, δ3, images (the metrics present),
    values with 3 decimals (``n/a`` for NaN, i.e. no valid image). Unknown metric keys follow under their own name.

    Several models' ``{model: {benchmark: {metric: value}}}`` give one table with a ``model`` column after
    ``benchmark``: rows grouped by benchmark (in order of first appearance) and, within a group, one per model that
    has the benchmark, in the given order, so the numbers to compare sit on adjacent rows."""
    if _per_model(results):
        labels = ["benchmark", "model"]
        rows = [([b, m], results[m][b]) for b in _benchmarks_of(results) for m in results if b in results[m]]
    else:
        labels, rows = ["benchmark"], [([name], metrics) for name, metrics in results.items()]
    present = {key for _, metrics in rows for key in metrics}
    keys = [k for k in _ORDER if k in present] + sorted(present - set(_ORDER))
    lines = [
        "| " + " | ".join([*labels, *(_COLUMNS.get(k, k) for k in keys)]) + " |",
        "| " + " | ".join(["---"] * (len(labels) + len(keys))) + " |",
    ]
    for row, metrics in rows:
        lines.append("| " + " | ".join([*row, *(_cell(k, metrics.get(k)) for k in keys)]) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- data


def _listing(directory: Path, limit: int = 12) -> str:
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in directory.iterdir())
    if not entries:
        return "nothing (empty directory)"
    more = f" and {len(entries) - limit} more" if len(entries) > limit else ""
    return ", ".join(entries[:limit]) + more


def _build_hint(name: str, directory: Path) -> str:
    kind = name if name in PROTOCOLS else "<reader kind>"
    return f"anydepth shards build --source {kind} --root <{name} dataset root> --out {directory}"


def _benchmark_problem(protocol: Protocol, data_root: Path) -> str | None:
    """What is wrong with the protocol's shard directory under ``data_root``, or None when it is complete."""
    name, directory = protocol.name, protocol.shard_dir(data_root)
    expected = f"expected {directory / MANIFEST_NAME} built with `{_build_hint(name, directory)}`"
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
    if manifest.source != name and protocol.shards is None:  # a protocol naming its shards chose them knowingly
        logger.warning("%s: %s was built by the %r reader; evaluating it with the %r protocol", name, directory,
                       manifest.source, name)  # fmt: skip
    return None


def benchmark_shards(
    benchmarks: Sequence[str], data_root: str | os.PathLike, protocols: Mapping[str, Protocol] | None = None
) -> dict[str, Path]:
    """``{benchmark: shard directory}`` (:meth:`Protocol.shard_dir`, by default ``data_root/benchmark``) after
    checking every benchmark has a protocol and complete, labeled shards; one :class:`EvaluationError` lists every
    problem (what was expected, what was found)."""
    protocols = PROTOCOLS if protocols is None else protocols
    if not benchmarks:
        raise EvaluationError(f"no benchmark given; choose from {', '.join(protocols)}")
    unknown = [b for b in benchmarks if b not in protocols]
    if unknown:
        raise EvaluationError(
            f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(protocols)} "
            "(add others with a protocols YAML, see configs/eval/protocols.yaml)"
        )
    data_root = Path(data_root)
    problems = [p for p in (_benchmark_problem(protocols[name], data_root) for name in benchmarks) if p]
    if problems:
        raise EvaluationError("benchmark shards missing or incomplete:\n  " + "\n  ".join(problems))
    return {name: protocols[name].shard_dir(data_root) for name in benchmarks}


class BenchmarkDataModule(pl.LightningDataModule):
    """One evaluation loader per benchmark (``test_dataloader`` returns them in order), each reading every sample of
    its shards once through :class:`~anydepth.data.transforms.EvalTransform` (no shuffling).

    Built from a config (LightningCLI ``--data``): ``benchmarks`` names the benchmarks and each is read from
    ``data_root/<benchmark>`` (or its protocol's ``shards`` directory), checked at construction by
    :func:`benchmark_shards` (unknown name, missing or partial shards: one :class:`EvaluationError` listing every
    problem). From Python, ``benchmarks`` may instead map each benchmark to its shards (a shard directory with
    ``manifest.json``, a shard path or pattern, or a list of them; no ``data_root``), read as given.

    Under DDP the loaders are built when the Trainer asks for them (after DDP is set up), and the shards of all
    benchmarks, taken in order as one list, are dealt to the ranks round-robin: each sample is read by exactly one
    rank, and every rank gets a shard as long as there are at least as many shards as ranks (checked; a rank without
    any batch would skip ``on_test_epoch_end`` and hang the others' metric synchronisation). Within a rank, the
    DataLoader workers split that rank's shards. Build benchmark shards with a ``--samples-per-shard`` small enough
    for ``ranks x workers`` shards per benchmark to use every device and worker.

    Args:
        benchmarks: benchmark names, in dataloader order (read from :meth:`Protocol.shard_dir`, by default
            ``data_root/<name>``), or ``{name: shards}``.
        data_root: the directory holding one shard directory per benchmark (required with names, unused with a
            mapping).
        batch_size: images per batch; > 1 only for benchmarks whose images share one size.
        num_workers: DataLoader workers per device.
        input_size: shorter network input side, rounded to a multiple of 14 (518 in the paper).
        protocols: a protocols YAML (see :func:`load_protocols`) declaring benchmarks beyond the defaults; a
            :class:`DepthEvaluator` without protocols of its own scores with these.
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
        self.protocols = None if protocols is None else load_protocols(protocols)  # None: the defaults
        if isinstance(benchmarks, Mapping):
            if data_root is not None:
                raise EvaluationError("give data_root with benchmark names, not with a {benchmark: shards} mapping")
            shards: Mapping[str, Any] = benchmarks
        else:
            if isinstance(benchmarks, str):  # "nyuv2,kitti" or "nyuv2"
                benchmarks = [b.strip() for b in benchmarks.split(",") if b.strip()]
            if data_root is None:
                raise EvaluationError("data_root is required: benchmarks are read from data_root/<benchmark>")
            names = list(dict.fromkeys(benchmarks))
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

    def rank_shards(self, rank: int, world_size: int) -> dict[str, ShardList]:
        """The shards rank ``rank`` of ``world_size`` reads: positions ``rank, rank + world_size, ...`` of the
        concatenated shard lists, per benchmark (possibly none for some benchmarks)."""
        lists = self.shard_lists()
        total = sum(len(s.urls) for s in lists.values())
        if total < world_size:
            raise EvaluationError(
                f"{total} benchmark shard(s) for {world_size} devices: every device needs at least one shard; "
                "rebuild the benchmarks with a smaller --samples-per-shard or use fewer devices"
            )
        out, offset = {}, 0
        for name, shards in lists.items():
            mine = [i for i in range(len(shards.urls)) if (offset + i) % world_size == rank]
            out[name] = ShardList(tuple(shards.urls[i] for i in mine), tuple(shards.counts[i] for i in mine))
            offset += len(shards.urls)
        return out

    def setup(self, stage: str) -> None:
        if self.trainer is not None:  # every rank fails alike (no hang) with fewer shards than ranks
            self.rank_shards(0, self.trainer.world_size)

    def test_dataloader(self) -> list[ShardLoader]:
        rank, world_size = (0, 1) if self.trainer is None else (self.trainer.global_rank, self.trainer.world_size)
        loaders = []
        for name, shards in self.rank_shards(rank, world_size).items():
            dataset = ShardDataset(
                shards, EvalTransform(self.input_size), self.batch_size, resampled=False, shuffle=False, name=name
            )
            loaders.append(ShardLoader(dataset, num_workers=self.num_workers, pin_memory=self.pin_memory))
        return loaders


# ---------------------------------------------------------------------------------------------------- runner


class DepthEvaluator(pl.LightningModule):
    """Zero-shot evaluation of a :class:`DepthAnything` as a LightningModule for ``Trainer.test`` (``anydepth test``).

    ``test_step`` takes :class:`~anydepth.data.transforms.EvalTransform` batches of dataloader ``i`` =
    ``benchmarks[i]`` (``image`` in [0, 1], ImageNet-normalised here on the device; ``label`` (depth, or disparity
    turned into depth up to scale by :func:`~anydepth.metrics.depth_from_label`) and ``mask`` at ``original_size``,
    the ground-truth resolution), upsamples the prediction to that size, builds the protocol's valid mask
    (:meth:`Protocol.valid_mask`) and updates that benchmark's :class:`RelativeDepthMetrics`.
    ``on_test_epoch_end`` computes every benchmark (synchronised across ranks), logs ``<benchmark>/<metric>``, stores
    the values in :attr:`results` (``{benchmark: {metric: float, "images": int}}``) and resets the metrics;
    at the end of ``test`` (``teardown``), rank 0 prints them as a Markdown table (:func:`format_markdown_table`)
    and writes ``output``.

    The constructor takes what a LightningCLI config can hold (``configs/eval/test.yaml``); :meth:`from_model` wraps
    a model already in memory. With a :class:`BenchmarkDataModule`, benchmarks and protocols left unset here are
    taken from it at ``setup``, and ones set on both must agree (dataloader ``i`` is scored as ``benchmarks[i]``).

    Args:
        checkpoint: any checkpoint :meth:`DepthAnything.from_checkpoint` reads (official ``.pth``, transformers
            directory, anydepth / Lightning checkpoint).
        benchmarks: the benchmark of each test dataloader, in order (default: the data module's).
        protocols: a protocols YAML merged over the defaults (:func:`load_protocols`); default: the data module's
            protocols if it has some, else :data:`PROTOCOLS`.
        encoder: expected encoder, checked against the checkpoint.
        version: Depth Anything version, for checkpoints that do not say.
        output: also write the metrics, protocols, checkpoint and input size as JSON to this file (rank 0), as
            ``anydepth eval --output``.
        print_table: print the Markdown table on stdout at the end of ``test`` (rank 0).
    """

    def __init__(
        self,
        checkpoint: str,
        benchmarks: list[str] | None = None,
        protocols: str | None = None,
        encoder: str | None = None,
        version: str | None = None,
        output: str | None = None,
        print_table: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        model = DepthAnything.from_checkpoint(checkpoint, encoder=encoder, version=version)
        self._build(model, None if protocols is None else load_protocols(protocols), benchmarks, output, print_table)
        self.checkpoint: str | None = str(checkpoint)

    @classmethod
    def from_model(
        cls,
        model: DepthAnything,
        protocols: Mapping[str, Protocol] | Iterable[Protocol] | None = None,
        benchmarks: Sequence[str] | None = None,
        output: str | os.PathLike | None = None,
        print_table: bool = False,
    ) -> DepthEvaluator:
        """An evaluator of ``model`` (no checkpoint is read): ``protocols`` ``{name: Protocol}`` or an iterable of
        protocols (default: the data module's, else :data:`PROTOCOLS`), ``benchmarks`` in dataloader order (default:
        the data module's, else every protocol); ``output`` and ``print_table`` as in the constructor."""
        self = cls.__new__(cls)
        pl.LightningModule.__init__(self)
        self._build(model, protocols, benchmarks, output, print_table)
        self.checkpoint = None
        return self

    def _build(
        self,
        model: DepthAnything,
        protocols: Mapping[str, Protocol] | Iterable[Protocol] | None,
        benchmarks: Sequence[str] | None,
        output: str | os.PathLike | None,
        print_table: bool,
    ) -> None:
        if protocols is not None and not isinstance(protocols, Mapping):
            protocols = {p.name: p for p in protocols}
        self.model = model.eval()
        # DDP: a rank may hold no shard of some benchmark (the data module gives every rank at least one batch)
        self.allow_zero_length_dataloader_with_multiple_devices = True
        self.output = None if output is None else Path(output)
        self.print_table = print_table
        self._given = (None if protocols is None else dict(protocols), None if benchmarks is None else list(benchmarks))
        self.benchmarks: list[str] = []
        self.protocols: dict[str, Protocol] = {}
        self.metrics = nn.ModuleDict()
        self.results: dict[str, dict[str, float]] = {}
        self._quiet: warnings.catch_warnings | None = None
        if benchmarks is not None:  # unknown or repeated names fail here, before any Trainer starts
            self._configure(list(benchmarks), PROTOCOLS if protocols is None else protocols)
        elif protocols is not None:
            self._configure(list(protocols), protocols)

    def _configure(self, benchmarks: list[str], protocols: Mapping[str, Protocol]) -> None:
        """Score ``benchmarks`` (dataloader order) with ``protocols``: one fresh metric per benchmark."""
        unknown = [b for b in benchmarks if b not in protocols]
        if unknown:
            raise EvaluationError(f"no protocol for benchmark(s) {', '.join(unknown)}; known: {', '.join(protocols)}")
        if len(set(benchmarks)) != len(benchmarks):
            raise EvaluationError(f"benchmarks listed twice: {benchmarks}")
        chosen = {name: protocols[name] for name in benchmarks}
        if benchmarks == self.benchmarks and chosen == self.protocols:
            return
        self.benchmarks, self.protocols = benchmarks, chosen
        self.metrics = nn.ModuleDict({name: protocol.metric() for name, protocol in chosen.items()})

    def setup(self, stage: str) -> None:
        """Take the benchmarks and protocols left unset from a :class:`BenchmarkDataModule`; check the ones set."""
        if stage == "test" and self._quiet is None:
            # The shard datasets' __len__ is exact per worker; a rank without shards of a benchmark is expected (see
            # BenchmarkDataModule: its metric is then computed, i.e. synchronised, without a local update); the
            # logged values are already synchronised by torchmetrics. The filters are undone in teardown.
            self._quiet = warnings.catch_warnings()
            self._quiet.__enter__()
            _silence_expected_warnings()
        given_protocols, given_benchmarks = self._given
        data = self.trainer.datamodule
        if not isinstance(data, BenchmarkDataModule):
            if given_benchmarks is None and given_protocols is None:
                self._configure(list(PROTOCOLS), PROTOCOLS)
            return
        protocols = given_protocols or data.protocols or PROTOCOLS
        benchmarks = data.benchmarks if given_benchmarks is None else given_benchmarks
        if benchmarks != data.benchmarks:
            raise EvaluationError(
                f"the model scores benchmarks {benchmarks} but the data module reads {data.benchmarks} (test "
                "dataloader i is scored as benchmarks[i]): list the same benchmarks in the same order, or leave the "
                "model's benchmarks unset to take the data module's"
            )
        if given_protocols is not None and data.protocols is not None:
            differ = [b for b in benchmarks if given_protocols.get(b) != data.protocols.get(b)]
            if differ:
                raise EvaluationError(
                    f"the model's and the data module's protocols differ for {', '.join(differ)}: give the protocols "
                    "YAML to the data module only (the model then scores with it), or the same file to both"
                )
        self._configure(list(benchmarks), protocols)

    def teardown(self, stage: str) -> None:
        """After ``test`` (and after Lightning's own results table), rank 0 prints the Markdown table
        (``print_table``) and writes ``output``; every rank holds the same, synchronised results."""
        if self._quiet is not None:
            self._quiet.__exit__(None, None, None)
            self._quiet = None
        if stage != "test" or not self.results or not self.trainer.is_global_zero:
            return
        if self.print_table:
            print(format_markdown_table(self.results), flush=True)
        if self.output is not None:
            write_report(self.output, self.results, self.protocols, self.checkpoint,
                         getattr(self.trainer.datamodule, "input_size", None))  # fmt: skip
            print(f"wrote metrics of {len(self.results)} benchmark(s) to {self.output}", file=sys.stderr)

    def train(self, mode: bool = True) -> DepthEvaluator:
        """The wrapped model never leaves eval mode (no dropout / drop-path at evaluation)."""
        super().train(mode)
        self.model.eval()
        return self

    def forward(self, images: Tensor) -> Tensor:
        """``B x 3 x h x w`` images in [0, 1] (sides multiples of 14) -> ``B x h x w`` relative disparity."""
        return self.model(normalize(images))

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        name = self.benchmarks[dataloader_idx]
        keys = batch.get("key")
        if "label" not in batch:
            raise EvaluationError(f"{name}: samples {keys} have no depth label; benchmark shards need labels")
        mask = batch["mask"]
        try:
            depth = depth_from_label(batch["label"], mask, batch.get("label_kind") or ["depth"] * len(mask))
        except ValueError as err:
            raise EvaluationError(f"{name}: samples {keys}: {err}") from err
        size = tuple(int(s) for s in batch["original_size"][0]) if "original_size" in batch else depth.shape[-2:]
        if tuple(depth.shape[-2:]) != tuple(size):
            raise EvaluationError(f"{name}: samples {keys}: label {tuple(depth.shape[-2:])} != original_size {size}")
        pred = upsample_prediction(self(batch["image"]), size)
        protocol = self.protocols[name]
        self.metrics[name].update(pred, depth, protocol.valid_mask(depth, mask))

    def on_test_start(self) -> None:
        loaders = self.trainer.test_dataloaders
        count = len(loaders) if isinstance(loaders, list | tuple) else 1
        if count != len(self.benchmarks):
            raise EvaluationError(
                f"{count} test dataloader(s) for {len(self.benchmarks)} benchmark(s) {self.benchmarks}: the "
                "evaluator scores test dataloader i as benchmarks[i]"
            )

    def on_test_epoch_start(self) -> None:
        self.results = {}
        for metric in self.metrics.values():
            metric.reset()

    def on_test_epoch_end(self) -> None:
        for name in self.benchmarks:  # same order on every rank: compute() is a collective under DDP
            metric = self.metrics[name]
            values = {key: float(value) for key, value in metric.compute().items()}
            with metric.sync_context():
                values[IMAGES] = int(metric.count)
            if values[IMAGES] == 0:
                logger.warning("%s: no image had a valid ground-truth pixel; its metrics are NaN", name)
            self.results[name] = values
            self.log_dict({f"{name}/{key}": value for key, value in values.items()}, sync_dist=False)
            metric.reset()


def _silence_expected_warnings() -> None:
    """Filter the warnings a benchmark evaluation raises by design (see :meth:`DepthEvaluator.setup`)."""
    warnings.filterwarnings("ignore", message=".*IterableDataset.*has `__len__` defined")
    warnings.filterwarnings("ignore", message=".*local rank has zero length")
    warnings.filterwarnings("ignore", message="It is recommended to use `self.log\\(")
    warnings.filterwarnings("ignore", message="The ``compute`` method of metric RelativeDepthMetrics was called")


def _json_safe(value: Any) -> Any:
    """NaN (a benchmark without valid pixels) -> null, so the file is strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_report(
    path: str | os.PathLike,
    results: Results | Mapping[str, Results],
    protocols: Mapping[str, Protocol],
    checkpoint: str | os.PathLike | Mapping[str, str | os.PathLike] | None,
    input_size: int | None,
) -> Path:
    """Write the ``anydepth eval --output`` / ``DepthEvaluator(output=...)`` file to ``path`` as strict JSON (NaN ->
    null; parents created). One model (``results`` ``{benchmark: {metric: value}}``, its ``checkpoint`` path or
    None): ``{"metrics", "protocols", "checkpoint", "input_size"}``. Several models (``results``
    ``{model: {benchmark: ...}}``, ``checkpoint`` ``{model: path}``): ``{"models": {model: {"checkpoint",
    "metrics"}}, "protocols", "input_size"}``; ``protocols`` holds every benchmark scored."""
    if isinstance(checkpoint, Mapping):
        benchmarks = _benchmarks_of(results)
        head: dict[str, Any] = {
            "models": {m: {"checkpoint": str(checkpoint[m]), "metrics": dict(r)} for m, r in results.items()}
        }
    else:
        benchmarks = list(results)
        head = {"metrics": dict(results), "checkpoint": None if checkpoint is None else str(checkpoint)}
    report = {**head, "protocols": {name: protocols[name].to_dict() for name in benchmarks}, "input_size": input_size}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(report), indent=2) + "\n")
    return path


class EvalProgressBar(TQDMProgressBar):
    """Lightning's progress bar on stderr (stdout carries the results table), labelled with the benchmark
    (``anydepth eval`` uses it; add it to ``trainer.callbacks`` of a LightningCLI config)."""

    def init_test_tqdm(self) -> Tqdm:
        return Tqdm(
            desc="eval",
            position=2 * self.process_position,
            disable=self.is_disabled,
            leave=True,
            dynamic_ncols=True,
            file=sys.stderr,
            bar_format=self.BAR_FORMAT,
        )

    def on_test_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        super().on_test_batch_start(trainer, pl_module, batch, batch_idx, dataloader_idx)
        names = getattr(pl_module, "benchmarks", None)
        if batch_idx == 0 and names and dataloader_idx < len(names):
            self.test_progress_bar.set_description(f"eval {names[dataloader_idx]}")


def evaluate(
    checkpoint_or_model: str | os.PathLike | DepthAnything,
    benchmarks: Sequence[str],
    data_root: str | os.PathLike,
    input_size: int = 518,
    batch_size: int = 1,
    num_workers: int = 2,
    devices: int | str | Sequence[int] = 1,
    accelerator: str = "auto",
    strategy: str = "auto",
    precision: str | int | None = None,
    protocols: Mapping[str, Protocol] | None = None,
    progress: bool = True,
    encoder: str | None = None,
    version: str | None = None,
    **trainer_kwargs: Any,
) -> dict[str, dict[str, float]]:
    """Zero-shot evaluation of a checkpoint (any format ``DepthAnything.from_checkpoint`` reads, with the optional
    ``encoder``/``version`` hints) or a model on ``benchmarks``, each read from ``data_root/<benchmark>`` or the
    directory its protocol names (:meth:`Protocol.shard_dir`; a directory with ``manifest.json`` written by
    ``anydepth shards build``).

    Runs ``lightning.Trainer(accelerator, devices, strategy, precision, **trainer_kwargs).test`` once over one loader
    per benchmark; ``devices=N`` evaluates under DDP with every sample read once. ``input_size`` is the network's
    shorter input side (518 in the paper); ``batch_size > 1`` only for benchmarks whose images share one size.
    ``protocols`` defaults to :data:`PROTOCOLS` (see :func:`load_protocols`).

    Returns:
        ``{benchmark: {"abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog", "d1", "d2", "d3": float,
        "images": int}}`` in the order of ``benchmarks``; the same on every rank.

    Raises:
        EvaluationError: an unknown benchmark, or missing / incomplete shards (all problems in one message).
    """
    protocols = PROTOCOLS if protocols is None else protocols
    benchmarks = list(dict.fromkeys(benchmarks))
    check_prediction_settings(input_size, batch_size, error=EvaluationError)
    shards = benchmark_shards(benchmarks, data_root, protocols)
    if isinstance(checkpoint_or_model, DepthAnything):
        model = checkpoint_or_model
    else:
        model = DepthAnything.from_checkpoint(checkpoint_or_model, encoder=encoder, version=version)
    evaluator = DepthEvaluator.from_model(model, protocols, benchmarks)
    data = BenchmarkDataModule(shards, batch_size=batch_size, num_workers=num_workers, input_size=input_size)
    callbacks = list(trainer_kwargs.pop("callbacks", []) or [])
    if progress:
        callbacks.append(EvalProgressBar())
    settings: dict[str, Any] = dict(
        accelerator=accelerator, devices=devices, strategy=strategy, logger=False, enable_checkpointing=False,
        enable_model_summary=False, enable_progress_bar=progress, callbacks=callbacks,
    )  # fmt: skip
    if precision is not None:
        settings["precision"] = precision
    trainer = pl.Trainer(**{**settings, **trainer_kwargs})
    data.rank_shards(0, trainer.world_size)  # fail early (before any DDP launch) with too few shards
    with warnings.catch_warnings():  # the expected ones, see DepthEvaluator.setup
        _silence_expected_warnings()
        trainer.test(evaluator, dataloaders=data, verbose=False)
    return {name: evaluator.results[name] for name in benchmarks}
