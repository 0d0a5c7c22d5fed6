"""``anydepth.images.open_rgb``: JPEGs decode at a reduced libjpeg scale, never below the size the consumer needs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anydepth.images import decoded_extent, max_side_size, open_rgb, read_rgb, read_rgb_within

from helpers.photos import large_photo


def resized(image: np.ndarray, full_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """``image`` (decoded from a ``full_size`` JPEG, maybe at reduced scale) resized to ``size`` (PIL bicubic)."""
    extent_h, extent_w = decoded_extent(full_size, image.shape)
    out = Image.fromarray(image).resize(size[::-1], Image.Resampling.BICUBIC, box=(0, 0, extent_w, extent_h))
    return np.asarray(out, float)


def jpeg_bytes(image: np.ndarray, **save: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=95, **save)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return large_photo("astronaut", (1501, 2253))  # odd sides: libjpeg rounds scaled sizes up


@pytest.mark.parametrize("needed", [(1501, 2253), (1000, 100), (751, 1127), (750, 1126), (518, 777), (100, 1), (1, 1)])
def test_reduced_decode_is_never_below_what_is_needed(photo: np.ndarray, needed: tuple[int, int]) -> None:
    image, size = open_rgb(jpeg_bytes(photo), lambda h, w: needed)
    assert size == (1501, 2253)
    assert image.shape[0] >= needed[0] and image.shape[1] >= needed[1]
    scale = min(1501 // needed[0], 2253 // needed[1])  # libjpeg's scales used: 1, 1/2, 1/4 (never 1/8)
    expected = next(s for s in (4, 2, 1) if scale >= s)
    assert image.shape == (-(-1501 // expected), -(-2253 // expected), 3)


@pytest.mark.parametrize("shape", [(1500, 2250), (1501, 2253)])
@pytest.mark.parametrize("needed", [(518, 778), (300, 400), (150, 225)])
def test_reduced_decode_matches_full_decode_after_the_same_resize(
    shape: tuple[int, int], needed: tuple[int, int]
) -> None:
    """Real photo, odd and even sides, scales 1/2 and 1/4: under one grey level from full decode + the same resize."""
    data = jpeg_bytes(large_photo("coffee", shape))
    full, _ = open_rgb(data)
    reduced, size = open_rgb(data, lambda h, w: needed)
    assert reduced.shape[0] < shape[0] / 1.5 and size == shape
    assert np.abs(resized(full, shape, needed) - resized(reduced, shape, needed)).mean() < 1.0


def test_decoded_extent_is_the_stored_size_over_the_scale() -> None:
    assert decoded_extent((1501, 2253), (751, 1127, 3)) == (750.5, 1126.5)
    assert decoded_extent((1501, 2253), (1501, 2253)) == (1501, 2253)
    assert decoded_extent((9, 17), (2, 3)) == (9 / 8, 17 / 8)
    with pytest.raises(ValueError, match=r"no libjpeg scale .* of \(1500, 2250\)"):
        decoded_extent((1500, 2250), (700, 1125))


def test_full_decode_without_needed_or_for_png(photo: np.ndarray, tmp_path: Path) -> None:
    Image.fromarray(photo).save(tmp_path / "p.png")
    image, size = open_rgb(tmp_path / "p.png", lambda h, w: (100, 100))
    np.testing.assert_array_equal(image, photo)
    assert size == (1501, 2253)
    assert open_rgb(jpeg_bytes(photo))[0].shape == photo.shape
    np.testing.assert_array_equal(read_rgb(tmp_path / "p.png"), photo)


def test_exif_rotated_jpegs_decode_at_full_size_in_displayed_orientation(photo: np.ndarray) -> None:
    """Rotated, a partial edge block would change sides: no reduced scale, the needed size asked in (H, W) shown."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display: width and height swap
    data = jpeg_bytes(photo, exif=exif.tobytes())
    asked: list[tuple[int, int]] = []
    image, size = open_rgb(data, lambda h, w: asked.append((h, w)) or (300, 200), exif=True)
    assert size == (2253, 1501) and image.shape == (2253, 1501, 3)
    np.testing.assert_array_equal(image, open_rgb(data, exif=True)[0])
    assert open_rgb(data, lambda h, w: (300, 200))[0].shape == (376, 564, 3)  # orientation not applied: reduced


def test_read_rgb_within_max_side_equals_full_decode_and_lanczos(photo: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "large.jpg"
    path.write_bytes(jpeg_bytes(photo))
    full = read_rgb(path)
    for max_side in (1000, 700, 518):  # JPEG scales 1/2, 1/2 and 1/4 of the 1501 x 2253 photo
        target = max_side_size(*full.shape[:2], max_side)
        assert target is not None and max(target) == max_side
        expected = np.asarray(Image.fromarray(full).resize(target[::-1], Image.Resampling.LANCZOS), float)
        image, stored = read_rgb_within(path, max_side)
        assert stored == full.shape[:2] and image.shape == (*target, 3)
        assert np.abs(image - expected).mean() < 1.0  # grey levels: only the resampling differs
    same, stored = read_rgb_within(path, 4000)  # not longer than max_side: the stored pixels
    assert stored == full.shape[:2] and np.array_equal(same, full)
    assert max_side_size(10, 20, None) is None and max_side_size(10, 20, 20) is None
    assert max_side_size(10, 21, 20) == (10, 20)


@pytest.mark.parametrize("needed", [None, (751, 1127), (375, 563)])
@pytest.mark.parametrize("subsampling", [0, 2])
def test_jpeg_decoder_gives_pillows_pixels_at_every_scale(
    photo: np.ndarray, needed: tuple[int, int] | None, subsampling: int
) -> None:
    """simplejpeg (the fast path) and Pillow (the fallback) decode the same bytes to identical pixels."""
    data = jpeg_bytes(photo, subsampling=subsampling)
    image, _ = open_rgb(data, None if needed is None else lambda h, w: needed)
    with Image.open(io.BytesIO(data)) as img:
        if needed is not None:
            img.draft("RGB", needed[::-1])
        np.testing.assert_array_equal(image, np.asarray(img.convert("RGB")))


def test_jpegs_simplejpeg_cannot_read_are_decoded_by_pillow(photo: np.ndarray) -> None:
    """A CMYK JPEG (outside the TurboJPEG RGB path) still decodes, to Pillow's RGB, at the reduced scale."""
    buffer = io.BytesIO()
    Image.fromarray(photo).convert("CMYK").save(buffer, format="JPEG", quality=95)
    image, size = open_rgb(buffer.getvalue(), lambda h, w: (700, 1000))
    with Image.open(io.BytesIO(buffer.getvalue())) as img:
        img.draft("RGB", (1126, 750))
        expected = np.asarray(img.convert("RGB"))
    assert size == (1501, 2253) and image.shape == (751, 1127, 3)
    np.testing.assert_array_equal(image, expected)
