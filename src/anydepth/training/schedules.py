"""Per-step learning-rate schedules of the training modules (``model.init_args.schedule``).

- ``linear`` (Depth Anything, Sec. 4.1: "decay the learning rate with a linear schedule"): from the base rates to 0.
- ``poly``: the official Depth Anything V2 ``metric_depth/train.py`` decay, ``lr * (1 - iters / total_iters) ** 0.9``
  after each iteration (here ``(1 - step / total) ** power`` at optimiser step ``step``, 0 at the last).
- ``one_cycle``: torch's ``OneCycleLR`` as the ZoeDepth trainer builds it (``trainers/base_trainer.py``), the
  codebase of the paper's metric fine-tuning (supplementary Sec. 1); with ZoeDepth's ``div_factor`` 1 the rates hold
  at their peak for ``pct_start`` of the run, then anneal (cosine) to ``peak / final_div_factor``, while AdamW's
  beta1 cycles between ``max_momentum`` and ``base_momentum``.

Every parameter group decays from its own rate (the encoder/decoder split of the modules' AdamW).
"""

from __future__ import annotations

from typing import Any, Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

__all__ = ["SCHEDULE_DEFAULTS", "PolyDecay", "Schedule", "build_schedule", "schedule_settings"]

Schedule = Literal["linear", "poly", "one_cycle"]
SCHEDULE_DEFAULTS: dict[str, dict[str, float | bool]] = {
    "linear": {},  # Sec. 4.1: "decay the learning rate with a linear schedule"
    "poly": {"power": 0.9},  # official V2 metric_depth/train.py: lr = args.lr * (1 - iters / total_iters) ** 0.9
    # the ZoeDepth trainer (supplementary Sec. 1: "we adopt the ZoeDepth codebase"): OneCycleLR with its config's
    # div_factor 1, final_div_factor 10000, pct_start 0.7, three_phase false, cycle_momentum true, momentum 0.85-0.95
    "one_cycle": {
        "div_factor": 1.0,
        "final_div_factor": 10000.0,
        "pct_start": 0.7,
        "three_phase": False,
        "cycle_momentum": True,
        "base_momentum": 0.85,
        "max_momentum": 0.95,
    },
}
"""Each ``schedule``'s options and their defaults; ``schedule_options`` overrides some of them."""


class PolyDecay:
    """``LambdaLR`` factor ``max(0, 1 - step / total_steps) ** power``, from the base rate at step 0 to 0 at the last
    step: power 1 is the linear schedule of Sec. 4.1, 0.9 the official V2 metric trainer's poly decay."""

    def __init__(self, total_steps: int, power: float = 1.0) -> None:
        self.total_steps, self.power = max(1, int(total_steps)), float(power)

    def __call__(self, step: int) -> float:
        return max(0.0, 1.0 - step / self.total_steps) ** self.power


def schedule_settings(schedule: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The options of ``schedule``: its :data:`SCHEDULE_DEFAULTS` updated with ``options``; ``ValueError`` naming
    what is wrong for an unknown schedule or option."""
    if schedule not in SCHEDULE_DEFAULTS:
        raise ValueError(f"model.init_args.schedule must be one of {sorted(SCHEDULE_DEFAULTS)}, got {schedule!r}")
    unknown = sorted(set(options or {}) - set(SCHEDULE_DEFAULTS[schedule]))
    if unknown:
        raise ValueError(
            f"model.init_args.schedule_options {unknown} are not options of the {schedule!r} schedule "
            f"(it has {sorted(SCHEDULE_DEFAULTS[schedule]) or 'none'})"
        )
    return {**SCHEDULE_DEFAULTS[schedule], **(options or {})}


def build_schedule(
    optimizer: Optimizer, schedule: str, total_steps: int, options: dict[str, Any] | None = None
) -> LRScheduler:
    """The per-step learning-rate schedule ``schedule`` over ``total_steps``, each parameter group decaying from its
    own rate, with :func:`schedule_settings`."""
    settings = schedule_settings(schedule, options)
    if schedule == "one_cycle":  # every group peaks at its own rate (ZoeDepth: max_lr = the groups' lrs)
        peaks = [group["lr"] for group in optimizer.param_groups]
        return OneCycleLR(optimizer, peaks, total_steps=max(1, int(total_steps)), **settings)
    return LambdaLR(optimizer, PolyDecay(total_steps, settings.get("power", 1.0)))
