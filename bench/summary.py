"""What a benchmark run found, and its forms: the result of each strategy, the promised
targets met or missed, the JSON record, the tables printed and the Markdown written."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import report
from bench.config import BenchConfig
from bench.fairness import Fairness
from bench.free_memory import FreeNumberMemory
from bench.overload import Overload
from bench.phases import PhaseResult
from bench.reference import References
from loadtest.client.invariants import Verdict

# Ratios the project promises (see results/README.md).
TARGETS = {
    "sold_out_vs_ceiling": 0.90,
    "redis_lua_bookings_vs_ceiling": 0.60,
    "redis_queue_bookings_vs_ceiling": 0.40,
    "pg_pessimistic_vs_pgbench": 0.90,
    "hot_loss_max": 0.20,
    "pg_batched_vs_pg_pessimistic_hot": 3.0,
    # Issue 12: one bit per number is the floor, one byte the promise.
    "redis_bytes_per_free_number_max": 1.0,
}
HOT_LOSS_STRATEGIES = ("pg-skip-locked", "redis-lua", "redis-queue")
BOOKING_TARGETS = {
    "redis-lua": "redis_lua_bookings_vs_ceiling",
    "redis-queue": "redis_queue_bookings_vs_ceiling",
}


@dataclass
class StrategyResult:
    strategy: str
    phases: dict[str, PhaseResult] = field(default_factory=dict)
    verdict: Verdict | None = None
    fairness: Fairness | None = None
    sold: int = 0
    numbers: int = 0
    failure: str | None = None
    driver: dict[str, Any] | None = None
    overload: Overload | None = None
    # PostgreSQL bytes per booking row, and each server process's RSS at the run's start
    # and end (MiB by process: the supervisor and each worker).
    ledger: dict[str, Any] | None = None
    rss_mib: dict[str, dict[str, float]] = field(default_factory=dict)
    free_memory: FreeNumberMemory | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None and self.verdict is not None and self.verdict.ok

    def ratio(self, phase: str) -> float | None:
        found = self.phases.get(phase)
        return found.ratio_to_ceiling if found else None

    def hot_loss(self) -> float | None:
        spread, hot = self.phases.get("spread"), self.phases.get("hot")
        if not spread or not hot or not spread.throughput:
            return None
        return 1 - hot.throughput / spread.throughput

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "ok": self.ok,
            "failure": self.failure,
            "verdict": self.verdict.to_dict() if self.verdict else None,
            "fairness": self.fairness.to_dict() if self.fairness else None,
            "numbers": self.numbers,
            "sold": self.sold,
            "hot_loss": self.hot_loss(),
            "phases": {name: p.to_dict() for name, p in self.phases.items()},
            "overload": self.overload.to_dict() if self.overload else None,
            "ledger": self.ledger,
            "rss_mib": self.rss_mib,
            "redis_free_numbers": self.free_memory.to_dict() if self.free_memory else None,
        }


# --- results -------------------------------------------------------------------------------


def targets(results: list[StrategyResult], references: References | None) -> list[dict[str, Any]]:
    """Each promised ratio, measured, with whether this run met it."""
    found: list[dict[str, Any]] = []

    def add(name: str, strategy: str, value: float | None, threshold: float, higher: bool) -> None:
        met = None if value is None else (value >= threshold if higher else value < threshold)
        found.append(
            {
                "target": name,
                "strategy": strategy,
                "value": value,
                "threshold": threshold,
                "higher": higher,
                "met": met,
            }
        )

    pessimistic = next((r for r in results if r.strategy == "pg-pessimistic"), None)
    for r in results:
        add(
            "sold-out throughput / ceiling",
            r.strategy,
            r.ratio("sold_out"),
            TARGETS["sold_out_vs_ceiling"],
            True,
        )
        booking_target = BOOKING_TARGETS.get(r.strategy)
        if booking_target is not None:
            add(
                "booking throughput / ceiling",
                r.strategy,
                r.ratio("spread"),
                TARGETS[booking_target],
                True,
            )
        if r.free_memory is not None:
            add(
                "Redis bytes per free number",
                r.strategy,
                r.free_memory.bytes_per_free_number,
                TARGETS["redis_bytes_per_free_number_max"],
                False,
            )
        if r.strategy in HOT_LOSS_STRATEGIES:
            add(
                "throughput lost when 90% target one schedule",
                r.strategy,
                r.hot_loss(),
                TARGETS["hot_loss_max"],
                False,
            )
        if r.strategy == "pg-batched" and pessimistic is not None:
            # Each of ceiling: load elsewhere on the machine weighs on both alike.
            mine, theirs = r.ratio("hot"), pessimistic.ratio("hot")
            add(
                "hot-schedule bookings / pg-pessimistic's",
                r.strategy,
                mine / theirs if mine is not None and theirs else None,
                TARGETS["pg_batched_vs_pg_pessimistic_hot"],
                True,
            )
        if r.strategy == "pg-pessimistic" and references is not None and references.pgbench_tps:
            single = r.phases.get("hot")
            value = single.throughput / references.pgbench_tps if single else None
            add(
                "hot-schedule bookings / pgbench",
                r.strategy,
                value,
                TARGETS["pg_pessimistic_vs_pgbench"],
                True,
            )
    return found


def build_record(
    config: BenchConfig,
    machine: dict[str, Any],
    started: dt.datetime,
    results: list[StrategyResult],
    references: References | None,
) -> dict[str, Any]:
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    return {
        "scenario": config.scenario,
        "started": started.isoformat(),
        "ok": all(r.ok for r in results),
        "settings": settings,
        "machine": machine,
        "generator": "bench/loadgen.py: open loop, asyncio+uvloop, raw HTTP/1.1 keep-alive",
        "driver": next((r.driver for r in results if r.driver), None),
        "strategies": [r.to_dict() for r in results],
        "references": asdict(references) if references else None,
        "targets": targets(results, references),
    }


def write_results(
    config: BenchConfig,
    record: dict[str, Any],
    results: list[StrategyResult],
    host: str,
    started: dt.datetime,
) -> list[Path]:
    stem = f"{started:%Y-%m-%d}-{safe_name(host)}-{config.scenario}"
    base = config.results / stem
    json_path, md_path = base.with_suffix(".json"), base.with_suffix(".md")
    throughput_png = config.results / f"{stem}-throughput.png"
    cdf_png = config.results / f"{stem}-latency.png"
    report.write_json(json_path, record)
    measured = [r for r in results if "crowd" in r.phases and "ceiling" in r.phases]
    title = (
        f"{config.scenario}: {config.users} patients, {config.schedules}x{config.capacity} numbers"
    )
    report.plot_throughput(
        throughput_png,
        [r.strategy for r in measured],
        [r.phases["crowd"].throughput for r in measured],
        [r.phases["crowd"].latency_ms["p99"] for r in measured],
        [r.phases["ceiling"].throughput for r in measured],
        title,
    )
    report.plot_cdfs(
        cdf_png,
        {r.strategy: r.phases["crowd"].cdf for r in measured},
        f"latency from arrival, {title}",
    )
    md_path.write_text(render_markdown(record, results, throughput_png.name, cdf_png.name))
    report.update_index(config.results)
    return [json_path, md_path, throughput_png, cdf_png]


def safe_name(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in text)


def render_tables(
    results: list[StrategyResult],
    references: References | None,
    found_targets: list[dict[str, Any]],
) -> str:
    crowd_rows, throughput_rows, overload_rows = [], [], []
    for r in results:
        crowd = r.phases.get("crowd")
        fair = r.fairness
        verdict = (
            "FAIL (did not run)"
            if r.failure
            else (r.verdict.summary().split(":")[0] if r.verdict else "-")
        )
        crowd_rows.append(
            [
                r.strategy,
                verdict,
                f"{r.sold}/{r.numbers}" if r.numbers else None,
                f"{crowd.answered}/{crowd.requests}" if crowd else None,
                crowd.throughput if crowd else None,
                report.percent(r.ratio("crowd")),
                *(crowd.latency_ms[k] if crowd else None for k in ("p50", "p90", "p99", "p99_9")),
                crowd.retries if crowd else None,
                *(_violations(r.verdict)),
                fair.first_arrivals_share if fair else None,
                f"{fair.spearman:.2f} ({fair.spearman_fifo:.2f})"
                if fair and fair.spearman is not None and fair.spearman_fifo is not None
                else None,
                targets_cell(r.strategy, found_targets),
            ]
        )
        throughput_rows.append(
            [
                r.strategy,
                *(_rate(r, name) for name in ("ceiling", "sold_out")),
                report.percent(_shaped(r)),
                *(_rate(r, name) for name in ("spread", "hot")),
                report.percent(r.hot_loss()),
                *(
                    _cpu(r, "crowd", party)
                    for party in ("server", "redis", "postgres", "generator", "others")
                ),
            ]
        )
        if r.overload is not None:
            overload_rows.append(_overload_row(r.strategy, r.overload))
    parts = [
        report.table(
            [
                "strategy",
                "invariants",
                "sold",
                "answered",
                "answers/s",
                "of ceiling",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "p99.9 ms",
                "busy retries",
                "oversold",
                "lost",
                "undersold",
                "rule breaks",
                "first-C share",
                "spearman (fifo)",
                "targets",
            ],
            crowd_rows,
        ),
        "",
        report.table(
            [
                "strategy",
                "ceiling/s",
                "sold-out/s (ceil)",
                "sold-out of ceiling asked like a booking",
                "bookings/s (ceil)",
                "hot bookings/s (ceil)",
                "hot loss",
                "server CPU",
                "redis CPU",
                "postgres CPU",
                "generator CPU",
                "other processes CPU",
            ],
            throughput_rows,
        ),
    ]
    if overload_rows:
        parts += ["", report.table(_OVERLOAD_HEADERS, overload_rows)]
    footprint_rows = [_footprint_row(r) for r in results if r.ledger or r.rss_mib]
    if footprint_rows:
        parts += ["", report.table(_FOOTPRINT_HEADERS, footprint_rows)]
    if references is not None:
        parts += ["", references.describe()]
    if found_targets:
        parts += ["", "targets:", *(_target_line(t) for t in found_targets)]
    return "\n".join(parts)


_OVERLOAD_HEADERS = [
    "overload",
    "sustained/s",
    "offered/s",
    "answered",
    "booked",
    "busy: queue full / deadline",
    "max ms (deadline)",
    "p99 ms",
    "server RSS MiB start/max/end",
    "verdict",
]


def _overload_row(strategy: str, overload: Overload) -> list[object]:
    phase, shed = overload.phase, overload.shed
    rss = overload.rss_mib
    checks = [
        "in time" if overload.within_deadline else "LATE",
        "flat" if overload.rss_flat else "GREW",
    ]
    return [
        strategy,
        overload.sustainable_rps,
        overload.offered_rps,
        f"{phase.answered}/{phase.requests}",
        phase.codes.get("201 booked", 0),
        f"{shed.get('booking_queue_full', 0):,.0f} / {shed.get('deadline', 0):,.0f}",
        f"{overload.max_latency_ms:,.0f} ({1000 * overload.deadline_s:,.0f})",
        phase.latency_ms["p99"],
        f"{rss[0]:,.0f}/{max(rss):,.0f}/{rss[-1]:,.0f}" if rss else None,
        ", ".join(checks),
    ]


_FOOTPRINT_HEADERS = [
    "memory and disk",
    "worker RSS MiB start → end",
    "booking rows",
    "bookings bytes/row",
    "database bytes/row",
]


def _footprint_row(result: StrategyResult) -> list[object]:
    start, end = result.rss_mib.get("start", {}), result.rss_mib.get("end", {})
    workers = sorted(name for name in end if name.startswith("worker"))
    rss = ", ".join(f"{start.get(w, float('nan')):.0f} → {end[w]:.0f}" for w in workers)
    ledger = result.ledger or {}
    return [
        result.strategy,
        rss or None,
        ledger.get("booking_rows"),
        ledger.get("bookings_bytes_per_row"),
        ledger.get("database_bytes_per_row"),
    ]


# Each target's name in a table cell.
_SHORT = {
    "sold-out throughput / ceiling": "sold-out",
    "booking throughput / ceiling": "bookings",
    "throughput lost when 90% target one schedule": "hot loss",
    "hot-schedule bookings / pg-pessimistic's": "hot vs pg-pessimistic",
    "hot-schedule bookings / pgbench": "hot vs pgbench",
}


def targets_cell(strategy: str, found_targets: list[dict[str, Any]]) -> str | None:
    """The strategy's targets, each measured value with met or MISSED: "sold-out 0.93 met,
    bookings 0.41 MISSED (0.60)"."""
    cells = []
    for target in found_targets:
        if target["strategy"] != strategy:
            continue
        name = _SHORT.get(target["target"], target["target"])
        if target["met"] is None:
            cells.append(f"{name} n/a")
            continue
        value = f"{target['value']:.2f}"
        verdict = "met" if target["met"] else f"MISSED ({target['threshold']:.2f})"
        cells.append(f"{name} {value} {verdict}")
    return ", ".join(cells) or None


