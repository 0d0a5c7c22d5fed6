"""The demo's SYNTHETIC scene renderer: a small vectorised numpy ray caster (textured ground plane, back wall,
axis-aligned boxes and spheres, Lambertian shading with shadows) giving an RGB image and its exact z-depth.

``random_scene`` samples a scene, ``render_scene`` renders one. World frame: X right, Y up, Z forward, metres;
the ground is the plane Y = 0.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from PIL import Image

from anydepth.sources.demo.bundled import package_dir

RENDERER = "anydepth ray caster v1"
DEMO_CLASSES: tuple[str, ...] = ("ground", "wall", "box", "sphere", "sky")
"""Per-pixel class ids of ``RenderResult.classes``: the index of the surface kind each ray hits (sky: none)."""
Layout = Literal["random", "ground"]
# Photos and photographed surfaces used as textures by the renderer (all bundled in scikit-image).
TEXTURE_FILES: tuple[str, ...] = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "camera.png",
    "brick.png",
    "grass.png",
    "gravel.png",
)


@dataclass(frozen=True)
class Material:
    """A surface texture: ``kind`` checker | stripes | noise | photo | plain, two RGB colours in [0, 1],
    ``scale`` (metres per checker cell / stripe / noise cell / photo width), stripe ``angle`` (radians),
    ``photo`` (a ``TEXTURE_FILES`` name) with its offset (fraction of the photo) and ``seed`` (noise)."""

    kind: str = "plain"
    color_a: tuple[float, float, float] = (0.6, 0.6, 0.6)
    color_b: tuple[float, float, float] = (0.3, 0.3, 0.3)
    scale: float = 1.0
    angle: float = 0.0
    photo: str = ""
    offset: tuple[float, float] = (0.0, 0.0)
    seed: int = 0


@dataclass(frozen=True)
class Box:
    """An axis-aligned box from corner ``lo`` to corner ``hi`` (world metres)."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    material: Material = field(default_factory=Material)


