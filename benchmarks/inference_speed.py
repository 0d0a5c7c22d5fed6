"""Inference speed of one ``DepthAnything`` on every backend ``anydepth infer`` offers, in one run.

One model (``--encoder`` preset with random weights, default vits, or ``--tiny`` for a quick check) at ``--size`` x
``--size`` (default 518, the official input): images/s at ``--batch-size`` and batch-1 latency (median seconds) for
torch eager, ``torch.compile`` (``anydepth infer --compile``) and onnxruntime on a fixed-size fp32 ``anydepth export``
(CPU provider, plus the CUDA and TensorRT providers where onnxruntime has them). Every backend's output is checked
against eager before timing; the backends run one after another, each with its own warm-up (interleaving them lets
onnxruntime's spin-waiting threads slow the next torch pass). Prints JSON: medians, ratios to torch eager
(throughput: > 1 is faster; latency: < 1 is faster), the compile / export seconds, device and versions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from anydepth import DepthAnything
from anydepth.export import OnnxDepthModel
from anydepth.export.spec import TOLERANCES

Run = Callable[[torch.Tensor], torch.Tensor]
TINY = dict(encoder="custom", embed_dim=32, depth=4, num_heads=2, features=16, out_channels=(8, 16, 32, 32))
ORT_PROVIDERS = {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "trt"}


def onnx_runner(path: Path, provider: str, cuda: bool) -> Run:
    """The export in an onnxruntime session of ``provider`` (CPU as the fallback), as a tensor -> tensor function."""
    session = OnnxDepthModel(path, providers=list(dict.fromkeys([provider, "CPUExecutionProvider"])))
    return lambda x: torch.from_numpy(session(x.cpu().numpy())).to(x.device if cuda else "cpu")


def timed(run: Run, x: torch.Tensor, sync: Callable[[], None]) -> float:
    """Seconds for one forward pass of ``x``."""
    with torch.inference_mode():
        sync()
        start = time.perf_counter()
        run(x)
        sync()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="vits", choices=("vits", "vitb", "vitl", "vitg"))
    parser.add_argument("--tiny", action="store_true", help="a 4-block 32-dim model instead of --encoder (quick)")
    parser.add_argument("--size", type=int, default=518, help="input side in pixels, a multiple of 14")
    parser.add_argument("--batch-size", type=int, default=4, help="images per pass for the throughput figure")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out (slow to compile on CPU)")
    args = parser.parse_args()
    if args.size % 14:
        parser.error(f"--size must be a multiple of 14, got {args.size}")
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if cuda else "cpu")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.manual_seed(0)
    model = (DepthAnything(**TINY) if args.tiny else DepthAnything(encoder=args.encoder)).eval()
    with torch.no_grad():  # random weights: lift the final ReLU's input so the checks compare non-zero maps
        model.depth_head.scratch.output_conv2[2].bias.fill_(0.5)
    setup_s: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = model.export(Path(tmp) / "model.onnx", input_size=(args.size, args.size)).path
        setup_s["onnx_export_and_check"] = time.perf_counter() - start
        model.to(device)
        runs: dict[str, Run] = {"torch_eager": model}
        x = {n: torch.randn(n, 3, args.size, args.size, device=device) for n in sorted({1, args.batch_size})}
        with torch.inference_mode():
            reference = {n: model(x[n]) for n in x}
        if not args.no_compile:
            compiled = torch.compile(model)
            start = time.perf_counter()
            with torch.inference_mode():
                for n in x:  # both batch sizes compile now, not inside the timed repeats
                    compiled(x[n])
            setup_s["torch_compile"] = time.perf_counter() - start
            runs["torch_compile"] = compiled
        for provider in (p for p in ORT_PROVIDERS if p in ort.get_available_providers()):
            runs[f"onnxruntime_{ORT_PROVIDERS[provider]}"] = onnx_runner(path, provider, cuda)
        check = {}
        for name, run in runs.items():
            with torch.inference_mode():
                out = run(x[args.batch_size]).float()
            ref = reference[args.batch_size]
            check[name] = (out - ref).abs().max().item() / ref.abs().max().item()
            assert check[name] <= TOLERANCES["fp32"], f"{name} differs from eager by {check[name]:.3g} (relative)"
        times: dict[str, dict[int, list[float]]] = {name: {n: [] for n in x} for name in runs}
        for name, run in runs.items():  # one backend at a time: onnxruntime's spinning threads would slow torch
            for n in x:
                for i in range(args.warmup + args.repeats):
                    t = timed(run, x[n], sync)
                    if i >= args.warmup:
                        times[name][n].append(t)
    throughput = {name: args.batch_size / statistics.median(per[args.batch_size]) for name, per in times.items()}
    latency = {name: statistics.median(per[1]) for name, per in times.items()}
    report = {
        "images_per_s": throughput,
        "batch1_latency_s": latency,
        "throughput_ratio_to_torch_eager": {k: v / throughput["torch_eager"] for k, v in throughput.items()},
        "latency_ratio_to_torch_eager": {k: v / latency["torch_eager"] for k, v in latency.items()},
        "setup_s": setup_s,
        "check_max_rel_diff": check,
        "config": {"model": "tiny" if args.tiny else args.encoder, **{k: v for k, v in vars(args).items()}},
        "device": torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)",
        "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__, "numpy": np.__version__},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
