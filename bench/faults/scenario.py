"""One scenario: one strategy's server under one fault while the crowd books, the resends, then
the checks."""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from bench.chaos_proxy import ChaosProxy
from bench.child_server import LOOPBACK
from bench.faults import money
from bench.faults.checker import Checker, count_outcomes
from bench.faults.config import SuiteConfig, lease_settle_seconds, uses_redis_state
from bench.faults.injectors import TIMED_FAULTS, Fault, ReplyLoss, Stage, webhook_url
from bench.faults.paying import Wallet
from bench.faults.result import FIRST_SUCCESS_LIMIT, WINDOW_GRACE, ScenarioResult, Strike
from bench.faults.services import Services
from bench.faults.workload import RESOLVE_SECONDS, Run, resolve, run_crowd, seed_paid_day, seed_run
from bench.history import Attempt, BookingClient, Intent, Outcome
from bench.sandbox import SandboxProcess
from bench.stack import ServerProcess, fresh_database, fresh_prefix, shorten_holds
from core.keys import KeySpace, slot_tag
from loadtest.client.seed import AdminClient, ApiError

_T = TypeVar("_T")


@dataclass
class _Wiring:
    """Who talks to whom: the crowd to the server (maybe through a proxy), the server to Redis
    (maybe through a proxy)."""

    server: ServerProcess
    crowd_url: str
    proxy: ChaosProxy | None
    # The payment provider of a paid run.
    sandbox: SandboxProcess | None = None


async def run_scenario(
    services: Services, strategy: str, fault: str, config: SuiteConfig, workdir: Path
) -> ScenarioResult:
    """One strategy under one fault; the result lists every check that failed."""
    began = time.monotonic()
    await asyncio.to_thread(services.ensure_running)
    run = Run(config, strategy, fault)
    result = ScenarioResult(strategy, fault)
    timed = TIMED_FAULTS[fault]() if fault in TIMED_FAULTS else None
    async with contextlib.AsyncExitStack() as stack:
        wiring = await _wire(stack, services, run, workdir, timed)
        try:
            await _play(stack, services, run, wiring, timed, result)
        except Exception as exc:  # reported with the server's log, like a failed check
            result.problems.append("crashed: " + "".join(traceback.format_exception(exc)[-2:]))
        if result.problems:
            result.problems.append(f"server log tail:\n{wiring.server.log_tail()}")
    result.seconds = round(time.monotonic() - began, 1)
    return result


async def _play(
    stack: contextlib.AsyncExitStack,
    services: Services,
    run: Run,
    wiring: _Wiring,
    timed: Fault | None,
    result: ScenarioResult,
) -> None:
    """The crowd under the fault, the resends of unknown outcomes, then the checks."""
    await seed_run(run, AdminClient(wiring.server.url, run.secret))
    session = await stack.enter_async_context(
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    )
    timeout = run.config.crowd.client_timeout
    direct = BookingClient(session, wiring.server.url, run.token, run.history, timeout=timeout)
    crowd = BookingClient(session, wiring.crowd_url, run.token, run.history, timeout=timeout)
    at_server = [c for c in (direct, crowd) if c.base_url == wiring.server.url]

    async def probe_booking(label: str) -> tuple[Intent, str]:
        answer = await _probe(direct, run, f"probe-{label}", time.monotonic())
        if answer.outcome is not Outcome.OK or answer.booking_id is None:
            raise RuntimeError(f"the probe {label} could not book: {answer.status} {answer.detail}")
        return answer.intent, answer.booking_id

    stage = Stage(
        services,
        wiring.server,
        run.config.crowd,
        run.secret,
        at_server,
        probe_booking,
        crowd_key=_crowd_key(run),
        sandbox=wiring.sandbox,
    )
    if timed is not None and timed.settles_day:
        stage.day_end = await _paid_day(run, direct, stage)
    strikes, windows = await _crowd_under_fault(stage, wiring, run, crowd, timed)
    if timed is not None:
        result.struck_at = timed.struck_at
    result.outage_seconds = [s.outage for s in strikes]
    result.first_success_seconds = [s.first_success for s in strikes]
    dropped = wiring.proxy.stats.dropped if wiring.proxy is not None else 0
    result.faults_injected = dropped or len(strikes)

    await resolve(direct, run)
    await _await_leases(run)
    count_outcomes(result, run)
    if run.wallet is not None:
        result.payment_answers = dict(run.wallet.answers)
        still_open = await money.await_settled(run.database_url, run.config.payments.settle_seconds)
        if still_open is not None:
            result.problems.append(still_open)
        await money.check_money(result, run.database_url)
    # The server's address may have changed with a restart.
    admin = AdminClient(wiring.server.url, run.secret)
    checker = Checker(result, run, session, wiring.server.url)
    await checker.check(admin, windows, strikes)