@dataclass(frozen=True)
class Sphere:
    """A sphere (world metres)."""

    center: tuple[float, float, float]
    radius: float
    material: Material = field(default_factory=Material)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera at (0, ``height``, 0) looking along +Z, turned by ``yaw_deg`` (positive = right) and
    ``pitch_deg`` (positive = up); no roll. Square pixels, ``fx = fy = (W / 2) / tan(hfov / 2)``,
    principal point at the image centre ``((W - 1) / 2, (H - 1) / 2)`` with pixel centres at integer (u, v)."""

    height: float = 1.5
    pitch_deg: float = 0.0
    yaw_deg: float = 0.0
    hfov_deg: float = 60.0

    def intrinsics(self, size: tuple[int, int]) -> tuple[float, float, float]:
        """(f, cx, cy) in pixels for an image of ``size`` (H, W)."""
        height, width = size
        return (width / 2) / math.tan(math.radians(self.hfov_deg) / 2), (width - 1) / 2, (height - 1) / 2

    def rotation(self) -> np.ndarray:
        """3 x 3 matrix from camera coordinates (x right, y down, z forward) to world directions."""
        pitch, yaw = math.radians(self.pitch_deg), math.radians(self.yaw_deg)
        flip = np.diag([1.0, -1.0, 1.0])
        cp, sp, cy, sy = math.cos(pitch), math.sin(pitch), math.cos(yaw), math.sin(yaw)
        pitch_up = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])  # turns +Z towards +Y
        yaw_right = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])  # turns +Z towards +X
        return yaw_right @ pitch_up @ flip


@dataclass(frozen=True)
class Scene:
    """Everything ``render_scene`` needs. ``wall_distance`` None = no back wall (the ground then ends at
    ``ground_extent`` metres from the camera); the wall is the plane Z = ``wall_distance`` from the ground up to
    ``wall_height``. ``light_dir`` points towards the light (world), ``fog_distance`` metres (None = no fog)."""

    camera: Camera = field(default_factory=Camera)
    ground: Material = field(default_factory=Material)
    wall_distance: float | None = None
    wall_height: float = 0.0
    wall: Material = field(default_factory=Material)
    boxes: tuple[Box, ...] = ()
    spheres: tuple[Sphere, ...] = ()
    light_dir: tuple[float, float, float] = (0.3, 0.8, -0.5)
    ambient: float = 0.35
    sky_top: tuple[float, float, float] = (0.35, 0.55, 0.9)
    sky_horizon: tuple[float, float, float] = (0.8, 0.87, 0.95)
    ground_extent: float = 80.0
    fog_distance: float | None = None


@dataclass
class RenderResult:
    """``image`` H x W x 3 uint8, ``depth`` H x W float32 z-depth in metres (0 where ``sky``), ``sky`` bool,
    ``classes`` H x W uint8 indices into :data:`DEMO_CLASSES`."""

    image: np.ndarray
    depth: np.ndarray
    sky: np.ndarray
    fx: float
    fy: float
    cx: float
    cy: float
    classes: np.ndarray

    def intrinsics(self) -> dict[str, float]:
        return {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy}


def _color(rng: np.random.Generator, lo: float = 0.15, hi: float = 0.95) -> tuple[float, float, float]:
    return tuple(float(c) for c in rng.uniform(lo, hi, 3))  # type: ignore[return-value]


def _random_material(rng: np.random.Generator, photos: bool = True) -> Material:
    kinds = ["checker", "stripes", "noise", "plain"] + (["photo", "photo"] if photos else [])
    kind = str(rng.choice(kinds))
    color_a, color_b = _color(rng), _color(rng)
    scale = float(rng.uniform(0.2, 1.2)) if kind != "photo" else float(rng.uniform(1.0, 4.0))
    return Material(
        kind=kind,
        color_a=color_a,
        color_b=color_b,
        scale=scale,
        angle=float(rng.uniform(0, math.pi)),
        photo=str(rng.choice(TEXTURE_FILES)) if kind == "photo" else "",
        offset=(float(rng.random()), float(rng.random())),
        seed=int(rng.integers(0, 2**31 - 1)),
    )


def random_scene(rng: np.random.Generator, layout: Layout = "random") -> Scene:
    """Sample a SYNTHETIC scene: camera 1-2.5 m high with 50-75 deg horizontal FOV and up to 25 deg yaw; for
    ``layout="random"`` pitch -15..+5 deg, a back wall 10-30 m away and 1.5-12 m high (absent 20 % of the time),
    1-4 boxes and 0-3 spheres standing in the view 3-20 m away, random textures (checker, stripes, value noise,
    plain, photo crops) and a random sun. ``layout="ground"``: pitch 0, ground plane only (depth = h f / (v - cy))."""
    photos = bool(_texture_images())
    camera = Camera(
        height=float(rng.uniform(1.0, 2.5)),
        pitch_deg=float(rng.uniform(-15, 5)),
        yaw_deg=float(rng.uniform(-25, 25)),
        hfov_deg=float(rng.uniform(50, 75)),
    )
    ground = _random_material(rng, photos)
    elevation, azimuth = rng.uniform(math.radians(25), math.radians(70)), rng.uniform(0, 2 * math.pi)
    light = (math.cos(elevation) * math.sin(azimuth), math.sin(elevation), math.cos(elevation) * math.cos(azimuth))
    common: dict[str, Any] = dict(
        ground=ground,
        light_dir=light,
        ambient=float(rng.uniform(0.25, 0.45)),
        sky_top=(float(rng.uniform(0.15, 0.45)), float(rng.uniform(0.35, 0.6)), float(rng.uniform(0.75, 1.0))),
        sky_horizon=_color(rng, 0.75, 0.97),
        fog_distance=float(rng.uniform(60, 250)),
    )
    if layout == "ground":
        return Scene(camera=Camera(camera.height, 0.0, camera.yaw_deg, camera.hfov_deg), **common)
    has_wall = rng.random() < 0.8
    wall_distance = float(rng.uniform(10, 30)) if has_wall else None
    wall_height = float(rng.uniform(1.5, 12))
    wall = _random_material(rng, photos)
    far = min((wall_distance or 25.0) - 2.0, 20.0)
    half_fov = math.tan(math.radians(camera.hfov_deg) / 2)
    yaw = math.radians(camera.yaw_deg)

    def place(z: float, lateral: float) -> tuple[float, float]:  # camera-yaw frame -> world (X, Z)
        x = z * half_fov * lateral
        return x * math.cos(yaw) + z * math.sin(yaw), -x * math.sin(yaw) + z * math.cos(yaw)

    boxes = []
    for _ in range(int(rng.integers(1, 5))):
        x, z = place(float(rng.uniform(3.5, far)), float(rng.uniform(-0.8, 0.8)))
        half = rng.uniform(0.15, 1.25, 2)
        height = float(rng.uniform(0.3, 3.0))
        base = float(rng.uniform(0.5, 1.5)) if rng.random() < 0.15 else 0.0  # a few float above the ground
        boxes.append(
            Box(
                lo=(x - float(half[0]), base, z - float(half[1])),
                hi=(x + float(half[0]), base + height, z + float(half[1])),
                material=_random_material(rng, photos),
            )
        )
    spheres = []
    for _ in range(int(rng.integers(0, 4))):
        x, z = place(float(rng.uniform(3.5, far)), float(rng.uniform(-0.8, 0.8)))
        radius = float(rng.uniform(0.2, 1.2))
        lift = float(rng.uniform(0.3, 1.5)) if rng.random() < 0.25 else 0.0
        spheres.append(Sphere(center=(x, radius + lift, z), radius=radius, material=_random_material(rng, photos)))
    return Scene(
        camera=camera,
        wall_distance=wall_distance,
        wall_height=wall_height,
        wall=wall,
        boxes=tuple(boxes),
        spheres=tuple(spheres),
        **common,
    )


@functools.lru_cache(maxsize=1)
def _texture_images() -> dict[str, np.ndarray]:
    """The bundled scikit-image photos used as textures, float32 in [0, 1], at most 256 px a side (empty
    without scikit-image: scenes then use procedural textures only)."""
    root = package_dir("skimage")
    images: dict[str, np.ndarray] = {}
    if root is None:
        return images
    for name in TEXTURE_FILES:
        path = root / "data" / name
        if path.is_file():
            with Image.open(path) as image:
                image = image.convert("RGB")
                image.thumbnail((256, 256), Image.Resampling.BILINEAR)
                images[name] = np.asarray(image, np.float32) / 255
    return images


Vec = tuple[Any, Any, Any]  # x, y, z components: floats or 1-D arrays (one entry per ray)


def _ray_box(origin: Vec, inv: Vec, lo: tuple[float, ...], hi: tuple[float, ...]) -> np.ndarray:
    """Slab test: entry distance (inf = miss) of rays starting outside the box; ``inv`` = 1 / direction."""
    t_in: Any = -np.inf
    t_out: Any = np.inf
    with np.errstate(invalid="ignore"):  # 0 * inf = NaN for rays parallel to and on a slab; fmin/fmax skip NaN
        for a in range(3):
            t1, t2 = (lo[a] - origin[a]) * inv[a], (hi[a] - origin[a]) * inv[a]
            t_in, t_out = np.fmax(t_in, np.fmin(t1, t2)), np.fmin(t_out, np.fmax(t1, t2))
    return np.where((t_in <= t_out) & (t_in > 1e-6), t_in, np.inf)


def _box_face_axis(origin: Vec, inv: Vec, lo: tuple[float, ...], hi: tuple[float, ...]) -> np.ndarray:
    """The axis (0, 1, 2) of the face through which rays that hit the box enter it."""
    with np.errstate(invalid="ignore"):
        near = [np.fmin((lo[a] - origin[a]) * inv[a], (hi[a] - origin[a]) * inv[a]) for a in range(3)]
    return np.nan_to_num(np.stack(np.broadcast_arrays(*near)), nan=-np.inf).argmax(axis=0)


def _ray_sphere(origin: Vec, dirs: Vec, center: tuple[float, ...], radius: float) -> np.ndarray:
    """Nearest positive hit distance (inf = miss) of rays (directions need not be unit) with a sphere."""
    oc = [origin[a] - center[a] for a in range(3)]
    a2 = dirs[0] * dirs[0] + dirs[1] * dirs[1] + dirs[2] * dirs[2]
    b = dirs[0] * oc[0] + dirs[1] * oc[1] + dirs[2] * oc[2]
    c = oc[0] * oc[0] + oc[1] * oc[1] + oc[2] * oc[2] - radius * radius
    disc = b * b - a2 * c
    root = np.sqrt(np.maximum(disc, 0))
    t0, t1 = (-b - root) / a2, (-b + root) / a2
    t = np.where(t0 > 1e-6, t0, np.where(t1 > 1e-6, t1, np.inf))
    return np.where(disc >= 0, t, np.inf)


def _value_noise(seed: int, s: np.ndarray, t: np.ndarray, cells: int = 32) -> np.ndarray:
    """Two-octave tileable value noise in [0, 1] at surface coordinates (cell units)."""
    grid = np.random.default_rng(seed).random((cells, cells))
    total = np.zeros_like(s)
    for octave, weight in ((1.0, 0.65), (2.7, 0.35)):
        x, y = s * octave, t * octave
        x0, y0 = np.floor(x), np.floor(y)
        fx, fy = x - x0, y - y0
        fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
        i0, j0 = x0.astype(np.int64) % cells, y0.astype(np.int64) % cells
        i1, j1 = (i0 + 1) % cells, (j0 + 1) % cells
        top = grid[j0, i0] * (1 - fx) + grid[j0, i1] * fx
        bottom = grid[j1, i0] * (1 - fx) + grid[j1, i1] * fx
        total += weight * (top * (1 - fy) + bottom * fy)
    return total


def _texture(material: Material, s: np.ndarray, t: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] of ``material`` at surface coordinates (s, t) in metres; detail finer than the pixel
    ``footprint`` (metres) fades to the texture's mean colour (a cheap anti-aliasing)."""
    a, b = np.asarray(material.color_a), np.asarray(material.color_b)
    scale = max(material.scale, 1e-3)
    if material.kind == "checker":
        weight = ((np.floor(s / scale) + np.floor(t / scale)) % 2)[:, None]
        period, mean = scale, (a + b) / 2
        color = a + (b - a) * weight
    elif material.kind == "stripes":
        u = s * math.cos(material.angle) + t * math.sin(material.angle)
        weight = (np.floor(u / scale) % 2)[:, None]
        period, mean = scale, (a + b) / 2
        color = a + (b - a) * weight
    elif material.kind == "noise":
        noise = _value_noise(material.seed, s / scale, t / scale)[:, None]
        period, mean = scale / 2.7, a + (b - a) * 0.5
        color = a + (b - a) * noise
    elif material.kind == "photo" and material.photo in _texture_images():
        image = _texture_images()[material.photo]
        height, width = image.shape[:2]
        cols = (np.floor((s / scale + material.offset[0]) * width).astype(np.int64)) % width
        rows = (np.floor((-t / scale + material.offset[1]) * width).astype(np.int64)) % height
        color = image[rows, cols]
        if np.ptp(image.reshape(-1, 3).mean(0)) < 1e-3 or material.photo in ("brick.png", "grass.png", "gravel.png"):
            color = np.clip(color * a * 1.6, 0, 1)  # tint the grayscale surface photos
            mean = np.clip(image.reshape(-1, 3).mean(0) * a * 1.6, 0, 1)
        else:
            mean = image.reshape(-1, 3).mean(0)
        period = 16 * scale / width  # photos are mostly smooth: fade only when a pixel covers many texels
    else:
        return np.broadcast_to(a, (s.size, 3)).copy()
    fade = np.clip((footprint / period - 0.25) / 0.75, 0, 1)[:, None]  # from 4 to 1 pixels per period
    return color * (1 - fade) + mean * fade


