"""How each benchmark is scored: the :class:`Protocol` record and the one registry of them (package data).

Protocol (paper, supplementary Sec. 1): "During inference, we do not crop images and only ensure both sides are
multipliers of 14 [...]. Evaluation is performed at the original resolution by interpolating the prediction.
Following MiDaS, in zero-shot evaluation, the scale and shift of our prediction are manually aligned with the ground
truth." Metric depth (Sec. 4.3, Tables 3-4, evaluated "with the ZoeDepth codebase") aligns nothing: protocols with
``align: none`` compare the prediction in metres directly. The paper gives no depth ranges or crops: the registry
``protocols.yaml`` beside this module documents the convention chosen for each benchmark and where it comes from
(``note``). It is loaded once into :data:`PROTOCOLS`, :data:`DEFAULT_BENCHMARKS` (relative mode) and
:data:`METRIC_BENCHMARKS` (metric mode); :func:`load_protocols` merges a user's YAML over it field by field.

This module imports no Lightning, so the command line reads the registry cheaply.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
import yaml
from torch import Tensor

from anydepth.metrics import RelativeDepthMetrics
from anydepth.shards.schema import Sample

__all__ = [
    "CROPS",
    "DEFAULT_BENCHMARKS",
    "BENCHMARK_SETS",
    "DEFAULT_PROTOCOLS_YAML",
    "KB_CROP",
    "METRIC_BENCHMARKS",
    "MODES",
    "PROTOCOLS",
    "EvaluationError",
    "Protocol",
    "check_mode",
    "default_benchmarks",
    "expand_benchmarks",
    "kb_crop",
    "load_protocols",
    "protocol_table",
]

CropName = Literal["none", "eigen", "garg", "kitti-eigen"]
AlignName = Literal["disparity", "depth", "none"]
Mode = Literal["relative", "metric"]
MODES: tuple[str, ...] = get_args(Mode)
"""``relative``: the prediction is aligned per image (``align`` disparity / depth); ``metric``: it is compared in
metres as it is (``align: none``, paper Sec. 4.3)."""

CROPS: dict[str, tuple[float, float, float, float] | None] = {
    "none": None,
    # Eigen et al. (NIPS 2014) crop of NYUv2's 480 x 640 frames: rows 45:471, columns 41:601 (as Marigold's
    # nyu_dataset.py and BTS). Written as fractions so it scales with the ground truth; exact on 480 x 640.
    "eigen": (45 / 480, 471 / 480, 41 / 640, 601 / 640),
    # Garg et al. (ECCV 2016) crop of KITTI, the fractions of the BTS / ZoeDepth / Marigold evaluation code.
    "garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),
    # Eigen et al. (NIPS 2014) crop of KITTI (not NYUv2's ``eigen``): BTS / ZoeDepth ``eigen_crop`` for
    # ``dataset == "kitti"``, Marigold's ``valid_mask_crop: eigen`` (src/dataset/kitti_dataset.py).
    "kitti-eigen": (0.3324324, 0.91351351, 0.0359477, 0.96405229),
}
"""Crop -> ``(top, bottom, left, right)`` fractions of the ground-truth height / width; the kept region is
``rows int(top * H) : int(bottom * H)``, ``columns int(left * W) : int(right * W)`` (the reference code's ``int``
truncation)."""

_CROP_TEXT = {
    "none": "none",
    "eigen": "Eigen (rows 45:471, cols 41:601 of 480×640)",
    "garg": "Garg ([0.4081 H, 0.9919 H) × [0.0359 W, 0.9641 W))",
    "kitti-eigen": "KITTI Eigen ([0.3324 H, 0.9135 H) × [0.0359 W, 0.9641 W))",
}

KB_CROP: tuple[int, int] = (352, 1216)
"""The KITTI benchmark crop (``kb_crop``): the bottom ``352`` rows and the centred ``1216`` columns of image and
ground truth, cut before inference (BTS / ZoeDepth ``do_kb_crop``, Marigold ``kitti_bm_crop``)."""


def kb_crop(sample: Sample) -> Sample:
    """``sample`` cut to the KITTI benchmark crop :data:`KB_CROP` (rows ``H - 352 : H``, columns ``(W - 1216) // 2``
    onwards: BTS's, ZoeDepth's and Marigold's offsets), every raster alike; :class:`EvaluationError` for a smaller
    image."""
    height, width = sample.image.shape[:2]
    crop_h, crop_w = KB_CROP
    if height < crop_h or width < crop_w:
        raise EvaluationError(
            f"sample {sample.key!r}: the KB crop needs at least {crop_h} x {crop_w}, got {height} x {width}"
        )
    top, left = height - crop_h, int((width - crop_w) / 2)

    def cut(raster: np.ndarray | None) -> np.ndarray | None:
        return None if raster is None else np.ascontiguousarray(raster[top : top + crop_h, left : left + crop_w])

    return dataclasses.replace(
        sample,
        image=cut(sample.image),
        label=cut(sample.label),
        mask=cut(sample.mask),
        sky=cut(sample.sky),
        seg=cut(sample.seg),
        full_size=None,
    )


DEFAULT_PROTOCOLS_YAML = files(__package__) / "protocols.yaml"
"""The registry (package data): ``default_benchmarks`` and ``protocols: {name: {field: value}}``. Users override it
with a flat ``{name: {field: value}}`` file (:func:`load_protocols`; the registry's header comment shows how)."""


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
        shards: the benchmark's shard directory, relative to ``data_root`` or absolute (None: ``name``), or a tuple
            of them read as one benchmark (e.g. DIODE's indoor and outdoor halves; a YAML list).
        kb_crop: cut image and ground truth to the KITTI benchmark crop (:func:`kb_crop`) before inference.
        min_disparity: floor of the aligned disparity (``align: disparity``); None: ``1 / max_depth``, or ``1e-6``
            without a cap (:class:`~anydepth.metrics.RelativeDepthMetrics`).
    """

    name: str
    min_depth: float
    max_depth: float | None
    crop: CropName = "none"
    align: AlignName = "disparity"
    note: str = ""
    shards: str | tuple[str, ...] | None = None
    kb_crop: bool = False
    min_disparity: float | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise EvaluationError("a protocol needs a name")
        if self.crop not in CROPS:
            raise EvaluationError(f"protocol {self.name!r}: crop must be one of {list(CROPS)}, got {self.crop!r}")
        if self.align not in get_args(AlignName):
            raise EvaluationError(
                f"protocol {self.name!r}: align must be one of {list(get_args(AlignName))}, got {self.align!r}"
            )
        if isinstance(self.shards, list | tuple):
            object.__setattr__(self, "shards", tuple(self.shards))
        shards = (self.shards,) if isinstance(self.shards, str) else self.shards
        if shards is not None and (not shards or not all(isinstance(s, str) and s for s in shards)):
            raise EvaluationError(f"protocol {self.name!r}: shards must be a directory path, got {self.shards!r}")
        if not isinstance(self.kb_crop, bool):
            raise EvaluationError(f"protocol {self.name!r}: kb_crop must be true or false, got {self.kb_crop!r}")
        for attr in ("min_depth", "max_depth", "min_disparity"):
            value = getattr(self, attr)
            if value is None and attr != "min_depth":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise EvaluationError(f"protocol {self.name!r}: {attr} must be a finite number, got {value!r}")
            object.__setattr__(self, attr, float(value))
        if self.min_depth < 0:
            raise EvaluationError(f"protocol {self.name!r}: min_depth must be >= 0, got {self.min_depth}")
        if self.min_disparity is not None and self.min_disparity <= 0:
            raise EvaluationError(f"protocol {self.name!r}: min_disparity must be > 0, got {self.min_disparity}")
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

    def shard_dirs(self, data_root: str | os.PathLike) -> list[Path]:
        """The benchmark's shard directories: ``data_root / directory`` for each of ``shards`` (default ``name``;
        an absolute one as is)."""
        shards = self.shards or self.name
        return [Path(data_root) / d for d in ((shards,) if isinstance(shards, str) else shards)]

    def shard_dir(self, data_root: str | os.PathLike) -> Path:
        """The benchmark's one shard directory (:meth:`shard_dirs`); :class:`EvaluationError` if it reads several."""
        dirs = self.shard_dirs(data_root)
        if len(dirs) != 1:
            raise EvaluationError(f"protocol {self.name!r} reads {len(dirs)} shard directories: use shard_dirs")
        return dirs[0]

    def as_disparity(self, depth: Tensor) -> Tensor:
        """A metric model's depth for this (relative) protocol's disparity alignment: ``1 / depth``, the depth first
        clamped to the range (as metric scoring clamps it), so a near-zero depth cannot dominate the least squares."""
        low = max(self.min_depth, torch.finfo(depth.dtype).tiny)
        return 1.0 / depth.clamp(min=low, max=self.max_depth)

    @property
    def mode(self) -> Mode:
        """``"metric"`` for ``align: none`` (metric depth compared as it is), else ``"relative"``."""
        return "metric" if self.align == "none" else "relative"

    def metric(self) -> RelativeDepthMetrics:
        """A fresh :class:`~anydepth.metrics.RelativeDepthMetrics` with this protocol's alignment and range."""
        extra = {} if self.min_disparity is None else {"min_disparity": self.min_disparity}
        return RelativeDepthMetrics(align=self.align, min_depth=self.min_depth, max_depth=self.max_depth, **extra)

    def to_dict(self) -> dict[str, Any]:
        """The fields except ``name``; ``shards``, ``kb_crop`` and ``min_disparity`` only when set (the YAML layout:
        ``name: {field: value}``; several shard directories as a list)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "name"}
        for key, default in _OPTIONAL.items():
            if out[key] == default:
                del out[key]
        if isinstance(out.get("shards"), tuple):
            out["shards"] = list(out["shards"])
        return out


_OPTIONAL: dict[str, Any] = {"shards": None, "kb_crop": False, "min_disparity": None}
"""Protocol fields that :meth:`Protocol.to_dict` (and the registry) leave out at their default."""


def _merge(base: Mapping[str, Protocol], entries: Any, origin: str) -> dict[str, Protocol]:
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


_DEFAULT_LISTS = {"relative": "default_benchmarks", "metric": "metric_benchmarks"}  # mode -> registry key


_REGISTRY_KEYS = (*_DEFAULT_LISTS.values(), "benchmark_sets", "protocols")


def _load_registry() -> tuple[dict[str, Protocol], dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """``(protocols, {mode: default benchmarks}, {set name: benchmarks})`` of :data:`DEFAULT_PROTOCOLS_YAML`,
    checked (every default has a protocol of its list's mode; every set names protocols of one mode)."""
    origin = f"the protocol registry {DEFAULT_PROTOCOLS_YAML}"
    registry = yaml.safe_load(DEFAULT_PROTOCOLS_YAML.read_text())
    if not isinstance(registry, Mapping) or set(registry) != set(_REGISTRY_KEYS):
        raise EvaluationError(f"{origin}: expected the keys {', '.join(_REGISTRY_KEYS)}")
    protocols = _merge({}, registry["protocols"], origin)
    defaults = {mode: tuple(registry[key]) for mode, key in _DEFAULT_LISTS.items()}
    for mode, names in defaults.items():
        wrong = [name for name in names if name not in protocols or protocols[name].mode != mode]
        if wrong:
            raise EvaluationError(f"{origin}: {_DEFAULT_LISTS[mode]} {wrong} have no {mode} protocol")
    sets = {str(name): tuple(members) for name, members in registry["benchmark_sets"].items()}
    for name, members in sets.items():
        if name in protocols or not members or any(m not in protocols for m in members):
            raise EvaluationError(f"{origin}: benchmark set {name!r} must list protocols and not be one: {members}")
        if len({protocols[m].mode for m in members}) != 1:
            raise EvaluationError(f"{origin}: benchmark set {name!r} mixes relative and metric protocols")
    return protocols, defaults, sets


_REGISTRY = _load_registry()
PROTOCOLS: dict[str, Protocol] = _REGISTRY[0]
"""Every registered protocol (the six zero-shot paper benchmarks, DIODE's halves, the ``marigold-*`` set, the metric
ones and ``demo``), in registry order; see each ``note``, the registry's evidence comments and the README's
"Zero-shot evaluation" and "Metric depth evaluation"."""
DEFAULT_BENCHMARKS: tuple[str, ...] = _REGISTRY[1]["relative"]
"""The benchmarks ``anydepth eval`` scores by default in relative mode: the paper's zero-shot benchmarks (Table 2)."""
METRIC_BENCHMARKS: tuple[str, ...] = _REGISTRY[1]["metric"]
"""The benchmarks ``anydepth eval`` scores by default in metric mode: NYUv2 and KITTI (Tables 3 and 4)."""


BENCHMARK_SETS: dict[str, tuple[str, ...]] = _REGISTRY[2]
"""Named groups of protocols (registry ``benchmark_sets``): a set's name in ``--benchmarks`` stands for its members,
e.g. ``marigold`` for the five ``marigold-*`` protocols (Marigold's published evaluation)."""


def expand_benchmarks(names: Sequence[str], sets: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """``names`` with each set name (:data:`BENCHMARK_SETS` by default) replaced by its members, in order, every
    benchmark once (its first place)."""
    sets = BENCHMARK_SETS if sets is None else sets
    expanded = [member for name in names for member in (sets.get(name) or (name,))]
    return list(dict.fromkeys(expanded))


def default_benchmarks(mode: str) -> tuple[str, ...]:
    """:data:`DEFAULT_BENCHMARKS` for ``"relative"``, :data:`METRIC_BENCHMARKS` for ``"metric"``."""
    if mode not in MODES:
        raise EvaluationError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return _REGISTRY[1][mode]


def check_mode(benchmarks: Sequence[str], protocols: Mapping[str, Protocol], mode: str) -> None:
    """Raise :class:`EvaluationError` unless every benchmark's protocol is of ``mode`` (:attr:`Protocol.mode`):
    a metric evaluation aligns nothing, a relative one aligns every image, never a mix in one run."""
    wrong = [name for name in benchmarks if name in protocols and protocols[name].mode != mode]
    if wrong:
        other = [name for name, p in protocols.items() if p.mode == mode]
        raise EvaluationError(
            f"{mode} mode: benchmark(s) {', '.join(wrong)} have {'metric' if mode == 'relative' else 'relative'} "
            f"protocols (align: {', '.join(sorted({protocols[n].align for n in wrong}))}); {mode} protocols: "
            f"{', '.join(other)}"
        )


def load_protocols(
    path: str | os.PathLike | None = None, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Protocol]:
    """The registry's :data:`PROTOCOLS`, then the YAML file ``path``, then ``overrides``, merged field by field.

    The YAML maps benchmark names to fields (the registry's own file nests them under ``protocols:``; an overrides
    file does not)::

        kitti:
          max_depth: 50.0      # only this field changes; kitti keeps its crop, range minimum and alignment
        scannet:               # a new benchmark: data_root/scannet, both depth bounds required
          min_depth: 0.001
          max_depth: 10.0
          crop: eigen
          shards: scannet/test   # optional: read data_root/scannet/test instead

    Fields: ``min_depth``, ``max_depth`` (null: no cap), ``crop`` (none / eigen / garg / kitti-eigen), ``align``
    (disparity / depth / none), ``note``, ``shards`` (the shard directory, or a list of them, relative to the data
    root or absolute; default the name), ``kb_crop`` (KITTI benchmark crop before inference), ``min_disparity``
    (floor of the aligned disparity). Unknown names or fields raise :class:`EvaluationError`.
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
    """``protocols`` (default: those of :data:`DEFAULT_BENCHMARKS`, the paper's) as a Markdown table; the README's
    protocol table is this output."""

    def number(x: float | None) -> str:
        return "none" if x is None else f"{x:g}"

    if protocols is None:
        protocols = {name: PROTOCOLS[name] for name in DEFAULT_BENCHMARKS}
    rows = [
        "| benchmark | min depth (m) | max depth (m) | crop | alignment | convention |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for p in protocols.values():
        rows.append(
            f"| `{p.name}` | {number(p.min_depth)} | {number(p.max_depth)} | {_CROP_TEXT.get(p.crop, p.crop)} "
            f"| {p.align} | {p.note} |"
        )
    return "\n".join(rows)
