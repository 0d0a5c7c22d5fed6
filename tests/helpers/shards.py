"""Tiny shard sets written with ``TarWriter`` and a manifest (samples of four image sizes, labeled or not, some
broken), and picklable transforms that show what a reader decoded."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds

from anydepth.shards.manifest import Manifest, ShardRecord
from anydepth.shards.reader import Transform
from anydepth.shards.schema import Sample, encode_sample

SIZES = ((20, 30), (30, 20), (17, 23), (24, 24))
"""Image (H, W) by ``index % 4``: landscape, portrait, odd, square."""


def make_sample(key: str, kind: str | None, index: int, rng: np.random.Generator) -> Sample:
    """A random sample of size ``SIZES[index % 4]``: unlabeled (``kind`` None), or a ``kind`` label with 10% invalid
    pixels and, for odd ``index``, sky over the top 3 rows (infinite depth there)."""
    height, width = SIZES[index % len(SIZES)]
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if kind is None:
        return Sample(key=key, image=image, meta={"label_kind": None})
    label = rng.uniform(1.0, 10.0, (height, width)).astype(np.float32)
    label[rng.random((height, width)) < 0.1] = 0.0  # invalid pixels (default mask: label > 0)
    sky = np.zeros((height, width), bool)
    if index % 2:
        sky[:3] = True  # sky band on top, with invalid depth there
        label[:3] = np.inf
    return Sample(key=key, image=image, label=label, sky=sky if index % 2 else None, meta={"label_kind": kind})


def write_shards(directory: Path, prefix: str, kind: str | None, counts: list[int], manifest: bool = True) -> list[str]:
    """Shards ``shard-<i>.tar`` of ``counts[i]`` samples each (keys ``<prefix><i>_<j>``), with a manifest unless
    ``manifest`` is False; returns all keys."""
    directory.mkdir(parents=True)
    rng = np.random.default_rng(len(prefix))
    keys, records = [], []
    for i, count in enumerate(counts):
        name = f"shard-{i:06d}.tar"
        with wds.TarWriter(str(directory / name)) as writer:
            for j in range(count):
                keys.append(f"{prefix}{i}_{j}")
                writer.write(encode_sample(make_sample(keys[-1], kind, i + j, rng)))
        records.append(ShardRecord(name=name, samples=count, bytes=(directory / name).stat().st_size, sha256=""))
    if manifest:
        Manifest(source="test", builder_version="0", shards=records, label_kind=kind).save(directory)
    return keys


def write_broken_shard(path: Path) -> list[str]:
    """Good samples around a corrupt image, a corrupt label and a too-small image; returns the good keys."""
    rng = np.random.default_rng(1)
    meta = json.dumps({"label_kind": "depth"}).encode()
    good = make_sample("good_a", "depth", 0, rng)
    with wds.TarWriter(str(path)) as writer:
        writer.write(encode_sample(good))
        writer.write({"__key__": "bad_image", "image.jpg": b"\xff\xd8\xff\xe0 not a jpeg", "meta.json": meta})
        record = encode_sample(make_sample("bad_label", "depth", 1, rng))
        record["label.npy"] = b"\x93NUMPY garbage"
        writer.write(record)
        writer.write(encode_sample(Sample(key="tiny", image=np.zeros((8, 8, 3), np.uint8))))
        writer.write(encode_sample(make_sample("good_b", "depth", 2, rng)))
    return ["good_a", "good_b"]


def key_and_draw(sample: Sample, rng: np.random.Generator) -> dict[str, Any]:
    """The cheapest transform: the key, and one draw from the sample's generator (standing in for a random crop)."""
    return {"key": sample.key, "draw": torch.tensor(int(rng.integers(2**31)))}


class CountingTransform:
    """``transform``, first appending the sample's key to ``<out>/decoded-<pid>.txt``: it runs right after
    ``decode_sample``, so the files list every decoded sample, per process (DataLoader workers included)."""

    def __init__(self, transform: Transform, out: str | Path) -> None:
        self.transform, self.out = transform, str(out)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> dict[str, Any]:
        with open(Path(self.out) / f"decoded-{os.getpid()}.txt", "a") as log:
            log.write(sample.key + "\n")
        return self.transform(sample, rng)


def decoded_keys(out: Path) -> list[str]:
    """Every key the :class:`CountingTransform` instances writing to ``out`` saw, sorted."""
    return sorted(key for path in out.glob("decoded-*.txt") for key in path.read_text().split())