def render_scene(scene: Scene, size: tuple[int, int], noise_seed: int | None = None) -> RenderResult:
    """Ray-cast ``scene`` at ``size`` (H, W), one ray through each pixel centre, vectorised over all pixels.

    Depth is the exact z-depth (distance along the optical axis) of the nearest hit; rays that hit nothing are sky
    (depth 0). Shading: Lambertian from a directional light with hard shadows cast by boxes and spheres, ambient
    term, distance fog and, when ``noise_seed`` is given, slight Gaussian sensor noise.
    """
    height, width = size
    f, cx, cy = scene.camera.intrinsics(size)
    rot = scene.camera.rotation()
    xs, ys = (np.arange(width) - cx) / f, (np.arange(height) - cy) / f
    # camera ray (x, y, 1) -> world; camera z = 1, so the ray parameter t is the z-depth
    dirs: Vec = tuple((rot[a, 0] * xs[None, :] + rot[a, 1] * ys[:, None] + rot[a, 2]).ravel() for a in range(3))
    with np.errstate(divide="ignore"):
        inv: Vec = tuple(1.0 / d for d in dirs)
    origin: Vec = (0.0, float(scene.camera.height), 0.0)
    n = height * width
    best = np.full(n, np.inf)
    which = np.full(n, -1, np.int64)

    def take(t: np.ndarray, ident: int) -> None:
        closer = t < best
        best[closer] = t[closer]
        which[closer] = ident

    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = np.where(dirs[1] < 0, -origin[1] * inv[1], np.inf)
        reach = np.where(dirs[1] < 0, t_ground, 0)
    take(np.where(np.hypot(reach * dirs[0], reach * dirs[2]) <= scene.ground_extent, t_ground, np.inf), 0)
    if scene.wall_distance is not None:
        with np.errstate(invalid="ignore"):
            t_wall = np.where(dirs[2] > 0, (scene.wall_distance - origin[2]) * inv[2], np.inf)
            y = origin[1] + np.where(dirs[2] > 0, t_wall, 0) * dirs[1]
        take(np.where((y >= 0) & (y <= scene.wall_height), t_wall, np.inf), 1)
    for k, box in enumerate(scene.boxes):
        take(_ray_box(origin, inv, box.lo, box.hi), 2 + k)
    first_sphere = 2 + len(scene.boxes)
    for k, sphere in enumerate(scene.spheres):
        take(_ray_sphere(origin, dirs, sphere.center, sphere.radius), first_sphere + k)

    sky = which < 0
    dir_arr = np.stack(dirs, axis=1)
    length = np.sqrt(dirs[0] ** 2 + dirs[1] ** 2 + dirs[2] ** 2)
    up = np.clip(dirs[1] / length, 0, 1)[:, None] ** 0.6  # sky colour by the elevation of the ray
    horizon, top = np.asarray(scene.sky_horizon), np.asarray(scene.sky_top)
    rgb = horizon * (1 - up) + top * up

    hitting = np.flatnonzero(~sky)
    t_hit = best[hitting]
    points = np.asarray(origin) + t_hit[:, None] * dir_arr[hitting]
    normals = np.zeros_like(points)
    albedo = np.zeros_like(points)
    unit_hit = dir_arr[hitting] / length[hitting, None]
    footprint = t_hit * length[hitting] / f  # metres per pixel across the ray, stretched below by the slant
    ident = which[hitting]
    materials = [scene.ground, scene.wall] + [b.material for b in scene.boxes] + [s.material for s in scene.spheres]
    for k, material in enumerate(materials):
        sel = np.flatnonzero(ident == k)
        if sel.size == 0:
            continue
        p = points[sel]
        if k == 0:
            normals[sel] = (0.0, 1.0, 0.0)
            s, t = p[:, 0], p[:, 2]
        elif k == 1:
            normals[sel] = (0.0, 0.0, -1.0)
            s, t = p[:, 0], p[:, 1]
        elif k < first_sphere:
            box = scene.boxes[k - 2]
            rays = hitting[sel]
            axis = _box_face_axis(origin, tuple(i[rays] for i in inv), box.lo, box.hi)
            normals[sel, axis] = -np.sign(dir_arr[rays, axis])
            s = np.where(axis == 0, p[:, 2], p[:, 0])
            t = np.where(axis == 1, p[:, 2], p[:, 1])
        else:
            sphere = scene.spheres[k - first_sphere]
            rel = (p - np.asarray(sphere.center)) / sphere.radius
            normals[sel] = rel
            s, t = np.arctan2(rel[:, 0], rel[:, 2]) * sphere.radius, rel[:, 1] * sphere.radius
        slant = np.maximum(np.abs((normals[sel] * unit_hit[sel]).sum(axis=1)), 0.1)
        albedo[sel] = _texture(material, s, t, footprint[sel] / slant)

    light = np.asarray(scene.light_dir, np.float64)
    light = light / np.linalg.norm(light)
    lambert = np.clip(normals @ light, 0, None)
    lit = np.flatnonzero(lambert > 0)
    if lit.size and (scene.boxes or scene.spheres):  # shadow rays towards the light
        starts = points[lit] + normals[lit] * 1e-4
        start: Vec = (starts[:, 0], starts[:, 1], starts[:, 2])
        with np.errstate(divide="ignore"):
            inv_light: Vec = tuple(1.0 / float(c) if c != 0 else np.inf for c in light)
        blocked = np.zeros(lit.size, bool)
        for box in scene.boxes:
            blocked |= np.isfinite(_ray_box(start, inv_light, box.lo, box.hi))
        for sphere in scene.spheres:
            blocked |= np.isfinite(_ray_sphere(start, tuple(light), sphere.center, sphere.radius))
        lambert[lit[blocked]] = 0
    shade = scene.ambient + (1 - scene.ambient) * lambert
    color = albedo * shade[:, None]
    if scene.fog_distance is not None:
        fog = (1 - np.exp(-t_hit * length[hitting] / scene.fog_distance))[:, None]
        color = color * (1 - fog) + horizon * fog
    rgb[hitting] = color
    if noise_seed is not None:
        rgb += np.random.default_rng(noise_seed).normal(0, 1.5 / 255, rgb.shape)
    image = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8).reshape(height, width, 3)
    depth = np.where(sky, 0.0, best).astype(np.float32).reshape(height, width)
    ids = {name: index for index, name in enumerate(DEMO_CLASSES)}
    hit_kinds = [sky, which >= first_sphere, which >= 2, which == 1]  # object ids: ground 0, wall 1, boxes, spheres
    kinds = np.select(hit_kinds, [ids["sky"], ids["sphere"], ids["box"], ids["wall"]], ids["ground"])
    classes = kinds.astype(np.uint8).reshape(height, width)
    return RenderResult(image, depth, sky.reshape(height, width), f, f, cx, cy, classes)
