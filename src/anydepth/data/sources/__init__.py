"""Dataset readers for ``anydepth shards build --source KIND`` (see each class for its layout)."""

from __future__ import annotations

import importlib

from anydepth.data.sources.base import Source, SourceError, SourceItem

# KIND -> "module:Class", imported on use (a reader's imports load only when that kind is built).
SOURCES: dict[str, str] = {
    "images": "anydepth.data.sources.folders:ImageFolderSource",
    "rgbd-folder": "anydepth.data.sources.folders:RGBDFolderSource",
    "blendedmvs": "anydepth.data.sources.datasets:BlendedMVSSource",
    "diml": "anydepth.data.sources.datasets:DIMLSource",
    "hrwsi": "anydepth.data.sources.datasets:HRWSISource",
    "irs": "anydepth.data.sources.datasets:IRSSource",
    "megadepth": "anydepth.data.sources.datasets:MegaDepthSource",
    "tartanair": "anydepth.data.sources.datasets:TartanAirSource",
    "nyuv2": "anydepth.data.sources.benchmarks:NYUv2Source",
    "kitti": "anydepth.data.sources.benchmarks:KITTISource",
    "sintel": "anydepth.data.sources.benchmarks:SintelSource",
    "ddad": "anydepth.data.sources.benchmarks:DDADSource",
    "eth3d": "anydepth.data.sources.benchmarks:ETH3DSource",
    "diode-indoor": "anydepth.data.sources.benchmarks:DIODEIndoorSource",
    "diode-outdoor": "anydepth.data.sources.benchmarks:DIODEOutdoorSource",
    "demo-unlabeled": "anydepth.data.sources.demo:DemoUnlabeledSource",
    "demo-eval": "anydepth.data.sources.demo:DemoEvalSource",
    "demo-train": "anydepth.data.sources.demo:DemoTrainSource",
}


def get_source(kind: str) -> type[Source]:
    """The reader class registered as ``kind``; ``SourceError`` listing the kinds for an unknown one."""
    if kind not in SOURCES:
        raise SourceError(f"unknown source kind {kind!r}; choose one of {', '.join(SOURCES)}")
    module, _, name = SOURCES[kind].partition(":")
    return getattr(importlib.import_module(module), name)


__all__ = ["SOURCES", "Source", "SourceError", "SourceItem", "get_source"]
