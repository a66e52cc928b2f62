"""`slotrush bench --instances N`: N `slotrush serve` processes, each on its own port,
behind HAProxy as production runs them, rushed by Locust through HAProxy for each count of
instances from 1 to N; the scaling table, JSON, Markdown and a plot go to results/.

The load comes from distributed Locust (loadtest/locustfile.py): a master and `--generators`
workers, each worker its own process, so the generator is not the bottleneck a single
Python process would be. Each count of instances is a fresh set of servers over the same
stores; the master seeds its own schedules and checks every invariant at the end.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import report
from bench.child_server import free_port
from bench.embedded import running_services
from bench.haproxy import NoHaproxy, haproxy, haproxy_binary
from bench.stack import ServerProcess, describe_machine, fresh_stack
from loadtest.client.tokens import new_secret

REPO = Path(__file__).resolve().parent.parent
LOCUSTFILE = REPO / "loadtest" / "locustfile.py"
LOCUST_TIMEOUT = 600
# The lines of the master's output that say how the invariant check went.
_VERDICT = re.compile(r"slotrush invariant check|tally")


def run(
    instances: int, generators: int, strategy: str, users: int, workers: int, results: Path
) -> int:
    try:
        haproxy_binary()
    except NoHaproxy as exc:
        print(f"skipped --instances: {exc}")
        return 0
    secret = new_secret()
    started = dt.datetime.now(dt.UTC)
    rows: list[dict[str, Any]] = []
    with (
        running_services(os.environ.get("REDIS_URL"), os.environ.get("DATABASE_URL")) as urls,
        tempfile.TemporaryDirectory(prefix="slotrush-instances-") as tmp,
        fresh_stack(urls, "instances", secret) as env,
    ):
        machine = describe_machine(urls.redis_url, urls.database_url)
        workdir = Path(tmp)
        for count in range(1, instances + 1):
            servers = [
                ServerProcess(strategy, workers, env, workdir / f"serve-{count}-{i}.log")
                for i in range(count)
            ]
            try:
                for server in servers:
                    server.start(secret)
                with haproxy([s.port for s in servers], workdir) as url:
                    row = locust(url, secret, generators, users, workdir / f"locust-{count}")
            finally:
                for server in servers:
                    server.stop()
            rows.append({"instances": count, **row})
            print(f"{count} instance(s): {row}", flush=True)
    return _report(rows, strategy, generators, users, workers, machine, started, results)


def locust(url: str, secret: str, generators: int, users: int, prefix: Path) -> dict[str, Any]:
    """A flash crowd of `users` through `url` from a Locust master and `generators` workers;
    its aggregate figures and the invariant verdict."""
    common = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", url]
    # A port of its own per run: the master of the run before may still hold the default.
    port = free_port()
    env = {**os.environ, "SLOTRUSH_SECRET": secret, "PYTHONPATH": str(REPO)}
    master = subprocess.Popen(
        [
            *common,
            "--headless",
            "--master",
            f"--expect-workers={generators}",
            f"--master-bind-port={port}",
            "--scenario=flash",
            f"--crowd={users}",
            f"--csv={prefix}",
            "--only-summary",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    workers = [
        subprocess.Popen(
            [*common, "--worker", f"--master-port={port}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(generators)
    ]
    try:
        output, _ = master.communicate(timeout=LOCUST_TIMEOUT)
    finally:
        for worker in workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    # The master's own report (stats, the invariant verdict) for whoever reads the results.
    Path(f"{prefix}.log").write_text(output)
    total = _aggregated(Path(f"{prefix}_stats.csv"))
    return {
        "requests": int(total["Request Count"]),
        "failures": int(total["Failure Count"]),
        "requests_per_second": round(float(total["Requests/s"]), 1),
        "p50_ms": _number(total["50%"]),
        "p99_ms": _number(total["99%"]),
        # Locust's own exit status is 1 for any failed request (a 503 of an overloaded
        # machine too); the invariants are the check's own verdict.
        "invariants_ok": "slotrush invariant check PASS" in output,
        "verdict": [line for line in output.splitlines() if _VERDICT.search(line)],
    }


def _number(cell: str) -> float:
    """A Locust CSV figure; "N/A" (no request answered) is NaN."""
    return math.nan if cell == "N/A" else float(cell)


def _aggregated(stats: Path) -> dict[str, str]:
    with stats.open() as file:
        for row in csv.DictReader(file):
            if row["Name"] == "Aggregated":
                return row
    raise RuntimeError(f"{stats} has no Aggregated row")


def _report(
    rows: list[dict[str, Any]],
    strategy: str,
    generators: int,
    users: int,
    workers: int,
    machine: dict[str, Any],
    started: dt.datetime,
    results: Path,
) -> int:
    results.mkdir(parents=True, exist_ok=True)
    stem = f"{started:%Y-%m-%d}-{machine['host']}-instances-{len(rows)}"
    base = rows[0]["requests_per_second"] or 1.0
    for row in rows:
        row["scaling"] = round(row["requests_per_second"] / base, 2)
    record = {
        "scenario": "instances",
        "started": started.isoformat(),
        "machine": machine,
        "settings": {
            "strategy": strategy,
            "workers_per_instance": workers,
            "locust_generators": generators,
            "crowd": users,
            "balancer": "haproxy, round robin, health-checked by /healthz",
        },
        "rows": rows,
    }
    report.write_json(results / f"{stem}.json", record)
    columns = ["instances", "requests_per_second", "scaling", "p50_ms", "p99_ms", "failures"]
    table = report.table(
        [*columns, "invariants"],
        [[row[c] for c in columns] + ["ok" if row["invariants_ok"] else "BROKEN"] for row in rows],
    )
    note = (
        f"{os.cpu_count()} CPU(s) shared by the servers, HAProxy, Redis, PostgreSQL and "
        f"{generators} Locust worker(s): past one instance per core the instances compete "
        "for the same cores, so this shows the set-up working, not a multi-host speed-up."
    )
    plot = results / f"{stem}.png"
    report.plot_throughput(
        plot,
        [f"{row['instances']} instance(s)" for row in rows],
        [row["requests_per_second"] for row in rows],
        [row["p99_ms"] for row in rows],
        [rows[0]["requests_per_second"]] * len(rows),
        f"{strategy} behind HAProxy, crowd of {users}",
    )
    (results / f"{stem}.md").write_text(f"# Instances behind HAProxy\n\n{table}\n\n{note}\n")
    print(f"{table}\n\n{note}\nwrote {stem}.json, .md, .png in {results}")
    return 0 if all(row["invariants_ok"] for row in rows) else 1
