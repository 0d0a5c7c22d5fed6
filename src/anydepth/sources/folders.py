"""Generic folder readers (``images``, ``rgbd-folder``) and the file helpers every dataset reader shares.

Helpers (also used by :mod:`anydepth.sources.datasets`):

- ``read_rgb`` and ``IMAGE_EXTENSIONS`` (from :mod:`anydepth.images`): any PIL-readable image as RGB.
- ``read_png16``: a single-channel 8/16-bit PNG as float32, divided by a scale factor.
- ``read_pfm``: a PFM file (``Pf`` grey or ``PF`` colour), rows flipped to top-to-bottom.
- ``read_exr``: one channel of an OpenEXR file (the only one, else ``Y`` or ``R``) as float32.
- ``read_label``: dispatch on ``.png`` / ``.npy`` / ``.pfm`` / ``.exr`` to a 2-D float32 array.
- ``read_mask``: any image as a boolean mask (non-zero = True).
- ``find_files``, ``unique_keys``, ``strip_ext``, ``stem_index``: deterministic listing and keys.
- ``layout_error``, ``describe_dir``, ``examples``: ``SourceError`` messages naming what was expected and found.
- ``make_sample``: size checks and the common ``meta`` (source, label_kind, original_size, scale, files).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import OpenEXR
from PIL import Image

from anydepth.images import IMAGE_EXTENSIONS, read_rgb
from anydepth.shards.schema import Sample
from anydepth.sources.base import Source, SourceError, SourceItem

LABEL_EXTENSIONS: tuple[str, ...] = (".png", ".npy", ".pfm", ".exr")
EXR_CHANNELS: tuple[str, ...] = ("Y", "R")  # read_exr's choice, in order, when a file has several channels
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-/]")
_GREY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")

# ----------------------------------------------------------------------------------------------- readers


def read_png16(path: str | Path, scale: float = 1.0) -> np.ndarray:
    """Read a single-channel 8- or 16-bit PNG as float32 ``value / scale``.

    A 3/4-channel PNG is accepted when its colour channels are equal (a grey image saved as RGB)."""
    with Image.open(path) as img:
        mode = img.mode
        array = np.asarray(img)
    if mode not in _GREY_MODES:
        if array.ndim != 3 or mode not in ("LA", "RGB", "RGBA") or np.any(array[..., :1] != array[..., 1:3]):
            raise ValueError(f"{path}: expected a single-channel 8/16-bit PNG label, got PIL mode {mode}")
        array = array[..., 0]
    return array.astype(np.float32) / np.float32(scale)


def _pfm_line(handle: Any, path: str | Path) -> bytes:
    """The next non-empty, non-comment header line of a PFM file."""
    while True:
        line = handle.readline()
        if not line:
            raise ValueError(f"{path}: truncated PFM header")
        line = line.strip()
        if line and not line.startswith(b"#"):
            return line


def read_pfm(path: str | Path) -> np.ndarray:
    """Read a PFM file: ``Pf`` gives H x W, ``PF`` H x W x 3, float32, first row = top of the image.

    Header: ``PF``/``Pf``, ``width height``, ``scale`` (negative = little-endian, positive = big-endian);
    then float32 rows stored bottom-to-top, which are flipped here."""
    with open(path, "rb") as handle:
        magic = _pfm_line(handle, path)
        if magic not in (b"PF", b"Pf"):
            raise ValueError(f"{path}: not a PFM file (header {magic[:10]!r}, expected PF or Pf)")
        channels = 3 if magic == b"PF" else 1
        dims = _pfm_line(handle, path).split()
        while len(dims) < 2:  # tolerate "width\nheight"
            dims += _pfm_line(handle, path).split()
        try:
            width, height, scale = int(dims[0]), int(dims[1]), float(_pfm_line(handle, path))
        except ValueError as err:
            raise ValueError(f"{path}: malformed PFM header ({err})") from err
        data = handle.read()
    dtype = np.dtype("<f4" if scale < 0 else ">f4")
    count = width * height * channels
    if width <= 0 or height <= 0 or len(data) < count * 4:
        raise ValueError(f"{path}: PFM data has {len(data)} bytes, {width}x{height}x{channels} floats need {count * 4}")
    array = np.frombuffer(data, dtype=dtype, count=count)
    array = array.reshape((height, width, 3) if channels == 3 else (height, width))
    return np.ascontiguousarray(array[::-1]).astype(np.float32)


def read_exr(path: str | Path) -> np.ndarray:
    """Read one channel of an OpenEXR file as H x W float32 (``HALF``/``FLOAT``/``UINT`` pixels), first row on top.

    A single-channel file gives that channel, whatever its name; otherwise the channel named ``Y`` (luminance /
    grey), else ``R`` (a grey value saved as RGB, e.g. by OpenCV). Any other channel set is a ``ValueError``
    naming the file and its channels; so is a file OpenEXR cannot open. Only the first part of a multi-part
    file is read."""
    try:
        with OpenEXR.File(str(path), separate_channels=True) as exr:
            channels = {name: channel.pixels for name, channel in exr.channels().items()}
    except RuntimeError as err:
        raise ValueError(f"{path}: not a readable OpenEXR file ({err})") from err
    if len(channels) == 1:
        (pixels,) = channels.values()
    else:
        name = next((name for name in EXR_CHANNELS if name in channels), None)
        if name is None:
            raise ValueError(
                f"{path}: OpenEXR file has channels {', '.join(sorted(channels)) or '(none)'}; expected a single "
                f"channel or one named {' or '.join(repr(n) for n in EXR_CHANNELS)}"
            )
        pixels = channels[name]
    return np.asarray(pixels).astype(np.float32)


def _as_2d(array: np.ndarray, path: str | Path) -> np.ndarray:
    """Squeeze a 1 x H x W or H x W x 1 label to H x W float32; anything else is an error."""
    if array.ndim == 3 and 1 in (array.shape[0], array.shape[-1]):
        array = array.reshape(array.shape[1:] if array.shape[0] == 1 else array.shape[:2])
    if array.ndim != 2 or not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{path}: expected a 2-D numeric label, got {array.dtype} array of shape {array.shape}")
    return array.astype(np.float32)


def read_label(path: str | Path, png_scale: float = 1.0) -> np.ndarray:
    """Read an H x W float32 label from ``.png`` (``value / png_scale``), ``.npy``, ``.pfm`` (single channel)
    or ``.exr`` (see ``read_exr``: the only channel, else ``Y``, else ``R``)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        return read_png16(path, png_scale)
    if suffix == ".npy":
        return _as_2d(np.load(path, allow_pickle=False), path)
    if suffix == ".pfm":
        return _as_2d(read_pfm(path), path)
    if suffix == ".exr":
        return _as_2d(read_exr(path), path)
    raise ValueError(f"{path}: unsupported label format {suffix!r} (expected one of {', '.join(LABEL_EXTENSIONS)})")