async def _paid_day(
    run: Run, client: BookingClient, stage: Stage
) -> Callable[[], Coroutine[Any, Any, None]]:
    """Paid bookings of today, for a fault to settle at day-end while it strikes; returns
    what asks for that settlement until the server answers it."""
    admin = AdminClient(stage.server.url, run.secret)
    day, visit_date = await seed_paid_day(run, admin, client)

    async def day_end() -> None:
        deadline = time.monotonic() + RESOLVE_SECONDS
        path = f"/v1/admin/hospitals/{day.hospital_id}/day-end"
        while True:
            # The server's address may change with a restart.
            admin = AdminClient(stage.server.url, run.secret, timeout=RESOLVE_SECONDS)
            try:
                await asyncio.to_thread(
                    admin.request, "POST", path, {"date": visit_date.isoformat()}
                )
                return
            except (OSError, ApiError):
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.2)

    return day_end


async def _crowd_under_fault(
    stage: Stage, wiring: _Wiring, run: Run, crowd: BookingClient, timed: Fault | None
) -> tuple[list[Strike], list[tuple[float, float]]]:
    """Let the crowd book while the fault strikes; returns the strikes and the windows in
    which 503 busy is an expected answer."""
    crowd_started = time.monotonic()
    crowding = asyncio.create_task(run_crowd(crowd, run))
    strikes: list[Strike] = []
    windows: list[tuple[float, float]] = []
    proxy_fault = run.proxy_fault
    try:
        if timed is not None:
            strikes = await _strike(timed, stage, stage.clients[0], run)
            windows = [s.window for s in strikes]
        elif isinstance(proxy_fault, ReplyLoss) and wiring.proxy is not None:
            windows = await _lose_replies(wiring.proxy, proxy_fault, crowd, run)
        elif wiring.proxy is not None:
            wiring.proxy.drop_rate = run.config.drop_rate
    except BaseException:
        crowding.cancel()
        raise
    await crowding
    if proxy_fault is not None and proxy_fault.busy_expected and not windows:
        windows.append((crowd_started, time.monotonic() + WINDOW_GRACE))
    if wiring.proxy is not None:
        wiring.proxy.drop_rate = 0.0  # the fault ends with the crowd; the checks run in calm
    return strikes, windows


async def _lose_replies(
    proxy: ChaosProxy, fault: ReplyLoss, crowd: BookingClient, run: Run
) -> list[tuple[float, float]]:
    """Lose every reply for the fault's window, `strikes` times spread over the crowd; each
    only once requests are in flight, so that the loss meets some."""
    config = run.config
    spacing = config.crowd.duration / config.strikes
    first = time.monotonic() + fault.first_at * spacing
    windows = []
    for n in range(config.strikes):
        await asyncio.sleep(max(0.0, first + n * spacing - time.monotonic()))
        await crowd.requests_in_flight()
        began = time.monotonic()
        proxy.drop_rate = 1.0
        await asyncio.sleep(fault.window)
        proxy.drop_rate = 0.0
        windows.append((began, time.monotonic() + WINDOW_GRACE))
    return windows


