"""DPT decoder with the official Depth Anything module structure (same names, shapes and maths).

Reassemble: per selected ViT block a 1x1 projection to ``out_channels[i]`` and a resize layer
(x4 and x2 transposed convolutions, identity, stride-2 convolution); four 3x3 ``layerN_rn``
convolutions to ``features`` channels; four RefineNet fusion blocks from coarse to fine; then
``output_conv1``, bilinear upsampling to the input resolution and ``output_conv2`` ending in a
ReLU, so the output is a non-negative relative disparity.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

HEAD_HIDDEN_CHANNELS = 32  # official head_features_2


class ResidualConvUnit(nn.Module):
    """ReLU-conv-ReLU-conv with a skip connection (official ``ResidualConvUnit``, groups=1)."""

    def __init__(self, features: int, use_bn: bool = False) -> None:
        super().__init__()
        self.use_bn = use_bn
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1, bias=True)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1, bias=True)
        if use_bn:
            self.bn1 = nn.BatchNorm2d(features)
            self.bn2 = nn.BatchNorm2d(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(x))
        if self.use_bn:
            out = self.bn1(out)
        out = self.conv2(F.relu(out))
        if self.use_bn:
            out = self.bn2(out)
        return out + x


class FeatureFusionBlock(nn.Module):
    """RefineNet fusion: add the refined skip input, refine, upsample (x2 or to ``size``), 1x1."""

    def __init__(self, features: int, use_bn: bool = False) -> None:
        super().__init__()
        self.resConfUnit1 = ResidualConvUnit(features, use_bn)
        self.resConfUnit2 = ResidualConvUnit(features, use_bn)
        self.out_conv = nn.Conv2d(features, features, kernel_size=1, bias=True)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor | None = None, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTHead(nn.Module):
    """Official Depth Anything ``DPTHead`` (V1 and V2 share it; they differ in encoder blocks).

    ``forward(features, patch_h, patch_w)`` takes the encoder's four ``(patch_tokens, cls)``
    pairs and returns ``B x 1 x 14*patch_h x 14*patch_w`` non-negative disparity (``output_activation="relu"``) or
    a value in (0, 1) (``"sigmoid"``: the official V2 ``metric_depth`` head, scaled by ``max_depth`` outside).
    ``use_clstoken`` adds the official (unused by the released models) readout projections.
    """

    def __init__(
        self,
        in_channels: int,
        features: int,
        out_channels: tuple[int, int, int, int],
        use_bn: bool = False,
        use_clstoken: bool = False,
        patch_size: int = 14,
        output_activation: Literal["relu", "sigmoid"] = "relu",
    ) -> None:
        super().__init__()
        if output_activation not in ("relu", "sigmoid"):
            raise ValueError(f"output_activation must be 'relu' or 'sigmoid', got {output_activation!r}")
        self.use_clstoken = use_clstoken
        self.patch_size = patch_size
        self.projects = nn.ModuleList([nn.Conv2d(in_channels, c, kernel_size=1) for c in out_channels])
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(out_channels[0], out_channels[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(out_channels[1], out_channels[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(out_channels[3], out_channels[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        if use_clstoken:
            self.readout_projects = nn.ModuleList(
                [nn.Sequential(nn.Linear(2 * in_channels, in_channels), nn.GELU()) for _ in out_channels]
            )
        self.scratch = nn.Module()
        for i, channels in enumerate(out_channels, start=1):
            self.scratch.add_module(f"layer{i}_rn", nn.Conv2d(channels, features, kernel_size=3, padding=1, bias=False))
        for i in range(1, 5):
            self.scratch.add_module(f"refinenet{i}", FeatureFusionBlock(features, use_bn))
        self.scratch.output_conv1 = nn.Conv2d(features, features // 2, kernel_size=3, padding=1)
        self.scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, HEAD_HIDDEN_CHANNELS, kernel_size=3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(HEAD_HIDDEN_CHANNELS, 1, kernel_size=1),
            *((nn.ReLU(True), nn.Identity()) if output_activation == "relu" else (nn.Sigmoid(),)),
        )

    def reassemble(
        self, features: list[tuple[torch.Tensor, torch.Tensor]], patch_h: int, patch_w: int
    ) -> list[torch.Tensor]:
        """Tokens of the four blocks to the four feature maps at 4x, 2x, 1x and 1/2x the patch grid."""
        maps = []
        for i, (tokens, cls_token) in enumerate(features):
            if self.use_clstoken:
                readout = cls_token.unsqueeze(1).expand_as(tokens)
                tokens = self.readout_projects[i](torch.cat((tokens, readout), -1))
            # B x N x C tokens viewed as a channels-last B x C x h x w map: no copy, and the whole
            # head then runs channels-last (faster oneDNN convolutions and interpolation on CPU).
            x = tokens.reshape(tokens.shape[0], patch_h, patch_w, tokens.shape[-1]).permute(0, 3, 1, 2)
            maps.append(self.resize_layers[i](self.projects[i](x)))
        return maps

    def forward(self, features: list[tuple[torch.Tensor, torch.Tensor]], patch_h: int, patch_w: int) -> torch.Tensor:
        layer_1, layer_2, layer_3, layer_4 = self.reassemble(features, patch_h, patch_w)
        s = self.scratch
        layer_1, layer_2 = s.layer1_rn(layer_1), s.layer2_rn(layer_2)
        layer_3, layer_4 = s.layer3_rn(layer_3), s.layer4_rn(layer_4)
        path_4 = s.refinenet4(layer_4, size=layer_3.shape[2:])
        path_3 = s.refinenet3(path_4, layer_3, size=layer_2.shape[2:])
        path_2 = s.refinenet2(path_3, layer_2, size=layer_1.shape[2:])
        path_1 = s.refinenet1(path_2, layer_1)
        out = s.output_conv1(path_1)
        size = (patch_h * self.patch_size, patch_w * self.patch_size)
        out = F.interpolate(out, size=size, mode="bilinear", align_corners=True)
        return s.output_conv2(out)
