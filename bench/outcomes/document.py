"""The report itself: one Markdown page with a plot and a table per grouping."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from pathlib import Path

from bench.outcomes.intervals import wilson
from bench.outcomes.plots import Generating, plot
from bench.report import table
from core.analytics import SMALL_BELOW, GroupBy
from server.shapes.analytics import Analytics, GroupOutcomes

TITLES = {
    GroupBy.AGE_BAND: "age band (at the visit)",
    GroupBy.DEPARTMENT: "department",
    GroupBy.WEEKDAY: "weekday of the visit",
    GroupBy.LEAD_TIME: "lead time (booking to visit)",
}


def write(
    out: Path,
    name: str,
    results: Mapping[GroupBy, Analytics],
    source: str,
    generating: Mapping[GroupBy, Generating] | None = None,
) -> list[Path]:
    """`<name>.md` and `<name>-<grouping>.png` for each grouping in `out`; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    first = next(iter(results.values()))
    hospital = first.hospital_id
    lines = [
        f"# No-shows and cancellations at {hospital}",
        "",
        f"{_span(first)}; from {source}; written "
        f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}.",
        "",
        "No-show and attendance rates are shares of the visits that came due (attended + "
        "no-shows); the cancellation rate is a share of all bookings. Brackets hold 95% Wilson "
        f"intervals. A group marked *small* has fewer than {SMALL_BELOW} bookings or visits "
        "due: its rates are too uncertain to compare.",
    ]
    paths = []
    for group_by, result in results.items():
        known = generating.get(group_by) if generating else None
        image = out / f"{name}-{group_by.value}.png"
        plot(image, result, f"{hospital}: by {TITLES[group_by]}", known)
        paths.append(image)
        lines += ["", f"## By {TITLES[group_by]}", "", f"![by {group_by.value}]({image.name})", ""]
        lines.append(_table(result.groups, known))
    page = out / f"{name}.md"
    page.write_text("\n".join(lines) + "\n")
    return [page, *paths]


def _span(result: Analytics) -> str:
    if result.first_visit is None and result.last_visit is None:
        return "All visits"
    return f"Visits from {result.first_visit or 'the first'} to {result.last_visit or 'the last'}"


def _table(groups: list[GroupOutcomes], generating: Generating | None) -> str:
    headers = [
        "group",
        "bookings",
        "attended",
        "no-shows",
        "cancelled",
        "no-show rate",
        "cancellation rate",
        "note",
    ]
    if generating:
        headers[-1:-1] = ["generated no-show", "generated cancellation"]
    rows = []
    for g in groups:
        row: list[object] = [
            g.group,
            g.bookings,
            g.attended,
            g.no_shows,
            g.cancellations,
            _rate(g.no_shows, g.attended + g.no_shows),
            _rate(g.cancellations, g.bookings),
        ]
        if generating:
            no_show, cancel = generating.get(g.group, (math.nan, math.nan))
            row += [_percent(no_show), _percent(cancel)]
        rows.append([*row, "*small*" if g.small else ""])
    return table(headers, rows)


def _rate(hits: int, trials: int) -> str:
    if trials == 0:
        return "-"
    low, high = wilson(hits, trials)
    return f"{_percent(hits / trials)} ({_percent(low)}-{_percent(high)})"


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}%"
