"""Turning a benchmark run into numbers people can read: HDR latency summaries, the console
and Markdown tables, the JSON record, PNG plots and the index of results/."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt
from hdrh.histogram import HdrHistogram

# Microseconds from 1 µs to 10 minutes, 3 significant figures.
_LOWEST_US, _HIGHEST_US, _DIGITS = 1, 600_000_000, 3
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99_9": 99.9}


def histogram(latencies: Iterable[float]) -> HdrHistogram:
    hist = HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)
    for seconds in latencies:
        if not math.isnan(seconds):
            hist.record_value(min(max(int(seconds * 1e6), _LOWEST_US), _HIGHEST_US))
    return hist


def latency_summary(hist: HdrHistogram) -> dict[str, float]:
    """Milliseconds at each percentile (HDR, 3 significant digits), plus the max."""
    if hist.get_total_count() == 0:
        return {**dict.fromkeys(PERCENTILES, math.nan), "max": math.nan, "count": 0}
    summary = {name: hist.get_value_at_percentile(p) / 1000 for name, p in PERCENTILES.items()}
    return {**summary, "max": hist.get_max_value() / 1000, "count": hist.get_total_count()}


def cdf(hist: HdrHistogram, points: int = 400) -> list[tuple[float, float]]:
    """(milliseconds, fraction answered within it) for a latency CDF plot, at most `points`."""
    total = hist.get_total_count()
    if total == 0:
        return []
    # The iterator hands back one object it mutates: read each step as it comes.
    steps = [
        (step.value_iterated_to / 1000, step.total_count_to_this_value / total)
        for step in hist.get_recorded_iterator()
    ]
    stride = max(len(steps) // points, 1)
    return [*steps[::stride][:-1], steps[-1]] if len(steps) > 1 else steps


# --- tables -------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table, padded so it also reads well on a terminal."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(list(headers)), rule, *(line(r) for r in cells)])


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def percent(ratio: float | None) -> str | None:
    return None if ratio is None or math.isnan(ratio) else f"{100 * ratio:.0f}%"


# --- files --------------------------------------------------------------------------------


def write_json(path: Path, record: dict[str, Any]) -> None:
    path.write_text(json.dumps(record, indent=2, sort_keys=False, default=str) + "\n")


def plot_throughput(
    path: Path,
    strategies: Sequence[str],
    rps: Sequence[float],
    p99_ms: Sequence[float],
    ceiling: Sequence[float],
    title: str,
) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    x = range(len(strategies))
    left.bar(x, rps, color="#3b7dd8", label="flash crowd")
    left.plot(x, ceiling, "k_", markersize=28, mew=2, label="ceiling (GET /ceiling)")
    left.set_ylabel("answers per second")
    left.set_title("throughput")
    right.bar(x, p99_ms, color="#d8703b")
    right.set_ylabel("milliseconds (from arrival)")
    right.set_title("p99 latency")
    for axis in (left, right):
        axis.set_xticks(list(x), strategies, rotation=20, ha="right", fontsize=8)
        axis.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.legend(loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cdfs(path: Path, curves: dict[str, list[tuple[float, float]]], title: str) -> None:
    fig, axis = plt.subplots(figsize=(7.5, 4.5))
    for name, points in curves.items():
        if points:
            ms, fraction = zip(*points, strict=True)
            axis.plot(ms, fraction, label=name)
    axis.set_xscale("log")
    axis.set_xlabel("latency from arrival, ms (log)")
    axis.set_ylabel("fraction of answers")
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


_INDEX_START = "<!-- runs:start -->"
_INDEX_END = "<!-- runs:end -->"


def update_index(results: Path) -> None:
    """Rewrite the list of runs in results/README.md from the JSON records beside it."""
    readme = results / "README.md"
    text = readme.read_text() if readme.exists() else f"# Results\n\n{_INDEX_START}\n{_INDEX_END}\n"
    if _INDEX_START not in text:
        text += f"\n{_INDEX_START}\n{_INDEX_END}\n"
    rows = []
    for path in sorted(results.glob("*.json"), reverse=True):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if "benchmarks" in record:  # pytest-benchmark's output: `make microbench`
            rows.append(f"| [{path.stem}]({path.name}) | micro-benchmarks | - | - |")
            continue
        if "kind" in record:  # other tools' records name their page and verdict
            page = record.get("page", path.name)
            verdict = record.get("verdict", "-")
            rows.append(f"| [{path.stem}]({page}) | {record['kind']} | - | {verdict} |")
            continue
        if "strategies" not in record:
            continue
        verdict = "PASS" if record.get("ok") else "FAIL"
        names = ", ".join(r["strategy"] for r in record["strategies"])
        rows.append(
            f"| [{path.stem}]({path.stem}.md) | {record.get('scenario')} | {names} | {verdict} |"
        )
    block = "\n".join(
        [
            _INDEX_START,
            "| run | scenario | strategies | invariants |",
            "|---|---|---|---|",
            *rows,
            _INDEX_END,
        ]
    )
    head, rest = text.split(_INDEX_START, 1)
    tail = rest.split(_INDEX_END, 1)[1] if _INDEX_END in rest else "\n"
    readme.write_text(head + block + tail)


def plot_scale(path: Path, curves: dict[str, list[dict[str, Any]]], title: str) -> None:
    """Bookings/s, p99 and CPU per booking against crowd size (top) and open schedules
    (bottom), a line per strategy, both axes logarithmic in size."""
    measures = (
        ("bookings_per_second", "bookings per second"),
        ("p99_ms", "p99 ms from arrival"),
        ("cpu_us_per_booking", "CPU µs per booking"),
    )
    axes_names = (("crowd", "patients in the crowd"), ("schedules", "schedules open at once"))
    fig, grid = plt.subplots(2, 3, figsize=(13, 7))
    for row, (axis_name, xlabel) in zip(grid, axes_names, strict=True):
        for axis, (key, ylabel) in zip(row, measures, strict=True):
            for strategy, points in curves.items():
                mine = sorted((p for p in points if p["axis"] == axis_name), key=_size)
                sizes, values = [p["size"] for p in mine], [p[key] for p in mine]
                axis.plot(sizes, values, "o-", label=strategy)
            axis.set_xscale("log")
            axis.set_xlabel(xlabel)
            axis.set_ylabel(ylabel)
            axis.set_ylim(bottom=0)
            axis.grid(alpha=0.3, which="both")
    grid[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _size(point: dict[str, Any]) -> int:
    return int(point["size"])


def plot_memory(path: Path, runs: dict[str, list[dict[str, Any]]], title: str) -> None:
    """Each worker's RSS against the new patients booked so far, a line per worker."""
    fig, axis = plt.subplots(figsize=(8, 4.5))
    for strategy, samples in runs.items():
        workers = sorted({w for s in samples for w in s["rss_mib"] if w.startswith("worker")})
        for worker in workers:
            xs = [s["patients"] for s in samples if worker in s["rss_mib"]]
            ys = [s["rss_mib"][worker] for s in samples if worker in s["rss_mib"]]
            axis.plot(xs, ys, label=f"{strategy} {worker}")
    axis.set_xlabel("new patients booked")
    axis.set_ylabel("worker RSS, MiB")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    axis.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
