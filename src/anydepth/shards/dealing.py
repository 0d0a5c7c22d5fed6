"""Who reads what: the one place that resolves a process's rank and deals shards to ranks.

Every stage that reads shards under DDP (training, validation, evaluation, pseudo-labeling) deals them with
:func:`deal` (rank ``r`` of ``R`` takes positions ``r, r + R, ...``) after :func:`rank_and_world_size` has said who
this process is (the Trainer's view, else ``torch.distributed``'s, else a single process: under ``srun`` and
``torchrun`` alike, Lightning's cluster environments have set the Trainer's ranks). A stage whose ranks must each
read something (validation, evaluation: a rank without batches would skip the metric synchronisation the others
wait in) checks it with :func:`require_one_per_rank`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import torch.distributed as dist

__all__ = ["deal", "rank_and_world_size", "require_one_per_rank"]

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
