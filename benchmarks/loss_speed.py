"""Speed of anydepth's batched losses against a plain per-sample loop of the same equations.

Measures forward+backward of the affine-invariant loss (eq. 1-3) and the CutMix loss (eq. 6-8)
on a B x 518 x 518 batch (default B = 8, 20 % invalid pixels, half the samples CutMix-ed), with
the reference written the obvious way: a Python loop over samples using boolean indexing and
``torch.median``. Both are checked to give the same value first; the implementations alternate
across repeats. Prints JSON with median seconds and the ratio loop / batched (the speed-up).
Target: >= 3x on CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

from anydepth.losses import SCALE_EPS, affine_invariant_loss, cutmix_affine_invariant_loss


def loop_normalise(values: Tensor) -> Tensor:
    shift = values.median()
    return (values - shift) / (values - shift).abs().mean().clamp_min(SCALE_EPS)


def loop_affine(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    losses = [
        (loop_normalise(p[m]) - loop_normalise(g[m])).abs().mean() for p, g, m in zip(pred, target, mask) if m.any()
    ]
    return torch.stack(losses).mean()


def loop_cutmix(pred: Tensor, ta: Tensor, tb: Tensor, box: Tensor, ma: Tensor, mb: Tensor) -> Tensor:
    losses = []
    for p, a, b, m, va, vb in zip(pred, ta, tb, box, ma, mb):
        area = m.float().mean()
        inside, outside = m & va, ~m & vb
        loss = p.sum() * 0
        if inside.any():
            loss = loss + area * (loop_normalise(p[inside]) - loop_normalise(a[inside])).abs().mean()
        if outside.any():
            loss = loss + (1 - area) * (loop_normalise(p[outside]) - loop_normalise(b[outside])).abs().mean()
        losses.append(loss)
    return torch.stack(losses).mean()


def time_backward(fn: Callable[[], Tensor], leaf: Tensor) -> float:
    leaf.grad = None
    start = time.perf_counter()
    fn().backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=518)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape = (args.batch_size, args.size, args.size)
    pred = torch.rand(shape, requires_grad=True)
    ta, tb = torch.rand(shape), torch.rand(shape)
    ma, mb = torch.rand(shape) > 0.2, torch.rand(shape) > 0.2
    box = torch.zeros(shape, dtype=torch.bool)
    box[: args.batch_size // 2, args.size // 4 : args.size // 2, args.size // 3 : 2 * args.size // 3] = True
    box[args.batch_size // 2 :] = True
    cases = {
        "affine_invariant": (lambda: affine_invariant_loss(pred, ta, ma), lambda: loop_affine(pred, ta, ma)),
        "cutmix": (
            lambda: cutmix_affine_invariant_loss(pred, ta, tb, box, ma, mb),
            lambda: loop_cutmix(pred, ta, tb, box, ma, mb),
        ),
    }
    report: dict = {"batch": list(shape), "threads": torch.get_num_threads(), "device": "cpu", "losses": {}}
    for name, (batched, loop) in cases.items():
        diff = (batched() - loop()).abs().item()
        assert diff < 1e-5, f"{name}: batched and loop losses differ by {diff}"
        times: dict[str, list[float]] = {"batched": [], "loop": []}
        for i in range(args.repeats + 1):
            order = [("batched", batched), ("loop", loop)]
            for impl, fn in order if i % 2 else order[::-1]:
                t = time_backward(fn, pred)
                if i:  # the first round warms up
                    times[impl].append(t)
        median = {impl: statistics.median(ts) for impl, ts in times.items()}
        report["losses"][name] = {"median_s": median, "speedup_loop_over_batched": median["loop"] / median["batched"]}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
