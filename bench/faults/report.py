"""The suite's report: a Markdown table, and results/faults-<date>-<host>.json and .md beside
the machine and the settings that made them."""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.faults.config import SuiteConfig
from bench.faults.result import ScenarioResult

_COLUMNS = (
    ("strategy", "strategy"),
    ("fault", "fault"),
    ("injected", "faults_injected"),
    ("requests", "requests"),
    ("intents", "intents"),
    ("cancels", "cancels"),
    ("ok", "ok"),
    ("failed", "failed"),
    ("unknown", "unknown"),
    ("refused", "refused"),
    ("uncertain intents", "uncertain"),
    ("resolved: booked", "unknown_resolved_booked"),
    ("resolved: none", "unknown_resolved_none"),
    ("unresolved", "unresolved"),
    ("lost", "lost"),
    ("double", "double_booked"),
    ("told no, booked", "told_no_but_booked"),
    ("oversold", "oversold"),
    ("limits broken", "limit_violations"),
    ("blacklist broken", "blacklist_violations"),
    ("unbookable", "unbookable"),
    ("Redis off", "redis_mismatches"),
    ("counters off", "counter_mismatches"),
    ("money errors", "money_errors"),
    ("charges", "charges"),
    ("refunds", "refunds"),
    ("lapsed", "lapsed"),
    ("no-shows", "no_shows"),
    ("5xx outside", "server_errors_outside_windows"),
    ("busy, gave up", "gave_up_outside_windows"),
    ("outage (s)", "outage_seconds"),
    ("first success (s)", "first_success_seconds"),
)


def markdown_table(results: Sequence[ScenarioResult]) -> str:
    def cell(value: object) -> str:
        if value is None:
            return "-"
        if isinstance(value, list):
            return ", ".join(cell(v) for v in value) or "-"
        return str(value)

    lines = [
        "| " + " | ".join(title for title, _ in _COLUMNS) + " | result |",
        "|" + "---|" * (len(_COLUMNS) + 1),
    ]
    for r in results:
        cells = [cell(getattr(r, name)) for _, name in _COLUMNS]
        lines.append("| " + " | ".join(cells) + f" | {'pass' if r.passed else 'FAIL'} |")
    return "\n".join(lines)


# The columns that count a broken promise: each must be 0 in every scenario.
_VIOLATIONS = frozenset(
    {
        "unresolved",
        "lost",
        "double_booked",
        "told_no_but_booked",
        "oversold",
        "limit_violations",
        "blacklist_violations",
        "unbookable",
        "redis_mismatches",
        "counter_mismatches",
        "money_errors",
    }
)


def violations(results: Sequence[ScenarioResult]) -> str:
    """The broken promises over every scenario, as one sentence."""
    totals = {
        title: sum(getattr(r, name) or 0 for r in results)
        for title, name in _COLUMNS
        if name in _VIOLATIONS
    }
    found = sum(totals.values())
    details = "; ".join(f"{title} {count}" for title, count in totals.items())
    return f"{found} violations ({details})"


def write_report(
    results: Sequence[ScenarioResult],
    config: SuiteConfig,
    machine: dict[str, Any],
    results_dir: Path,
    command: str,
) -> tuple[Path, Path]:
    """results/faults-<date>-<host>.json and .md: the figures beside what made them."""
    host = socket.gethostname()
    stem = f"faults-{dt.date.today().isoformat()}-{host}"
    results_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "suite": "faults",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
        "passed": all(r.passed for r in results),
        "machine": machine,
        "config": asdict(config),
        "scenarios": [{**asdict(r), "passed": r.passed} for r in results],
    }
    json_path = results_dir / f"{stem}.json"
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    passed = sum(r.passed for r in results)
    crowd = config.crowd
    summary = [
        f"# Fault suite, {document['created']} on {host}",
        "",
        f"`{command}`: {passed} of {len(results)} scenarios passed; {violations(results)}.",
        "",
        f"Crowd: {crowd.patients} patients wanting {crowd.intents} of {crowd.schedules} "
        f"schedules of {crowd.capacity} numbers in {crowd.departments} departments each (the "
        f"default limits: 2 a day, 1 per department), in bursts over {crowd.duration} s, "
        f"client timeout {crowd.client_timeout} s; every {crowd.rebook_every}th cancels and "
        f"books again, every {crowd.blacklist_every}th is blacklisted as the crowd arrives; "
        f"{config.strikes} strikes per timed fault and per reply-loss window; "
        f"{config.drop_rate:.0%} of responses dropped by the chaos proxy in front of the "
        f"server; `--workers {config.workers}`; lease {config.lease_seconds} s. Checked from "
        "the ledger after each scenario: every answer against the rows, the limits recounted "
        "from the rows, every free number booked by fresh patients, Redis against the rows.",
        f"Commit {machine['commit']}{' plus uncommitted changes' if machine['dirty'] else ''}, "
        f"Redis {machine['redis']}, "
        f"PostgreSQL {machine['postgresql']}, Python {machine['python']}, "
        f"{machine['cores']} cores.",
        "",
        markdown_table(results),
        "",
    ]
    md_path = results_dir / f"{stem}.md"
    md_path.write_text("\n".join(summary))
    return json_path, md_path
