"""Shared fixtures of the evaluation tests: a tiny checkpoint, fabricated benchmark shards, the demo set's sample,
and ``score`` (what the evaluator does with one prediction already at ground-truth resolution)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from anydepth.evaluation import IMAGES, Protocol
from anydepth.models import DepthAnything
from anydepth.shards.schema import Sample
from anydepth.sources.demo import DemoEvalSource

from helpers.fabricate import fabricate_benchmark, tiny_checkpoint

Score = Callable[..., dict]


def _score(protocol: Protocol, pred: torch.Tensor, depth: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
    metric = protocol.metric()
    metric.update(pred, depth, protocol.valid_mask(depth, mask))
    out = {k: float(v) for k, v in metric.compute().items()}
    out[IMAGES] = int(metric.count)
    return out


@pytest.fixture
def score() -> Score:
    """What ``DepthEvaluator.test_step`` + ``on_test_epoch_end`` do with a prediction already at GT resolution:
    ``score(protocol, pred, depth, mask=None) -> {metric: value, "images": count}``."""
    return _score


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DepthAnything]:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    model = tiny_checkpoint(path)
    return path, model


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[Sample]]]:
    """nyuv2 (3 samples, 2 shards), kitti (3, 2 shards), diode-indoor (2, 1 shard) under one data root."""
    root = tmp_path_factory.mktemp("data_root")
    samples = {
        name: fabricate_benchmark(root, name, count, seed=i)
        for i, (name, count) in enumerate([("nyuv2", 3), ("kitti", 3), ("diode-indoor", 2)])
    }
    return root, samples


@pytest.fixture(scope="session")
def demo_sample() -> Sample:
    """The Middlebury motorcycle sample of the demo-eval reader (disparity ground truth in pixels)."""
    source = DemoEvalSource("unused")
    return source.load(source.items()[0])
