"""Generic folder readers: ``images`` (unlabeled images) and ``rgbd-folder`` (images plus depth or disparity)."""

from __future__ import annotations

from pathlib import Path

from anydepth.images import IMAGE_EXTENSIONS, read_rgb, read_rgb_within
from anydepth.shards.schema import Sample
from anydepth.sources.base import Source, SourceError, SourceItem
from anydepth.sources.decoders import LABEL_EXTENSIONS, read_label, read_mask
from anydepth.sources.layout import (
    describe_dir,
    examples,
    find_files,
    keyed_items,
    layout_error,
    make_sample,
    stem_index,
)


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
        return self.load_within(item, None)

    def load_within(self, item: SourceItem, max_side: int | None) -> Sample:
        """The image shrunk to ``max_side`` while decoding (``read_rgb_within``: a JPEG at a reduced scale)."""
        image, (height, width) = read_rgb_within(item.paths["image"], max_side, exif=True)
        scale = 1.0 if image.shape[:2] == (height, width) else max_side / max(height, width)
        return make_sample(self, item, image, base=self._base(), original_size=[height, width], scale=scale)


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
