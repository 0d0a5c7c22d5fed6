"""``anydepth.shards.dealing``: one rank resolution and one round-robin deal for every stage."""

from __future__ import annotations

import pytest
import torch.distributed as dist
from lightning.pytorch import Trainer

from anydepth.shards.dealing import deal, rank_and_world_size, require_one_per_rank


@pytest.mark.parametrize("world_size", [1, 2, 3, 5])
def test_deal_covers_every_item_once(world_size: int) -> None:
    items = [f"shard-{i:06d}.tar" for i in range(7)]
    shares = [deal(items, rank, world_size) for rank in range(world_size)]
    assert sorted(x for share in shares for x in share) == items
    assert shares[0][0] == items[0] and all(len(s) in (7 // world_size, -(-7 // world_size)) for s in shares)
    if world_size > 1:
        assert shares[1][0] == items[1]  # round-robin, not contiguous blocks


def test_deal_rejects_a_rank_outside_the_world() -> None:
    with pytest.raises(ValueError, match=r"rank must be in \[0, world_size=2\), got 2"):
        deal([1, 2, 3], 2, 2)


def test_rank_and_world_size_single_process_and_trainer() -> None:
    assert not (dist.is_available() and dist.is_initialized())
    assert rank_and_world_size() == (0, 1)
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False)
    assert rank_and_world_size(trainer) == (0, 1)


def test_rank_and_world_size_reads_an_initialised_group(tmp_path) -> None:
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        assert rank_and_world_size() == (0, 1)
    finally:
        dist.destroy_process_group()


def test_every_rank_needs_a_shard() -> None:
    require_one_per_rank(3, 3, "val_shards [a]")
    with pytest.raises(KeyError, match=r"val_shards \[a\] hold 2 shard\(s\) for 3 ranks: every rank needs at least"):
        require_one_per_rank(2, 3, "val_shards [a]", KeyError)
