"""The growth scenarios of `slotrush bench`: `--scenario memory` (bench/memory.py) and
`--scenario scale` (bench/scale.py), each strategy on its own server, one JSON record and
one plot in results/."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from bench import report
from bench.config import BenchConfig
from bench.embedded import ServiceUrls
from bench.memory import ALLOWANCE_MIB, MemoryRun, measure_memory
from bench.progress import run_progress
from bench.scale import bend, describe, measure_scale
from bench.stack import CpuMeter, serving
from bench.summary import safe_name


def run_curves(
    config: BenchConfig,
    urls: ServiceUrls,
    secret: str,
    workdir: Path,
    machine: dict[str, Any],
    started: dt.datetime,
) -> tuple[dict[str, Any], str]:
    """The record of the run and what to print."""
    measured: list[dict[str, Any]] = []
    texts: list[str] = []
    with run_progress(len(config.strategies)) as progress:
        for strategy in config.strategies:
            steps = progress.steps(strategy, 1)
            steps.advance("starting")
            with serving(strategy, config.workers, urls, secret, workdir) as (server, database):
                if config.scenario == "memory":
                    run: MemoryRun = measure_memory(config, server, secret, database, steps)
                    measured.append(run.to_dict())
                    texts.append(run.describe())
                else:
                    meter = CpuMeter.for_stack(server, urls.redis_url, database)
                    points = measure_scale(config, server, secret, meter, steps)
                    measured.append(
                        {
                            "strategy": strategy,
                            "points": [p.to_dict() for p in points],
                            "cpu_per_booking_largest_over_smallest": {
                                axis: bend(points, axis) for axis in ("crowd", "schedules")
                            },
                        }
                    )
                    texts.append(describe(strategy, points))
            steps.finish()
    record = _record(config, machine, started, measured)
    return record, "\n".join(texts)


def _record(
    config: BenchConfig, machine: dict[str, Any], started: dt.datetime, measured: list[Any]
) -> dict[str, Any]:
    stem = f"{started:%Y-%m-%d}-{safe_name(machine['host'])}-{config.scenario}"
    commit = str(machine.get("commit"))[:12]
    if config.scenario == "memory":
        ok = all(m["ok"] for m in measured)
        projections = [w["projected_mib_at_1m"] for m in measured for w in m["workers"].values()]
        kind = "memory through new patients"
        # A run of fewer than three rounds per half has no slope: it projects nothing.
        worst = (
            "too few rounds to project"
            if None in projections or not projections
            else f"worst worker projected at 1,000,000: {max(projections):.0f} MiB"
        )
        verdict = (
            f"{max(m['patients'] for m in measured):,} patients; {worst} "
            f"(allowance {ALLOWANCE_MIB:.0f}): {'PASS' if ok else 'FAIL'}"
        )
    else:
        ok = True
        kind = "scale curves"
        verdict = "; ".join(
            f"{m['strategy']} CPU per booking largest/smallest: crowd "
            f"{_ratio(m['cpu_per_booking_largest_over_smallest']['crowd'])}, schedules "
            f"{_ratio(m['cpu_per_booking_largest_over_smallest']['schedules'])}"
            for m in measured
        )
    return {
        "kind": kind,
        "scenario": config.scenario,
        "page": f"{stem}.png",
        "stem": stem,
        "verdict": verdict,
        "ok": ok,
        "started": started.isoformat(),
        "commit": commit,
        "settings": {
            "workers": config.workers,
            "connections": config.connections,
            "size": config.size,
            "users": config.users,
            "memory_patients": config.memory_patients,
            "scale_crowds": list(config.scale_crowds),
            "scale_schedules": list(config.scale_schedules),
        },
        "machine": machine,
        "strategies": measured,
    }


def write_curves(results: Path, record: dict[str, Any]) -> list[Path]:
    json_path = results / f"{record['stem']}.json"
    png_path = results / record["page"]
    title = f"{record['kind']}, {record['started'][:16]} UTC, {record['machine']['host']}, "
    title += f"commit {record['commit']}"
    report.write_json(json_path, record)
    if record["scenario"] == "memory":
        samples = {m["strategy"]: m["samples"] for m in record["strategies"]}
        report.plot_memory(png_path, samples, title)
    else:
        points = {m["strategy"]: m["points"] for m in record["strategies"]}
        report.plot_scale(png_path, points, title)
    report.update_index(results)
    return [json_path, png_path]


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
