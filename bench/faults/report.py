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
    ("ok", "ok"),
    ("failed", "failed"),
    ("unknown", "unknown"),
    ("refused", "refused"),
    ("uncertain patients", "uncertain"),
    ("resolved: booked", "unknown_resolved_booked"),
    ("resolved: none", "unknown_resolved_none"),
    ("unresolved", "unresolved"),
    ("lost", "lost"),
    ("double", "double_booked"),
    ("told no, booked", "told_no_but_booked"),
    ("oversold", "oversold"),
    ("Redis off", "redis_mismatches"),
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
        f"`{command}`: {passed} of {len(results)} scenarios passed.",
        "",
        f"Crowd: {crowd.patients} patients for {crowd.schedules} schedules of "
        f"{crowd.capacity} numbers, in bursts over {crowd.duration} s, client timeout "
        f"{crowd.client_timeout} s; {config.strikes} strikes per timed fault; "
        f"{config.drop_rate:.0%} of responses dropped by the chaos proxy; "
        f"`--workers {config.workers}`; lease {config.lease_seconds} s.",
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
