"""Locust as a library: one scenario, or a throughput probe, run inside this process.

    python -m loadtest.library scenario --host URL --secret S [--scenario smoke --crowd 200]
        [--database-url DB] [--sandbox-url URL]   # pay-or-drop pays at the sandbox
    python -m loadtest.library probe --host URL [--seconds 3 --users 64]

Each prints one JSON object as its last line of output. Locust monkey-patches the process
for gevent when imported, so callers that run asyncio (pytest, the benchmark harness) start
this as a subprocess rather than import it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import gevent
import psutil
from locust import FastHttpUser, constant, events, task
from locust.argument_parser import get_parser
from locust.env import Environment

from loadtest import locustfile
from loadtest.users import crowd_of


def run_scenario(
    host: str,
    secret: str,
    *,
    scenario: str,
    crowd: int,
    schedules: int,
    capacity: int,
    database_url: str = "",
    sandbox_url: str = "",
) -> dict[str, Any]:
    """The locustfile's users and shape, start to finish, and the invariant verdict (with
    the server's database, also the lifecycle's: invariants 8-10 and the money)."""
    options = get_parser().parse_args(
        [
            "--host",
            host,
            "--scenario",
            scenario,
            "--crowd",
            str(crowd),
            "--schedules",
            str(schedules),
            "--capacity",
            str(capacity),
            f"--secret={secret}",
            f"--database-url={database_url}",
            f"--sandbox-url={sandbox_url}",
        ]
    )
    env = Environment(
        user_classes=[locustfile.Patient],
        shape_class=locustfile.ScenarioShape(),
        events=events,
        host=host,
        parsed_options=options,
    )
    runner = env.create_local_runner()
    events.init.fire(environment=env, runner=runner, web_ui=None)
    runner.start_shape()
    shape = runner.shape_greenlet
    assert shape is not None
    shape.join()  # the shape's last stage stops the runner, which runs the invariant check
    runner.quit()
    verdict, lifecycle = crowd_of(env).verdict, crowd_of(env).lifecycle
    total = env.stats.total
    return {
        "hospital_id": crowd_of(env).hospital_id,
        "ok": verdict is not None and verdict.ok and env.process_exit_code in (None, 0),
        "verdict": verdict.to_dict() if verdict else None,
        "lifecycle": lifecycle.to_dict() if lifecycle else None,
        "answers": dict(crowd_of(env).tally.answers),
        "requests": total.num_requests,
        "failures": total.num_failures,
        "errors": [f"{e.method} {e.name}: {e.error}" for e in env.stats.errors.values()][:10],
    }


class CeilingProbe(FastHttpUser):
    """As fast as it can: what Locust itself can send on this machine."""

    wait_time = constant(0)

    @task
    def ceiling(self) -> None:
        self.client.get("/ceiling")


def probe(host: str, *, seconds: float, users: int) -> dict[str, Any]:
    """Locust's own throughput against GET /ceiling, with its CPU: a process near 100% of
    a core has saturated before the server."""
    env = Environment(user_classes=[CeilingProbe], host=host)
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=users)
    gevent.sleep(1.0)  # connections open, greenlets running
    me = psutil.Process()
    cpu_before, count_before, began = _cpu(me), env.stats.total.num_requests, time.monotonic()
    gevent.sleep(seconds)
    elapsed = time.monotonic() - began
    done = env.stats.total.num_requests - count_before
    cpu = _cpu(me) - cpu_before
    runner.quit()
    return {
        "rps": done / elapsed,
        "cpu_percent": 100 * cpu / elapsed,
        "users": users,
        "failures": env.stats.total.num_failures,
    }


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.library")
    commands = parser.add_subparsers(dest="command", required=True)
    scenario = commands.add_parser("scenario")
    scenario.add_argument("--host", required=True)
    scenario.add_argument("--secret", required=True)
    scenario.add_argument("--scenario", default="smoke")
    scenario.add_argument("--crowd", type=int, default=200)
    scenario.add_argument("--schedules", type=int, default=2)
    scenario.add_argument("--capacity", type=int, default=20)
    scenario.add_argument("--database-url", default="")
    scenario.add_argument("--sandbox-url", default="")
    probing = commands.add_parser("probe")
    probing.add_argument("--host", required=True)
    probing.add_argument("--seconds", type=float, default=3.0)
    probing.add_argument("--users", type=int, default=64)
    args = parser.parse_args(argv)
    if args.command == "probe":
        print(json.dumps(probe(args.host, seconds=args.seconds, users=args.users)), flush=True)
        return 0
    result = run_scenario(
        args.host,
        args.secret,
        scenario=args.scenario,
        crowd=args.crowd,
        schedules=args.schedules,
        capacity=args.capacity,
        database_url=args.database_url,
        sandbox_url=args.sandbox_url,
    )
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
