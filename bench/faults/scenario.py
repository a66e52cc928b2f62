"""One scenario: one strategy's server under one fault while the crowd books, the resends, then
the checks."""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import aiohttp

from bench.chaos_proxy import ChaosProxy
from bench.child_server import LOOPBACK
from bench.faults.checker import Checker, count_outcomes
from bench.faults.config import SuiteConfig, uses_redis_state
from bench.faults.injectors import TIMED_FAULTS, Fault, Stage
from bench.faults.result import FIRST_SUCCESS_LIMIT, WINDOW_GRACE, ScenarioResult, Strike
from bench.faults.services import Services
from bench.faults.workload import Run, resolve, run_crowd, seed_run
from bench.history import BookingClient, Intent, Outcome
from bench.stack import ServerProcess, fresh_database, fresh_prefix
from loadtest.client.seed import AdminClient, SeededSchedule

_T = TypeVar("_T")


@dataclass
class _Wiring:
    """Who talks to whom: the crowd to the server (maybe through a proxy), the server to Redis
    (maybe through a proxy)."""

    server: ServerProcess
    crowd_url: str
    proxy: ChaosProxy | None


async def run_scenario(
    services: Services, strategy: str, fault: str, config: SuiteConfig, workdir: Path
) -> ScenarioResult:
    """One strategy under one fault; the result lists every check that failed."""
    began = time.monotonic()
    await asyncio.to_thread(services.ensure_running)
    run = Run(config, strategy, fault)
    result = ScenarioResult(strategy, fault)
    async with contextlib.AsyncExitStack() as stack:
        wiring = await _wire(stack, services, run, workdir)
        try:
            await _play(stack, services, run, wiring, result)
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
    result: ScenarioResult,
) -> None:
    """The crowd under the fault, the resends of unknown outcomes, then the checks."""
    probe_schedule = await seed_run(run, AdminClient(wiring.server.url, run.secret))
    session = await stack.enter_async_context(
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    )
    timeout = run.config.crowd.client_timeout
    direct = BookingClient(session, wiring.server.url, run.token, run.history, timeout=timeout)
    crowd = BookingClient(session, wiring.crowd_url, run.token, run.history, timeout=timeout)
    at_server = [c for c in (direct, crowd) if c.base_url == wiring.server.url]
    stage = Stage(services, wiring.server, run.config.crowd, run.secret, at_server)
    strikes, windows = await _crowd_under_fault(stage, wiring, run, crowd, probe_schedule)
    result.outage_seconds = [s.outage for s in strikes]
    result.first_success_seconds = [s.first_success for s in strikes]
    dropped = wiring.proxy.stats.dropped if wiring.proxy is not None else 0
    result.faults_injected = dropped or len(strikes)

    await resolve(direct, run)
    await _await_leases(run)
    count_outcomes(result, run)
    # The server's address may have changed with a restart.
    admin = AdminClient(wiring.server.url, run.secret)
    checker = Checker(result, run, session, wiring.server.url)
    await checker.check(admin, services, windows, strikes)


async def _crowd_under_fault(
    stage: Stage,
    wiring: _Wiring,
    run: Run,
    crowd: BookingClient,
    probe_schedule: SeededSchedule,
) -> tuple[list[Strike], list[tuple[float, float]]]:
    """Let the crowd book while the fault strikes; returns the strikes and the windows in
    which 503 busy is an expected answer."""
    crowd_started = time.monotonic()
    crowding = asyncio.create_task(run_crowd(crowd, run))
    strikes: list[Strike] = []
    try:
        if run.fault in TIMED_FAULTS:
            fault = TIMED_FAULTS[run.fault]()
            strikes = await _strike(fault, stage, stage.clients[0], run, probe_schedule)
    except BaseException:
        crowding.cancel()
        raise
    await crowding
    windows = [s.window for s in strikes]
    if run.proxy_fault is not None and run.proxy_fault.busy_expected:
        windows.append((crowd_started, time.monotonic() + WINDOW_GRACE))
    if wiring.proxy is not None:
        wiring.proxy.drop_rate = 0.0  # the fault ends with the crowd; the checks run in calm
    return strikes, windows