def read_mask(path: str | Path) -> np.ndarray:
    """Read any image as an H x W boolean mask: non-zero (in any channel) = True."""
    with Image.open(path) as img:
        if img.mode not in _GREY_MODES:
            img = img.convert("L")
        return np.asarray(img) != 0


# ----------------------------------------------------------------------------------------------- listing


def find_files(directory: str | Path, extensions: Iterable[str], recursive: bool = True) -> list[str]:
    """Files under ``directory`` whose extension (case-insensitive) is in ``extensions``, as sorted POSIX
    paths relative to ``directory``; hidden files and folders (leading ``.``) are skipped."""
    directory = Path(directory)
    wanted = tuple(ext.lower() for ext in extensions)
    found: list[str] = []
    for current, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        rel = Path(current).relative_to(directory)
        for name in files:
            if not name.startswith(".") and name.lower().endswith(wanted):
                found.append((rel / name).as_posix())
    return sorted(found)


def strip_ext(rel: str) -> str:
    """``a/b/c.jpg`` -> ``a/b/c`` (only the last extension)."""
    suffix = PurePosixPath(rel).suffix
    return rel[: -len(suffix)] if suffix else rel


def sanitize_key(name: str) -> str:
    """Replace every character outside ``[A-Za-z0-9_-/]`` (dots, spaces, non-ASCII) with ``_``."""
    key = _UNSAFE.sub("_", name.replace("\\", "/")).strip("/")
    return re.sub(r"/+", "/", key) or "_"


