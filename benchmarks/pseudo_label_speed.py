"""Pseudo-labelling throughput with reduced-scale JPEG decoding off vs on, data-bound on CPU.

Writes ``--images`` large photo-like JPEGs (default 1500 x 2250, SA-1B-like) into a folder, builds shards of them
(``anydepth shards build``'s ``images`` source), saves a tiny random-weight teacher and runs
:func:`anydepth.pseudo_label.pseudo_label` over the shards on the CPU, alternating ``reduced_decode`` False and True
over ``--repeats`` runs, with ``--workers`` loader workers, at ``--input-size`` (default 140: at 518 even the tiny
teacher takes about 2 s per image on 2 CPU cores and would set the pace). Prints JSON: the median pseudo-labelled
images/s of each (run start-up and label writing included) and the ratio on / off.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from loader_speed import photo
from PIL import Image

from anydepth.models import DepthAnything
from anydepth.pseudo_label import pseudo_label
from anydepth.shards.schema import JPEG_QUALITY
from anydepth.sources.build import build_shards

TINY = dict(encoder="custom", embed_dim=32, depth=4, num_heads=2, features=16, out_channels=(8, 16, 32, 32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--per-shard", type=int, default=6)
    parser.add_argument("--image-size", type=int, nargs=2, default=(1500, 2250), metavar=("H", "W"))
    parser.add_argument("--input-size", type=int, default=140)  # small: the CPU teacher must not set the pace
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        root, rng = Path(tmp), np.random.default_rng(0)
        (root / "photos").mkdir()
        for i in range(args.images):
            Image.fromarray(photo(rng, *args.image_size)).save(root / "photos" / f"{i:05d}.jpg", quality=JPEG_QUALITY)
        build_shards("images", root / "photos", root / "shards", samples_per_shard=args.per_shard)
        DepthAnything(**TINY).save_checkpoint(root / "teacher.ckpt", format="anydepth")
        for _ in range(args.repeats):
            for name, reduced in (("off", False), ("on", True)):
                shutil.rmtree(root / "out", ignore_errors=True)
                start = time.perf_counter()
                pseudo_label(
                    root / "teacher.ckpt",
                    root / "shards",
                    root / "out",
                    input_size=args.input_size,
                    num_workers=args.workers,
                    accelerator="cpu",
                    devices=1,
                    reduced_decode=reduced,
                    enable_progress_bar=False,
                )
                rates[name].append(args.images / (time.perf_counter() - start))
    median = {name: statistics.median(r) for name, r in rates.items()}
    result = {f"images_per_s_reduced_decode_{name}": round(r, 2) for name, r in median.items()}
    result["ratio_on_over_off"] = round(median["on"] / median["off"], 3)
    settings = {"images": args.images, "image_size": list(args.image_size), "input_size": args.input_size}
    print(json.dumps({**result, **settings, "workers": args.workers}, indent=2))


if __name__ == "__main__":
    main()
