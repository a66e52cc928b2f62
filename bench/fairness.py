"""Did the crowd get served in arrival order? Two numbers, computed per schedule.

- first-arrivals share: of the first `capacity` patients to arrive at a schedule, the share
  that got a number (1.0 is perfectly first come, first served).
- Spearman rank correlation between arrival order (rank within the schedule) and success.
  Early arrivals succeeding gives a negative value; its floor for a given run is the value
  perfect first-come-first-served would give (reported beside it), 0 means a lottery.

Only schedules whose demand exceeded their capacity say anything about fairness; only
arrivals with a known outcome take part.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Fairness:
    first_arrivals_share: float | None
    spearman: float | None
    spearman_fifo: float | None
    contested_schedules: int

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            "first_arrivals_share": self.first_arrivals_share,
            "spearman": self.spearman,
            "spearman_fifo": self.spearman_fifo,
            "contested_schedules": self.contested_schedules,
        }


def fairness(
    targets: Sequence[str], succeeded: Sequence[bool | None], capacity: Mapping[str, int]
) -> Fairness:
    """targets[i] is the schedule of arrival i (in arrival order); succeeded[i] None when the
    outcome is unknown."""
    arrivals: dict[str, list[int]] = defaultdict(list)
    for index, (schedule, outcome) in enumerate(zip(targets, succeeded, strict=True)):
        if outcome is not None:
            arrivals[schedule].append(index)
    contested = {s: idx for s, idx in arrivals.items() if len(idx) > capacity.get(s, 0)}
    if not contested:
        return Fairness(None, None, None, 0)

    first_served = sum(
        sum(bool(succeeded[i]) for i in idx[: capacity[s]]) for s, idx in contested.items()
    )
    share = first_served / sum(capacity[s] for s in contested)

    order: list[float] = []
    success: list[float] = []
    fifo: list[float] = []
    for schedule, idx in contested.items():
        for rank, index in enumerate(idx):
            order.append(rank / len(idx))
            success.append(float(bool(succeeded[index])))
            fifo.append(float(rank < capacity[schedule]))
    return Fairness(share, _spearman(order, success), _spearman(order, fifo), len(contested))


def _spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    rx, ry = _ranks(np.asarray(x)), _ranks(np.asarray(y))
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), as Spearman needs."""
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = np.arange(len(values), dtype=float)
    unique, inverse = np.unique(values, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks, minlength=len(unique))
    counts = np.bincount(inverse, minlength=len(unique))
    return np.asarray(sums / counts)[inverse]
