"""``anydepth.shards.dealing``: one rank resolution, the round-robin deal of read-once stages, the balanced deal of
exact epochs, and the DataLoader's round-robin over worker batches."""

from __future__ import annotations

import random

import pytest
import torch.distributed as dist
from lightning.pytorch import Trainer

from anydepth.shards.dealing import (
    deal,
    deal_balanced,
    deal_shards,
    rank_and_world_size,
    require_one_per_rank,
    round_robin_split,
)


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


@pytest.mark.parametrize("parts", [1, 2, 3, 8])
def test_balanced_deal_covers_every_item_once_with_totals_within_one_item(parts: int) -> None:
    rng = random.Random(parts)
    for _ in range(20):
        weights = [rng.choice([1, 3, 7, 100, 100, 100]) for _ in range(rng.randint(0, 30))]
        dealt = deal_balanced(weights, parts)
        assert len(dealt) == parts and sorted(p for part in dealt for p in part) == list(range(len(weights)))
        assert all(part == sorted(part) for part in dealt)  # each part keeps the input order
        totals = [sum(weights[p] for p in part) for part in dealt]
        assert max(totals) - min(totals) <= max(weights, default=0)
        shuffled = rng.sample(weights, len(weights))  # the totals depend on the weights, not on their order
        assert sorted(sum(shuffled[p] for p in part) for part in deal_balanced(shuffled, parts)) == sorted(totals)


def test_balanced_deal_of_equal_weights_is_round_robin() -> None:
    assert deal_balanced([5] * 7, 3) == [deal(list(range(7)), rank, 3) for rank in range(3)]
    assert deal_balanced([3, 7, 11], 2) == [[2], [0, 1]]  # 11 | 7 + 3
    with pytest.raises(ValueError, match="parts must be >= 1"):
        deal_balanced([1], 0)


def test_deal_shards_to_ranks_then_workers_in_the_given_order() -> None:
    order = [4, 0, 3, 1, 2]
    counts = [2, 2, 9, 2, 2]  # by shard index
    assert deal_shards(order, 2, 2, counts) == [[[2], []], [[4, 3], [0, 1]]]  # 9 | 2 + 2 + 2 + 2, in `order`
    assert deal_shards(order, 2, 2) == [[[4, 2], [3]], [[0], [1]]]  # no counts: round-robin


def simulate_round_robin(quotas: list[int], consumed: int) -> tuple[list[int], int]:
    """The DataLoader's order, one turn at a time: queue after queue, skipping exhausted ones."""
    shares, turn = [0] * len(quotas), 0
    for _ in range(consumed):
        while shares[turn] == quotas[turn]:
            turn = (turn + 1) % len(quotas)
        shares[turn] += 1
        turn = (turn + 1) % len(quotas)
    return shares, turn


@pytest.mark.parametrize("quotas", [[3], [4, 4], [5, 2], [0, 3, 1], [2, 6, 6, 1]])
def test_round_robin_split_matches_the_turn_by_turn_order(quotas: list[int]) -> None:
    """Shares after every count, and whose turn is next (up to skipping queues that are exhausted by then)."""
    for consumed in range(sum(quotas) + 1):
        shares, turn = round_robin_split(quotas, consumed)
        expected_shares, expected_turn = simulate_round_robin(quotas, consumed)
        assert shares == expected_shares
        rest = [q - s for q, s in zip(quotas, shares)]
        if any(rest):  # the next item comes from the first queue with items left, cyclically from `turn`
            ahead = [(turn + i) % len(quotas) for i in range(len(quotas))]
            expected_ahead = [(expected_turn + i) % len(quotas) for i in range(len(quotas))]
            assert next(q for q in ahead if rest[q]) == next(q for q in expected_ahead if rest[q])
    with pytest.raises(ValueError, match=r"consumed must be in \[0, "):
        round_robin_split(quotas, sum(quotas) + 1)