def _target_line(target: dict[str, Any]) -> str:
    state = {True: "MET ", False: "MISS", None: "n/a "}[target["met"]]
    value = "-" if target["value"] is None else f"{target['value']:.2f}"
    relation = ">=" if target["higher"] else "<"
    return (
        f"  {state} {target['strategy']}: {target['target']} = {value} "
        f"(target {relation} {target['threshold']:.2f})"
    )


def _violations(verdict: Verdict | None) -> list[int | None]:
    if verdict is None:
        return [None] * 4
    rules = verdict.duplicate_numbers + verdict.duplicate_patients + verdict.limit_violations
    return [verdict.oversold, verdict.lost, verdict.undersold, rules]


def _shaped(result: StrategyResult) -> float | None:
    found = result.phases.get("sold_out")
    return found.ratio_to_booking_shaped_ceiling if found else None


def _rate(result: StrategyResult, phase: str) -> str | None:
    found = result.phases.get(phase)
    if found is None:
        return None
    ratio = report.percent(found.ratio_to_ceiling) if phase != "ceiling" else None
    return f"{found.throughput:,.0f}" + (f" ({ratio})" if ratio else "")


def _cpu(result: StrategyResult, phase: str, party: str) -> str | None:
    found = result.phases.get(phase)
    if found is None or party not in found.cpu_seconds:
        return None
    return f"{found.cpu_percent()[party]:.0f}%"


