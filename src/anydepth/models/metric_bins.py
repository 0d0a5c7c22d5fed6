"""ZoeDepth's metric bins module (Bhat et al. 2023): Depth Anything V1's metric head (paper Sec. 4.3, supp. Sec. 1).

Every layer here works on ``B x C x h x w`` feature maps with 1x1 convolutions, so it is resolution free. Module and
parameter names equal the official ZoeDepth ones (``zoedepth/models/layers/localbins_layers.py``, ``attractor.py``,
``dist_layers.py``: ``_net``, ``mlp``, ``log_binomial_transform.k_idx`` ...) so the released checkpoints load key
for key. Only the ``softplus`` (unbounded) bin centres that Depth Anything's released metric models use are built:
a seed regressor predicts ``n_bins`` positive centres per pixel, attractor layers move them towards predicted
attractor points scale by scale, and a conditional log-binomial distribution over the bins gives each pixel's
depth as the probability-weighted sum of its centres.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

AttractorKind = Literal["mean", "sum"]
AttractorType = Literal["inv", "exp"]
MLP_DIM = 128  # official default hidden width of Projector and AttractorLayerUnnormed
SEED_MLP_DIM = 256  # official SeedBinRegressorUnnormed(..., mlp_dim=256); ZoeDepth.__init__ keeps the default


def resize_like(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resampling with ``align_corners=True``, the only interpolation ZoeDepth uses."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


def _mlp(
    in_channels: int, hidden: int, out_channels: int, activation: nn.Module, last: nn.Module | None
) -> nn.Sequential:
    """Official ``_net``: 1x1 conv, activation, 1x1 conv, optional output activation."""
    layers = [nn.Conv2d(in_channels, hidden, 1), activation, nn.Conv2d(hidden, out_channels, 1)]
    return nn.Sequential(*layers, *([last] if last is not None else []))


class SeedBinRegressorUnnormed(nn.Module):
    """First bin centres, unbounded: ``softplus(conv(relu(conv(x))))``, ``B x n_bins x h x w`` (official
    ``SeedBinRegressorUnnormed``, hidden width 256 unlike the other MLPs' 128; its ``min_depth``/``max_depth``
    arguments are unused and so not taken here)."""

    def __init__(self, in_features: int, n_bins: int, mlp_dim: int = SEED_MLP_DIM) -> None:
        super().__init__()
        self._net = _mlp(in_features, mlp_dim, n_bins, nn.ReLU(inplace=True), nn.Softplus())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._net(x)


class Projector(nn.Module):
    """Bin embedding of a feature map: ``conv(relu(conv(x)))`` to ``out_features`` channels (official ``Projector``)."""

    def __init__(self, in_features: int, out_features: int, mlp_dim: int = MLP_DIM) -> None:
        super().__init__()
        self._net = _mlp(in_features, mlp_dim, out_features, nn.ReLU(inplace=True), None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._net(x)


def inv_attractor(dx: torch.Tensor, alpha: float, gamma: int) -> torch.Tensor:
    """Inverse attractor (official default): ``dc = dx / (1 + alpha * dx^gamma)``, ``dx = a - c``."""
    return dx.div(1 + alpha * dx.pow(gamma))


def exp_attractor(dx: torch.Tensor, alpha: float, gamma: int) -> torch.Tensor:
    """Exponential attractor: ``dc = exp(-alpha * |dx|^gamma) * dx``."""
    return torch.exp(-alpha * dx.abs().pow(gamma)) * dx


ATTRACTORS = {"inv": inv_attractor, "exp": exp_attractor}


def attract(
    centres: torch.Tensor,
    attractors: torch.Tensor,
    alpha: float,
    gamma: int,
    kind: AttractorKind = "mean",
    attractor_type: AttractorType = "inv",
) -> torch.Tensor:
    """Attractor update (ZoeDepth Sec. 3): ``c' = c + agg_k dist(a_k - c)`` for centres ``B x N x h x w`` and
    attractors ``B x K x h x w``; ``agg`` is the mean or sum over the K attractors, ``dist`` from :data:`ATTRACTORS`."""
    shift = ATTRACTORS[attractor_type](attractors.unsqueeze(2) - centres.unsqueeze(1), alpha, gamma)
    return centres + (shift.mean(dim=1) if kind == "mean" else shift.sum(dim=1))


class AttractorLayerUnnormed(nn.Module):
    """One attractor stage (official ``AttractorLayerUnnormed``): ``n_attractors`` softplus points per pixel from the
    bin embedding (plus the previous stage's, resampled), then :func:`attract` on the previous centres resampled to
    this scale. Returns the new unbounded centres ``B x n_bins x h x w``. The official arguments this variant ignores
    (``n_bins``, ``min_depth``, ``max_depth``, ``memory_efficient``) are not taken."""

    def __init__(
        self,
        in_features: int,
        n_attractors: int,
        alpha: float,
        gamma: int,
        kind: AttractorKind = "mean",
        attractor_type: AttractorType = "inv",
        mlp_dim: int = MLP_DIM,
    ) -> None:
        super().__init__()
        if kind not in ("mean", "sum"):
            raise ValueError(f"attractor_kind must be 'mean' or 'sum', got {kind!r}")
        if attractor_type not in ATTRACTORS:
            raise ValueError(f"attractor_type must be one of {sorted(ATTRACTORS)}, got {attractor_type!r}")
        self.alpha, self.gamma, self.kind, self.attractor_type = alpha, gamma, kind, attractor_type
        self._net = _mlp(in_features, mlp_dim, n_attractors, nn.ReLU(inplace=True), nn.Softplus())

    def forward(self, x: torch.Tensor, b_prev: torch.Tensor, prev_b_embedding: torch.Tensor) -> torch.Tensor:
        attractors = self._net(x + resize_like(prev_b_embedding, x.shape[-2:]))
        centres = resize_like(b_prev, attractors.shape[-2:])
        return attract(centres, attractors, self.alpha, self.gamma, self.kind, self.attractor_type)


def log_binom(n: torch.Tensor, k: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """``log C(n, k)`` by Stirling's approximation ``n log n - k log k - (n-k) log(n-k)`` (official, same epsilons)."""
    n, k = n + eps, k + eps
    return n * torch.log(n) - k * torch.log(k) - (n - k) * torch.log(n - k + eps)


class LogBinomial(nn.Module):
    """Softmax over ``K`` bins of the binomial log-likelihood ``log C(K-1, k) + k log p + (K-1-k) log(1-p)``
    divided by a temperature ``t`` (ZoeDepth's ordinal output distribution): ``p``, ``t`` ``B x 1 x h x w`` ->
    ``B x K x h x w``.

    The bin indices are the official persistent buffers ``k_idx`` (int64, ``1 x K x 1 x 1``) and ``K_minus_1``.
    """

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.K = n_classes
        self.register_buffer("k_idx", torch.arange(0, n_classes).view(1, -1, 1, 1))
        self.register_buffer("K_minus_1", torch.tensor([n_classes - 1], dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, p: torch.Tensor, t: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
        one_minus_p = torch.clamp(1 - p, eps, 1)
        p = torch.clamp(p, eps, 1)
        k = self.k_idx
        y = log_binom(self.K_minus_1, k) + k * torch.log(p) + (self.K - 1 - k) * torch.log(one_minus_p)
        return torch.softmax(y / t, dim=1)


class ConditionalLogBinomial(nn.Module):
    """Per-pixel bin probabilities ``B x n_classes x h x w`` (official ``ConditionalLogBinomial``).

    An MLP on ``cat(x, cond)`` (``in_features + condition_dim`` -> half -> GELU -> 4, softplus) gives two positive
    pairs, each normalised to a fraction: the binomial's success probability ``p`` and a temperature
    ``t = min_temp + (max_temp - min_temp) * fraction`` (``p_eps`` added before normalising).
    """

    def __init__(
        self,
        in_features: int,
        condition_dim: int,
        n_classes: int,
        min_temp: float,
        max_temp: float,
        bottleneck_factor: int = 2,
        p_eps: float = 1e-4,
    ) -> None:
        super().__init__()
        self.p_eps, self.min_temp, self.max_temp = p_eps, min_temp, max_temp
        self.log_binomial_transform = LogBinomial(n_classes)
        channels = in_features + condition_dim
        self.mlp = _mlp(channels, channels // bottleneck_factor, 4, nn.GELU(), nn.Softplus())

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        pt = self.mlp(torch.cat((x, cond), dim=1)) + self.p_eps
        p = pt[:, 0:1] / (pt[:, 0:1] + pt[:, 1:2])
        t = pt[:, 2:3] / (pt[:, 2:3] + pt[:, 3:4])
        t = (self.max_temp - self.min_temp) * t + self.min_temp
        return self.log_binomial_transform(p, t)
