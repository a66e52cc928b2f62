"""The waiting room's figures from one run: admission rate held, fairness of the order,
booking latency; and its plot."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

# bench.report chooses matplotlib's file-only backend.
from bench.report import histogram, latency_summary

QUARTERS = 4
# Chi-square with (QUARTERS - 1) ** 2 = 9 degrees of freedom at p = 0.01: a fair shuffle
# stays below it 99 times in 100.
CHI2_P01 = 21.67


def admission_figures(
    samples: Sequence[tuple[float, int]], rate: float, opening: float
) -> dict[str, Any]:
    """From (time, admitted so far) samples: the rate over the drain, and how often the
    count was ahead of rate x elapsed since the opening (never, if Redis holds the rate)."""
    after = [(t, n) for t, n in samples if t >= opening]
    ahead = sum(1 for t, n in after if n > rate * (t - opening) + 1)
    draining = [(t, n) for t, n in after if n < after[-1][1]] if after else []
    end = draining[-1][0] if draining else opening
    total = after[-1][1] if after else 0
    return {
        "configured_per_second": rate,
        "admitted": total,
        "mean_per_second": round(total / (end - opening), 1) if end > opening else None,
        "samples_ahead_of_rate": ahead,
        "samples": len(after),
    }


def fairness_figures(
    log: Sequence[str], arrivals: dict[str, int], early: set[str], late: set[str]
) -> dict[str, Any]:
    """Early arrivals: rank correlation of arrival and admission order (0 for a fair
    shuffle) and chi-square of arrival quarter against admission quarter (9 degrees of
    freedom: 21.7 is p = 0.01). Later arrivals: admissions out of arrival order (0 for FIFO)."""
    early_log = [p for p in log if p in early]
    late_log = [p for p in log if p in late]
    admitted_early = sorted(early_log, key=arrivals.__getitem__)
    n = len(admitted_early)
    rank = {p: i for i, p in enumerate(early_log)}
    rho = _spearman([rank[p] for p in admitted_early]) if n > 2 else None
    chi2 = None
    if n >= QUARTERS * 10:
        table = Counter(
            (i * QUARTERS // n, rank[p] * QUARTERS // n) for i, p in enumerate(admitted_early)
        )
        expected = n / QUARTERS**2
        chi2 = sum(
            (table[(a, b)] - expected) ** 2 / expected
            for a in range(QUARTERS)
            for b in range(QUARTERS)
        )
    positions = [i for i, p in enumerate(log) if p in early]
    late_positions = [i for i, p in enumerate(log) if p in late]
    return {
        "early_admitted": n,
        "late_admitted": len(late_log),
        "early_spearman_rho": None if rho is None else round(rho, 4),
        "early_quarters_chi2": None if chi2 is None else round(chi2, 2),
        "late_out_of_order": sum(
            1 for a, b in itertools.pairwise(late_log) if arrivals[a] > arrivals[b]
        ),
        "late_admitted_before_an_early": sum(
            1 for i in late_positions if positions and i < positions[-1]
        ),
    }


def _spearman(ranks_in_arrival_order: Sequence[int]) -> float:
    n = len(ranks_in_arrival_order)
    d2 = sum((i - r) ** 2 for i, r in enumerate(ranks_in_arrival_order))
    return 1 - 6 * d2 / (n * (n * n - 1))


def booking_figures(latencies: Sequence[float], outcomes: Counter[str]) -> dict[str, Any]:
    """`latencies` in seconds; the summary in milliseconds."""
    summary = latency_summary(histogram(latencies)) if latencies else {}
    return {"requests": len(latencies), "outcomes": dict(outcomes), "latency_ms": summary}


def plot(
    path: Path,
    samples: Sequence[tuple[float, int]],
    bookings: Sequence[tuple[float, float]],
    rate: float,
    opening: float,
    title: str,
) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    times = [t - opening for t, _ in samples]
    left.plot(times, [n for _, n in samples], label="admitted (measured)")
    end = max(times) if times else 1.0
    left.plot([0, end], [0, rate * end], "k--", linewidth=1, label=f"{rate:g}/s x elapsed")
    left.set_xlabel("seconds since the opening")
    left.set_ylabel("patients admitted")
    left.set_title("admission rate held")
    left.legend(fontsize=8)
    right.scatter([t - opening for t, _ in bookings], [ms for _, ms in bookings], s=2, alpha=0.4)
    right.set_xlabel("seconds since the opening")
    right.set_ylabel("booking latency, ms")
    right.set_title("booking phase (admitted patients)")
    for axis in (left, right):
        axis.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
