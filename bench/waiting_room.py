"""`slotrush bench --scenario waiting-room`: a crowd waits for an opening behind a waiting
room, on loopback, bounded in time and requests.

Patients arrive at a steady pace, nine in ten before the opening (shuffled at the opening),
the rest after it (first come, first served); each patient is its own task, and all share
the generator's connections. One in fifty early arrivals never asks again: with the bench's
abandon_seconds (600, longer than the drain) the room still admits them, and they never
book (tests/test_waiting_room.py covers places passed on). The others ask again just after
the room's estimate of their turn, at least every abandon_seconds / 2, and book the moment
they are admitted. A monitor samples the room's admitted count; afterwards the room's
admission log (read from Redis) gives the fairness figures. Default 5,000 patients;
`--users 100000` for the full crowd. Results: JSON, Markdown and a plot in results/.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
import uvloop

from bench import report, room_figures
from bench.embedded import running_services
from bench.stack import CpuMeter, ServerProcess, describe_machine, fresh_stack
from bench.stalls import Stalls
from core.keys import room_keys
from loadtest.client.seed import AdminClient, SchedulePlan, new_run_id, opening_in
from loadtest.client.tokens import admin_token, new_secret, patient_token

LATE_SHARE = 0.1
# Admissions per second, whatever the crowd: what one generator process keeps up with on a
# shared two-core machine, asking and booking for every admitted patient (at 500/s it fell
# minutes behind whenever other work took the CPU).
ADMIT_PER_SECOND = 300.0
ABANDON_EVERY = 50
# The room's abandon_seconds for this crowd: a patient asks at least every half of it, and
# the other half is the generator's slack. On a shared two-core machine one generator asks
# a few hundred times a second, so 90,000 patients standing before the opening need minutes
# between questions (a 30 s setting dropped nearly all of them unasked: issue 13).
ABANDON_SECONDS = 600
# How long an admission lets its patient book: longer than a real room's two minutes, as
# the generator shares two cores with the server and everyone else's work and may fall
# behind by minutes when they take the CPU (a 120 s setting lost 63,000 admissions so).
ADMISSION_SECONDS = 600
CONNECTIONS = 64
# The pace at which the crowd arrives, early arrivals before the opening and later ones
# after it: what one generator process joins on a shared two-core machine while it also
# asks for the patients already in line.
JOINS_PER_SECOND = 400
# Time to create the schedule and its numbers before the first arrival.
SETUP_SECONDS = 15
# The last early arrival is due this long before the opening, so a generator running a
# little late still joins it before the opening.
OPENING_MARGIN = 10
# A patient asks again this long after the room's estimate of its turn: the estimate after
# the opening is an upper bound (places ahead can only leave), so one question usually finds
# the patient admitted.
ASK_AFTER_ESTIMATE = 0.5
STRATEGY = "redis-lua"
# The one way a patient's wait should end without a booking.
LEFT = "left on purpose after joining"


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
    # How each patient's wait ended short of a booking: left on purpose, place lost, ...
    ends: Counter[str] = field(default_factory=Counter)
    # Joins of a generator running late that straddled the opening (served all the same).
    joined_across_opening: int = 0
    generator_stalls: dict[str, Any] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    room: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, patient: str) -> str:
        token = self.tokens.get(patient)
        if token is None:
            token = self.tokens[patient] = patient_token(self.secret, patient)
        return token


def run(users: int, workers: int, results: Path, rate: float | None = None) -> int:
    rate = rate or ADMIT_PER_SECOND
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
            meter = CpuMeter.for_stack(server, urls.redis_url, urls.database_url)
            before, began = meter.sample(), time.time()
            uvloop.run(_rush(crowd, users, rate))
            cpu = _cores_busy(CpuMeter.delta(before, meter.sample()), time.time() - began)
            log = asyncio.run(_admission_log(urls.redis_url, prefix, int(crowd.schedule_id)))
        finally:
            server.stop()
    return _report(crowd, log, cpu, users, rate, workers, machine, started, results)


def _open_room(url: str, secret: str, users: int, rate: float) -> Crowd:
    admin = AdminClient(url, secret)
    early = users - _late_count(users)
    opens_at = opening_in(SETUP_SECONDS + early / JOINS_PER_SECOND + OPENING_MARGIN)
    # A number for every patient: whoever is admitted can book.
    plan = SchedulePlan(new_run_id(), 1, users, opens_at, departments=1)
    (schedule,) = admin.create_schedules(plan)
    room = {
        "admit_per_second": rate,
        "abandon_seconds": ABANDON_SECONDS,
        "admission_seconds": ADMISSION_SECONDS,
    }
    admin.request("PUT", f"/v1/admin/schedules/{schedule.id}/waiting-room", room)
    return Crowd(url, schedule.id, secret, opens_at.timestamp())


def _late_count(users: int) -> int:
    return users - int(users * (1 - LATE_SHARE))


def _arrival_times(crowd: Crowd, users: int) -> list[float]:
    """The crowd's schedule: early arrivals at an even pace ending OPENING_MARGIN before
    the opening, later ones at the same pace from the opening on."""
    late = _late_count(users)
    early = users - late
    last_early = crowd.opening - OPENING_MARGIN
    return [last_early - (early - i) / JOINS_PER_SECOND for i in range(early)] + [
        crowd.opening + (j + 1) / JOINS_PER_SECOND for j in range(late)
    ]


async def _rush(crowd: Crowd, users: int, rate: float) -> None:
    """Every patient on its own schedule, all sharing the generator's connections (the
    connector queues a request due while all are busy, first come first served)."""
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    with Stalls() as stalls:
        async with aiohttp.ClientSession(connector=connector) as session:
            watchers = [asyncio.create_task(task) for task in (_monitor(crowd), stalls.watch())]
            # Bounded: the drain at the configured rate, and a minute to spare.
            deadline = crowd.opening + users / rate + 60
            patients = [
                asyncio.create_task(_patient(session, crowd, f"w{i}", at, deadline))
                for i, at in enumerate(_arrival_times(crowd, users))
            ]
            with _no_full_collections():
                await asyncio.gather(*patients)
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            crowd.room = await _room(session, crowd)
    crowd.generator_stalls = stalls.figures()


@contextlib.contextmanager
def _no_full_collections() -> Iterator[None]:
    """Young collections only while the crowd waits: its 100,000 tasks and their places live
    for the whole rush, and each full collection walked them all, holding a CPU-starved
    generator up to 6.7 s (25 times a run; figures in generator_stalls) and the room and
    the bookings with it. What reaches the old generation is collected afterwards."""
    young, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, 2**30)
    try:
        yield
    finally:
        gc.set_threshold(young, middle, old)
        gc.collect()


async def _patient(
    session: aiohttp.ClientSession, crowd: Crowd, patient: str, arrives: float, deadline: float
) -> None:
    """Join, ask when the room's estimate says the turn is near (often enough to keep the
    place), and book the moment admitted."""
    await asyncio.sleep(max(0.0, arrives - time.time()))
    early = arrives < crowd.opening
    sent = time.time()
    place = await _call(session, crowd, "POST", patient)
    if place["status"] not in ("waiting", "admitted"):
        crowd.ends[place["status"]] += 1
        return
    crowd.arrivals[patient] = place["arrival"] or 0
    # Early: answered before the opening; late: sent after it. A join of a generator running
    # late that straddles the opening is neither, and left out of the fairness figures.
    if time.time() < crowd.opening if early else sent > crowd.opening:
        (crowd.early if early else crowd.late).add(patient)
    else:
        crowd.joined_across_opening += 1
    if early and crowd.arrivals[patient] % ABANDON_EVERY == 0:
        crowd.ends[LEFT] += 1
        return
    token = place["position_token"]
    while place["status"] == "waiting":
        when = _next_ask(place)
        if when > deadline:
            crowd.ends["still waiting at the time bound"] += 1
            return
        await asyncio.sleep(max(0.0, when - time.time()))
        place = await _call(session, crowd, "GET", patient, {"Waiting-Room-Token": token})
    if place["status"] == "admitted":
        await _book(session, crowd, patient, place["admission_token"])
    else:
        crowd.ends[f"asked: {place['status']}"] += 1


def _next_ask(place: dict[str, Any]) -> float:
    """Just after the room's estimate of the turn, and within half the room's
    abandon_seconds of the last question, so the place is never given up."""
    wait = float(place["estimated_wait_seconds"]) + ASK_AFTER_ESTIMATE
    return time.time() + min(wait, place["abandon_seconds"] / 2)


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
        # A refusal ends this one patient's wait, counted, and fails the verdict.
        return {"status": f"{method} answered {answer.status} {body.get('code')}"}
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


async def _monitor(crowd: Crowd) -> None:
    """From the opening on, the room's admitted count four times a second, on a connection
    of its own so that its answers are not queued behind the crowd's: each sample is timed
    at its answer, later than the count, so the check against the rate errs lenient only by
    that one round trip."""
    await asyncio.sleep(max(0.0, crowd.opening - time.time()))
    async with aiohttp.ClientSession() as session:
        while True:
            room = await _room(session, crowd)
            crowd.samples.append((time.time(), int(room["admitted"])))
            await asyncio.sleep(0.25)


async def _room(session: aiohttp.ClientSession, crowd: Crowd) -> dict[str, Any]:
    """The room's settings and counts (waiting, arrivals, admitted, abandoned)."""
    path = f"{crowd.url}/v1/admin/schedules/{crowd.schedule_id}/waiting-room"
    headers = {"Authorization": f"Bearer {admin_token(crowd.secret)}"}
    async with session.get(path, headers=headers) as answer:
        room: dict[str, Any] = await answer.json()
    return room


