"""The offline demo sources: bundled real photos, the Middlebury motorcycle eval pair and the synthetic renderer."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anydepth.shards.schema import decode_sample, encode_sample, validate_sample
from anydepth.sources import SourceError, get_source
from anydepth.sources.demo import DemoEvalSource, DemoTrainSource, DemoUnlabeledSource
from anydepth.sources.demo.raycast import Box, Camera, Material, Scene, Sphere, render_scene

pytest.importorskip("skimage")  # the photos and the Middlebury pair ship in the scikit-image wheel
SMALL = (60, 80)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("unused") / "not-created"  # demo sources ignore root; it need not exist


def test_registry_resolves_the_demo_kinds() -> None:
    assert get_source("demo-unlabeled") is DemoUnlabeledSource
    assert get_source("demo-eval") is DemoEvalSource
    assert get_source("demo-train") is DemoTrainSource
    assert DemoTrainSource.synthetic is True and not DemoEvalSource.synthetic and not DemoUnlabeledSource.synthetic


def test_unlabeled_items_are_real_photos_at_shipped_size(root: Path) -> None:
    source = DemoUnlabeledSource(root, "train")
    items = source.items()
    keys = [item.key for item in items]
    assert len(items) >= 4 and keys == sorted(keys) and len(set(keys)) == len(keys)
    assert {"skimage/astronaut", "skimage/chelsea", "skimage/coffee", "skimage/rocket"} <= set(keys)
    assert not any("motorcycle" in key for key in keys), "the eval image must not leak into unlabeled data"
    has_sklearn = importlib.util.find_spec("sklearn") is not None
    assert any(key.startswith("sklearn/") for key in keys) == has_sklearn
    for item in items:
        sample = source.load(item)
        validate_sample(sample)
        with Image.open(item.paths["image"]) as shipped:
            width, height = shipped.size
        assert sample.image.dtype == np.uint8 and sample.image.shape == (height, width, 3)
        assert sample.image.std() > 20, f"{item.key} looks constant, not a photo"
        assert sample.label is None and sample.mask is None and sample.sky is None
        assert sample.meta["label_kind"] is None and sample.meta["original_size"] == [height, width]
        assert sample.meta["scale"] == 1.0 and sample.meta["package"] == item.key.split("/")[0]


def test_eval_sample_is_the_motorcycle_with_inf_disparity_masked(root: Path) -> None:
    import skimage.data

    left, _, disparity = skimage.data.stereo_motorcycle()
    source = DemoEvalSource(root)
    items = source.items()
    assert [item.key for item in items] == ["middlebury/motorcycle"]
    sample = source.load(items[0])
    validate_sample(sample)
    assert sample.label_kind == "disparity" and sample.meta["synthetic"] is False
    np.testing.assert_array_equal(sample.image, left)
    invalid = ~np.isfinite(disparity)
    assert invalid.sum() > 1000  # the shipped map does have holes
    np.testing.assert_array_equal(sample.mask, ~invalid)
    assert sample.label.dtype == np.float32 and np.all(sample.label[invalid] == 0)
    np.testing.assert_array_equal(sample.label[~invalid], disparity[~invalid])
    assert np.all(sample.label[~invalid] > 0)
    assert sample.meta["focal_px"] == pytest.approx(994.978) and sample.meta["baseline_m"] == pytest.approx(0.193001)
    decoded = decode_sample(encode_sample(sample, image_format="png"))
    np.testing.assert_array_equal(decoded.mask, sample.mask)
    np.testing.assert_array_equal(decoded.label, sample.label)


def test_optional_synthetic_eval_scenes_are_marked_and_distinct_from_train(root: Path) -> None:
    source = DemoEvalSource(root, synthetic_scenes=2, size=SMALL)
    synthetic = [item for item in source.items() if item.key.startswith("synthetic-eval/")]
    assert len(synthetic) == 2
    train_seeds = {item.extra["seed"] for item in DemoTrainSource(root, num_scenes=64).items()}
    for item in synthetic:
        sample = source.load(item)
        validate_sample(sample)
        assert sample.meta["synthetic"] is True and sample.meta["seed"] not in train_seeds
        assert sample.label_kind == "disparity" and np.all(sample.label[sample.mask] > 0)
        assert np.all(sample.label[sample.sky] == 0)


def test_synthetic_scenes_are_deterministic_and_distinct(root: Path) -> None:
    first, second = DemoTrainSource(root, num_scenes=4, size=SMALL), DemoTrainSource(root, num_scenes=4, size=SMALL)
    items = first.items()
    assert [item.key for item in items] == [f"synthetic/scene_{i:05d}" for i in range(4)]
    a, b = first.load(items[1]), second.load(second.items()[1])
    for name in ("image", "label", "mask", "sky"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.meta == b.meta
    other = first.load(items[2])
    assert not np.array_equal(a.image, other.image) and not np.array_equal(a.label, other.label)
    val = DemoTrainSource(root, "val", num_scenes=4, size=SMALL)
    assert {i.extra["seed"] for i in val.items()}.isdisjoint(i.extra["seed"] for i in items)
    assert not np.array_equal(val.load(val.items()[1]).label, a.label)
    with pytest.raises(SourceError, match="split"):
        DemoTrainSource(root, "test")


def test_synthetic_samples_follow_the_schema_with_sky_masked(root: Path) -> None:
    source = DemoTrainSource(root, num_scenes=12, size=SMALL)
    any_sky = False
    for item in source.items():
        sample = source.load(item)
        validate_sample(sample)
        meta = sample.meta
        assert meta["synthetic"] is True and meta["renderer"] == "anydepth ray caster v1"
        assert meta["label_kind"] == "depth" and meta["seed"] == item.extra["seed"] == item.extra["index"]
        assert sample.image.shape == (*SMALL, 3) and sample.label.dtype == np.float32
        valid = sample.mask
        np.testing.assert_array_equal(valid, ~sample.sky)
        assert valid.any() and np.all(np.isfinite(sample.label)) and np.all(sample.label[valid] > 0)
        assert np.all(sample.label[sample.sky] == 0)
        any_sky |= bool(sample.sky.any())
        decoded = decode_sample(encode_sample(sample))
        np.testing.assert_array_equal(decoded.sky, sample.sky)
        np.testing.assert_array_equal(decoded.label, sample.label)
    assert any_sky, "some of the first scenes should see the sky above the wall"


@pytest.mark.parametrize("index", [0, 1, 2])
def test_ground_plane_depth_is_exact(root: Path, index: int) -> None:
    """Horizontal camera at height h: the ground z-depth at row v is h f / (v - cy) in every column."""
    source = DemoTrainSource(root, num_scenes=3, size=(120, 160), layout="ground", seed=7)
    sample = source.load(source.items()[index])
    camera, intrinsics = sample.meta["scene"]["camera"], sample.meta["intrinsics"]
    height, f, cy = camera["height"], intrinsics["fy"], intrinsics["cy"]
    assert camera["pitch_deg"] == 0.0
    rows = np.arange(120)
    expected = height * f / (rows - cy + 1e-12)
    near = (rows > cy) & (expected < 40)  # rows well inside the ground (which ends 80 m from the camera)
    assert near.sum() > 20
    np.testing.assert_allclose(sample.label[near], np.broadcast_to(expected[near, None], (near.sum(), 160)), rtol=1e-6)
    assert np.all(sample.sky[rows <= cy]) and not sample.sky[near].any()


def _hand_scene(light: tuple[float, float, float] = (0.0, 1.0, 1.0)) -> Scene:
    grey = Material(kind="plain", color_a=(0.5, 0.5, 0.5))
    return Scene(
        camera=Camera(height=1.5, pitch_deg=0.0, yaw_deg=0.0, hfov_deg=60.0),
        ground=grey,
        wall_distance=10.0,
        wall_height=5.0,
        wall=grey,
        boxes=(Box((-1.0, 0.0, 4.0), (1.0, 2.0, 5.0), grey),),
        spheres=(Sphere((3.0, 1.0, 6.0), 0.8, grey),),
        light_dir=light,
        fog_distance=None,
    )


def test_nearer_objects_occlude_and_depths_are_exact() -> None:
    size = (120, 160)
    result = render_scene(_hand_scene(), size)
    f, cx, cy = Camera(hfov_deg=60.0).intrinsics(size)
    v, u = np.mgrid[0 : size[0], 0 : size[1]].astype(np.float64)
    x, y = (u - cx) / f, -(v - cy) / f  # world ray (x, y, 1) from (0, 1.5, 0)
    depth = result.depth.astype(np.float64)
    # box front face z = 4: pixels whose ray meets the face inside its rectangle, with a margin
    front = (np.abs(4 * x) < 0.9) & (1.5 + 4 * y > 0.1) & (1.5 + 4 * y < 1.9)
    assert front.sum() > 100
    np.testing.assert_allclose(depth[front], 4.0, rtol=1e-6)
    # the wall around the box: rays that miss the box, the sphere and the ground and meet the wall below its top
    wall_y = 1.5 + 10 * y
    sphere_shadow = (x - 3 / 6) ** 2 + (y + 0.5 / 6) ** 2 < (1.0 / 4) ** 2  # generous cone around the sphere
    wall = (np.abs(4 * x) > 1.1) & (np.abs(5 * x) > 1.1) & (wall_y > 0.1) & (wall_y < 4.9) & ~sphere_shadow
    beside = wall & (np.abs(v - v[front].mean()) < 5)
    assert beside.sum() > 20
    np.testing.assert_allclose(depth[wall], 10.0, rtol=1e-6)
    assert depth[front].max() < depth[beside].min()
    # the sphere: an independent ray/sphere solve for the pixels it covers
    oc = np.stack([np.zeros_like(x) - 3.0, np.full_like(x, 1.5 - 1.0), np.zeros_like(x) - 6.0])
    d = np.stack([x, y, np.ones_like(x)])
    a, b, c = (d * d).sum(0), (d * oc).sum(0), (oc * oc).sum(0) - 0.8**2
    disc = b * b - a * c
    on_sphere = disc > 1e-3 * a
    t_sphere = (-b - np.sqrt(np.where(on_sphere, disc, 0))) / a
    assert on_sphere.sum() > 30
    np.testing.assert_allclose(depth[on_sphere], t_sphere[on_sphere], rtol=1e-5)
    assert depth[on_sphere].min() >= 6.0 - 0.8 - 1e-6
    above = wall_y > 5.2
    assert above.sum() > 100 and result.sky[above].all() and not result.sky[front].any()


def test_box_casts_a_shadow_on_the_ground() -> None:
    """Light from behind and above the box (towards +Z): the ground just in front of it is in shadow."""
    size = (120, 160)
    result = render_scene(_hand_scene(light=(0.0, 1.0, 1.0)), size)
    f, cx, cy = Camera(hfov_deg=60.0).intrinsics(size)
    row = int(round(cy + 1.5 * f / 3.7))  # ground at z = 3.7 m: in the shadow (light at 45 deg: z 2-4, |x| < 1)
    col_shadow, col_lit = int(round(cx)), int(round(cx + 1.6 * f / 3.7))  # x = 0 and x = 1.6 m at z = 3.7 m
    brightness = result.image.astype(np.float64).mean(-1)
    assert result.depth[row, col_shadow] == pytest.approx(3.7, rel=0.05)
    assert result.depth[row, col_lit] == pytest.approx(3.7, rel=0.05)
    assert brightness[row, col_shadow] < 0.8 * brightness[row, col_lit]