def unique_keys(names: Sequence[str]) -> list[str]:
    """Sanitized keys for distinct ``names``; names whose sanitized forms collide get a short hash suffix
    of the original name, so keys stay unique and deterministic."""
    keys = [sanitize_key(name) for name in names]
    counts = Counter(keys)
    return [
        key if counts[key] == 1 else f"{key}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"
        for key, name in zip(keys, names)
    ]


def stem_index(rel_paths: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Map extension-less relative path -> relative path; also returns stems present with several extensions."""
    index: dict[str, str] = {}
    clashes: list[str] = []
    for rel in rel_paths:
        stem = strip_ext(rel)
        if stem in index:
            clashes.append(f"{index[stem]} / {rel}")
        else:
            index[stem] = rel
    return index, clashes


def keyed_items(entries: Iterable[tuple[str, dict[str, str], dict[str, Any]]]) -> list[SourceItem]:
    """``SourceItem``s from ``(name, paths, extra)`` entries with distinct names (relative paths without
    extension), keyed by ``unique_keys(names)`` and sorted by key."""
    entries = list(entries)
    keys = unique_keys([name for name, _, _ in entries])
    items = [SourceItem(key=key, paths=paths, extra=extra) for key, (_, paths, extra) in zip(keys, entries)]
    return sorted(items, key=lambda item: item.key)


# ----------------------------------------------------------------------------------------------- messages


def examples(names: Sequence[str], limit: int = 5) -> str:
    """``a, b, c (+7 more)``."""
    shown = ", ".join(str(name) for name in names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def describe_dir(path: str | Path, limit: int = 8) -> str:
    """A short listing of a folder's entries for error messages."""
    path = Path(path)
    if not path.exists():
        return f"no folder {path.name}"
    if not path.is_dir():
        return f"{path.name} is a file, not a folder"
    entries = sorted(e.name + ("/" if e.is_dir() else "") for e in path.iterdir() if not e.name.startswith("."))
    if not entries:
        return "an empty folder"
    return f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}: {examples(entries, limit)}"


def layout_error(source: str, root: str | Path, expected: str, found: str | None = None) -> SourceError:
    """A ``SourceError`` naming the source, the root, the expected layout and what was found."""
    found = describe_dir(root) if found is None else found
    return SourceError(f"{source}: dataset root {root}: expected {expected}; found {found}")


# ----------------------------------------------------------------------------------------------- samples


