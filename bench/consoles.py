"""What open staff consoles cost a rush (issue 14): booking throughput with no console
open, then with N consoles polling as /console does (today's and tomorrow's schedules
every second, the holds awaiting payment every five with `Cache-Control: max-age=5`, both
with If-None-Match, each console opened at a random moment), in alternating rounds so that
drift of a shared machine falls on both alike.

    python -m bench.consoles --consoles 50 --rounds 3 --seconds 15

It starts `slotrush serve --dev` on a free loopback port (embedded stores unless REDIS_URL
and DATABASE_URL are set), books with unique patients through a closed loop of
`--crowd` connections, and writes results/consoles-DATE-HOST.{json,md}. Each phase records
the CPU time of the load generator (this process), of the server with its embedded Redis
and PostgreSQL, and of the whole machine, since they share its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import secrets
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bench.child_server import free_port
from core.tokens import issue_token
from loadtest.client.seed import AdminClient

HOSPITAL = "rush-h"
SCHEDULES = 4
HOLDS_SECONDS = 5


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.consoles")
    parser.add_argument("--consoles", type=int, default=50)
    parser.add_argument("--crowd", type=int, default=32, help="booking connections")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0, help="per phase")
    parser.add_argument(
        "--capacity",
        type=int,
        default=3000,
        help="numbers per schedule, 4 new schedules a phase (the consoles count them all)",
    )
    parser.add_argument("--strategy", default="redis-lua")
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    secret = secrets.token_urlsafe(32)
    port = free_port()
    env = {**os.environ, "SLOTRUSH_SECRET": secret}
    command = [sys.executable, "-m", "server.cli", "serve", "--dev", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--strategy", args.strategy], env=env, stdout=subprocess.DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{port}"
        client = AdminClient(url, secret)
        client.wait_healthy(120)
        meter = CpuMeter(psutil.Process(server.pid))
        rounds = asyncio.run(_measure(url, secret, client, meter, args))
    finally:
        server.terminate()
        server.wait(60)
    _write(args, rounds)
    return 0


class CpuMeter:
    """CPU seconds used so far by the load generator, by the server's process tree
    (embedded stores included) and by the whole machine."""

    def __init__(self, server: psutil.Process) -> None:
        self._server = server

    def read(self) -> dict[str, float]:
        tree = [self._server, *self._server.children(recursive=True)]
        server = 0.0
        for process in tree:
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            server += times.user + times.system
        mine = psutil.Process().cpu_times()
        machine = psutil.cpu_times()
        return {
            "load_generator": mine.user + mine.system,
            "server": server,
            "machine": machine.user + machine.nice + machine.system + machine.irq + machine.softirq,
            "when": time.monotonic(),
        }


def _cpu_shares(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Cores busy on average over a phase, by whom."""
    seconds = after["when"] - before["when"]
    return {
        name: round((after[name] - before[name]) / seconds, 2)
        for name in ("load_generator", "server", "machine")
    }


def _seed(client: AdminClient, capacity: int) -> list[str]:
    """Fresh schedules for one phase, tomorrow, big enough not to sell out in a phase: the
    consoles count every number of them, as a hospital's consoles do its sessions."""
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    bodies = [
        {
            "hospital_id": HOSPITAL,
            "department_id": f"d{k}",
            "doctor_id": f"doc-{uuid.uuid4().hex[:8]}",
            "visit_date": tomorrow,
            "period": "am",
            "capacity": capacity,
        }
        for k in range(SCHEDULES)
    ]
    answer = client.request("POST", "/v1/admin/schedules", {"schedules": bodies})
    return [s["id"] for s in answer["schedules"]]


async def _measure(
    url: str, secret: str, client: AdminClient, meter: CpuMeter, args: argparse.Namespace
) -> list[dict[str, Any]]:
    rounds = []
    staff = issue_token(secret, subject="staff", hospital_id=HOSPITAL, ttl=6 * 3600)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(url, connector=connector) as session:
        for round_ in range(args.rounds):
            # ABBA: every other round starts with the consoles, so that a machine growing
            # busier or quieter through the run does not favour either side.
            order = (0, args.consoles) if round_ % 2 == 0 else (args.consoles, 0)
            for consoles in order:
                schedules = await asyncio.to_thread(_seed, client, args.capacity)
                before = meter.read()
                phase = await _phase(session, secret, staff, schedules, consoles, args)
                phase["cores_busy"] = _cpu_shares(before, meter.read())
                phase["round"] = round_ + 1
                phase["load_average"] = round(os.getloadavg()[0], 1)
                rounds.append(phase)
                print(json.dumps(phase), flush=True)
    return rounds


