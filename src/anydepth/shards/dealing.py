"""Who reads what: the one place that resolves a process's rank and deals shards to ranks and workers.

:func:`rank_and_world_size` says who this process is (the Trainer's view, else ``torch.distributed``'s, else a single
process: under ``srun`` and ``torchrun`` alike, Lightning's cluster environments have set the Trainer's ranks).
Stages that read every sample once (validation, evaluation, pseudo-labeling) deal shards round-robin with
:func:`deal` (rank ``r`` of ``R`` takes positions ``r, r + R, ...``); a stage whose ranks must each read something (a
rank without batches would skip the metric synchronisation the others wait in) checks it with
:func:`require_one_per_rank`. Exact training epochs deal shards by their sample counts with :func:`deal_balanced`
(to ranks, then to each rank's DataLoader workers), and :func:`round_robin_split` says where the DataLoader's
round-robin over its workers' batches stands after so many batches (to resume a pass, or cut it);
:func:`deal_shards` applies either rule to ranks and then workers.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any, TypeVar

import torch.distributed as dist

__all__ = ["deal", "deal_balanced", "deal_shards", "rank_and_world_size", "require_one_per_rank", "round_robin_split"]

T = TypeVar("T")


def rank_and_world_size(trainer: Any = None) -> tuple[int, int]:
    """``(global rank, world size)`` of this process: the ``trainer``'s when one is given (a ``lightning.Trainer``),
    else the initialised ``torch.distributed`` group's, else ``(0, 1)``."""
    if trainer is not None:
        return trainer.global_rank, trainer.world_size
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def deal(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """Rank ``rank``'s share of ``items``, dealt round-robin: positions ``rank, rank + world_size, ...``."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    return list(items[rank::world_size])


def require_one_per_rank(count: int, world_size: int, what: str, error: type[Exception] = ValueError) -> None:
    """Raise ``error`` unless ``count`` shards (described by ``what``) give every one of ``world_size`` ranks one."""
    if count < world_size:
        raise error(
            f"{what} hold {count} shard(s) for {world_size} ranks: every rank needs at least one shard; rebuild them "
            "with a smaller --samples-per-shard, or use fewer devices"
        )


def deal_balanced(weights: Sequence[int], parts: int) -> list[list[int]]:
    """Positions of ``weights`` (sample counts) dealt into ``parts`` lists of near-equal total weight, each list in
    ascending position: greedy longest-processing-time (heaviest first, equal weights in position order, each to the
    lightest part, ties to the lowest part). Totals differ by at most the largest weight, and depend only on the
    multiset of weights: permuting the positions of equal weights permutes which part gets which, not the totals."""
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}")
    heap = [(0, part) for part in range(parts)]
    dealt: list[list[int]] = [[] for _ in range(parts)]
    for position in sorted(range(len(weights)), key=lambda i: -weights[i]):
        total, part = heapq.heappop(heap)
        dealt[part].append(position)
        heapq.heappush(heap, (total + weights[position], part))
    return [sorted(positions) for positions in dealt]


def deal_shards(
    order: Sequence[int], world_size: int, workers: int, counts: Sequence[int] | None = None
) -> list[list[list[int]]]:
    """The shards (indices, in ``order``) of every rank's every DataLoader worker: dealt to ranks, then each rank's to
    its ``workers``, balanced by ``counts`` (sample counts by shard index) with :func:`deal_balanced` when given,
    else round-robin with :func:`deal`."""
    if counts is None:
        return [
            [deal(mine, w, workers) for w in range(workers)]
            for mine in (deal(order, r, world_size) for r in range(world_size))
        ]
    weights = [counts[i] for i in order]
    return [
        [[order[mine[p]] for p in positions] for positions in deal_balanced([weights[p] for p in mine], workers)]
        for mine in deal_balanced(weights, world_size)
    ]


def round_robin_split(quotas: Sequence[int], consumed: int) -> tuple[list[int], int]:
    """Where a round-robin over queues of ``quotas`` items stands after ``consumed`` items: how many each queue has
    given, and the queue whose turn is next (0 at the start of a round). The round-robin takes one item from each
    queue in turn, 0, 1, 2, ..., skipping exhausted queues: the order in which a DataLoader hands out the batches of
    its workers, each worker yielding ``quotas[w]`` batches."""
    if not 0 <= consumed <= sum(quotas):
        raise ValueError(f"consumed must be in [0, {sum(quotas)}], got {consumed}")
    low, high = 0, max(quotas, default=0)  # full rounds: the largest level with sum(min(q, level)) <= consumed
    while low < high:
        level = (low + high + 1) // 2
        low, high = (level, high) if sum(min(q, level) for q in quotas) <= consumed else (low, level - 1)
    shares = [min(q, low) for q in quotas]
    rest, turn = consumed - sum(shares), 0
    for queue, quota in enumerate(quotas):  # the partial round: the first `rest` queues not yet exhausted
        if rest and quota > low:
            shares[queue], rest, turn = shares[queue] + 1, rest - 1, queue + 1
    return shares, turn % max(1, len(quotas))
