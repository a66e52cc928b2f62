"""One figure per grouping: no-show and cancellation rates per group, side by side.

Each bar carries its 95% Wilson interval and its count (visits due for the no-show rate,
bookings for the cancellation rate); a small group is drawn pale and hatched and labelled
so, so that nobody reads a rate off 12 visits as if it were as sure as one off 12,000. When
the rates that generated the data are known (a simulated season), they are marked on the bars.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter

from bench.outcomes.intervals import wilson
from server.shapes.analytics import Analytics

# group -> (no-show rate, cancellation rate) that generated the data.
Generating = Mapping[str, tuple[float, float]]


@dataclass(frozen=True)
class _Bar:
    label: str
    hits: int
    trials: int
    small: bool
    generating: float | None

    @property
    def rate(self) -> float:
        return self.hits / self.trials if self.trials else 0.0

    @property
    def error(self) -> tuple[float, float]:
        """Below and above the rate, to the ends of its 95% interval."""
        low, high = wilson(self.hits, self.trials)
        return (0.0, 0.0) if math.isnan(low) else (self.rate - low, high - self.rate)


def plot(path: Path, result: Analytics, title: str, generating: Generating | None) -> None:
    def known(group: str, which: int) -> float | None:
        return generating[group][which] if generating and group in generating else None

    no_shows = [
        _Bar(g.group, g.no_shows, g.attended + g.no_shows, g.small, known(g.group, 0))
        for g in result.groups
    ]
    cancels = [
        _Bar(g.group, g.cancellations, g.bookings, g.small, known(g.group, 1))
        for g in result.groups
    ]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    _panel(left, no_shows, "#d8703b", "no-show rate (of visits due)")
    _panel(right, cancels, "#3b7dd8", "cancellation rate (of bookings)")
    if generating:
        marker = Line2D([], [], color="black", marker="D", linestyle="", markersize=5)
        fig.legend(
            [marker],
            ["the rate the season was generated with"],
            loc="lower center",
            frameon=False,
            fontsize=8,
        )
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05 if generating else 0, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _panel(axis: Axes, bars: Sequence[_Bar], colour: str, title: str) -> None:
    x = list(range(len(bars)))
    errors = [b.error for b in bars]
    drawn = axis.bar(
        x,
        [b.rate for b in bars],
        color=colour,
        yerr=[[e[0] for e in errors], [e[1] for e in errors]],
        capsize=3,
        ecolor="#444444",
    )
    for xi, bar, patch, (_, above) in zip(x, bars, drawn, errors, strict=True):
        if bar.small:
            patch.set_alpha(0.35)
            patch.set_hatch("//")
        note = f"n={bar.trials:,}" + ("\nsmall" if bar.small else "")
        axis.annotate(
            note,
            (xi, bar.rate + above),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=7,
        )
        if bar.generating is not None:
            axis.plot([xi], [bar.generating], "kD", markersize=5)
    long_labels = any(len(b.label) > 6 for b in bars)
    axis.set_xticks(
        x,
        [b.label for b in bars],
        fontsize=8,
        rotation=20 if long_labels else 0,
        ha="right" if long_labels else "center",
    )
    top = max([b.rate + e[1] for b, e in zip(bars, errors, strict=True)] + [0.05])
    axis.set_ylim(0, top * 1.3)
    axis.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    axis.set_title(title, fontsize=9)
    axis.grid(axis="y", alpha=0.3)
