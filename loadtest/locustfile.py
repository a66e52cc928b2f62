"""slotrush flash-crowd load tests:

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8080 [--scenario hot] [--crowd 5000]

with SLOTRUSH_SECRET set (or --secret). Headless (`--headless`) or with the web UI, local or
distributed (`--master` / `--worker`). At test start the master seeds the run's schedules
through the admin API, opening a moment later so the crowd meets the opening; at test stop it
gathers every worker's tally and checks the invariants against `GET /v1/admin/audit`; given
the server's database (`--database-url`, default DATABASE_URL), it also checks invariants 8-10
and the money totals of the run's hospital from the ledger. A violation prints the verdict and
makes Locust exit with status 1. `--scenario pay-or-drop` seeds paid schedules and has its
patients pay at the server's sandbox provider (`--sandbox-url`, default
SLOTRUSH_PAY_SANDBOX_URL).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtest.client.invariants import Verdict, check
from loadtest.client.lifecycle import check_lifecycle_at
from loadtest.client.seed import (
    AdminClient,
    SchedulePlan,
    new_run_id,
    opening_in,
    point_sandbox_at,
    probe_hold_window,
)
from loadtest.client.tally import Tally
from loadtest.shapes import SHAPES, ScenarioShape
from loadtest.users import Crowd, Patient, crowd_of

__all__ = ["Patient", "ScenarioShape"]

log = logging.getLogger("slotrush.loadtest")

PLAN_MESSAGE = "slotrush_plan"
TALLY_REQUEST = "slotrush_tally_request"
TALLY_MESSAGE = "slotrush_tally"
TALLY_WAIT_SECONDS = 60.0

# What the master has heard from its workers in the current test: their tallies by id.
_worker_tallies: dict[str, Tally] = {}


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--scenario",
        choices=sorted(SHAPES),
        default="flash",
        help="slotrush: flash, hot (nine in ten on one schedule), churn, sustained, smoke, "
        "pay-or-drop (paid schedules: most pay, some abandon, some cancel; a second wave)",
    )
    parser.add_argument("--crowd", type=int, default=1000, help="slotrush: patients at the peak")
    parser.add_argument("--schedules", type=int, default=10, help="slotrush: schedules to seed")
    parser.add_argument("--capacity", type=int, default=100, help="slotrush: numbers per schedule")
    parser.add_argument(
        "--secret",
        default=os.environ.get("SLOTRUSH_SECRET", ""),
        is_secret=True,
        help="slotrush: the server's SLOTRUSH_SECRET (default: from the env)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", ""),
        is_secret=True,
        help="slotrush: the server's PostgreSQL, to check invariants 8-10 and the money",
    )
    parser.add_argument(
        "--sandbox-url",
        default=os.environ.get("SLOTRUSH_PAY_SANDBOX_URL", ""),
        help="slotrush: where pay-or-drop's patients pay, the server's `slotrush sandbox-pay` "
        "(default: SLOTRUSH_PAY_SANDBOX_URL); its notices are pointed at --host",
    )


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message(PLAN_MESSAGE, _adopt_plan)
        runner.register_message(TALLY_REQUEST, _send_tally)
    elif isinstance(runner, MasterRunner):
        runner.register_message(TALLY_MESSAGE, _receive_tally)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    crowd = crowd_of(environment)
    crowd.tally = Tally()
    if isinstance(environment.runner, WorkerRunner):
        return  # the plan comes from the master
    _worker_tallies.clear()
    _seed(environment, crowd)
    if isinstance(environment.runner, MasterRunner):
        environment.runner.send_message(PLAN_MESSAGE, crowd.plan())


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return  # the master asks for the tally when it is ready to check
    crowd = crowd_of(environment)
    if not crowd.ready:
        return
    tally, complete = crowd.tally, True
    if isinstance(environment.runner, MasterRunner):
        tally, complete = _gather_worker_tallies(environment.runner)
    verdict = _check(environment, crowd, tally)
    print(verdict.report(), flush=True)
    lifecycle_ok = _check_lifecycle(environment, crowd)
    if not verdict.ok or not complete or not lifecycle_ok:
        environment.process_exit_code = 1


def _seed(environment: Environment, crowd: Crowd) -> None:
    options = environment.parsed_options
    if options is None or not crowd.secret or environment.host is None:
        raise RuntimeError("slotrush load tests need --host and SLOTRUSH_SECRET (or --secret)")
    shape = SHAPES[options.scenario]
    plan = SchedulePlan(
        new_run_id(),
        options.schedules,
        options.capacity,
        opening_in(shape.opens_after),
        fee_cents=shape.fee_cents,
    )
    admin = AdminClient(environment.host, crowd.secret)
    sandbox_url = options.sandbox_url.rstrip("/")
    hold_window = (
        _prepare_payments(environment, admin, plan, sandbox_url) if plan.fee_cents else 0.0
    )
    seeded = admin.create_schedules(plan)
    crowd.adopt(
        {
            "scenario": options.scenario,
            "hospital_id": plan.hospital_id,
            "schedules": [[s.id, s.department_id] for s in seeded],
            "opens_at": plan.opens_at.timestamp(),
            "arrival_window": shape.arrival_window,
            "hold_window": hold_window,
            "sandbox_url": sandbox_url,
        }
    )
    crowd.verdict = crowd.lifecycle = None
    log.info(
        "seeded %d schedules of %d numbers, opening in %.1fs",
        len(seeded),
        options.capacity,
        plan.opens_at.timestamp() - time.time(),
    )


def _prepare_payments(
    environment: Environment, admin: AdminClient, plan: SchedulePlan, sandbox_url: str
) -> float:
    """A paid run: the sandbox provider's notices go to this server, and the shape learns
    how long the server lets an unpaid hold live. Returns that hold window (seconds)."""
    if not sandbox_url:
        raise RuntimeError(
            "paid scenarios need the server's sandbox provider: --sandbox-url (or "
            "SLOTRUSH_PAY_SANDBOX_URL), e.g. from `slotrush sandbox-pay`"
        )
    assert environment.host is not None
    point_sandbox_at(sandbox_url, environment.host)
    hold_window = probe_hold_window(admin, plan)
    if isinstance(environment.shape_class, ScenarioShape):
        environment.shape_class.chosen.hold_window = hold_window
    log.info("unpaid holds live %.1fs on this server", hold_window)
    return hold_window


def _check(environment: Environment, crowd: Crowd, tally: Tally) -> Verdict:
    assert environment.host is not None
    verdict = check(AdminClient(environment.host, crowd.secret), tally)
    crowd.verdict = verdict
    return verdict


def _check_lifecycle(environment: Environment, crowd: Crowd) -> bool:
    """Invariants 8-10 and the money of the run's hospital, when the database is known."""
    options = environment.parsed_options
    database_url = getattr(options, "database_url", "") if options is not None else ""
    if not database_url or crowd.hospital_id is None:
        return True
    lifecycle = check_lifecycle_at(database_url, crowd.hospital_id)
    crowd.lifecycle = lifecycle
    print(lifecycle.report(), flush=True)
    return lifecycle.ok