async def _admission_log(redis_url: str, prefix: str, schedule_id: int) -> list[str]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        log = await client.lrange(room_keys(prefix, schedule_id).log, 0, -1)
    finally:
        await client.aclose()
    return [patient.decode() for patient in log]


def _cores_busy(seconds: dict[str, float], wall: float) -> dict[str, Any]:
    """CPU seconds per party over the rush as cores kept busy on average."""
    return {
        "wall_seconds": round(wall, 1),
        **{name: round(spent / wall, 2) for name, spent in seconds.items()},
    }


def _report(
    crowd: Crowd,
    log: list[str],
    cpu: dict[str, Any],
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
    room = {key: crowd.room.get(key) for key in ("arrivals", "waiting", "admitted", "abandoned")}
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
            "admission_seconds": ADMISSION_SECONDS,
            "joins_per_second": JOINS_PER_SECOND,
            "asks": f"{ASK_AFTER_ESTIMATE:g} s after the room's estimate, "
            "at most abandon_seconds / 2 apart",
            "strategy": STRATEGY,
            "server_workers": workers,
            "connections": CONNECTIONS,
        },
        "admission": admission,
        "fairness": fairness,
        "booking": booking,
        "crowd": {
            "room_at_the_end": room,
            "waits_ended_without_booking": dict(crowd.ends),
            "joined_across_the_opening": crowd.joined_across_opening,
        },
        "cores_busy": cpu,
        "generator_stalls": crowd.generator_stalls,
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
    chi2 = fairness["early_quarters_chi2"]
    lost = set(crowd.ends) - {LEFT}
    ok = (
        admission["samples_ahead_of_rate"] == 0
        and chi2 is not None
        and chi2 < room_figures.CHI2_P01
        and fairness["late_out_of_order"] == 0
        and fairness["late_admitted_before_an_early"] == 0
        and not lost
        and set(booking["outcomes"]) == {"booked"}
    )
    print(f"\nwrote {stem}.json, .md, .png in {results}; verdict: {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


def _summary(record: dict[str, Any]) -> str:
    rows = [(f"admission: {key}", value) for key, value in record["admission"].items()] + [
        (f"fairness: {key}", value) for key, value in record["fairness"].items()
    ]
    crowd = record["crowd"]
    rows += [(f"room at the end: {key}", value) for key, value in crowd["room_at_the_end"].items()]
    rows += [
        (f"unbooked: {key}", value) for key, value in crowd["waits_ended_without_booking"].items()
    ]
    rows += [("joined across the opening", crowd["joined_across_the_opening"])]
    rows += [("booking: outcomes", record["booking"]["outcomes"])]
    rows += [
        (f"booking latency {key} (ms)", value)
        for key, value in record["booking"]["latency_ms"].items()
    ]
    rows += [(f"cores busy: {key}", value) for key, value in record["cores_busy"].items()]
    rows += [(f"generator: {key}", value) for key, value in record["generator_stalls"].items()]
    return report.table(["figure", "value"], rows)
