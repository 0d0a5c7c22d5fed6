"""Real photographs shipped inside installed Python packages (nothing is downloaded), found without importing them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

# Real photographs bundled in the scikit-image wheel (skimage/data). The motorcycle views are the eval image
# and deliberately not listed, so the demo eval image never leaks into the unlabeled training data.
SKIMAGE_PHOTOS: dict[str, str] = {
    "astronaut": "astronaut.png",
    "camera": "camera.png",  # grayscale, converted to RGB
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "rocket": "rocket.jpg",
}
SKLEARN_PHOTOS: dict[str, str] = {"china": "china.jpg", "flower": "flower.jpg"}


def package_dir(package: str) -> Path | None:
    """The installed directory of ``package`` without importing it (None if it is not installed)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_photos() -> dict[str, Path]:
    """``{"skimage/astronaut": path, ...}``: the real photos shipped in installed packages (sorted by key).

    scikit-image photos are always listed when scikit-image is installed; scikit-learn's ``china``/``flower``
    only when scikit-learn is installed (skipped silently otherwise). Only files present on disk are listed.
    """
    found: dict[str, Path] = {}
    for package, folder, files in (("skimage", "data", SKIMAGE_PHOTOS), ("sklearn", "datasets/images", SKLEARN_PHOTOS)):
        root = package_dir(package)
        if root is None:
            continue
        for name, filename in files.items():
            path = root / folder / filename
            if path.is_file():
                found[f"{package}/{name}"] = path
    return dict(sorted(found.items()))
