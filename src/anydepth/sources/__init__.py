"""Dataset readers for ``anydepth shards build --source KIND`` (see each class for its layout)."""

from __future__ import annotations

import importlib

from anydepth.sources.base import Source, SourceError, SourceItem

# KIND -> "module:Class", imported on use (a reader's imports load only when that kind is built).
SOURCES: dict[str, str] = {
    "images": "anydepth.sources.folders:ImageFolderSource",
    "rgbd-folder": "anydepth.sources.folders:RGBDFolderSource",
    "blendedmvs": "anydepth.sources.mvs:BlendedMVSSource",
    "diml": "anydepth.sources.rgbd:DIMLSource",
    "hrwsi": "anydepth.sources.rgbd:HRWSISource",
    "hypersim": "anydepth.sources.hypersim:HypersimSource",
    "irs": "anydepth.sources.synthetic:IRSSource",
    "megadepth": "anydepth.sources.mvs:MegaDepthSource",
    "tartanair": "anydepth.sources.synthetic:TartanAirSource",
    "vkitti2": "anydepth.sources.vkitti2:VKITTI2Source",
    "nyuv2": "anydepth.sources.benchmarks.nyuv2:NYUv2Source",
    "kitti": "anydepth.sources.benchmarks.kitti:KITTISource",
    "nyuv2-train": "anydepth.sources.benchmarks.nyuv2:NYUv2TrainSource",
    "kitti-eigen-train": "anydepth.sources.benchmarks.kitti:KITTIEigenTrainSource",
    "sintel": "anydepth.sources.benchmarks.sintel:SintelSource",
    "ddad": "anydepth.sources.benchmarks.ddad:DDADSource",
    "eth3d": "anydepth.sources.benchmarks.eth3d:ETH3DSource",
    "diode-indoor": "anydepth.sources.benchmarks.diode:DIODEIndoorSource",
    "diode-outdoor": "anydepth.sources.benchmarks.diode:DIODEOutdoorSource",
    "demo-unlabeled": "anydepth.sources.demo:DemoUnlabeledSource",
    "demo-eval": "anydepth.sources.demo:DemoEvalSource",
    "demo-train": "anydepth.sources.demo:DemoTrainSource",
    "ade20k": "anydepth.sources.segmentation:ADE20KSource",
    "cityscapes": "anydepth.sources.segmentation:CityscapesSource",
    "demo-seg": "anydepth.sources.demo:DemoSegSource",
}

ROOTLESS: frozenset[str] = frozenset({"demo-unlabeled", "demo-eval", "demo-train", "demo-seg"})
"""Kinds whose reader reads no dataset root (installed or rendered data): the builder needs no ``root`` for them."""


def get_source(kind: str) -> type[Source]:
    """The reader class registered as ``kind``; ``SourceError`` listing the kinds for an unknown one."""
    if kind not in SOURCES:
        raise SourceError(f"unknown source kind {kind!r}; choose one of {', '.join(SOURCES)}")
    module, _, name = SOURCES[kind].partition(":")
    return getattr(importlib.import_module(module), name)


__all__ = ["ROOTLESS", "SOURCES", "Source", "SourceError", "SourceItem", "get_source"]