async def _phase(
    session: aiohttp.ClientSession,
    secret: str,
    staff: str,
    schedules: list[str],
    consoles: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    deadline = time.monotonic() + args.seconds
    polls: dict[int, int] = {}
    answers: dict[int, int] = {}
    bookers = [
        _book_until(session, secret, schedules[k % len(schedules)], deadline, answers)
        for k in range(args.crowd)
    ]
    watchers = [_console_until(session, staff, deadline, polls) for _ in range(consoles)]
    await asyncio.gather(*bookers, *watchers)
    booked = answers.pop(201, 0)
    return {
        "consoles": consoles,
        "seconds": args.seconds,
        "booked": booked,
        "bookings_per_second": round(booked / args.seconds, 1),
        # Anything but 201 (a sold-out schedule, a 503) would make the rate mean less.
        "booking_refusals": answers,
        "console_polls": sum(polls.values()),
        "console_not_modified": polls.get(304, 0),
        "console_failures": sum(n for status, n in polls.items() if status not in (200, 304)),
    }


async def _book_until(
    session: aiohttp.ClientSession,
    secret: str,
    schedule: str,
    deadline: float,
    answers: dict[int, int],
) -> None:
    path = f"/v1/schedules/{schedule}/bookings"
    while time.monotonic() < deadline:
        token = issue_token(secret, subject=f"p-{uuid.uuid4().hex[:16]}", ttl=3600)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        async with session.post(path, data=b"{}", headers=headers) as answer:
            await answer.read()
            answers[answer.status] = answers.get(answer.status, 0) + 1


async def _console_until(
    session: aiohttp.ClientSession, staff: str, deadline: float, polls: dict[int, int]
) -> None:
    """One open console: the two conditional polls of server/web/fill.js, from a moment of
    its own (consoles are opened one by one, not all in the same millisecond)."""
    today = dt.datetime.now(dt.UTC).date()
    span = f"from={today}&to={today + dt.timedelta(days=1)}&limit=500"
    holds = f"/v1/admin/hospitals/{HOSPITAL}/bookings?status=pending_payment&{span}"
    every = {f"/v1/schedules?hospital_id={HOSPITAL}&{span}": 1.0, holds: float(HOLDS_SECONDS)}
    accepted = {holds: {"Cache-Control": f"max-age={HOLDS_SECONDS}"}}
    etags: dict[str, str] = {}
    opened = time.monotonic() + random.uniform(0, 1)
    due = {path: opened + random.uniform(0, seconds) for path, seconds in every.items()}
    while True:
        path = min(due, key=due.__getitem__)
        if due[path] >= deadline:
            return
        await asyncio.sleep(max(0.0, due[path] - time.monotonic()))
        headers = {"Authorization": f"Bearer {staff}", **accepted.get(path, {})}
        if path in etags:
            headers["If-None-Match"] = etags[path]
        async with session.get(path, headers=headers) as answer:
            await answer.read()
            polls[answer.status] = polls.get(answer.status, 0) + 1
            if answer.status == 200 and "ETag" in answer.headers:
                etags[path] = answer.headers["ETag"]
        due[path] += every[path]


def _write(args: argparse.Namespace, rounds: list[dict[str, Any]]) -> None:
    def rate(consoles: int) -> list[float]:
        return [r["bookings_per_second"] for r in rounds if r["consoles"] == consoles]

    alone, watched = statistics.median(rate(0)), statistics.median(rate(args.consoles))
    # Each round's own loss compares phases a few seconds apart: the machine's other load
    # moves less within a round than across the run.
    losses = [
        round(100 * (1 - with_ / without), 1)
        for without, with_ in zip(rate(0), rate(args.consoles), strict=True)
    ]
    loss = statistics.median(losses)
    report = {
        "what": f"booking throughput with {args.consoles} staff consoles polling, vs none",
        "command": " ".join(["python -m bench.consoles", *sys.argv[1:]]),
        "strategy": args.strategy,
        "crowd": args.crowd,
        "capacity_per_schedule": args.capacity,
        "median_bookings_per_second": {"no consoles": alone, f"{args.consoles} consoles": watched},
        "throughput_lost_percent": loss,
        "throughput_lost_percent_by_round": losses,
        "rounds": rounds,
        "machine": {
            "host": socket.gethostname(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    name = f"consoles-{dt.date.today()}-{socket.gethostname()}"
    out = Path(args.out)
    (out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# {report['what']}",
        "",
        f"`{report['command']}` ({args.strategy}, {args.crowd} booking connections, "
        f"{args.seconds:g} s phases, {args.capacity} numbers per schedule, {os.cpu_count()} "
        "CPUs shared with the load generator and whatever else runs on the machine)",
        "",
        "Cores busy: the average number of CPUs each kept busy over the phase (server: "
        "slotrush with its embedded Redis and PostgreSQL; machine: everything, other users "
        "included).",
        "",
        "| round | consoles | bookings/s | refused | console polls | of them 304 | failed | "
        "cores: load generator | server | machine | load average |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {r['round']} | {r['consoles']} | {r['bookings_per_second']} | "
            f"{sum(r['booking_refusals'].values())} | {r['console_polls']} | "
            f"{r['console_not_modified']} | {r['console_failures']} | "
            f"{r['cores_busy']['load_generator']} | {r['cores_busy']['server']} | "
            f"{r['cores_busy']['machine']} | {r['load_average']} |"
            for r in rounds
        ),
        "",
        f"Throughput lost with {args.consoles} consoles, by round: "
        + ", ".join(f"{x}%" for x in losses)
        + f"; median **{loss}%** (median rates: {alone} bookings/s alone, {watched} with "
        f"consoles).",
    ]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print(lines[-1])


if __name__ == "__main__":
    sys.exit(main())
