"""A bounded flash crowd through Locust (as a library) against every strategy's real server:
the invariant check at test stop must pass. And it must be able to fail: the racy strategy,
on a ledger without its last-line constraints, is caught overselling. pay-or-drop, the
paid crowd, runs against a real sandbox provider: its lifecycle check (invariants 8-10, the
money) must pass too.

Locust monkey-patches the process for gevent when imported, so each run is a subprocess
(`python -m loadtest.library`); the server is one too, on this test's own database and
Redis prefix.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bench.embedded import ServiceUrls
from bench.lifecycle import lapse_to_reuse
from bench.sandbox import SandboxProcess
from bench.stack import ServerProcess, shorten_holds
from loadtest.client.invariants import evaluate
from loadtest.client.lifecycle import check_lifecycle_at
from loadtest.client.tally import Tally
from loadtest.client.tokens import new_secret
from strategies import STRATEGIES

REPO = Path(__file__).resolve().parent.parent
RACY = "tests.racy_strategy:RacyStrategy"
# The last-line constraints that would refuse the racy strategy's duplicates.
LAST_LINE_INDEXES = ("bookings_held_number", "bookings_held_patient")
# 150 patients on 2 schedules of 20 numbers, all pressing within a second of the opening.
SMOKE = ["--scenario", "smoke", "--crowd", "150", "--schedules", "2", "--capacity", "20"]
# 100 patients on 2 paid schedules of 20 numbers whose unpaid holds lapse after 5 s, and a
# second wave of 30: about 25 s.
PAY_OR_DROP = [
    "--scenario",
    "pay-or-drop",
    "--crowd",
    "100",
    "--schedules",
    "2",
    "--capacity",
    "20",
]
HOLD_SECONDS = 5


@pytest.fixture
def secret() -> str:
    return new_secret()


@pytest.fixture
def serve(
    service_urls: ServiceUrls,
    test_database_url: str,
    redis_prefix: str,
    secret: str,
    tmp_path: Path,
) -> Iterator[Any]:
    started: list[ServerProcess] = []

    def start(strategy: str, **more_env: str) -> ServerProcess:
        env = {
            **more_env,
            "REDIS_URL": service_urls.redis_url,
            "DATABASE_URL": test_database_url,
            "SLOTRUSH_SECRET": secret,
            "SLOTRUSH_REDIS_PREFIX": redis_prefix,
            # The racy strategy lives in tests/, which the installed package does not cover.
            "PYTHONPATH": str(REPO),
        }
        server = ServerProcess(strategy, 1, env, tmp_path / "serve.log")
        started.append(server)
        server.start(secret)
        return server

    yield start
    for server in started:
        server.stop()


def locust_run(
    server: ServerProcess,
    secret: str,
    scenario: list[str],
    *,
    database_url: str = "",
    sandbox_url: str = "",
) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest.library",
            "scenario",
            "--host",
            server.url,
            f"--secret={secret}",
            f"--database-url={database_url}",
            f"--sandbox-url={sandbox_url}",
            *scenario,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"no result from Locust (exit {done.returncode}):\n{done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_flash_crowd_keeps_every_invariant(
    strategy: str, serve: Any, secret: str, test_database_url: str
) -> None:
    result = locust_run(serve(strategy), secret, SMOKE, database_url=test_database_url)

    verdict = result["verdict"]
    assert result["ok"], (verdict["details"], result["lifecycle"])
    # Checked from the ledger too (free schedules: no money moved).
    assert result["lifecycle"]["ok"], result["lifecycle"]["details"]
    assert result["failures"] == 0, result["errors"]
    # The crowd outnumbered the numbers and bought every one of them (a booking whose 201
    # was still on its way when the crowd left counts as unconfirmed, not as unsold).
    assert verdict["confirmed"] + verdict["unconfirmed"] == 40
    assert result["answers"].get("book 409 sold_out", 0) > 0


async def test_the_check_catches_the_racy_strategy(
    test_database_url: str, serve: Any, secret: str
) -> None:
    conn = await asyncpg.connect(test_database_url)
    try:
        for index in LAST_LINE_INDEXES:
            await conn.execute(f"DROP INDEX {index}")
    finally:
        await conn.close()

    result = locust_run(serve(RACY), secret, SMOKE)

    verdict = result["verdict"]
    assert not result["ok"]
    assert verdict["oversold"] > 0 and verdict["duplicate_numbers"] > 0, verdict


@pytest.mark.parametrize("strategy", ["pg-pessimistic", "redis-lua"])
def test_pay_or_drop_keeps_every_invariant_and_balances_the_money(
    strategy: str, serve: Any, secret: str, test_database_url: str, tmp_path: Path
) -> None:
    shorten_holds(test_database_url, HOLD_SECONDS)
    with SandboxProcess(tmp_path) as sandbox:
        server = serve(strategy, SLOTRUSH_PAY_SANDBOX_URL=sandbox.url)
        result = locust_run(
            server, secret, PAY_OR_DROP, database_url=test_database_url, sandbox_url=sandbox.url
        )

    verdict, lifecycle, answers = result["verdict"], result["lifecycle"], result["answers"]
    assert result["ok"], (verdict["details"], lifecycle)
    assert lifecycle["ok"], lifecycle["details"]
    assert result["failures"] == 0, result["errors"]
    # Patients paid, walked away, and paid then cancelled: charges, and refunds for them.
    assert answers.get("complete 200 succeeded", 0) > 0 and answers.get("abandon", 0) > 0
    assert answers.get("cancel 200 ok", 0) > 0, answers
    totals = lifecycle["totals"]
    assert totals["charges"] > 0 and totals["refunds"] > 0, totals
    # The abandoned holds lapsed, and the second wave booked their numbers again.
    hospital = result["hospital_id"]
    reuse = asyncio.run(lapse_to_reuse(test_database_url, hospital))
    assert len(reuse) >= answers["abandon"], reuse
    assert sum(seconds is not None for seconds in reuse) >= answers["abandon"], reuse

    # The check read this run's money: a refund gone from its ledger is caught.
    asyncio.run(_drop_one_refund(test_database_url, hospital))
    corrupted = check_lifecycle_at(test_database_url, hospital)
    assert corrupted.money_violations == 1 and not corrupted.ok, corrupted.report()


async def _drop_one_refund(database_url: str, hospital: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "DELETE FROM money_movements WHERE hospital_id = $1 AND kind = 'refund' "
            "AND payment_id = (SELECT min(payment_id) FROM money_movements "
            "WHERE hospital_id = $1 AND kind = 'refund')",
            hospital,
        )
    finally:
        await conn.close()


# --- the check itself, on hand-made evidence ----------------------------------------------


def _booking(booking_id: str, number: int, patient: str, schedule: str = "7") -> dict[str, Any]:
    return {
        "id": booking_id,
        "schedule_id": schedule,
        "patient_id": patient,
        "number": number,
        "hospital_id": "h",
        "department_id": "d",
        "visit_date": "2030-01-02",
        "status": "booked",
    }


def _audit(booked: int, capacity: int = 2, **counts: int) -> dict[str, Any]:
    return {
        "schedules": [
            {
                "id": "7",
                "capacity": capacity,
                "booked": booked,
                "remaining": max(capacity - booked, 0),
                "oversold": booked > capacity,
            }
        ],
        "oversold": int(booked > capacity),
        "duplicate_numbers": counts.get("duplicate_numbers", 0),
        "duplicate_patients": counts.get("duplicate_patients", 0),
        "limit_violations": counts.get("limit_violations", 0),
    }


def _sold_out_crowd() -> tuple[Tally, dict[str, dict[str, Any] | None]]:
    """Two numbers, two winners, one patient told sold_out."""
    tally = Tally()
    first, second = _booking("1", 1, "a"), _booking("2", 2, "b")
    for booking in (first, second):
        tally.attempt_started("7")
        tally.booked(booking)
    tally.attempt_started("7")
    tally.rejected("7", 409, "sold_out", "c")
    return tally, {"1": first, "2": second}


def test_a_clean_crowd_passes() -> None:
    tally, seen = _sold_out_crowd()
    verdict = evaluate(tally, _audit(booked=2), seen)
    assert verdict.ok, verdict.details


def test_a_confirmed_booking_the_server_forgot_is_lost() -> None:
    tally, seen = _sold_out_crowd()
    verdict = evaluate(tally, _audit(booked=1), {**seen, "2": None})
    assert verdict.lost == 1 and not verdict.ok


def test_a_free_number_after_sold_out_is_undersold_unless_explained() -> None:
    tally, seen = _sold_out_crowd()
    assert evaluate(tally, _audit(booked=2, capacity=3), seen).undersold == 1
    tally.attempt_started("7")  # an attempt that never got its answer may explain it
    assert evaluate(tally, _audit(booked=2, capacity=3), seen).ok


def test_a_lapsed_hold_is_released_not_lost_but_a_vanished_one_is_lost() -> None:
    tally, seen = _sold_out_crowd()
    lapsed = {**_booking("2", 2, "b"), "status": "expired"}
    # Its number is free again: the audit counts one, and the sold_out is explained.
    assert evaluate(tally, _audit(booked=1), {**seen, "2": lapsed}).ok
    # A booking cancelled though its patient never asked, and not by the hospital, is lost.
    taken = {**_booking("2", 2, "b"), "status": "cancelled", "cancelled_by": "patient"}
    assert evaluate(tally, _audit(booked=1), {**seen, "2": taken}).lost == 1


def test_one_number_confirmed_twice_is_caught_from_the_client_side() -> None:
    tally, seen = _sold_out_crowd()
    twin = _booking("3", 1, "z")
    tally.attempt_started("7")
    tally.booked(twin)
    verdict = evaluate(tally, _audit(booked=3, capacity=3), {**seen, "3": twin})
    assert verdict.duplicate_numbers == 1 and not verdict.ok


def test_worker_tallies_merge_without_counting_a_replay_twice() -> None:
    one, _ = _sold_out_crowd()
    other = Tally.from_dict(one.to_dict())
    other.attempt_started("7")
    other.booked(_booking("1", 1, "a"))  # an Idempotency-Key replay of booking 1
    one.merge(other)
    assert len(one.confirmed) == 2
    assert one.started["7"] == 7 and one.total_unknown() == 0
