"""`slotrush bench --scenario waiting-room`: a crowd waits for an opening behind a waiting
room, on loopback, bounded in time and requests.

Patients join before the opening (nine in ten: shuffled at the opening), the rest after it
(first come, first served); one in fifty early arrivals never asks again (their places
expire and pass their turn on). Each patient asks again when the room's estimate says its
turn is near (at least every abandon_seconds / 2), and books the moment it is admitted. A
monitor samples the room's admitted count; afterwards the room's admission log (read from
Redis) gives the fairness figures. Default 5,000 patients; `--users 100000` for the full
crowd. Results: JSON, Markdown and a plot in results/.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from bench import report, room_figures
from bench.embedded import running_services
from bench.stack import ServerProcess, describe_machine, fresh_stack
from core.keys import room_keys
from loadtest.client.seed import AdminClient, SchedulePlan, new_run_id, opening_in
from loadtest.client.tokens import admin_token, new_secret, patient_token

LATE_SHARE = 0.1
ABANDON_EVERY = 50
ABANDON_SECONDS = 30
CONNECTIONS = 64
# What the opening allows for the early arrivals to join: a shared two-core machine joins
# a few hundred a second with the server and the generator on it.
JOINS_PER_SECOND = 250
STRATEGY = "redis-lua"


@dataclass
class Crowd:
    url: str
    schedule_id: str
    secret: str
    opening: float
    samples: list[tuple[float, int]] = field(default_factory=list)
    arrivals: dict[str, int] = field(default_factory=dict)
    early: set[str] = field(default_factory=set)
    late: set[str] = field(default_factory=set)
    bookings: list[tuple[float, float]] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, patient: str) -> str:
        token = self.tokens.get(patient)
        if token is None:
            token = self.tokens[patient] = patient_token(self.secret, patient)
        return token


def rate_for(users: int) -> float:
    """Admissions per second that drain the crowd in about ten to fifty seconds."""
    return 500.0 if users <= 10_000 else 2000.0


def run(users: int, workers: int, results: Path, rate: float | None = None) -> int:
    rate = rate or rate_for(users)
    secret = new_secret()
    started = dt.datetime.now(dt.UTC)
    with (
        running_services(os.environ.get("REDIS_URL"), os.environ.get("DATABASE_URL")) as urls,
        tempfile.TemporaryDirectory(prefix="slotrush-room-") as workdir,
        fresh_stack(urls, "room", secret) as env,
    ):
        machine = describe_machine(urls.redis_url, urls.database_url)
        prefix = env["SLOTRUSH_REDIS_PREFIX"]
        server = ServerProcess(STRATEGY, workers, env, Path(workdir) / "serve.log")
        server.start(secret)
        try:
            crowd = _open_room(server.url, secret, users, rate)
            asyncio.run(_rush(crowd, users, rate))
            log = asyncio.run(_admission_log(urls.redis_url, prefix, int(crowd.schedule_id)))
        finally:
            server.stop()
    return _report(crowd, log, users, rate, workers, machine, started, results)


def _open_room(url: str, secret: str, users: int, rate: float) -> Crowd:
    admin = AdminClient(url, secret)
    # Time for the early arrivals to join (about 1,000 a second here), then the opening.
    opens_at = opening_in(5 + users * (1 - LATE_SHARE) / JOINS_PER_SECOND)
    plan = SchedulePlan(new_run_id(), 1, min(users, 100_000), opens_at, departments=1)
    (schedule,) = admin.create_schedules(plan)
    room = {"admit_per_second": rate, "abandon_seconds": ABANDON_SECONDS}
    admin.request("PUT", f"/v1/admin/schedules/{schedule.id}/waiting-room", room)
    return Crowd(url, schedule.id, secret, opens_at.timestamp())


async def _rush(crowd: Crowd, users: int, rate: float) -> None:
    late_from = int(users * (1 - LATE_SHARE))
    patients = [f"w{i}" for i in range(users)]
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        due: list[tuple[float, str, str]] = []
        await _join_all(session, crowd, patients[:late_from], due, early=True)
        await asyncio.sleep(max(0.0, crowd.opening - time.time()))
        monitor = asyncio.create_task(_monitor(session, crowd))
        await _join_all(session, crowd, patients[late_from:], due, early=False)
        # Bounded: the drain at the configured rate, and a minute to spare.
        deadline = time.time() + users / rate + 60
        await asyncio.gather(*(_poller(session, crowd, due, deadline) for _ in range(CONNECTIONS)))
        monitor.cancel()
        await asyncio.gather(monitor, return_exceptions=True)


async def _join_all(
    session: aiohttp.ClientSession,
    crowd: Crowd,
    patients: list[str],
    due: list[tuple[float, str, str]],
    *,
    early: bool,
) -> None:
    queue = iter(patients)

    async def joiner() -> None:
        for patient in queue:
            sent = time.time()
            place = await _call(session, crowd, "POST", patient)
            crowd.arrivals[patient] = place["arrival"] or 0
            # Early: answered before the opening; late: sent after it. A join of a slow
            # machine that straddles the opening is neither, and left out of the figures.
            if time.time() < crowd.opening if early else sent > crowd.opening:
                (crowd.early if early else crowd.late).add(patient)
            if early and crowd.arrivals[patient] % ABANDON_EVERY == 0:
                continue  # gone: never asks again
            heapq.heappush(due, (_next_ask(place), patient, place["position_token"]))

    await asyncio.gather(*(joiner() for _ in range(CONNECTIONS)))


def _next_ask(place: dict[str, Any]) -> float:
    """When the room's estimate says the turn is near, and often enough to keep the place."""
    wait = float(place["estimated_wait_seconds"])
    return time.time() + min(max(0.2, wait * 0.9), ABANDON_SECONDS / 2)


