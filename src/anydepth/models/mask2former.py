"""transformers' Mask2Former (Cheng et al., CVPR 2022) on an external feature pyramid: the paper's segmentation head.

Paper, supplementary Sec. 1: "We use Mask2Former as our semantic segmentation model." The official configs
(Depth-Anything ``semseg/``, MMSegmentation) feed it the four maps of a ``Feature2Pyramid`` neck over the ViT.
transformers' :class:`~transformers.Mask2FormerForUniversalSegmentation` builds its own backbone (Swin) inside its
pixel-level module; :class:`Mask2FormerHead` is the small adapter that keeps every other part of it unchanged --
the multi-scale deformable-attention pixel decoder, the masked-attention transformer decoder, the class predictor,
the Hungarian-matched class / mask / dice losses with point sampling and their weighting, and Mask2Former's weight
initialisation -- and hands the decoder the anydepth pyramid (strides 3.5, 7, 14, 28 px for patch 14: the last three
go through deformable attention, the first becomes the mask features, as a Swin's 4, 8, 16, 32 would).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import Mask2FormerConfig
from transformers.models.mask2former.modeling_mask2former import (
    Mask2FormerForUniversalSegmentation,
    Mask2FormerLoss,
    Mask2FormerPixelDecoder,
    Mask2FormerPreTrainedModel,
    Mask2FormerTransformerModule,
)

__all__ = [
    "DistributedMask2FormerLoss",
    "Mask2FormerHead",
    "Mask2FormerOutput",
    "mask2former_config",
    "semantic_targets",
]

Mask2FormerOutput = tuple[tuple[Tensor, ...], tuple[Tensor, ...]]
"""Per decoder layer (the last is the prediction): class logits ``B x Q x (K + 1)``, mask logits ``B x Q x h x w``."""


def mask2former_config(embed_dim: int, num_classes: int, **overrides: Any) -> Mask2FormerConfig:
    """The head's :class:`~transformers.Mask2FormerConfig`: widths follow the encoder as in the official ViT-L config
    (``feat_channels = out_channels = embed_dim`` = 1024, 32 attention heads, feed-forward 4 x 1024), i.e. pixel
    decoder, mask features and queries ``embed_dim`` wide with ``embed_dim / 32`` heads and ``4 x embed_dim``
    feed-forward layers; ``overrides`` (any config field: ``num_queries``, ``decoder_layers``, loss weights ...)
    take precedence. The widths must be multiples of 32 (the pixel decoder's GroupNorm has 32 groups)."""
    widths = dict(feature_size=embed_dim, mask_feature_size=embed_dim, hidden_dim=embed_dim)
    defaults = dict(
        **widths,
        num_attention_heads=max(1, embed_dim // 32),
        encoder_feedforward_dim=4 * embed_dim,
        dim_feedforward=4 * embed_dim,
    )
    config = Mask2FormerConfig(num_labels=num_classes, **{**defaults, **overrides})
    if config.feature_size % 32 or config.mask_feature_size % 32:
        raise ValueError(
            f"Mask2Former's pixel decoder normalises with GroupNorm(32): feature_size and mask_feature_size must be "
            f"multiples of 32, got {config.feature_size} and {config.mask_feature_size}"
        )
    return config


def semantic_targets(seg: Tensor, ignore_index: int) -> tuple[list[Tensor], list[Tensor]]:
    """Per image the binary mask of every class present in ``seg`` (``B x H x W`` ids) and the class ids: the
    "one mask per class" targets of semantic segmentation (MMSegmentation's ``seg_data_to_instance_data``);
    ignored pixels belong to no mask."""
    masks, classes = [], []
    for ids in seg:
        present = ids.unique()
        present = present[present != ignore_index]
        masks.append((ids[None] == present[:, None, None]).float())
        classes.append(present.long())
    return masks, classes


class DistributedMask2FormerLoss(Mask2FormerLoss):
    """transformers' :class:`~transformers.models.mask2former.modeling_mask2former.Mask2FormerLoss` with the mask
    count that normalises the mask and dice losses averaged over the ``torch.distributed`` ranks (the process group
    Lightning's DDP / FSDP strategies start), as the original Mask2Former does; transformers averages only under
    ``accelerate``. Every rank computes the loss each step (the all-reduce is collective)."""

    def get_num_masks(self, class_labels: list[Tensor], device: torch.device) -> Tensor:
        num_masks = torch.as_tensor(sum(len(classes) for classes in class_labels), dtype=torch.float, device=device)
        world_size = 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(num_masks)
            world_size = torch.distributed.get_world_size()
        return torch.clamp(num_masks / world_size, min=1)


class Mask2FormerHead(Mask2FormerPreTrainedModel):
    """Mask2Former's pixel decoder, transformer decoder, class predictor and loss on four ``in_channels``-wide maps
    (finest first). A :class:`~transformers.Mask2FormerPreTrainedModel`, so its parts get transformers' own
    initialisation; the loss weighting is :class:`~transformers.Mask2FormerForUniversalSegmentation`'s."""

    get_loss_dict = Mask2FormerForUniversalSegmentation.get_loss_dict
    get_auxiliary_logits = Mask2FormerForUniversalSegmentation.get_auxiliary_logits

    def __init__(self, config: Mask2FormerConfig, in_channels: int) -> None:
        super().__init__(config)
        self.pixel_decoder = Mask2FormerPixelDecoder(config, feature_channels=[in_channels] * 4)
        self.transformer_module = Mask2FormerTransformerModule(in_features=config.feature_size, config=config)
        self.class_predictor = nn.Linear(config.hidden_dim, config.num_labels + 1)
        self.weight_dict = {
            "loss_cross_entropy": config.class_weight,
            "loss_mask": config.mask_weight,
            "loss_dice": config.dice_weight,
        }
        self.criterion = DistributedMask2FormerLoss(config=config, weight_dict=self.weight_dict)
        self.post_init()

    def forward(self, features: list[Tensor]) -> Mask2FormerOutput:
        """Four ``B x C x h_i x w_i`` maps, finest first -> class and mask logits of every decoder layer."""
        pixels = self.pixel_decoder(features)
        decoded = self.transformer_module(
            multi_scale_features=pixels.multi_scale_features,
            mask_features=pixels.mask_features,
            output_hidden_states=True,
        )
        classes = tuple(self.class_predictor(state.transpose(0, 1)) for state in decoded.intermediate_hidden_states)
        return classes, tuple(decoded.masks_queries_logits)

    def loss(self, outputs: Mask2FormerOutput, seg: Tensor, ignore_index: int) -> dict[str, Tensor]:
        """Weighted class / mask / dice losses of the last layer and (``use_auxiliary_loss``) of every other one,
        Hungarian-matched to the classes of ``seg`` (``B x H x W``); ``"loss"`` is their sum, ``"cross_entropy"``,
        ``"mask"`` and ``"dice"`` the last layer's weighted terms."""
        classes, masks = outputs
        mask_labels, class_labels = semantic_targets(seg, ignore_index)
        auxiliary = self.get_auxiliary_logits(classes, masks) if self.config.use_auxiliary_loss else None
        terms = self.get_loss_dict(masks[-1], classes[-1], mask_labels, class_labels, auxiliary)
        last = {name.removeprefix("loss_"): terms[name] for name in self.weight_dict}
        return {"loss": sum(terms.values()), **last}

    @staticmethod
    def scores(outputs: Mask2FormerOutput, size: tuple[int, int]) -> Tensor:
        """Semantic class scores ``B x K x H x W`` at ``size``: per pixel the sum over queries of the class
        probabilities (no-object dropped) times the sigmoid mask, the masks upsampled bilinearly first (Mask2Former's
        semantic inference)."""
        classes, masks = outputs
        probabilities = classes[-1].softmax(-1)[..., :-1]
        masks = F.interpolate(masks[-1], size=size, mode="bilinear", align_corners=False).sigmoid()
        return torch.einsum("bqc,bqhw->bchw", probabilities, masks)