async def _wire(
    stack: contextlib.AsyncExitStack,
    services: Services,
    run: Run,
    workdir: Path,
    timed: Fault | None,
) -> _Wiring:
    """Start the proxy the fault needs and the server, on a database and key prefix of their
    own; `stack` stops and removes them all."""
    config = run.config
    # The fault names the database and the key prefix: a strategy given as module:Class
    # would make the database name too long for PostgreSQL.
    run.database_url = await _enter_in_thread(
        stack, fresh_database(services.postgres.url, run.fault)
    )
    cluster = timed is not None and timed.redis_cluster
    run.redis_url = services.redis_cluster.url if cluster else services.redis.url
    run.prefix = await _enter_in_thread(stack, fresh_prefix(run.redis_url, run.fault))
    proxy = None
    redis_url, database_url = run.redis_url, run.database_url
    sandbox = None
    paid = timed is not None and timed.paid
    if paid:
        name = f"sandbox-{run.strategy.replace(':', '.')}-{run.fault}"
        sandbox = await _enter_in_thread(stack, SandboxProcess(workdir, name))
        payments = config.payments
        run.wallet = Wallet(sandbox.url, payments.window_seconds)
        await asyncio.to_thread(shorten_holds, run.database_url, payments.window_seconds)
    site = run.proxy_fault.site if run.proxy_fault is not None else None
    if site is not None:
        # Quiet until the crowd comes. A proxy in front of the server learns the server's
        # port once it has one.
        upstream = {"redis": services.redis.port, "postgres": services.postgres.port}
        proxy = ChaosProxy(LOOPBACK, upstream.get(site, 0), drop_rate=0.0, seed=config.seed)
        await stack.enter_async_context(proxy)
        if site == "redis":
            redis_url = f"redis://{LOOPBACK}:{proxy.port}/0"
        elif site == "postgres":
            database_url = _at_port(run.database_url, proxy.port)
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "SLOTRUSH_SECRET": run.secret,
        "SLOTRUSH_REDIS_PREFIX": run.prefix,
        "SLOTRUSH_LEASE_SECONDS": str(config.lease_seconds),
        "SLOTRUSH_RECONCILE_INTERVAL": str(config.reconcile_interval),
    }
    if sandbox is not None:
        env["SLOTRUSH_PAY_SANDBOX_URL"] = sandbox.url
    if cluster:
        # Named, not asked: the node REDIS_URL names may be the one a fault kills.
        env["SLOTRUSH_REDIS_CLUSTER"] = "1"
    if timed is not None:
        env |= timed.server_env(workdir)
    workers = max(config.workers, timed.min_workers if timed is not None else 1)
    log = workdir / f"serve-{run.strategy.replace(':', '.')}-{run.fault}.log"
    server = ServerProcess(run.strategy, workers, env, log)
    stack.push_async_callback(asyncio.to_thread, server.stop)
    await asyncio.to_thread(server.start, run.secret)
    if sandbox is not None:
        await asyncio.to_thread(sandbox.notify, webhook_url(server.url))
    crowd_url = server.url
    if proxy is not None and site == "server":
        proxy.upstream = (LOOPBACK, server.port)
        crowd_url = f"http://{LOOPBACK}:{proxy.port}"
    return _Wiring(server, crowd_url, proxy, sandbox)


def _crowd_key(run: Run) -> str:
    """A key of the slot the crowd's bookings go through (hospital and visit date)."""
    slot = KeySpace(run.prefix, run.strategy).slot(slot_tag(run.hospital_id, run.visit_date))
    return slot.free(run.schedules[0].id)


def _at_port(url: str, port: int) -> str:
    """The same URL on the loopback port of a proxy."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}{LOOPBACK}:{port}"))


async def _enter_in_thread(
    stack: contextlib.AsyncExitStack, manager: AbstractContextManager[_T]
) -> _T:
    """Enter a blocking context manager (bench.stack's run their own event loop) in a thread;
    `stack` exits it in one too."""
    value = await asyncio.to_thread(manager.__enter__)
    stack.push_async_callback(asyncio.to_thread, manager.__exit__, None, None, None)
    return value


async def _strike(fault: Fault, stage: Stage, client: BookingClient, run: Run) -> list[Strike]:
    """Strike `fault` the configured number of times while the crowd books; after each
    recovery, time the first successful booking of a fresh patient."""
    strikes: list[Strike] = []
    await asyncio.sleep(min(1.0, stage.crowd.duration / 5))
    for n in range(run.config.strikes):
        injected = time.monotonic()
        await fault.inject(stage)
        await asyncio.sleep(fault.outage(stage.crowd))
        await fault.recover(stage)
        recovered = time.monotonic()
        answer = await _probe(client, run, f"probe-{n}", recovered)
        strikes.append(
            Strike(injected, recovered, answer.ended if answer.outcome is Outcome.OK else None)
        )
        await asyncio.sleep(1.0)
    return strikes


async def _probe(client: BookingClient, run: Run, patient_id: str, since: float) -> Attempt:
    """A fresh patient books the probes' schedule, retrying until it succeeds or the time
    given for a recovery has passed."""
    if run.probe_schedule is None:
        raise RuntimeError("the run has no probes' schedule: seed it first")
    intent = run.new_intent(patient_id, run.probe_schedule.id)
    return await client.send_until_settled(
        intent, "probe", attempts=None, deadline=since + 3 * FIRST_SUCCESS_LIMIT, max_pause=0.2
    )


async def _await_leases(run: Run) -> None:
    """Wait until every lease a Redis strategy took has run out and been reconciled."""
    if not uses_redis_state(run.strategy):
        return
    config = run.config
    last = max((a.ended for a in run.history.attempts), default=time.monotonic())
    await asyncio.sleep(max(0.0, last + lease_settle_seconds(config) - time.monotonic()))