def _relative(path: str, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def _hw(array: np.ndarray) -> str:
    return f"{array.shape[0]}x{array.shape[1]} (HxW)"


def make_sample(
    source: Source,
    item: SourceItem,
    image: np.ndarray,
    label: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    sky: np.ndarray | None = None,
    label_kind: str | None = None,
    base: Path | None = None,
    **meta: Any,
) -> Sample:
    """Build a ``Sample``: check that label/mask/sky have the image size (``ValueError`` naming the files
    otherwise) and fill ``meta`` with source, label_kind, original_size, scale 1.0, ``files`` (paths relative
    to ``base``, default the source root), the item's ``extra`` and ``meta``."""
    for field, array in (("label", label), ("mask", mask), ("sky", sky)):
        if array is not None and array.shape[:2] != image.shape[:2]:
            raise ValueError(
                f"{source.name} {item.key}: {field} {item.paths.get(field, '?')} is {_hw(array)} but the image "
                f"{item.paths.get('image', '?')} is {_hw(image)}; labels must match the image size"
            )
    base = source.root if base is None else base
    info: dict[str, Any] = {
        "source": source.name,
        "label_kind": label_kind if label is not None else None,
        "original_size": [int(image.shape[0]), int(image.shape[1])],
        "scale": 1.0,
        "files": {name: _relative(path, base) for name, path in item.paths.items()},
    }
    info.update(item.extra)
    info.update(meta)
    return Sample(key=item.key, image=image, label=label, mask=mask, sky=sky, meta=info)


# ----------------------------------------------------------------------------------------------- sources


class ImageFolderSource(Source):
    """Unlabeled images (kind ``images``, ``label_kind`` None), e.g. the paper's unlabeled sets (SA-1B, ...).

    Layout, either:

    - a folder tree of images, searched recursively: ``.jpg .jpeg .png .bmp .webp .tif .tiff``
      (case-insensitive); hidden files and folders (leading ``.``) are skipped; other files are ignored.
      ``split``, if given, selects the subfolder ``<root>/<split>``; ``None`` = the whole tree;
    - or a ``.txt`` list file: one image path per line, relative to the list file's folder (absolute paths
      work too); blank lines and lines starting with ``#`` are ignored; duplicates are read once. A listed
      file that does not exist is a ``SourceError``. ``split`` must be None for a list file.

    Keys are the relative paths *with* their extension, every ``.``/space/other character replaced by ``_``
    (``photos/a.jpg`` -> ``photos/a_jpg``). ``load`` applies the EXIF orientation and converts to RGB;
    ``meta["files"]["image"]`` is the path relative to the folder (or the list's folder).
    """

    name = "images"
    label_kind = None

    def _base(self) -> Path:
        if self.root.is_file():
            return self.root.parent
        return self.root / self.split if self.split else self.root

    def _list_file(self) -> list[str]:
        if self.root.suffix.lower() != ".txt":
            raise layout_error(self.name, self.root, "a folder of images or a .txt list of image paths", "another file")
        if self.split is not None:
            raise SourceError(f"{self.name}: split={self.split!r} is not supported with a list file ({self.root})")
        lines = (line.strip() for line in self.root.read_text().splitlines())
        rels = list(dict.fromkeys(line for line in lines if line and not line.startswith("#")))  # dedupe, keep order
        if not rels:
            raise layout_error(self.name, self.root, "one image path per line", "no paths (only blank/# lines)")
        missing = [rel for rel in rels if not (self.root.parent / rel).is_file()]
        if missing:
            raise layout_error(
                self.name,
                self.root,
                f"paths relative to {self.root.parent} of existing files",
                f"{len(missing)} missing: {examples(missing)}",
            )
        return rels

    def items(self) -> list[SourceItem]:
        base = self._base()
        if self.root.is_file():
            rels = self._list_file()
        else:
            if not base.is_dir():
                raise layout_error(self.name, self.root, f"a subfolder {self.split!r} for split={self.split!r}")
            rels = find_files(base, IMAGE_EXTENSIONS)
            if not rels:
                raise layout_error(
                    self.name,
                    self.root,
                    f"image files ({' '.join(IMAGE_EXTENSIONS)}) anywhere under {base}",
                    describe_dir(base),
                )
        return keyed_items((rel, {"image": str(base / rel)}, {}) for rel in rels)

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"], exif=True)
        return make_sample(self, item, image, base=self._base())


class RGBDFolderSource(Source):
    """Generic RGB-D folder (kind ``rgbd-folder``): images plus depth *or* disparity with matching stems.

    Layout (``<root>/<split>/...`` instead when ``split`` is given; ``None`` = ``<root>`` itself)::

        <root>/images/<rel>.{jpg,jpeg,png,bmp,webp,tif,tiff}   RGB, subfolders allowed
        <root>/depth/<rel>.{png,npy,pfm,exr}       label_kind "depth"      (exactly one of depth/ or disparity/)
        <root>/disparity/<rel>.{png,npy,pfm,exr}   label_kind "disparity"
        <root>/masks/<rel>.png                 optional valid mask, non-zero = valid
        <root>/sky/<rel>.png                   optional sky mask, non-zero = sky

    ``<rel>`` is the path below each folder without extension (``images/a/b.jpg`` <-> ``depth/a/b.png``).
    Label formats: ``.png`` 8/16-bit single channel, divided by ``png_scale`` (default 1000: depth stored in
    millimetres -> metres; use ``png_scale=1`` for raw values, e.g. disparity x 1 or the dataset's own
    scale); ``.npy`` float (or int) H x W, used as is; ``.pfm`` single-channel PFM, used as is; ``.exr`` OpenEXR,
    the only channel (else ``Y``, else ``R``; see ``read_exr``), used as is. Units are
    whatever the files hold after that scaling (metres for the default mm PNGs). Invalid pixels: 0, negative
    or non-finite values, plus pixels where ``masks/`` is zero when a mask exists (the mask is returned as
    ``Sample.mask`` and then overrides the ``label > 0`` default). Missing mask/sky files are allowed per item.

    Every image needs a label: images without one are a ``SourceError`` listing them; labels without an
    image are ignored. A label whose size differs from its image makes ``load`` raise. Keys are ``<rel>``
    with dots/spaces replaced by ``_``. Images are read without applying EXIF orientation.
    """

    name = "rgbd-folder"
    label_kind = "depth"

    def __init__(self, root: str | Path, split: str | None = None, png_scale: float = 1000.0) -> None:
        super().__init__(root, split)
        if png_scale <= 0:
            raise ValueError(f"{self.name}: png_scale must be positive, got {png_scale}")
        self.png_scale = float(png_scale)
        self.base = self.root / split if split else self.root
        kinds = [kind for kind in ("depth", "disparity") if (self.base / kind).is_dir()]
        if not (self.base / "images").is_dir() or len(kinds) != 1:
            raise layout_error(
                self.name, self.base, "images/ and exactly one of depth/ or disparity/ (optional masks/, sky/)"
            )
        self.label_dir = kinds[0]
        self.label_kind = kinds[0]  # type: ignore[misc]  # per instance: depends on the folder found

    def items(self) -> list[SourceItem]:
        images = find_files(self.base / "images", IMAGE_EXTENSIONS)
        if not images:
            raise layout_error(
                self.name,
                self.base,
                f"image files ({' '.join(IMAGE_EXTENSIONS)}) under images/",
                describe_dir(self.base / "images"),
            )
        image_index, image_clashes = stem_index(images)
        label_index, label_clashes = stem_index(find_files(self.base / self.label_dir, LABEL_EXTENSIONS))
        if image_clashes or label_clashes:
            raise layout_error(
                self.name,
                self.base,
                "one file per stem in images/ and in the label folder",
                f"ambiguous stems: {examples(image_clashes + label_clashes)}",
            )
        missing = [rel for stem, rel in image_index.items() if stem not in label_index]
        if missing:
            raise layout_error(
                self.name,
                self.base,
                f"a {self.label_dir}/<stem>.{{png,npy,pfm,exr}} for every image in images/",
                f"{len(missing)} of {len(images)} images without a label: {examples(missing)}",
            )
        masks = stem_index(find_files(self.base / "masks", (".png",)))[0]
        skies = stem_index(find_files(self.base / "sky", (".png",)))[0]
        result = []
        for stem in sorted(image_index):
            paths = {
                "image": str(self.base / "images" / image_index[stem]),
                "label": str(self.base / self.label_dir / label_index[stem]),
            }
            if stem in masks:
                paths["mask"] = str(self.base / "masks" / masks[stem])
            if stem in skies:
                paths["sky"] = str(self.base / "sky" / skies[stem])
            result.append((stem, paths, {}))
        return keyed_items(result)

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        label = read_label(item.paths["label"], self.png_scale)
        mask = read_mask(item.paths["mask"]) if "mask" in item.paths else None
        sky = read_mask(item.paths["sky"]) if "sky" in item.paths else None
        extra = {"png_scale": self.png_scale} if item.paths["label"].lower().endswith(".png") else {}
        return make_sample(self, item, image, label, mask, sky, label_kind=self.label_kind, **extra)
