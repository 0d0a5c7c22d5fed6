"""Depth Anything V1 metric depth (ZoeDepth metric bins head): the official forward re-derived independently, the
attractor and log-binomial maths, the official checkpoint's key set, and the official preprocessing sizes."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from anydepth.models.depth_anything import DepthAnything
from anydepth.models.metric_bins import ConditionalLogBinomial, attract
from anydepth.models.preprocess import normalize
from anydepth.models.zoedepth import (
    PRESETS,
    ZoeDepthConfig,
    ZoeDepthMetric,
    prepare_zoedepth_batch,
    zoedepth_input_size,
    zoedepth_state_dict_from_official,
)

from helpers import FIXTURES, TINY, lift_output_, perturb_

HEAD = dict(n_bins=8, bin_embedding_dim=16, n_attractors=(4, 4, 2, 1))
TINY_SIZES = {  # a vitl-like (TINY) and a smaller, vits-like custom encoder with its own head sizes
    "vitl-like": (TINY, HEAD),
    "vits-like": (
        dict(encoder="custom", embed_dim=24, depth=5, num_heads=2, features=12, out_channels=(6, 12, 24, 24)),
        dict(n_bins=6, bin_embedding_dim=8, n_attractors=(3, 2, 2, 1)),
    ),
}


def tiny_metric(seed: int = 0, sizes: str = "vitl-like", **head: object) -> ZoeDepthMetric:
    encoder, defaults = TINY_SIZES[sizes]
    torch.manual_seed(seed)
    model = ZoeDepthMetric(DepthAnything(version="v1", **encoder), **{**defaults, **head})
    perturb_(model, std=0.1, seed=seed)
    lift_output_(model.relative)
    return model.eval()


@pytest.fixture(scope="module")
def tiny() -> ZoeDepthMetric:
    return tiny_metric()


def up(x: torch.Tensor, size: tuple[int, ...] | torch.Size) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


def official_forward(model: ZoeDepthMetric, x: torch.Tensor) -> torch.Tensor:
    """``zoedepth_v1.ZoeDepth.forward`` written out: the official core's forward hooks on the relative model, then
    the seed bins, inverse attractors (mean), and the Stirling log-binomial inline."""
    cfg, scratch, bank = model.config, model.relative.depth_head.scratch, {}
    hooked = {"out_conv": scratch.output_conv2[1], "l4_rn": scratch.layer4_rn}
    hooked |= {f"r{i}": getattr(scratch, f"refinenet{i}") for i in range(1, 5)}
    handles = [m.register_forward_hook(lambda _, __, out, k=k: bank.__setitem__(k, out)) for k, m in hooked.items()]
    relative = model.relative(x)
    for handle in handles:
        handle.remove()
    x0 = model.conv2(bank["l4_rn"])
    centres, prev = model.seed_bin_regressor._net(x0), model.seed_projector._net(x0)
    for projector, attractor, name in zip(model.projectors, model.attractors, ("r4", "r3", "r2", "r1")):
        embedding = projector._net(bank[name])
        points = attractor._net(embedding + up(prev, embedding.shape[-2:]))
        centres = up(centres, points.shape[-2:])
        dx = points[:, :, None] - centres[:, None]
        centres = centres + (dx / (1 + cfg.attractor_alpha * dx**2)).mean(dim=1)
        prev = embedding
    last = torch.cat([bank["out_conv"], up(relative[:, None], bank["out_conv"].shape[-2:])], dim=1)
    pt = model.conditional_log_binomial.mlp(torch.cat([last, up(prev, last.shape[-2:])], dim=1)) + 1e-4
    p = (pt[:, 0] / (pt[:, 0] + pt[:, 1]))[:, None]
    t = (cfg.max_temp - cfg.min_temp) * (pt[:, 2] / (pt[:, 2] + pt[:, 3]))[:, None] + cfg.min_temp
    k = torch.arange(cfg.n_bins, dtype=torch.float32).view(1, -1, 1, 1)
    n, kk = cfg.n_bins - 1 + 1e-7, k + 1e-7
    log_c = n * math.log(n) - kk * torch.log(kk) - (n - kk) * torch.log(n - kk + 1e-7)
    y = log_c + k * torch.log(p.clamp(1e-4, 1)) + (cfg.n_bins - 1 - k) * torch.log((1 - p).clamp(1e-4, 1))
    return (torch.softmax(y / t, dim=1) * up(centres, y.shape[-2:])).sum(dim=1)


def test_forward_is_the_official_zoedepth_forward(tiny: ZoeDepthMetric) -> None:
    x = torch.randn(2, 3, 56, 70)
    with torch.inference_mode():
        ours, reference = tiny(x), official_forward(tiny, x)
    assert ours.shape == (2, 56, 70) and ours.std() > 0
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)


def test_core_passes_the_relative_models_disparity_and_hooked_features(tiny: ZoeDepthMetric) -> None:
    x = torch.randn(1, 3, 42, 56)
    with torch.inference_mode():
        core, relative = tiny.core(x), tiny.relative(x)
    torch.testing.assert_close(core.relative, relative, rtol=0, atol=0)
    features = TINY["features"]
    assert core.out_conv.shape == (1, 32, 42, 56) and (core.out_conv >= 0).all()
    assert core.bottleneck.shape == (1, features, 2, 2)  # half of the 3 x 4 patch grid, rounded up
    assert [b.shape[-2:] for b in core.blocks] == [(3, 4), (6, 8), (12, 16), (24, 32)]


def test_output_is_finite_positive_metres_between_the_final_bin_centres(tiny: ZoeDepthMetric) -> None:
    """Softplus centres and attractors stay positive; the depth is a convex combination of each pixel's centres.
    Nothing clips it to [min_depth, max_depth] (the official forward does not either)."""
    x = torch.randn(2, 3, 28, 42)
    with torch.inference_mode():
        out = tiny.forward_details(x)
    assert out.depth.shape == out.relative.shape == (2, 28, 42)
    assert out.bin_centers.shape == out.probs.shape == (2, HEAD["n_bins"], 28, 42)
    assert torch.isfinite(out.depth).all() and (out.depth > 0).all()
    assert (out.bin_centers > 0).all()
    torch.testing.assert_close(out.probs.sum(dim=1), torch.ones(2, 28, 42))
    assert (out.depth >= out.bin_centers.amin(dim=1) - 1e-6).all()
    assert (out.depth <= out.bin_centers.amax(dim=1) + 1e-6).all()
    cfg = tiny.config
    assert (out.depth >= cfg.min_depth).all() and (out.depth <= cfg.max_depth).all()  # holds for this model


def test_depth_depends_on_the_input_and_eval_is_deterministic(tiny: ZoeDepthMetric) -> None:
    x = torch.randn(1, 3, 28, 28)
    with torch.inference_mode():
        first, second, other = tiny(x), tiny(x), tiny(torch.randn(1, 3, 28, 28))
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert (first - other).abs().max() > 1e-4


def test_every_head_parameter_gets_a_gradient() -> None:
    model = tiny_metric().train()
    model(torch.randn(1, 3, 28, 28)).mean().backward()
    missing = [n for n, p in model.named_parameters() if not n.startswith("core.") and p.grad is None]
    assert not missing


def test_inverse_attractor_moves_centres_towards_the_attractor_without_overshoot() -> None:
    """dc = dx / (1 + alpha dx^gamma), dx = a - c, averaged (kind 'mean') or summed over the attractors."""
    centres = torch.tensor([1.0, 2.0, 1.5]).view(1, 3, 1, 1)
    one = torch.tensor([1.5]).view(1, 1, 1, 1)
    moved = attract(centres, one, alpha=1.0, gamma=2, kind="mean", attractor_type="inv")
    torch.testing.assert_close(moved.flatten(), torch.tensor([1.4, 1.6, 1.5]))  # 1 + 0.5 / 1.25, 2 - 0.5 / 1.25
    assert ((moved - one).abs() <= (centres - one).abs()).all()
    two = torch.tensor([1.5, 3.0]).view(1, 2, 1, 1)
    summed = attract(centres, two, alpha=1.0, gamma=2, kind="sum", attractor_type="inv")
    averaged = attract(centres, two, alpha=1.0, gamma=2, kind="mean", attractor_type="inv")
    torch.testing.assert_close(summed - centres, 2 * (averaged - centres))
    torch.testing.assert_close(summed[0, 0, 0, 0], torch.tensor(1 + 0.4 + 2.0 / 5.0))  # towards 1.5 and 3.0
    stronger = attract(centres, one, alpha=1000.0, gamma=2, kind="mean", attractor_type="inv")
    assert ((stronger - centres).abs() < (moved - centres).abs() + 1e-9).all()  # larger alpha: weaker pull


def test_exponential_attractor_follows_its_formula() -> None:
    centres, points = torch.tensor([0.2, 0.9]).view(1, 2, 1, 1), torch.tensor([0.5]).view(1, 1, 1, 1)
    moved = attract(centres, points, alpha=300.0, gamma=2, kind="sum", attractor_type="exp")
    dx = torch.tensor([0.3, -0.4])
    torch.testing.assert_close(moved.flatten(), centres.flatten() + torch.exp(-300 * dx**2) * dx)


def test_attractor_layer_uses_its_points_on_the_resampled_previous_centres(tiny: ZoeDepthMetric) -> None:
    layer = tiny.attractors[1]
    x, prev_embedding = torch.randn(1, 16, 6, 8), torch.randn(1, 16, 3, 4)
    b_prev = torch.rand(1, HEAD["n_bins"], 3, 4) + 0.5
    with torch.inference_mode():
        out = layer(x, b_prev, prev_embedding)
        points = layer._net(x + up(prev_embedding, (6, 8)))
    centres = up(b_prev, (6, 8))
    dxs = [a[None, None] - centres for a in points[0]]  # each attractor against every bin centre
    shift = sum(dx / (1 + 1000 * dx**2) for dx in dxs) / len(dxs)
    torch.testing.assert_close(out, centres + shift)


def test_conditional_log_binomial_matches_a_scalar_recomputation() -> None:
    torch.manual_seed(1)
    layer = ConditionalLogBinomial(5, 3, n_classes=7, min_temp=0.0212, max_temp=50.0).eval()
    perturb_(layer, std=0.5)
    x, cond = torch.randn(1, 5, 2, 3), torch.randn(1, 3, 2, 3)
    with torch.inference_mode():
        probs = layer(x, cond)
        pt = (layer.mlp(torch.cat([x, cond], 1)) + 1e-4)[0, :, 1, 2].tolist()
    p = pt[0] / (pt[0] + pt[1])
    t = 0.0212 + (50.0 - 0.0212) * pt[2] / (pt[2] + pt[3])

    def stirling(n: float, k: float) -> float:
        n, k = n + 1e-7, k + 1e-7
        return n * math.log(n) - k * math.log(k) - (n - k) * math.log(n - k + 1e-7)

    logits = [(stirling(6, k) + k * math.log(p) + (6 - k) * math.log(1 - p)) / t for k in range(7)]
    expected = torch.softmax(torch.tensor(logits, dtype=torch.float64), 0).float()
    torch.testing.assert_close(probs[0, :, 1, 2], expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(1, 2, 3))


def test_log_binomial_peaks_at_the_binomial_mode() -> None:
    """At t = 1 the distribution over K bins is (Stirling-)binomial(K - 1, p): its mode is p (K - 1)."""
    transform = ConditionalLogBinomial(1, 1, n_classes=9, min_temp=0.1, max_temp=1.0).log_binomial_transform
    for p, mode in [(0.5, 4), (0.25, 2), (0.875, 7)]:
        probs = transform(torch.full((1, 1, 1, 1), p), torch.ones(1, 1, 1, 1))
        assert probs.argmax(dim=1).item() == mode


def head_shapes(features: int, n_bins: int, embed: int, n_attractors: tuple[int, ...]) -> dict[str, list[int]]:
    """The head's parameter shapes as the official ``ZoeDepth.__init__`` builds them: N_MIDAS_OUT 32, the default
    ``mlp_dim`` of each layer class (``localbins_layers.py``: ``SeedBinRegressorUnnormed`` 256, ``Projector`` 128;
    ``attractor.py``: ``AttractorLayerUnnormed`` 128)."""
    shapes = {"conv2.weight": [features, features, 1, 1], "conv2.bias": [features]}
    mlps = {"seed_bin_regressor": (features, 256, n_bins), "seed_projector": (features, 128, embed)}
    mlps |= {f"projectors.{i}": (features, 128, embed) for i in range(4)}
    mlps |= {f"attractors.{i}": (embed, 128, n) for i, n in enumerate(n_attractors)}
    for name, (c_in, hidden, c_out) in mlps.items():
        shapes |= {f"{name}._net.0.weight": [hidden, c_in, 1, 1], f"{name}._net.0.bias": [hidden]}
        shapes |= {f"{name}._net.2.weight": [c_out, hidden, 1, 1], f"{name}._net.2.bias": [c_out]}
    clb, c_in = "conditional_log_binomial", 32 + 1 + embed
    binomial = f"{clb}.log_binomial_transform"
    shapes |= {f"{binomial}.k_idx": [1, n_bins, 1, 1], f"{binomial}.K_minus_1": [1, 1, 1, 1]}
    shapes |= {f"{clb}.mlp.0.weight": [c_in // 2, c_in, 1, 1], f"{clb}.mlp.0.bias": [c_in // 2]}
    return shapes | {f"{clb}.mlp.2.weight": [4, c_in // 2, 1, 1], f"{clb}.mlp.2.bias": [4]}


def official_keys() -> dict[str, list[int]]:
    return json.loads((FIXTURES / "official_zoedepth_metric_keys.json").read_text())


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_official_vitl_checkpoint_layout_loads_strictly(preset: str) -> None:
    """The released ``depth_anything_metric_depth_{indoor,outdoor}.pt`` layout: the V1 ViT-L relative model under
    ``core.core.`` (its official relative key set) plus the head (shapes from the official constructor)."""
    expected = official_keys()
    relative = json.loads((FIXTURES / "official_vits_keys.json").read_text())
    vitl = {k for k in relative if "blocks." not in k}
    vitl |= {k.replace("blocks.0.", f"blocks.{i}.") for k in relative if "blocks.0." in k for i in range(24)}
    assert {k.removeprefix("core.core.") for k in expected if k.startswith("core.core.")} == vitl
    assert {k: v for k, v in expected.items() if not k.startswith("core.")} == head_shapes(256, 64, 128, (16, 8, 4, 1))
    with torch.device("meta"):
        model = ZoeDepthMetric.from_preset(preset)
        weights = {k: torch.empty(v, dtype=torch.int64 if k.endswith("k_idx") else None) for k, v in expected.items()}
    checkpoint = {"model": weights, "optimizer": None, "epoch": 5}
    assert model.config.max_depth == PRESETS[preset]["max_depth"]
    model.load_state_dict(zoedepth_state_dict_from_official(checkpoint), strict=True, assign=True)


@pytest.mark.parametrize("sizes", sorted(TINY_SIZES))
def test_tiny_models_use_the_official_names_and_round_trip_an_official_file(sizes: str) -> None:
    model = tiny_metric(sizes=sizes)
    encoder, head = TINY_SIZES[sizes]
    names = {k for k in official_keys() if not any(f"blocks.{i}." in k for i in range(encoder["depth"], 24))}
    assert set(model.state_dict()) == names
    ours = {k: v for k, v in model.state_dict().items() if not k.startswith("core.")}
    shapes = head_shapes(encoder["features"], head["n_bins"], head["bin_embedding_dim"], head["n_attractors"])
    assert {k: list(v.shape) for k, v in ours.items()} == shapes
    saved = {"model": {f"module.{k}": v.clone() for k, v in model.state_dict().items()}, "optimizer": None, "epoch": 5}
    fresh = ZoeDepthMetric(DepthAnything(version="v1", **encoder), **head).eval()
    fresh.load_state_dict(zoedepth_state_dict_from_official(saved), strict=True)
    x = torch.randn(1, 3, 28, 42)
    with torch.inference_mode():
        torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)


def test_configuration_is_validated_and_round_trips() -> None:
    cfg = ZoeDepthConfig(max_depth=80.0)
    assert ZoeDepthConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="n_attractors needs 4"):
        ZoeDepthConfig(n_attractors=(16, 8, 4))
    with pytest.raises(ValueError, match="min_depth < max_depth"):
        ZoeDepthConfig(min_depth=10.0, max_depth=1.0)
    with pytest.raises(ValueError, match="preset must be one of"):
        ZoeDepthMetric.from_preset("underwater", DepthAnything(version="v1", **TINY))
    with pytest.raises(ValueError, match="relative DepthAnything"):
        ZoeDepthMetric(DepthAnything(version="v1", head="metric", max_depth=10.0, **TINY))


@pytest.mark.parametrize(
    ("size", "keep_aspect_ratio", "expected"),
    [
        ((480, 640), False, (392, 518)),  # evaluate.py: NYUv2 straight to img_size
        ((352, 1216), False, (392, 518)),  # evaluate.py: KITTI (kb-cropped) too
        ((480, 640), True, (392, 518)),  # infer config: the height scale (0.817) is nearer 1 than the width's (0.809)
        ((352, 1216), True, (392, 1358)),  # 1216 * 392 / 352 = 1354.2 -> 96.7 patches -> 97
        ((500, 400), True, (392, 308)),  # portrait: 392 / 500 is nearer 1 than 518 / 400; 313.6 px -> 22 patches
    ],
)
def test_input_size_follows_the_official_minimal_resize(
    size: tuple[int, int], keep_aspect_ratio: bool, expected: tuple[int, int]
) -> None:
    assert zoedepth_input_size(*size, keep_aspect_ratio=keep_aspect_ratio) == expected


def test_prepare_batch_resizes_bilinearly_then_normalises() -> None:
    images = torch.rand(2, 3, 48, 64)
    batch = prepare_zoedepth_batch(images, img_size=(28, 42))
    assert batch.shape == (2, 3, 28, 42)
    torch.testing.assert_close(batch, normalize(up(images, (28, 42))))
