"""Batches for inference at scale: images of mixed sizes share a forward pass when their *network* sizes agree, and
files are decoded in a thread pool while the model runs.

- :func:`network_size`: the size a model's preprocessing resizes an image to (the bucket key);
- :func:`predict_batch`: one forward pass over images that share it, each prediction upsampled to its own size;
- :func:`bucketed`: group a stream into batches of equal key with a bounded number of images waiting;
- :func:`read_ahead`: ``read`` mapped over a sequence by a thread pool, in order, a bounded number of reads ahead.
"""

from __future__ import annotations

import os
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import torch

from anydepth.export.runtime import OnnxDepthModel
from anydepth.models.depth_anything import DepthAnything
from anydepth.models.preprocess import check_image, evaluating, lower_bound_size, prepare_images, upsample_prediction

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_READ_WORKERS = min(4, os.cpu_count() or 1)
"""Threads decoding image files while the model runs (``anydepth infer --num-workers``)."""


def network_size(model: Any, height: int, width: int, input_size: int) -> tuple[int, int]:
    """The ``(h, w)`` the model's preprocessing resizes an ``height x width`` image to: an ONNX export's fixed size,
    else ``lower_bound_size`` (aspect kept, shorter side >= ``input_size``, multiples of 14). For a model whose
    preprocessing is its own (``ZoeDepthMetric``), the image size itself, so only equal sizes share a batch."""
    if isinstance(model, OnnxDepthModel):
        return model.spec.input_size or lower_bound_size(height, width, input_size)
    if isinstance(model, DepthAnything):
        return lower_bound_size(height, width, input_size)
    return height, width


def predict_batch(model: Any, images: list[np.ndarray], input_size: int = 518) -> list[np.ndarray]:
    """``model.infer_images(images, input_size)`` in ONE forward pass, for H x W x 3 uint8 images of any sizes that
    share :func:`network_size`: each image is resized to that size on its own, the predictions (relative disparity,
    or metres for a metric head) are upsampled back to each image's size as the model's version does officially.
    A ``DepthAnything`` runs in eval mode under ``torch.inference_mode``; other models go to ``infer_images``."""
    for i, image in enumerate(images):
        check_image(image, f"image {i}")
    if isinstance(model, DepthAnything):
        parameter = next(model.parameters())
        with torch.inference_mode(), evaluating(model):
            batch = torch.cat([prepare_images([image], input_size, parameter.device) for image in images])
            depth = model(batch.to(parameter.dtype))
    elif isinstance(model, OnnxDepthModel):
        size = network_size(model, *images[0].shape[:2], input_size)
        depth = torch.from_numpy(model(np.concatenate([model.network_input([image], size) for image in images])))
    else:
        return model.infer_images(images, input_size, len(images))
    version = model.config.version
    return [upsample_prediction(d[None], image.shape[:2], version)[0].cpu().numpy() for d, image in zip(depth, images)]


def bucketed(items: Iterable[T], key: Callable[[T], Hashable], batch_size: int, max_waiting: int) -> Iterator[list[T]]:
    """``items`` in batches of at most ``batch_size`` with equal ``key``, each batch in arrival order.

    A bucket is yielded when it holds ``batch_size`` items; when more than ``max_waiting`` items wait in partial
    buckets, the bucket holding the oldest item is yielded early (memory stays bounded on folders of many sizes);
    at the end the partial buckets follow, oldest first.
    """
    if batch_size < 1 or max_waiting < 0:
        raise ValueError(f"need batch_size >= 1 and max_waiting >= 0, got {batch_size} and {max_waiting}")
    buckets: OrderedDict[Hashable, list[T]] = OrderedDict()  # by age of the oldest item: a bucket is new when emptied
    waiting = 0
    for item in items:
        bucket = buckets.setdefault(key(item), [])
        bucket.append(item)
        waiting += 1
        if len(bucket) == batch_size:
            waiting -= len(buckets.pop(key(item)))
            yield bucket
        elif waiting > max_waiting:
            _, oldest = buckets.popitem(last=False)
            waiting -= len(oldest)
            yield oldest
    yield from buckets.values()


def read_ahead(read: Callable[[T], R], items: Iterable[T], workers: int, depth: int) -> Iterator[tuple[T, R]]:
    """``(item, read(item))`` for each of ``items`` in order, ``read`` running in ``workers`` threads at most
    ``depth`` items ahead of the consumer (``workers == 0``: in the caller's thread). An exception of ``read`` is
    raised when its item is reached; closing the iterator cancels the reads not yet started."""
    if workers < 0 or depth < 1:
        raise ValueError(f"need workers >= 0 and depth >= 1, got {workers} and {depth}")
    if workers == 0:
        for item in items:
            yield item, read(item)
        return
    source = iter(items)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="anydepth-read")
    pending: deque[tuple[T, Future[R]]] = deque()
    try:
        for item in source:
            pending.append((item, pool.submit(read, item)))
            if len(pending) == depth:
                break
        while pending:
            item, future = pending.popleft()
            for following in source:  # keep the pool busy before handing the result over
                pending.append((following, pool.submit(read, following)))
                break
            yield item, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