async def _poller(
    session: aiohttp.ClientSession,
    crowd: Crowd,
    due: list[tuple[float, str, str]],
    deadline: float,
) -> None:
    while due and time.time() < deadline:
        when, patient, token = heapq.heappop(due)
        await asyncio.sleep(max(0.0, when - time.time()))
        place = await _call(session, crowd, "GET", patient, {"Waiting-Room-Token": token})
        if place["status"] == "admitted":
            await _book(session, crowd, patient, place["admission_token"])
        elif place["status"] == "waiting":
            heapq.heappush(due, (_next_ask(place), patient, token))


async def _call(
    session: aiohttp.ClientSession,
    crowd: Crowd,
    method: str,
    patient: str,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    bearer = {"Authorization": f"Bearer {crowd.token(patient)}"}
    path = f"{crowd.url}/v1/schedules/{crowd.schedule_id}/waiting-room"
    async with session.request(method, path, headers={**bearer, **(headers or {})}) as answer:
        crowd.requests[f"{method} waiting-room {answer.status}"] += 1
        body: dict[str, Any] = await answer.json()
        if answer.status != 200:
            raise RuntimeError(f"{method} {path} answered {answer.status}: {body}")
        return body


async def _book(session: aiohttp.ClientSession, crowd: Crowd, patient: str, token: str) -> None:
    headers = {
        "Authorization": f"Bearer {crowd.token(patient)}",
        "Waiting-Room-Admission": token,
    }
    path = f"{crowd.url}/v1/schedules/{crowd.schedule_id}/bookings"
    sent = time.time()
    async with session.post(path, headers=headers) as answer:
        body = await answer.json()
    crowd.bookings.append((sent, (time.time() - sent) * 1000))
    crowd.outcomes[body["booking"]["status"] if answer.status == 201 else body["code"]] += 1


async def _monitor(session: aiohttp.ClientSession, crowd: Crowd) -> None:
    path = f"{crowd.url}/v1/admin/schedules/{crowd.schedule_id}/waiting-room"
    headers = {"Authorization": f"Bearer {admin_token(crowd.secret)}"}
    while True:
        async with session.get(path, headers=headers) as answer:
            room = await answer.json()
        crowd.samples.append((time.time(), int(room["admitted"])))
        await asyncio.sleep(0.25)


async def _admission_log(redis_url: str, prefix: str, schedule_id: int) -> list[str]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        log = await client.lrange(room_keys(prefix, schedule_id).log, 0, -1)
    finally:
        await client.aclose()
    return [patient.decode() for patient in log]


def _report(
    crowd: Crowd,
    log: list[str],
    users: int,
    rate: float,
    workers: int,
    machine: dict[str, Any],
    started: dt.datetime,
    results: Path,
) -> int:
    admission = room_figures.admission_figures(crowd.samples, rate, crowd.opening)
    fairness = room_figures.fairness_figures(log, crowd.arrivals, crowd.early, crowd.late)
    booking = room_figures.booking_figures([ms / 1000 for _, ms in crowd.bookings], crowd.outcomes)
    record = {
        "scenario": "waiting-room",
        "started": started.isoformat(),
        "machine": machine,
        "settings": {
            "patients": users,
            "late_share": LATE_SHARE,
            "abandoning": f"1 in {ABANDON_EVERY} early arrivals",
            "admit_per_second": rate,
            "abandon_seconds": ABANDON_SECONDS,
            "strategy": STRATEGY,
            "server_workers": workers,
            "connections": CONNECTIONS,
        },
        "admission": admission,
        "fairness": fairness,
        "booking": booking,
        "requests": dict(crowd.requests),
    }
    results.mkdir(parents=True, exist_ok=True)
    stem = f"{started:%Y-%m-%d}-{machine['host']}-waiting-room-{users}"
    plot_path = results / f"{stem}.png"
    title = f"waiting room: {users} patients, admitting {rate:g}/s"
    room_figures.plot(plot_path, crowd.samples, crowd.bookings, rate, crowd.opening, title)
    report.write_json(results / f"{stem}.json", record)
    summary = _summary(record)
    (results / f"{stem}.md").write_text(f"# {title}\n\n{summary}\n\n![plot]({plot_path.name})\n")
    print(summary)
    ok = (
        admission["samples_ahead_of_rate"] == 0
        and fairness["late_out_of_order"] == 0
        and fairness["late_admitted_before_an_early"] == 0
        and booking["outcomes"].get("busy", 0) == 0
    )
    print(f"\nwrote {stem}.json, .md, .png in {results}; verdict: {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


def _summary(record: dict[str, Any]) -> str:
    rows = [(f"admission: {key}", value) for key, value in record["admission"].items()] + [
        (f"fairness: {key}", value) for key, value in record["fairness"].items()
    ]
    rows += [("booking: outcomes", record["booking"]["outcomes"])]
    rows += [
        (f"booking latency {key} (ms)", value)
        for key, value in record["booking"]["latency_ms"].items()
    ]
    return report.table(["figure", "value"], rows)