def render_markdown(
    record: dict[str, Any], results: list[StrategyResult], throughput_png: str, cdf_png: str
) -> str:
    machine, settings = record["machine"], record["settings"]
    references = record["references"]
    lines = [
        f"# {record['scenario']} crowd, {record['started'][:16]} UTC, {machine['host']}",
        "",
        f"{settings['users']} patients on {settings['schedules']} schedules of "
        f"{settings['capacity']} numbers, arriving within {settings['duration']} s; "
        f"server workers {settings['workers']}; generator connections "
        f"{settings['connections']}. Invariants: **{'PASS' if record['ok'] else 'FAIL'}**.",
        "",
        f"Machine: {machine['cores']} cores ({machine['cpu_model']}), {machine['memory_gib']} GiB;"
        f" Python {machine['python']}, Redis {machine['redis']}, PostgreSQL "
        f"{machine['postgresql']}; commit {str(machine['commit'])[:12]}"
        f"{' (uncommitted changes)' if machine['dirty'] else ''}; load average at start "
        f"{', '.join(str(x) for x in machine['load_average_at_start'])}.",
        "",
        "Latencies are from each patient's planned arrival to the final answer (busy answers "
        "retried after Retry-After), so they include queueing. CPU is per cent of one core "
        'during the crowd phase; "other processes" is what the rest of the machine used '
        "meanwhile (the machine's busy time less the four parties). The flat-out phases "
        "alternate with slices of GET /ceiling; the sold-out phase also with GET /ceiling "
        'carrying a booking\'s token, Content-Type and body ("ceiling asked like a booking"): '
        "the part of the gap to the ceiling that is HTTP parsing, not the fast path. Every "
        "measured phase starts on a settled ledger (VACUUM ANALYZE, as pgbench does).",
        "",
        "Overload: new patients arriving at three times the booking rate the strategy sustained "
        "moments before, each sending once (no retries); max and p99 are one request's latency "
        "from its planned arrival, beside the server's request deadline; busy answers are split "
        "by the server's own count (waiting room full, deadline passed); RSS sums every server "
        "process, sampled through the phase.",
        "",
        "```",
        render_tables(results, None, record["targets"]),
        "```",
        "",
        f"Load generator: bench/loadgen.py. {record['driver']['why'] if record['driver'] else ''}",
        "",
        f"![throughput and p99]({throughput_png})",
        f"![latency CDF]({cdf_png})",
    ]
    if references:
        lines += ["", "## References", "", "```", json.dumps(references, indent=2), "```"]
    lines += ["", "## Answers by code (crowd phase)", ""]
    for r in results:
        crowd = r.phases.get("crowd")
        if crowd:
            codes = ", ".join(f"{k}: {v}" for k, v in crowd.codes.items())
            lines.append(f"- **{r.strategy}**: {codes}")
        if r.failure:
            lines.append(f"- **{r.strategy}** did not run: `{r.failure.splitlines()[0]}`")
    return "\n".join(lines) + "\n"