# --- distributed: plans down, tallies up ---------------------------------------------------


def _adopt_plan(environment: Environment, msg: Any, **_: Any) -> None:
    crowd_of(environment).adopt(msg.data)


def _send_tally(environment: Environment, msg: Any, **_: Any) -> None:
    runner = environment.runner
    assert isinstance(runner, WorkerRunner)
    # Users still running would keep booking after the tally left: stop them first.
    runner.stop()
    runner.send_message(
        TALLY_MESSAGE,
        {
            "worker": runner.client_id,
            "tally": crowd_of(environment).tally.to_dict(),
        },
    )


def _receive_tally(environment: Environment, msg: Any, **_: Any) -> None:
    _worker_tallies[msg.data["worker"]] = Tally.from_dict(msg.data["tally"])


def _gather_worker_tallies(runner: MasterRunner) -> tuple[Tally, bool]:
    """Every worker's tally, merged; False when a worker never sent one (the check is then
    incomplete, and the run fails rather than pass on part of the evidence)."""
    workers = {client.id for client in runner.clients.values()}
    runner.send_message(TALLY_REQUEST)
    deadline = time.monotonic() + TALLY_WAIT_SECONDS
    while not workers <= set(_worker_tallies) and time.monotonic() < deadline:
        gevent.sleep(0.1)
    missing = workers - set(_worker_tallies)
    if missing:
        log.error("no tally from workers %s: the check misses their requests", sorted(missing))
    merged = Tally()
    for tally in _worker_tallies.values():
        merged.merge(tally)
    return merged, not missing
