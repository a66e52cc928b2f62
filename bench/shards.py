"""`slotrush bench --shards 1,3`: the Redis strategies on an embedded Redis Cluster of each
number of primaries (one replica each), the same phases as the plain bench, one table.

Each count of shards gets a fresh cluster and PostgreSQL (or DATABASE_URL's server), and
each strategy a fresh database and key prefix on them (bench.stack.serving); the server
finds the cluster from REDIS_URL (a node of it). The figures that compare are the booking
phases, where the Redis admission step is the gate: every number and rule of a schedule
lives under one hash tag, so one schedule is one node's work however many shards there are;
spread over schedules of many hospitals and dates, the calls of a coalesced batch go out to
every node at once (core.redis_scripts). On a machine of few cores the shards share the
same cores as the server, the load generator and PostgreSQL: more shards cannot be faster
there, only show that the client's per-node batches work and cost little.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.config import BenchConfig
from bench.embedded import running_services
from bench.phases import PhaseResult
from bench.progress import run_progress
from bench.stack import describe_machine
from bench.summary import StrategyResult
from loadtest.client.tokens import new_secret
from strategies import STRATEGIES
from strategies.redis_gate.gate import RedisGate

# The phases the table shows: (phase, what it measures).
PHASES = (
    ("sold_out", "sold-out answers/s"),
    ("spread", "bookings/s, 10 schedules"),
    ("hot", "bookings/s, 90% on one"),
    ("crowd", "flash crowd answers/s"),
)
# The phase whose CPU the table shows: bookings on schedules that never run out.
CPU_PHASE = "spread"


def redis_strategies() -> list[str]:
    """The strategies that keep state in Redis: the only ones shards can change."""
    return [name for name, cls in STRATEGIES.items() if issubclass(cls, RedisGate)]


def parse_shards(text: str) -> tuple[int, ...]:
    """ "1,3" -> (1, 3); a clear error for anything but positive whole numbers."""
    try:
        shards = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        shards = ()
    if not shards or min(shards) < 1:
        raise SystemExit(f"--shards {text!r}: give primaries per cluster, like 1,3")
    return shards


def run(
    config: BenchConfig, shards: Sequence[int], bench_strategy: Callable[..., StrategyResult]
) -> int:
    """Every strategy of `config` on clusters of each count of `shards` primaries, with the
    harness's `bench_strategy`; exits 1 if any broke an invariant."""
    secret = new_secret()
    started = dt.datetime.now(dt.UTC)
    runs: list[dict[str, Any]] = []
    machines: dict[int, dict[str, Any]] = {}
    results: dict[tuple[str, int], StrategyResult] = {}
    for count in shards:
        with (
            running_services(None, os.environ.get("DATABASE_URL"), redis_cluster=count) as urls,
            tempfile.TemporaryDirectory(prefix="slotrush-shards-") as workdir,
        ):
            machines[count] = describe_machine(urls.redis_url, urls.database_url)
            total = len(config.strategies) * len(config.phase_names)
            with run_progress(total) as progress:
                for strategy in config.strategies:
                    result = bench_strategy(
                        False, config, strategy, urls, secret, Path(workdir), progress
                    )
                    results[strategy, count] = result
                    runs.append({"shards": count, **result.to_dict()})
    table = render(results, config.strategies, shards)
    record = {
        "suite": "shards",
        "created": started.isoformat(timespec="seconds"),
        "config": {
            "strategies": config.strategies,
            "shards": list(shards),
            "size": config.size,
            "workers": config.workers,
            "connections": config.connections,
            "users": config.users,
        },
        "machines": {str(count): machine for count, machine in machines.items()},
        "runs": runs,
    }
    paths = write(config.results, record, table, machines[shards[0]], started)
    print(table)
    for result in results.values():
        if not result.ok:
            report = result.verdict.report() if result.verdict is not None else ""
            print(f"\n{result.strategy}: {result.failure or report}")
    print("\nwrote " + ", ".join(str(p) for p in paths))
    return 0 if all(r.ok for r in results.values()) else 1


def render(
    results: dict[tuple[str, int], StrategyResult],
    strategies: Sequence[str],
    shards: Sequence[int],
) -> str:
    """One row per strategy and count of shards: each phase's answers per second, and its
    ratio to the ceiling (GET /ceiling measured in the slices around it)."""
    head = [
        "strategy",
        "shards",
        *(title for _, title in PHASES),
        "Redis CPU µs/booking",
        "other work's share of CPU",
        "invariants",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for strategy in strategies:
        for count in shards:
            result = results[strategy, count]
            cells = [strategy, str(count)]
            for name, _ in PHASES:
                phase = result.phases.get(name)
                if phase is None:
                    cells.append("-")
                    continue
                ratio = f" ({phase.ratio_to_ceiling:.2f})" if phase.ratio_to_ceiling else ""
                cells.append(f"{phase.throughput:,.0f}{ratio}")
            cells += _cpu_cells(result.phases.get(CPU_PHASE))
            cells.append("ok" if result.ok else "BROKEN")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cpu_cells(phase: PhaseResult | None) -> list[str]:
    """Every node's Redis CPU per answer (replicas included), and the share of the CPU spent
    on the machine meanwhile that went to other work: how much of it the run had."""
    if phase is None or not phase.answered:
        return ["-", "-"]
    cpu = phase.cpu_seconds
    per_booking = 1e6 * cpu.get("redis", 0.0) / phase.answered
    spent = sum(cpu.values())
    others = 100 * cpu.get("others", 0.0) / spent if spent else 0.0
    return [f"{per_booking:,.0f}", f"{others:.0f}%"]


def write(
    results_dir: Path,
    record: dict[str, Any],
    table: str,
    machine: dict[str, Any],
    started: dt.datetime,
) -> tuple[Path, Path]:
    """results/shards-<date>-<host>.json and .md."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = f"shards-{started.date().isoformat()}-{machine['host']}"
    json_path = results_dir / f"{stem}.json"
    json_path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    config = record["config"]
    text = [
        f"# Redis strategies on 1 and more Redis Cluster shards, {record['created']}",
        "",
        f"`slotrush bench --shards {','.join(map(str, config['shards']))}` at size "
        f"{config['size']}: `--workers {config['workers']}`, {config['connections']} "
        f"connections; each cluster has one replica per primary. Answers per second "
        "(ratio to GET /ceiling measured in the slices around the phase); the CPU columns "
        f"are the {CPU_PHASE} phase's.",
        f"Commit {machine['commit']}{' plus uncommitted changes' if machine['dirty'] else ''}, "
        f"Redis {machine['redis']}, PostgreSQL {machine['postgresql']}, "
        f"Python {machine['python']}, {machine['cores']} cores ({machine['cpu_model']}); "
        "load average at the start of each cluster's run: "
        + ", ".join(
            f"{count} shards {m['load_average_at_start']}"
            for count, m in record["machines"].items()
        )
        + ".",
        "",
        table,
        "",
        f"On {machine['cores']} cores every shard shares them with the server, the load "
        "generator and PostgreSQL: more shards cannot be faster here. The run shows that the "
        "cluster client's per-node batches keep every invariant and what they cost.",
        "",
    ]
    md_path = results_dir / f"{stem}.md"
    md_path.write_text("\n".join(text))
    return json_path, md_path
