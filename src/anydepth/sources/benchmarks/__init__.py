"""Readers for the paper's six zero-shot evaluation benchmarks (Table 2), in their commonly distributed layouts.

Kinds (one module each; DIODE indoor and outdoor are two kinds that are never mixed)::

    nyuv2          nyuv2.NYUv2Source           NYU Depth V2 labeled set, official 654-image test split
    kitti          kitti.KITTISource           KITTI Eigen test split, improved LiDAR ground truth (652 frames)
    sintel         sintel.SintelSource         MPI Sintel training set, final pass
    ddad           ddad.DDADSource             DDAD validation set, projected LiDAR (preprocessed export)
    eth3d          eth3d.ETH3DSource           ETH3D high-res multi-view training set (DSLR)
    diode-indoor   diode.DIODEIndoorSource     DIODE validation set, indoor scans only
    diode-outdoor  diode.DIODEOutdoorSource    DIODE validation set, outdoor scans only

Every sample has ``label_kind`` ``"depth"`` (metres; Sintel in its scene units, see there), ``meta["benchmark"]`` = the
kind (the evaluation protocol's name), ``source``, ``original_size``, ``scale`` 1.0 and ``files`` (paths relative to the
root). Invalid pixels are 0 in the label (or left out by an explicit ``Sample.mask``). The readers never crop or cap
depth: evaluation crops (Eigen, Garg) and depth ranges belong to the evaluation protocol of the same name (the
registry ``anydepth/evaluation/protocols.yaml``, ``anydepth eval``); each class docstring names the one used there.
``split`` ``None`` always selects the benchmark's evaluation set (what ``anydepth shards build`` builds when no
``--split`` is given).
Nothing here downloads anything. The benchmarks' file formats are read by :mod:`anydepth.sources.decoders`.

This package holds only their common base, ``BenchmarkSource``, so building one kind imports only its own module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from anydepth.shards.schema import Sample
from anydepth.sources.base import Source, SourceError, SourceItem
from anydepth.sources.layout import make_sample


class BenchmarkSource(Source):
    """Base of the benchmark readers: ``label_kind`` ``depth`` and ``meta["benchmark"]`` = the kind."""

    label_kind: ClassVar[str | None] = "depth"
    SPLITS: ClassVar[tuple[str | None, ...]] = (None,)

    def __init__(self, root: str | Path, split: str | None = None) -> None:
        super().__init__(root, split)
        if split not in self.SPLITS:
            choices = ", ".join("None" if s is None else repr(s) for s in self.SPLITS)
            raise SourceError(f"{self.name}: split must be one of {choices}, got {split!r}")

    def _sample(
        self, item: SourceItem, image: np.ndarray, depth: np.ndarray, mask: np.ndarray | None = None, **meta: Any
    ) -> Sample:
        meta.setdefault("depth_unit", "m")
        return make_sample(self, item, image, depth, mask, label_kind="depth", benchmark=self.name, **meta)