async def _wire(
    stack: contextlib.AsyncExitStack, services: Services, run: Run, workdir: Path
) -> _Wiring:
    """Start the proxy the fault needs and the server, on a database and key prefix of their
    own; `stack` stops and removes them all."""
    config = run.config
    # The fault names the database and the key prefix: a strategy given as module:Class
    # would make the database name too long for PostgreSQL.
    database_url = await _enter_in_thread(stack, fresh_database(services.postgres.url, run.fault))
    run.prefix = await _enter_in_thread(stack, fresh_prefix(services.redis.url, run.fault))
    proxy = None
    redis_url = services.redis.url
    if run.proxy_fault is not None:
        # A proxy in front of the server learns the server's port once it has one.
        upstream = services.redis.port if run.proxy_fault.site == "redis" else 0
        proxy = ChaosProxy(LOOPBACK, upstream, drop_rate=config.drop_rate, seed=config.seed)
        await stack.enter_async_context(proxy)
        if run.proxy_fault.site == "redis":
            redis_url = f"redis://{LOOPBACK}:{proxy.port}/0"
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "SLOTRUSH_SECRET": run.secret,
        "SLOTRUSH_REDIS_PREFIX": run.prefix,
        "SLOTRUSH_LEASE_SECONDS": str(config.lease_seconds),
        "SLOTRUSH_RECONCILE_INTERVAL": str(config.reconcile_interval),
    }
    fault = TIMED_FAULTS.get(run.fault)
    workers = max(config.workers, fault.min_workers if fault is not None else 1)
    log = workdir / f"serve-{run.strategy.replace(':', '.')}-{run.fault}.log"
    server = ServerProcess(run.strategy, workers, env, log)
    stack.push_async_callback(asyncio.to_thread, server.stop)
    await asyncio.to_thread(server.start, run.secret)
    crowd_url = server.url
    if proxy is not None and run.proxy_fault is not None and run.proxy_fault.site == "server":
        proxy.upstream = (LOOPBACK, server.port)
        crowd_url = f"http://{LOOPBACK}:{proxy.port}"
    return _Wiring(server, crowd_url, proxy)


async def _enter_in_thread(
    stack: contextlib.AsyncExitStack, manager: AbstractContextManager[_T]
) -> _T:
    """Enter a blocking context manager (bench.stack's run their own event loop) in a thread;
    `stack` exits it in one too."""
    value = await asyncio.to_thread(manager.__enter__)
    stack.push_async_callback(asyncio.to_thread, manager.__exit__, None, None, None)
    return value


async def _strike(
    fault: Fault,
    stage: Stage,
    client: BookingClient,
    run: Run,
    probe_schedule: SeededSchedule,
) -> list[Strike]:
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
        probe = Intent(f"probe-{n}", probe_schedule.id, uuid.uuid4().hex)
        run.intents.append(probe)
        answer = await client.send_until_settled(
            probe,
            "probe",
            attempts=None,
            deadline=recovered + 3 * FIRST_SUCCESS_LIMIT,
            max_pause=0.2,
        )
        strikes.append(
            Strike(injected, recovered, answer.ended if answer.outcome is Outcome.OK else None)
        )
        await asyncio.sleep(1.0)
    return strikes


async def _await_leases(run: Run) -> None:
    """Wait until every lease a Redis strategy took has run out and been reconciled."""
    if not uses_redis_state(run.strategy):
        return
    config = run.config
    last = max((a.ended for a in run.history.attempts), default=time.monotonic())
    settle = config.lease_seconds + 5 * config.reconcile_interval + 0.5
    await asyncio.sleep(max(0.0, last + settle - time.monotonic()))
