"""Forward and forward+backward speed of anydepth's ``DepthAnything`` vs transformers' model.

Both compute the same function: a transformers ``DepthAnythingForDepthEstimation`` (vits, V2 block
indices, random weights, no download) saved with ``save_pretrained`` and loaded with
``DepthAnything.from_checkpoint``; outputs and pre-ReLU outputs must agree before timing.
Forward: eval mode under ``torch.inference_mode``. Forward+backward: train mode, loss = output sum,
gradients zeroed each repeat. The models alternate within every repeat (order flipped each time)
so machine noise hits both alike. Prints JSON: median seconds, ratios anydepth / transformers of
the medians and the median of the per-repeat ratios. Target: anydepth <= 0.8x transformers on CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable

import timm
import torch
import transformers
from torch import nn
from transformers import DepthAnythingConfig, Dinov2Config
from transformers import DepthAnythingForDepthEstimation as HFDepthAnything

from anydepth import DepthAnything

Fn = Callable[[torch.Tensor], torch.Tensor]
MODES = ("forward", "forward_backward")


def build_models(hf_attention: str) -> tuple[DepthAnything, HFDepthAnything]:
    """(anydepth, transformers) vits V2 models with the same random weights.

    ``hf_attention="default"`` is what ``from_pretrained`` gives a user (the Dinov2 backbone on
    SDPA in transformers 5); ``"eager"`` is transformers' explicit softmax(QK^T)V attention.
    """
    backbone = Dinov2Config(
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        out_indices=[3, 6, 9, 12],
        image_size=518,
        patch_size=14,
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=384,
        neck_hidden_sizes=[48, 96, 192, 384],
        fusion_hidden_size=64,
    )
    torch.manual_seed(0)
    hf = (
        HFDepthAnything(config)
        if hf_attention == "default"
        else HFDepthAnything._from_config(config, attn_implementation=hf_attention)
    )
    with torch.no_grad():  # non-zero biases and mask token: the equality check covers every weight
        for param in hf.parameters():
            param.add_(torch.randn_like(param) * 0.02)
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        ours = DepthAnything.from_checkpoint(tmp, pos_embed_interpolation="size")
    return ours, hf


def timed(model: nn.Module, fn: Fn, x: torch.Tensor, train: bool, sync: Callable[[], None]) -> float:
    """Seconds for one forward (inference mode) or one forward + backward of the output sum."""
    model.zero_grad(set_to_none=True)
    with torch.inference_mode(not train):
        sync()
        start = time.perf_counter()
        out = fn(x)
        if train:
            out.sum().backward()
        sync()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--size", type=int, default=518, help="input side in pixels, a multiple of 14")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument(
        "--hf-attention",
        choices=("default", "eager"),
        default="default",
        help="transformers' attention: its default (SDPA backbone) or eager",
    )
    args = parser.parse_args()
    transformers.utils.logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if cuda else "cpu")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    ours, hf = (model.to(device).eval() for model in build_models(args.hf_attention))
    hf_fn: Fn = lambda t: hf(pixel_values=t).predicted_depth  # noqa: E731
    fns: dict[str, tuple[nn.Module, Fn]] = {"anydepth": (ours, ours), "transformers": (hf, hf_fn)}
    x = torch.randn(args.batch_size, 3, args.size, args.size, device=device)
    last_convs = (ours.depth_head.scratch.output_conv2[2], hf.head.conv3)  # before the final ReLU
    logits: list[torch.Tensor] = []
    hooks = [conv.register_forward_hook(lambda _m, _i, out: logits.append(out.clone())) for conv in last_convs]
    with torch.inference_mode():
        outputs = [fn(x) for _, fn in fns.values()]
    for hook in hooks:
        hook.remove()
    diff, scale = (logits[0] - logits[1]).abs().max().item(), logits[1].abs().max().item()
    out_diff = (outputs[0] - outputs[1]).abs().max().item()
    assert max(diff, out_diff) <= 1e-4 * scale, f"models differ: {diff:.3g}, {out_diff:.3g} at scale {scale:.3g}"
    times: dict[str, dict[str, list[float]]] = {name: {mode: [] for mode in MODES} for name in fns}
    for mode in MODES:
        for i in range(args.warmup + args.repeats):
            for name, (model, fn) in list(fns.items())[:: 1 if i % 2 == 0 else -1]:
                t = timed(model.train(mode != "forward"), fn, x, mode != "forward", sync)
                if i >= args.warmup:
                    times[name][mode].append(t)
    median = {name: {mode: statistics.median(ts) for mode, ts in per.items()} for name, per in times.items()}
    ours_t, hf_t = times["anydepth"], times["transformers"]
    report = {
        "median_s": median,
        "ratio_anydepth_over_transformers": {m: median["anydepth"][m] / median["transformers"][m] for m in MODES},
        "paired_ratio_median": {m: statistics.median(a / b for a, b in zip(ours_t[m], hf_t[m])) for m in MODES},
        "check": {"logits_max_abs_diff": diff, "output_max_abs_diff": out_diff, "logits_scale": scale},
        "config": {"encoder": "vits", "version": "v2", **{k: v for k, v in vars(args).items() if k != "threads"}},
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "threads": torch.get_num_threads(),
        "transformers_attn_implementation": hf.config._attn_implementation,
        "transformers_backbone_attn_implementation": hf.backbone.config._attn_implementation,
        "versions": {"torch": torch.__version__, "timm": timm.__version__, "transformers": transformers.__version__},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
