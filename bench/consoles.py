"""What open staff consoles cost a rush (issue 14). First N consoles alone, no rush: as
/console has them (each reading the live stream of the hospital's sessions and holds) and
as it had them before (polling the sessions every second and the holds every five, with
If-None-Match). Then booking throughput with no console open and with N streaming
consoles, each opened at a random moment, in ABBA rounds so that drift of a shared machine
falls on both alike.

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
import math
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
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bench.child_server import free_port
from core.tokens import issue_token
from loadtest.client.seed import AdminClient, ApiError

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
        alone, rounds = asyncio.run(_measure(url, secret, client, meter, args))
    finally:
        server.terminate()
        server.wait(60)
    _write(args, alone, rounds)
    return 0


class CpuMeter:
    """CPU seconds used so far by the load generator (this process), the slotrush server
    process, its embedded Redis and PostgreSQL (its child processes), and the machine."""

    def __init__(self, server: psutil.Process) -> None:
        self._server = server

    def read(self) -> dict[str, float]:
        stores = 0.0
        for child in self._server.children(recursive=True):
            try:
                stores += _busy(child.cpu_times())
            except psutil.Error:
                continue
        machine = psutil.cpu_times()
        return {
            "load_generator": _busy(psutil.Process().cpu_times()),
            "server": _busy(self._server.cpu_times()),
            "stores": stores,
            "machine": machine.user + machine.nice + machine.system + machine.irq + machine.softirq,
            "when": time.monotonic(),
        }


def _busy(times: Any) -> float:
    return float(times.user + times.system)


def _cpu_shares(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Cores busy on average over a phase, by whom."""
    seconds = after["when"] - before["when"]
    return {
        name: round((after[name] - before[name]) / seconds, 3)
        for name in ("load_generator", "server", "stores", "machine")
    }


def _seed(client: AdminClient, capacity: int) -> list[dict[str, Any]]:
    """Fresh schedules for one phase, tomorrow, big enough not to sell out in a phase."""
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    bodies = [
        {
            "hospital_id": HOSPITAL,
            "external_id": f"rush-{uuid.uuid4().hex[:12]}",
            "department_id": f"d{k}",
            "doctor_id": f"doc-{uuid.uuid4().hex[:8]}",
            "visit_date": tomorrow,
            "period": "am",
            "capacity": capacity,
        }
        for k in range(SCHEDULES)
    ]
    answer = client.request("POST", "/v1/admin/schedules", {"schedules": bodies})
    return [{**body, "id": s["id"]} for body, s in zip(bodies, answer["schedules"], strict=True)]


def _close(client: AdminClient, seeded: list[dict[str, Any]]) -> None:
    """After its phase, each session is cut to the numbers it sold, as a rush ends sold out:
    the consoles count every free number of the hospital's sessions each second, and the
    phases' leftovers would otherwise pile up to many times a real hospital's two days."""
    for schedule in seeded:
        seen = client.request("GET", f"/v1/schedules/{schedule['id']}")
        sold = seen["capacity"] - seen["remaining"]
        body = {k: v for k, v in schedule.items() if k != "id"}
        try:
            client.request("POST", "/v1/admin/schedules", {**body, "capacity": max(1, sold)})
        except ApiError as refused:
            # A number freed below the last one taken (a booking refused after its take)
            # keeps the cut from applying (409), and a server still busy with the rush may
            # answer 503: the session then keeps its free numbers, which the consoles count.
            if refused.status not in (409, 503):
                raise
            print(f"session {schedule['id']} not cut: {refused.status}", file=sys.stderr)


