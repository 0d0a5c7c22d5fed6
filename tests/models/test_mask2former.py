"""``DistributedMask2FormerLoss`` in a real two-process gloo group (the group Lightning's DDP starts): the mask and
dice losses are normalised by the mask count averaged over ranks, the class loss is untouched, and a single process
is transformers' loss exactly."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from transformers.models.mask2former.modeling_mask2former import Mask2FormerLoss

from anydepth.models.mask2former import DistributedMask2FormerLoss, mask2former_config, semantic_targets

CLASSES, QUERIES = 4, 5
MASKS_PER_RANK = (3, 1)  # classes present in each rank's image: mean 2


def inputs(rank: int) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Random logits and one 16 x 16 label image with ``MASKS_PER_RANK[rank]`` classes in stripes."""
    generator = torch.Generator().manual_seed(rank)
    seg = (torch.arange(16).repeat(16, 1) * MASKS_PER_RANK[rank] // 16)[None]
    masks, classes = semantic_targets(seg, ignore_index=255)
    mask_logits = torch.randn(1, QUERIES, 8, 8, generator=generator)
    class_logits = torch.randn(1, QUERIES, CLASSES + 1, generator=generator)
    return mask_logits, class_logits, masks, classes


def losses(criterion: Mask2FormerLoss, rank: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)  # the matcher's and the loss's point sampling
    return criterion(*inputs(rank))


def criteria() -> tuple[DistributedMask2FormerLoss, Mask2FormerLoss]:
    config = mask2former_config(32, CLASSES, num_queries=QUERIES, train_num_points=64)
    weights = {"loss_cross_entropy": 2.0, "loss_mask": 5.0, "loss_dice": 5.0}
    return DistributedMask2FormerLoss(config, weights), Mask2FormerLoss(config, weights)


def worker(rank: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        ours, theirs = criteria()
        torch.save({"ddp": losses(ours, rank), "local": losses(theirs, rank)}, f"{out}/{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_mask_count_is_averaged_over_ranks(tmp_path: Path) -> None:
    mp.spawn(worker, args=(f"file://{tmp_path / 'pg'}", str(tmp_path)), nprocs=2)
    mean = sum(MASKS_PER_RANK) / 2
    for rank, count in enumerate(MASKS_PER_RANK):
        result = torch.load(tmp_path / f"{rank}.pt")
        ddp, local = result["ddp"], result["local"]  # transformers: this rank's own count
        for name in ("loss_mask", "loss_dice"):
            torch.testing.assert_close(ddp[name], local[name] * count / mean)
        torch.testing.assert_close(ddp["loss_cross_entropy"], local["loss_cross_entropy"])
        assert not torch.allclose(ddp["loss_mask"], local["loss_mask"])  # the counts differ: so do the losses


def test_one_process_is_transformers_loss() -> None:
    ours, theirs = criteria()
    ddp, local = losses(ours, 0), losses(theirs, 0)
    for name in local:
        torch.testing.assert_close(ddp[name], local[name])
