"""`slotrush bench --scenario lifecycle`: how fast a lapsed hold's number is booked again,
and how long day-end settlement takes for a day of 100,000 bookings.

One strategy on a fresh database whose holds lapse in seconds (the dev/test knob
`slotrush.payment_window_seconds`, README), with a sandbox payment provider of its own:

  lapse    a crowd holds every number of a paid schedule; most pay (checkout, then the
           sandbox completes it), the rest abandon; a second wave keeps asking for the
           schedule and pays for what it gets. Per lapsed hold, the time from its
           `hold_expires_at` to the next booking of its number, against invariant 9's 5 s.
  settle   N booked bookings of one date written to the ledger in one statement (the rows
           a strategy would write), then `POST /v1/admin/hospitals/{h}/day-end` timed until
           it answers the finished settlement.
  check    invariants 8-10 and the money totals over the whole database
           (loadtest/client/lifecycle.py).

Results go to results/ (JSON, Markdown); the exit status is non-zero if the check fails,
a number was never booked again, or the settlement counted other than N.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench import report
from bench.embedded import running_services
from bench.sandbox import SandboxProcess
from bench.stack import ServerProcess, describe_machine, serving, shorten_holds
from bench.summary import safe_name
from core.queries import parse
from loadtest.client.lifecycle import LAPSE_SLACK_SECONDS, check_lifecycle_at
from loadtest.client.seed import AdminClient, SchedulePlan, new_run_id, opening_in
from loadtest.client.tokens import new_secret, patient_token

LIFECYCLE = "lifecycle"
WINDOW_SECONDS = 3
PAY_SHARE = 0.8
FEE_CENTS = 2500
# At --size 1: the numbers the crowd holds, and the bookings settled at day-end.
FULL_NUMBERS = 200
FULL_SETTLED = 100_000
# API.md caps a schedule's capacity; a larger day is spread over several schedules.
MAX_CAPACITY = 100_000
# The second wave: patients asking at once, the pause after a sold-out answer, and how long
# past the first wave's lapses it asks at most, for numbers that never come back.
ASKERS = 16
ASK_PAUSE = 0.1
GIVE_UP_SECONDS = 60.0
CONCURRENCY = 64
SETTLE_DEADLINE_SECONDS = 1800
_SQL = parse(files("bench").joinpath("sql", "lifecycle.sql").read_text())
_FILL = parse(files("bench").joinpath("sql", "export.sql").read_text())["fill_hospital"]


@dataclass(frozen=True)
class LifecycleConfig:
    strategy: str
    workers: int
    numbers: int
    settled: int
    results: Path


def config_from(args: argparse.Namespace) -> LifecycleConfig:
    size = args.size or 1.0
    if size <= 0:
        raise SystemExit(f"--size must be above 0, not {size}")
    return LifecycleConfig(
        strategy=(args.strategies or "redis-lua").split(",")[0],
        workers=args.workers,
        numbers=args.capacity or max(round(FULL_NUMBERS * size), 10),
        settled=max(round(FULL_SETTLED * size), 100),
        results=args.results,
    )


# --- the crowd -----------------------------------------------------------------------------


@dataclass
class Crowd:
    """The patients of the lapse phase and what they did."""

    held: int = 0
    paid: int = 0
    abandoned: int = 0
    rebooked: int = 0


class Patients:
    """Patients of one paid schedule over HTTP: hold a number, pay for it."""

    def __init__(
        self, http: aiohttp.ClientSession, server: str, sandbox: str, secret: str, schedule: str
    ) -> None:
        self.http = http
        self.server = server
        self.sandbox = sandbox
        self.secret = secret
        self.schedule = schedule
        self.gate = asyncio.Semaphore(CONCURRENCY)

    async def hold(self, patient: str) -> str | None:
        """The booking id of a new hold, or None when the schedule is sold out."""
        while True:
            async with (
                self.gate,
                self.http.post(
                    f"{self.server}/v1/schedules/{self.schedule}/bookings",
                    json={},
                    headers=self._auth(patient),
                ) as answer,
            ):
                body = await answer.json(content_type=None)
                if answer.status == 201:
                    return str(body["booking"]["id"])
                if answer.status == 409 and body.get("code") == "sold_out":
                    return None
                if answer.status not in (429, 503):  # busy: ask again
                    raise RuntimeError(f"booking answered {answer.status}: {body}")
            await asyncio.sleep(ASK_PAUSE)

    async def pay(self, patient: str, booking: str) -> None:
        async with (
            self.gate,
            self.http.post(
                f"{self.server}/v1/bookings/{booking}/payments",
                json={},
                headers=self._auth(patient),
            ) as answer,
        ):
            body = await answer.json(content_type=None)
            if answer.status != 201:
                raise RuntimeError(f"checkout answered {answer.status}: {body}")
            ref = body["payment"]["provider_ref"]
        async with (
            self.gate,
            self.http.post(
                f"{self.sandbox}/checkouts/{ref}/complete", json={"outcome": "succeeded"}
            ) as answer,
        ):
            if answer.status != 200:
                raise RuntimeError(f"sandbox complete answered {answer.status}")

    def _auth(self, patient: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {patient_token(self.secret, patient)}"}


async def run_crowd(patients: Patients, numbers: int) -> Crowd:
    """Every number held; the first PAY_SHARE of the holders pay, the rest abandon; then a
    second wave asks until a sold-out answer comes after every hold made so far had the time
    to lapse and come back (a payer whose notice came late lapses too), paying for what it
    gets."""
    crowd = Crowd()
    names = [f"first-{i}" for i in range(numbers)]
    holds = await asyncio.gather(*(patients.hold(name) for name in names))
    held = [(name, booking) for name, booking in zip(names, holds, strict=True) if booking]
    crowd.held = len(held)
    last_hold = time.monotonic()
    payers = held[: round(len(held) * PAY_SHARE)]
    await asyncio.gather(*(patients.pay(name, booking) for name, booking in payers))
    crowd.paid = len(payers)
    crowd.abandoned = crowd.held - crowd.paid
    lapsed_by = WINDOW_SECONDS + LAPSE_SLACK_SECONDS
    give_up = time.monotonic() + lapsed_by + GIVE_UP_SECONDS
    asked = iter(range(10**9))

    async def ask() -> None:
        nonlocal last_hold
        while time.monotonic() < give_up:
            name = f"second-{next(asked)}"
            booking = await patients.hold(name)
            if booking is None:
                if time.monotonic() > last_hold + lapsed_by:
                    return
                await asyncio.sleep(ASK_PAUSE)
                continue
            last_hold = time.monotonic()
            crowd.rebooked += 1
            await patients.pay(name, booking)  # paid, so it does not lapse in turn

    await asyncio.gather(*(ask() for _ in range(min(ASKERS, max(crowd.abandoned, 1)))))
    return crowd


async def lapse_to_reuse(database: str, hospital: str) -> list[float | None]:
    conn = await asyncpg.connect(database)
    try:
        return [row["seconds"] for row in await conn.fetch(_SQL["lapse_to_reuse"], hospital)]
    finally:
        await conn.close()


# --- settlement ----------------------------------------------------------------------------


async def fill(database: str, hospital: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(_FILL, hospital)
    finally:
        await conn.close()


def settle(admin: AdminClient, database: str, count: int) -> dict[str, Any]:
    """`count` booked bookings (rounded up to whole schedules) of today, settled at day-end."""
    schedules = math.ceil(count / MAX_CAPACITY)
    # Opened yesterday, so the visit date (the day after the opening) is today.
    plan = SchedulePlan(
        new_run_id(),
        schedules,
        math.ceil(count / schedules),
        opening_in(-86_400),
        label="day",
    )
    admin.create_schedules(plan)
    started = time.perf_counter()
    asyncio.run(fill(database, plan.hospital_id))
    seeded = time.perf_counter() - started
    started = time.perf_counter()
    answer = admin.request(
        "POST",
        f"/v1/admin/hospitals/{plan.hospital_id}/day-end",
        {"date": plan.visit_date.isoformat()},
    )
    took = time.perf_counter() - started
    bookings = schedules * plan.capacity
    return {
        "bookings": bookings,
        "no_shows": answer["no_shows"],
        "seed_seconds": seeded,
        "settle_seconds": took,
        "settled_per_second": bookings / took if took else None,
    }


# --- the run -------------------------------------------------------------------------------


def measure(
    config: LifecycleConfig, server: ServerProcess, secret: str, database: str, sandbox: str
) -> dict[str, Any]:
    admin = AdminClient(server.url, secret, timeout=SETTLE_DEADLINE_SECONDS)
    plan = SchedulePlan(new_run_id(), 1, config.numbers, opening_in(0), fee_cents=FEE_CENTS)
    (schedule,) = admin.create_schedules(plan)

    async def crowd() -> Crowd:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{sandbox}/control",
                json={"webhook_url": f"{server.url}/v1/payments/sandbox/webhook"},
            ) as answer:
                answer.raise_for_status()
            return await run_crowd(
                Patients(http, server.url, sandbox, secret, schedule.id), config.numbers
            )

    lapse = asyncio.run(crowd())
    reuse = asyncio.run(lapse_to_reuse(database, plan.hospital_id))
    settlement = settle(admin, database, config.settled)
    verdict = check_lifecycle_at(database)
    return {
        "crowd": asdict(lapse),
        "reuse": reuse_summary(reuse),
        "settlement": settlement,
        "lifecycle": verdict.to_dict(),
        "lifecycle_report": verdict.report(),
    }


def reuse_summary(seconds: list[float | None]) -> dict[str, Any]:
    """Lapse to reuse over the lapsed holds; `never` counts numbers nobody booked again."""
    reused = sorted(s for s in seconds if s is not None)
    return {
        "lapsed": len(seconds),
        "never": len(seconds) - len(reused),
        "p50_s": statistics.median(reused) if reused else None,
        "p99_s": reused[min(math.ceil(0.99 * len(reused)) - 1, len(reused) - 1)]
        if reused
        else None,
        "max_s": reused[-1] if reused else None,
        "limit_s": LAPSE_SLACK_SECONDS,
    }


def verdict_of(measured: dict[str, Any]) -> tuple[bool, str]:
    reuse, settlement = measured["reuse"], measured["settlement"]
    problems = []
    if not measured["lifecycle"]["ok"]:
        problems.append("the lifecycle check failed")
    if reuse["never"] or not reuse["lapsed"]:
        problems.append(f"{reuse['never']} of {reuse['lapsed']} lapsed numbers never reused")
    if settlement["no_shows"] != settlement["bookings"]:
        problems.append(f"settled {settlement['no_shows']} of {settlement['bookings']}")
    within = reuse["max_s"] is not None and reuse["max_s"] <= reuse["limit_s"]
    text = (
        f"lapse to reuse p50 {_s(reuse['p50_s'])}, p99 {_s(reuse['p99_s'])}, max "
        f"{_s(reuse['max_s'])} ({'within' if within else 'OVER'} {reuse['limit_s']:.0f} s); "
        f"settlement of {settlement['bookings']:,} bookings {settlement['settle_seconds']:.1f} s"
    )
    ok = not problems
    return ok, f"{'PASS' if ok else 'FAIL'}: {text}" + "".join(f"; {p}" for p in problems)


def markdown(record: dict[str, Any]) -> str:
    m = record["measured"]
    crowd, reuse, settlement = m["crowd"], m["reuse"], m["settlement"]
    rows = [
        ("strategy", record["settings"]["strategy"]),
        (
            "numbers held / paid / abandoned",
            f"{crowd['held']} / {crowd['paid']} / {crowd['abandoned']}",
        ),
        ("booked again by the second wave", crowd["rebooked"]),
        (
            "lapse to reuse p50 / p99 / max (s)",
            f"{_s(reuse['p50_s'])} / {_s(reuse['p99_s'])} / {_s(reuse['max_s'])}",
        ),
        ("invariant 9's limit (s)", f"{reuse['limit_s']:.0f}"),
        (
            "bookings settled at day-end",
            f"{settlement['no_shows']:,} of {settlement['bookings']:,}",
        ),
        ("settlement (s)", f"{settlement['settle_seconds']:.2f}"),
        ("settled per second", f"{settlement['settled_per_second']:,.0f}"),
        ("lifecycle check", m["lifecycle_report"].splitlines()[0]),
    ]
    machine = record["machine"]
    return "\n".join(
        [
            f"# Lifecycle: lapse to reuse, and day-end settlement ({record['started'][:16]} UTC)",
            "",
            f"{record['verdict']}",
            "",
            report.table(["measure", "value"], rows),
            "",
            f"Holds lapse after {WINDOW_SECONDS} s (`slotrush.payment_window_seconds`); "
            f"{PAY_SHARE:.0%} of the holders pay through the sandbox provider. Machine: "
            f"{machine.get('host')}, commit {record['commit']}.",
            "",
        ]
    )


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    config.results.mkdir(parents=True, exist_ok=True)
    secret = new_secret()
    started = dt.datetime.now(dt.UTC)

    with (
        running_services(os.environ.get("REDIS_URL"), os.environ.get("DATABASE_URL")) as urls,
        tempfile.TemporaryDirectory(prefix="slotrush-bench-") as workdir,
        SandboxProcess(Path(workdir)) as provider,
        serving(
            config.strategy,
            config.workers,
            urls,
            secret,
            Path(workdir),
            env={
                "SLOTRUSH_PAY_SANDBOX_URL": provider.url,
                # A day of 100,000 settles in one admin call, past the default 60 s deadline.
                "SLOTRUSH_ADMIN_REQUEST_TIMEOUT": str(SETTLE_DEADLINE_SECONDS),
            },
            prepare=lambda database: shorten_holds(database, WINDOW_SECONDS),
        ) as (server, database),
    ):
        machine = describe_machine(urls.redis_url, urls.database_url)
        measured = measure(config, server, secret, database, provider.url)
    ok, verdict = verdict_of(measured)
    stem = f"{started:%Y-%m-%d}-{safe_name(machine['host'])}-lifecycle"
    record = {
        "kind": "lifecycle: lapse to reuse, day-end settlement",
        "scenario": LIFECYCLE,
        "page": f"{stem}.md",
        "stem": stem,
        "verdict": verdict,
        "ok": ok,
        "started": started.isoformat(),
        "commit": str(machine.get("commit"))[:12],
        "settings": {**asdict(config), "results": str(config.results)},
        "machine": machine,
        "measured": measured,
    }
    json_path, md_path = config.results / f"{stem}.json", config.results / f"{stem}.md"
    report.write_json(json_path, record)
    md_path.write_text(markdown(record))
    report.update_index(config.results)
    print(f"{markdown(record)}\n{measured['lifecycle_report']}\nwrote {json_path}, {md_path}")
    return 0 if ok else 1


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}"