async def _measure(
    url: str, secret: str, client: AdminClient, meter: CpuMeter, args: argparse.Namespace
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The server idle, then the consoles alone (no rush: what they cost by themselves,
    streaming and polling), then the rounds of a rush with and without streaming consoles,
    as /console has them."""
    rounds = []
    staff = issue_token(secret, subject="staff", hospital_id=HOSPITAL, ttl=6 * 3600)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(url, connector=connector) as session:

        async def phase(consoles: int, crowd: int, kind: str = "stream") -> dict[str, Any]:
            seeded = await asyncio.to_thread(_seed, client, args.capacity)
            ids = [schedule["id"] for schedule in seeded]
            before = meter.read()
            watch = CONSOLES.get(kind, _streaming_console)
            measured = await _phase(
                session, secret, staff, ids, consoles, crowd, args.seconds, watch
            )
            measured["console"] = kind
            measured["cores_busy"] = _cpu_shares(before, meter.read())
            measured["load_average"] = round(os.getloadavg()[0], 1)
            await asyncio.to_thread(_close, client, seeded)
            print(json.dumps(measured), flush=True)
            return measured

        # What the server costs with nothing asked of it (its jobs, reconcilers), then
        # each kind of console alone.
        alone = [await phase(0, 0, "none")]
        alone += [await phase(args.consoles, 0, kind) for kind in CONSOLES]
        for round_ in range(args.rounds):
            # ABBA: every other round starts with the consoles, so that a machine growing
            # busier or quieter through the run does not favour either side.
            order = (0, args.consoles) if round_ % 2 == 0 else (args.consoles, 0)
            for consoles in order:
                rounds.append({"round": round_ + 1, **await phase(consoles, args.crowd)})
    return alone, rounds


async def _phase(
    session: aiohttp.ClientSession,
    secret: str,
    staff: str,
    schedules: list[str],
    consoles: int,
    crowd: int,
    seconds: float,
    watch: Console,
) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    seen: Counter[str] = Counter()
    answers: dict[int, int] = {}
    bookers = [
        _book_until(session, secret, schedules[k % len(schedules)], deadline, answers)
        for k in range(crowd)
    ]
    watchers = [watch(session, staff, deadline, seen) for _ in range(consoles)]
    await asyncio.gather(*bookers, *watchers)
    booked = answers.pop(201, 0)
    return {
        "consoles": consoles,
        "seconds": seconds,
        "booked": booked,
        "bookings_per_second": round(booked / seconds, 1),
        # Anything but 201 (a sold-out schedule, a 503) would make the rate mean less.
        "booking_refusals": answers,
        # Polls by answer status, or streams opened and events received.
        "console_seen": dict(seen),
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


async def _polling_console(
    session: aiohttp.ClientSession, staff: str, deadline: float, seen: Counter[str]
) -> None:
    """One console as /console was before its live stream: two conditional polls (the
    sessions every second, the holds every five accepting a page that old), from a moment
    of its own (consoles are opened one by one, not all in the same millisecond)."""
    span = f"{_span()}&limit=500"
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
            seen[str(answer.status)] += 1
            if answer.status == 200 and "ETag" in answer.headers:
                etags[path] = answer.headers["ETag"]
        due[path] += every[path]


async def _streaming_console(
    session: aiohttp.ClientSession, staff: str, deadline: float, seen: Counter[str]
) -> None:
    """One console as /console is: its live stream (server/web/fill.js), opened again
    whenever the server ends it, until the deadline."""
    await asyncio.sleep(random.uniform(0, 1))
    headers = {"Authorization": f"Bearer {staff}", "Accept": "text/event-stream"}
    while (left := deadline - time.monotonic()) > 0:
        path = f"/v1/admin/hospitals/{HOSPITAL}/live?{_span()}&seconds={math.ceil(left)}"
        async with session.get(path, headers=headers) as answer:
            seen["opened" if answer.status == 200 else str(answer.status)] += 1
            try:
                async with asyncio.timeout(left):
                    async for line in answer.content:
                        seen["events"] += line.startswith(b"event: ")
            except TimeoutError:
                return


def _span() -> str:
    today = dt.datetime.now(dt.UTC).date()
    return f"from={today}&to={today + dt.timedelta(days=1)}"


Console = Callable[[aiohttp.ClientSession, str, float, Counter[str]], Awaitable[None]]
CONSOLES: dict[str, Console] = {"stream": _streaming_console, "poll": _polling_console}


def _write(
    args: argparse.Namespace, consoles_alone: list[dict[str, Any]], rounds: list[dict[str, Any]]
) -> None:
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
        "what": f"booking throughput with {args.consoles} staff consoles open, vs none",
        "command": " ".join(["python -m bench.consoles", *sys.argv[1:]]),
        "strategy": args.strategy,
        "crowd": args.crowd,
        "capacity_per_schedule": args.capacity,
        "consoles_alone": consoles_alone,
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

    def cores(r: dict[str, Any]) -> str:
        busy = r["cores_busy"]
        return (
            f"{busy['load_generator']} | {busy['server']} | {busy['stores']} | "
            f"{busy['machine']} | {r['load_average']}"
        )

    def seen(r: dict[str, Any]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(r["console_seen"].items())) or "-"

    lines = [
        f"# {report['what']}",
        "",
        f"`{report['command']}` ({args.strategy}, {args.crowd} booking connections, "
        f"{args.seconds:g} s phases, {SCHEDULES} new sessions of {args.capacity} numbers a "
        f"phase, each cut to what it sold afterwards; {os.cpu_count()} CPUs shared by the "
        "load generator, the server and whatever else runs on the machine)",
        "",
        "Cores busy: the average number of CPUs each kept busy over the phase (server: the "
        "slotrush process; stores: its embedded Redis and PostgreSQL; machine: everything, "
        f"other users included, of {os.cpu_count()}).",
        "",
        f"**{args.consoles} consoles alone**, no rush (what they cost by themselves):",
        "",
        "| consoles | seen | cores: load generator | server | stores | machine | load avg |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r['console'] if r['consoles'] else 'none (the server idle)'} | {seen(r)} | "
            f"{cores(r)} |"
            for r in consoles_alone
        ),
        "",
        f"**A rush with and without {args.consoles} streaming consoles** (ABBA rounds):",
        "",
        "| round | consoles | bookings/s | refused | consoles saw | "
        "cores: load generator | server | stores | machine | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {r['round']} | {r['consoles']} | {r['bookings_per_second']} | "
            f"{sum(r['booking_refusals'].values())} | {seen(r)} | {cores(r)} |"
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
