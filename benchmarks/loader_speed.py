"""Loader throughput: WebDataset shards (anydepth.data.datamodules) vs a plain folder of JPEG files.

Both read the same synthetic photos (``--images`` JPEGs of each ``--image-size`` H W, repeatable; default one run at
the SA-1B-like 1500 x 2250; quality 95, the shard schema's) written to a temporary directory, once as files and once
as shards, and do the same work per sample: JPEG decode, shorter side to 518 (antialiased bicubic), random 518 x 518
crop (``UnlabeledTransform``), collate into batches of 8. The folder side is the obvious torch ``Dataset`` (one
``PIL.Image.open`` per file, full decode). The two alternate over ``--repeats`` runs of ``--epochs`` passes each;
prints JSON per image size with the median samples/s per worker (total rate / max(1, num_workers)) and the ratio
shards / folder. The shard pipeline decodes JPEGs at a reduced libjpeg scale where the 518 crop allows
(``TrainTransform.decode_size``, :func:`anydepth.images.open_rgb`).

``jpeg_floor_samples_per_s`` bounds what any JPEG reader can reach on this machine: the rate of decoding the same
files at libjpeg's smallest scale (1/8, DC coefficients only), which still entropy-decodes every coefficient of the
file: that Huffman pass, not the pixels written, is the floor of JPEG decoding.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import simplejpeg
import webdataset as wds
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from anydepth.data.transforms import UnlabeledTransform
from anydepth.shards.reader import ShardDataset, ShardLoader, collate, resolve_shards
from anydepth.shards.schema import JPEG_QUALITY, Sample, encode_sample


def photo(rng: np.random.Generator, height: int = 480, width: int = 640) -> np.ndarray:
    """A photo-like image: smooth colour gradients, a few discs and mild sensor noise (so JPEG sizes are realistic)."""
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.stack([np.sin(6 * xx * rng.uniform(0.5, 2) + c) * 0.3 + 0.5 + yy * 0.2 for c in range(3)], -1)
    for _ in range(5):
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1.3), rng.uniform(0.05, 0.2)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = rng.uniform(0, 1, 3)
    image += rng.normal(0, 0.02, image.shape)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


class FolderDataset(Dataset):
    def __init__(self, files: list[Path], size: int) -> None:
        self.files, self.transform = files, UnlabeledTransform(size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        image = np.asarray(Image.open(self.files[index]).convert("RGB"))
        return self.transform(Sample(key=self.files[index].stem, image=image), np.random.default_rng(index))


def rate(loader: DataLoader, epochs: int) -> float:
    start, count = time.perf_counter(), 0
    for _ in range(epochs):
        count += sum(len(batch["key"]) for batch in loader)
    return count / (time.perf_counter() - start)


def measure(args: argparse.Namespace, height: int, width: int) -> dict[str, float]:
    """Median samples/s per worker of the shards and the folder reader over ``height`` x ``width`` photos."""
    with tempfile.TemporaryDirectory() as tmp:
        root, rng = Path(tmp), np.random.default_rng(0)
        (root / "files").mkdir()
        samples = [
            Sample(key=f"img{i:05d}", image=photo(rng, height, width), meta={"label_kind": None})
            for i in range(args.images)
        ]
        for sample in samples:
            Image.fromarray(sample.image).save(root / "files" / f"{sample.key}.jpg", quality=JPEG_QUALITY)
        for start in range(0, len(samples), args.per_shard):
            with wds.TarWriter(str(root / f"shard-{start // args.per_shard:06d}.tar")) as writer:
                for sample in samples[start : start + args.per_shard]:
                    writer.write(encode_sample(sample))
        shards = ShardDataset(
            resolve_shards(str(root / "shard-*.tar")),
            UnlabeledTransform(args.size),
            args.batch_size,
            resampled=False,
            shuffle=False,
        )
        loaders = {
            "shards": ShardLoader(shards, num_workers=args.workers),
            "folder": DataLoader(
                FolderDataset(sorted((root / "files").glob("*.jpg")), args.size),
                batch_size=args.batch_size,
                num_workers=args.workers,
                collate_fn=collate,
            ),
        }
        rate(loaders["shards"], 1), rate(loaders["folder"], 1)  # warm-up: page cache, worker start-up paths
        rates: dict[str, list[float]] = {name: [] for name in loaders}
        for _ in range(args.repeats):
            for name, loader in loaders.items():
                rates[name].append(rate(loader, args.epochs) / max(1, args.workers))
        floor = statistics.median(jpeg_floor(sorted((root / "files").glob("*.jpg"))) for _ in range(args.repeats))
    median = {name: statistics.median(r) for name, r in rates.items()}
    result = {f"{name}_samples_per_s_per_worker": round(r, 1) for name, r in median.items()}
    ratio = round(median["shards"] / median["folder"], 3)
    return {**result, "ratio_shards_over_folder": ratio, "jpeg_floor_samples_per_s": round(floor, 1)}


def jpeg_floor(files: list[Path]) -> float:
    """Files per second decoded at libjpeg's 1/8 scale: the entropy-decoding bound of any JPEG reader here."""
    data = [file.read_bytes() for file in files]
    start = time.perf_counter()
    for jpeg in data:
        simplejpeg.decode_jpeg(jpeg, min_height=1, min_width=1)
    return len(data) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--image-size", type=int, nargs=2, action="append", metavar=("H", "W"))
    parser.add_argument("--per-shard", type=int, default=16)
    parser.add_argument("--size", type=int, default=518)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sizes = args.image_size or [[1500, 2250]]
    runs = {f"{h}x{w}": measure(args, h, w) for h, w in sizes}
    print(json.dumps({**runs, "images": args.images, "crop": args.size, "workers": args.workers}, indent=2))


if __name__ == "__main__":
    main()
