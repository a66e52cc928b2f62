"""What open staff consoles cost a rush (issue 14): booking throughput with no console
open, then with N consoles polling as /console does (today's and tomorrow's schedules
every second, the holds awaiting payment every five, both with If-None-Match), in
alternating rounds so that drift of a shared machine falls on both alike.

    python -m bench.consoles --consoles 50 --rounds 3 --seconds 15

It starts `slotrush serve --dev` on a free loopback port (embedded stores unless REDIS_URL
and DATABASE_URL are set), books with unique patients through a closed loop of
`--crowd` connections, and writes results/consoles-DATE-HOST.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
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

from bench.child_server import free_port
from core.tokens import issue_token
from loadtest.client.seed import AdminClient

HOSPITAL = "rush-h"
SCHEDULES = 4


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.consoles")
    parser.add_argument("--consoles", type=int, default=50)
    parser.add_argument("--crowd", type=int, default=32, help="booking connections")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0, help="per phase")
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
        rounds = asyncio.run(_measure(url, secret, client, args))
    finally:
        server.terminate()
        server.wait(60)
    _write(args, rounds)
    return 0


def _seed(client: AdminClient) -> list[str]:
    """Fresh schedules for one phase, tomorrow, big enough never to sell out."""
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    bodies = [
        {
            "hospital_id": HOSPITAL,
            "department_id": f"d{k}",
            "doctor_id": f"doc-{uuid.uuid4().hex[:8]}",
            "visit_date": tomorrow,
            "period": "am",
            "capacity": 100_000,
        }
        for k in range(SCHEDULES)
    ]
    answer = client.request("POST", "/v1/admin/schedules", {"schedules": bodies})
    return [s["id"] for s in answer["schedules"]]


async def _measure(
    url: str, secret: str, client: AdminClient, args: argparse.Namespace
) -> list[dict[str, Any]]:
    rounds = []
    staff = issue_token(secret, subject="staff", hospital_id=HOSPITAL, ttl=6 * 3600)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(url, connector=connector) as session:
        for _ in range(args.rounds):
            for consoles in (0, args.consoles):
                schedules = await asyncio.to_thread(_seed, client)
                phase = await _phase(session, secret, staff, schedules, consoles, args)
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
    bookers = [
        _book_until(session, secret, schedules[k % len(schedules)], deadline)
        for k in range(args.crowd)
    ]
    watchers = [_console_until(session, staff, deadline, polls) for _ in range(consoles)]
    results = await asyncio.gather(*bookers, *watchers)
    booked = sum(results[: args.crowd])
    return {
        "consoles": consoles,
        "seconds": args.seconds,
        "booked": booked,
        "bookings_per_second": round(booked / args.seconds, 1),
        "console_polls": sum(polls.values()),
        "console_not_modified": polls.get(304, 0),
    }


async def _book_until(
    session: aiohttp.ClientSession, secret: str, schedule: str, deadline: float
) -> int:
    booked = 0
    path = f"/v1/schedules/{schedule}/bookings"
    while time.monotonic() < deadline:
        token = issue_token(secret, subject=f"p-{uuid.uuid4().hex[:16]}", ttl=3600)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        async with session.post(path, data=b"{}", headers=headers) as answer:
            await answer.read()
            booked += answer.status == 201
    return booked


async def _console_until(
    session: aiohttp.ClientSession, staff: str, deadline: float, polls: dict[int, int]
) -> int:
    """One open console: the two conditional polls of server/web/fill.js."""
    today = dt.datetime.now(dt.UTC).date()
    span = f"from={today}&to={today + dt.timedelta(days=1)}&limit=500"
    paths = {
        f"/v1/schedules?hospital_id={HOSPITAL}&{span}": 1.0,
        f"/v1/admin/hospitals/{HOSPITAL}/bookings?status=pending_payment&{span}": 5.0,
    }
    etags: dict[str, str] = {}
    due = dict.fromkeys(paths, time.monotonic())
    while True:
        path = min(due, key=due.__getitem__)
        if due[path] >= deadline:
            return 0
        await asyncio.sleep(max(0.0, due[path] - time.monotonic()))
        headers = {"Authorization": f"Bearer {staff}"}
        if path in etags:
            headers["If-None-Match"] = etags[path]
        async with session.get(path, headers=headers) as answer:
            await answer.read()
            polls[answer.status] = polls.get(answer.status, 0) + 1
            if answer.status == 200 and "ETag" in answer.headers:
                etags[path] = answer.headers["ETag"]
        due[path] += paths[path]


def _write(args: argparse.Namespace, rounds: list[dict[str, Any]]) -> None:
    def rate(consoles: int) -> list[float]:
        return [r["bookings_per_second"] for r in rounds if r["consoles"] == consoles]

    alone, watched = statistics.median(rate(0)), statistics.median(rate(args.consoles))
    loss = round(100 * (alone - watched) / alone, 1)
    report = {
        "what": f"booking throughput with {args.consoles} staff consoles polling, vs none",
        "command": " ".join(["python -m bench.consoles", *sys.argv[1:]]),
        "strategy": args.strategy,
        "crowd": args.crowd,
        "median_bookings_per_second": {"no consoles": alone, f"{args.consoles} consoles": watched},
        "throughput_lost_percent": loss,
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
        f"{args.seconds:g} s phases, {os.cpu_count()} CPUs shared with the load generator)",
        "",
        "| consoles | bookings/s | console polls | of them 304 |",
        "|---|---|---|---|",
        *(
            f"| {r['consoles']} | {r['bookings_per_second']} | {r['console_polls']} | "
            f"{r['console_not_modified']} |"
            for r in rounds
        ),
        "",
        f"Median: {alone} bookings/s alone, {watched} with {args.consoles} consoles: "
        f"**{loss}% lost**.",
    ]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print(lines[-1])


if __name__ == "__main__":
    sys.exit(main())
