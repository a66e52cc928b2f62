"""The fault suite: a flash crowd books while the system under it crashes, stalls and loses
responses; afterwards no confirmed booking may be missing and no retry may have booked twice.

Every scenario (one strategy, one fault) gets its own database, Redis key prefix and
`slotrush serve` process, against a Redis (append-only, fsync always) and a PostgreSQL the
suite starts itself, never the machine's. Clients send every booking with an Idempotency-Key
and record each request as ok, failed or unknown (bench.history). After the crowd:
- every unknown is resent with its key until the answer is definite;
- every 201 a client saw is a booking its owner can read, and the only one the patient holds;
- a patient told "no" holds nothing; nothing is oversold (the audit, from PostgreSQL);
- for Redis strategies, once the lease has passed, Redis has exactly capacity - booked free
  numbers per schedule (a lost ledger write, or a resent take script, leaks none);
- after each restart a booking succeeds within FIRST_SUCCESS_LIMIT seconds;
- no 5xx outside the fault windows: 503 busy naming a failed store call is the expected
  answer inside one; a 503 busy that names none (a strategy giving up under contention, as
  API.md allows) is counted apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import aiohttp
import psutil
import redis.asyncio as aioredis

from bench.chaos_proxy import ChaosProxy
from bench.child_server import LOOPBACK
from bench.embedded import EmbeddedPostgres, EmbeddedRedis
from bench.history import Attempt, BookingClient, History, Intent, Outcome
from bench.stack import ServerProcess, describe_machine, fresh_database, fresh_prefix
from core.keys import KeySpace, slot_tag
from loadtest.client.seed import AdminClient, SchedulePlan, SeededSchedule, new_run_id, opening_in
from loadtest.client.tokens import new_secret, patient_token
from strategies import STRATEGIES

# The bar of the issue: the first booking after a restart succeeds within this many seconds.
FIRST_SUCCESS_LIMIT = 10.0
# Requests answered this long after a window closed still count as inside it: pools notice a
# dead connection on its next use.
WINDOW_GRACE = 2.0
# How long unknown outcomes are resent before they count as unresolved.
RESOLVE_SECONDS = 30.0
PROBE_CAPACITY = 1000
_READ_CONCURRENCY = 64
_RESOLVE_CONCURRENCY = 16
_EXAMPLES_LISTED = 25
_T = TypeVar("_T")


@dataclass(frozen=True)
class CrowdPlan:
    """The crowd: `patients` each want one number of one of `schedules` schedules; they arrive
    in bursts every `burst_interval` seconds over `duration` seconds, so the crowd is there
    before, during and after each fault."""

    patients: int
    schedules: int
    capacity: int
    duration: float
    burst_interval: float = 0.25
    # Sends per patient during the crowd (the first and the retries of an unknown outcome).
    attempts: int = 3
    client_timeout: float = 2.0


@dataclass(frozen=True)
class SuiteConfig:
    strategies: tuple[str, ...]
    faults: tuple[str, ...]
    crowd: CrowdPlan
    strikes: int = 2
    workers: int = 2
    drop_rate: float = 0.05
    lease_seconds: float = 2.0
    reconcile_interval: float = 0.2
    seed: int = 0


def uses_redis_state(strategy: str) -> bool:
    """Redis strategies keep the free numbers in Redis; the others keep nothing there."""
    return strategy.startswith("redis-")


# --- the system under test ------------------------------------------------------------------


class Services:
    """The suite's own Redis and PostgreSQL: a fault test may kill them, so never the
    machine's. Redis fsyncs every write, so a SIGKILL loses nothing it acknowledged."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.redis = EmbeddedRedis(workdir / "redis", appendfsync="always")
        self.postgres = EmbeddedPostgres(workdir / "postgres")

    def ensure_running(self) -> None:
        """Start whichever of the two a failed scenario left stopped."""
        for server in (self.redis, self.postgres):
            if not _running(server):
                server.start()


def _running(server: EmbeddedRedis | EmbeddedPostgres) -> bool:
    try:
        return server.pid > 0
    except RuntimeError:  # the embedded server's way of saying "not started"
        return False


@contextlib.contextmanager
def embedded_services() -> Iterator[Services]:
    base = Path(tempfile.mkdtemp(prefix="slotrush-faults-"))
    # mkdtemp makes it 0700; as root, PostgreSQL runs as `postgres`, who must get through it.
    base.chmod(0o755)
    services = Services(base)
    try:
        services.redis.start()
        services.postgres.start()
        yield services
    finally:
        services.redis.stop()
        services.postgres.stop()
        shutil.rmtree(base, ignore_errors=True)


def worker_pids(server: ServerProcess) -> list[int]:
    """The processes serving requests: the children of `serve`, or `serve` itself when it
    serves in-process."""
    tree = server.processes()
    if not tree:
        raise RuntimeError(f"slotrush serve is not running; log:\n{server.log_tail()}")
    workers = []
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in tree[0].children():
            # A supervisor spawning workers also runs multiprocessing's resource tracker; a
            # killed worker is a zombie until its supervisor reaps it.
            if child.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(
                child.cmdline()
            ):
                workers.append(child.pid)
    return workers or [tree[0].pid]


@dataclass
class Stage:
    """What a fault acts upon."""

    services: Services
    server: ServerProcess
    crowd: CrowdPlan
    secret: str
    # Pointed at the server again when it restarts on another port.
    clients: list[BookingClient]

    async def restart_server(self) -> None:
        """What a process manager would do: start `serve` again."""
        await asyncio.to_thread(self.server.stop)
        await asyncio.to_thread(self.server.start, self.secret)
        for client in self.clients:
            client.base_url = self.server.url


# --- faults ---------------------------------------------------------------------------------


class Fault(ABC):
    """A fault struck `strikes` times while the crowd books: inject, wait out the outage,
    recover, then time the first successful booking."""

    name: ClassVar[str]
    # Only meaningful where Redis holds state (the Redis strategies).
    redis_only: ClassVar[bool] = False
    min_workers: ClassVar[int] = 1

    def outage(self, crowd: CrowdPlan) -> float:
        return 0.5

    @abstractmethod
    async def inject(self, stage: Stage) -> None: ...

    async def recover(self, stage: Stage) -> None:
        """Undo the fault (restart, resume); nothing by default."""


class RedisKill(Fault):
    name = "redis-kill"
    redis_only = True

    async def inject(self, stage: Stage) -> None:
        await asyncio.to_thread(stage.services.redis.kill, signal.SIGKILL)

    async def recover(self, stage: Stage) -> None:
        await asyncio.to_thread(stage.services.redis.start)


class PostgresImmediateStop(Fault):
    name = "postgres-immediate"

    async def inject(self, stage: Stage) -> None:
        await asyncio.to_thread(stage.services.postgres.stop, "immediate")

    async def recover(self, stage: Stage) -> None:
        await asyncio.to_thread(stage.services.postgres.start)


class WorkerPause(Fault):
    """SIGSTOP one worker for longer than the clients wait, then SIGCONT: its requests time
    out at the client and are carried out afterwards."""

    name = "worker-pause"

    def __init__(self) -> None:
        self._paused: int | None = None

    def outage(self, crowd: CrowdPlan) -> float:
        return crowd.client_timeout + 1.0

    async def inject(self, stage: Stage) -> None:
        self._paused = worker_pids(stage.server)[0]
        os.kill(self._paused, signal.SIGSTOP)

    async def recover(self, stage: Stage) -> None:
        assert self._paused is not None
        os.kill(self._paused, signal.SIGCONT)


class WorkerKill(Fault):
    """SIGKILL one of several workers. A supervisor may replace it, or stop the whole server
    (slotrush's does, by design: a process manager restarts it cleanly); then restart it as
    a process manager would."""

    name = "worker-kill"
    min_workers = 2

    def __init__(self) -> None:
        self._killed: int | None = None

    async def inject(self, stage: Stage) -> None:
        workers = worker_pids(stage.server)
        if len(workers) < 2:
            raise RuntimeError(f"worker-kill needs several workers; serve runs {workers}")
        self._killed = workers[0]
        os.kill(self._killed, signal.SIGKILL)

    async def recover(self, stage: Stage) -> None:
        deadline = time.monotonic() + _SUPERVISOR_VERDICT_SECONDS
        while time.monotonic() < deadline:
            if not stage.server.alive():
                await stage.restart_server()
                return
            workers = worker_pids(stage.server)
            if self._killed not in workers and len(workers) >= stage.server.workers:
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(
            f"{_SUPERVISOR_VERDICT_SECONDS:.0f} s after worker {self._killed} was killed, serve "
            f"neither exited nor replaced it; it runs {worker_pids(stage.server)}"
        )


# A supervisor gives its other workers this long to finish their requests (server.runner's
# shutdown timeout is 30 s) before it exits.
_SUPERVISOR_VERDICT_SECONDS = 35.0


@dataclass(frozen=True)
class ProxyFault:
    """A chaos proxy dropping responses for the whole crowd, in front of the server (lost 201s,
    resent by clients) or of the server's Redis (lost script replies, resent or reconciled)."""

    name: str
    site: str
    redis_only: bool
    # Whether 503 is an expected answer while the proxy drops.
    busy_expected: bool


RESPONSE_DROP = ProxyFault("response-drop", site="server", redis_only=False, busy_expected=False)
REDIS_REPLY_DROP = ProxyFault("redis-reply-drop", site="redis", redis_only=True, busy_expected=True)

TIMED_FAULTS: dict[str, type[Fault]] = {
    f.name: f for f in (RedisKill, PostgresImmediateStop, WorkerPause, WorkerKill)
}
PROXY_FAULTS: dict[str, ProxyFault] = {f.name: f for f in (RESPONSE_DROP, REDIS_REPLY_DROP)}
FAULT_NAMES: tuple[str, ...] = (*TIMED_FAULTS, *PROXY_FAULTS)

FULL = SuiteConfig(
    strategies=tuple(sorted(STRATEGIES)),
    faults=FAULT_NAMES,
    crowd=CrowdPlan(patients=600, schedules=4, capacity=120, duration=6.0),
)
# Sized for `make test`: a small crowd, one strike, one worker unless the fault needs more.
QUICK = replace(
    FULL,
    crowd=CrowdPlan(patients=240, schedules=2, capacity=90, duration=3.0),
    strikes=1,
    workers=1,
)


def applies(fault: str, strategy: str) -> bool:
    redis_only = (
        PROXY_FAULTS[fault].redis_only if fault in PROXY_FAULTS else TIMED_FAULTS[fault].redis_only
    )
    return uses_redis_state(strategy) or not redis_only


@dataclass
class Strike:
    injected: float
    recovered: float
    first_success_at: float | None

    @property
    def first_success(self) -> float | None:
        """Seconds from recovery to the first 201."""
        if self.first_success_at is None:
            return None
        return round(self.first_success_at - self.recovered, 3)

    @property
    def outage(self) -> float:
        """Seconds from the fault to its recovery (restart done, process resumed)."""
        return round(self.recovered - self.injected, 3)

    @property
    def window(self) -> tuple[float, float]:
        closed = self.first_success_at if self.first_success_at is not None else self.recovered
        return self.injected, closed + WINDOW_GRACE


# --- one scenario ---------------------------------------------------------------------------


@dataclass
class ScenarioResult:
    strategy: str
    fault: str
    # Strikes of a timed fault, or responses a chaos proxy dropped.
    faults_injected: int = 0
    requests: int = 0
    ok: int = 0
    failed: int = 0
    unknown: int = 0
    # Failed requests that never reached a server: the connection was refused.
    refused: int = 0
    patients: int = 0
    # Patients who saw at least one unknown outcome, and what their retries ended in.
    uncertain: int = 0
    unknown_resolved_booked: int = 0
    unknown_resolved_none: int = 0
    # Patients without a definite answer even after the resends.
    unresolved: int = 0
    lost: int = 0
    double_booked: int = 0
    told_no_but_booked: int = 0
    oversold: int = 0
    audit_mismatches: int = 0
    redis_mismatches: int | None = None
    server_errors_outside_windows: int = 0
    # 503 busy answers outside the windows from a strategy that gave up under contention.
    gave_up_outside_windows: int = 0
    outage_seconds: list[float] = field(default_factory=list)
    first_success_seconds: list[float | None] = field(default_factory=list)
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


@dataclass
class _Run:
    """What one scenario builds up while it runs."""

    config: SuiteConfig
    strategy: str
    fault: str
    secret: str = field(default_factory=new_secret)
    prefix: str = ""
    history: History = field(default_factory=History)
    intents: list[Intent] = field(default_factory=list)
    schedules: list[SeededSchedule] = field(default_factory=list)
    visit_date: dt.date = field(default_factory=dt.date.today)
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def proxy_fault(self) -> ProxyFault | None:
        return PROXY_FAULTS.get(self.fault)

    def token(self, patient_id: str) -> str:
        token = self._tokens.get(patient_id)
        if token is None:
            token = self._tokens[patient_id] = patient_token(self.secret, patient_id)
        return token


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
    run = _Run(config, strategy, fault)
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
    run: _Run,
    wiring: _Wiring,
    result: ScenarioResult,
) -> None:
    """The crowd under the fault, the resends of unknown outcomes, then the checks."""
    probe_schedule = await _seed(run, AdminClient(wiring.server.url, run.secret))
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

    await _resolve(direct, run)
    await _await_leases(run)
    _count_outcomes(result, run)
    # The server's address may have changed with a restart.
    admin = AdminClient(wiring.server.url, run.secret)
    checker = _Checker(result, run, session, wiring.server.url)
    await checker.check(admin, services, windows, strikes)


async def _crowd_under_fault(
    stage: Stage,
    wiring: _Wiring,
    run: _Run,
    crowd: BookingClient,
    probe_schedule: SeededSchedule,
) -> tuple[list[Strike], list[tuple[float, float]]]:
    """Let the crowd book while the fault strikes; returns the strikes and the windows in
    which 503 busy is an expected answer."""
    crowd_started = time.monotonic()
    crowding = asyncio.create_task(_run_crowd(crowd, run))
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
    stack: contextlib.AsyncExitStack, services: Services, run: _Run, workdir: Path
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


async def _seed(run: _Run, admin: AdminClient) -> SeededSchedule:
    """Create the crowd's schedules and the probes' one; returns the probes' schedule."""
    crowd = run.config.crowd
    run_id = new_run_id()
    # Opened a second ago: the crowd books at once, and a server clock a hair behind ours
    # cannot answer not_open.
    opens_at = opening_in(-1.0)
    crowd_plan = SchedulePlan(run_id, crowd.schedules, crowd.capacity, opens_at, label="crowd")
    probe_plan = SchedulePlan(run_id, 1, PROBE_CAPACITY, opens_at, label="probe")
    run.schedules = await asyncio.to_thread(admin.create_schedules, crowd_plan)
    [probe] = await asyncio.to_thread(admin.create_schedules, probe_plan)
    run.visit_date = dt.date.fromisoformat(crowd_plan.bodies()[0]["visit_date"])
    run.intents = [
        Intent(f"crowd-{n}", run.schedules[n % len(run.schedules)].id, uuid.uuid4().hex)
        for n in range(crowd.patients)
    ]
    return probe


async def _run_crowd(client: BookingClient, run: _Run) -> None:
    crowd = run.config.crowd
    bursts = max(1, round(crowd.duration / crowd.burst_interval))
    per_burst = -(-len(run.intents) // bursts)
    started = time.monotonic()
    deadline = started + crowd.duration + 2 * crowd.client_timeout

    async def patient(n: int, intent: Intent) -> None:
        await asyncio.sleep(started + (n // per_burst) * crowd.burst_interval - time.monotonic())
        await client.send_until_settled(intent, "crowd", attempts=crowd.attempts, deadline=deadline)

    await asyncio.gather(*(patient(n, intent) for n, intent in enumerate(list(run.intents))))


async def _strike(
    fault: Fault,
    stage: Stage,
    client: BookingClient,
    run: _Run,
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


async def _resolve(client: BookingClient, run: _Run) -> None:
    """Resend every intent whose outcome is still open with its key, until it is settled; a
    few at a time, so that the resends do not become a second crowd."""
    deadline = time.monotonic() + RESOLVE_SECONDS
    await _bounded(
        [
            client.send_until_settled(intent, "resolve", attempts=None, deadline=deadline)
            for intent in run.history.unsettled(run.intents)
        ],
        _RESOLVE_CONCURRENCY,
    )


async def _await_leases(run: _Run) -> None:
    """Wait until every lease a Redis strategy took has run out and been reconciled."""
    if not uses_redis_state(run.strategy):
        return
    config = run.config
    last = max((a.ended for a in run.history.attempts), default=time.monotonic())
    settle = config.lease_seconds + 5 * config.reconcile_interval + 0.5
    await asyncio.sleep(max(0.0, last + settle - time.monotonic()))


def _count_outcomes(result: ScenarioResult, run: _Run) -> None:
    history = run.history
    counts = history.outcome_counts()
    result.requests = len(history.attempts)
    result.ok, result.failed = counts[Outcome.OK], counts[Outcome.FAILED]
    result.unknown = counts[Outcome.UNKNOWN]
    result.refused = sum(
        1 for a in history.attempts if a.outcome is Outcome.FAILED and a.status is None
    )
    result.patients = len(run.intents)
    uncertain = {a.intent for a in history.attempts if a.outcome is Outcome.UNKNOWN}
    result.uncertain = len(uncertain)
    result.unresolved = len(history.unsettled(run.intents))
    for intent in uncertain:
        last = history.last(intent)
        if last is not None and last.settled:
            if last.outcome is Outcome.OK:
                result.unknown_resolved_booked += 1
            else:
                result.unknown_resolved_none += 1


# --- checks ---------------------------------------------------------------------------------


class _Checker:
    """Compares what the clients were told with what the ledger (and Redis) hold."""

    def __init__(
        self, result: ScenarioResult, run: _Run, session: aiohttp.ClientSession, base_url: str
    ) -> None:
        self.result = result
        self.run = run
        self.session = session
        self.base_url = base_url
        self.listed = self.unlisted = 0

    def problem(self, text: str) -> None:
        self.result.problems.append(text)

    def example(self, text: str) -> None:
        """A problem of one patient: the figures count every one, a few are listed."""
        if self.listed < _EXAMPLES_LISTED:
            self.listed += 1
            self.problem(text)
        else:
            self.unlisted += 1

    async def check(
        self,
        admin: AdminClient,
        services: Services,
        windows: Sequence[tuple[float, float]],
        strikes: Sequence[Strike],
    ) -> None:
        booked = await self.check_patients()
        audit = await asyncio.to_thread(admin.audit)
        self.check_audit(audit, booked)
        if uses_redis_state(self.run.strategy):
            await self.check_redis(services.redis.url, audit)
        self.check_server_errors(windows)
        self.check_recoveries(strikes)
        self.check_answers()

    def check_recoveries(self, strikes: Sequence[Strike]) -> None:
        for n, strike in enumerate(strikes):
            seconds = strike.first_success
            if seconds is None or seconds > FIRST_SUCCESS_LIMIT:
                probe = f"probe-{n}"
                answers = _answers(
                    a for a in self.run.history.attempts if a.intent.patient_id == probe
                )
                self.problem(
                    f"strike {n}: the first booking after recovery took {seconds} s; "
                    f"the probe was answered {answers}"
                )

    def check_answers(self) -> None:
        """Every outcome ended definite, and every 201 named its booking."""
        history = self.run.history
        if self.result.unresolved:
            last = _answers(history.last(i) for i in history.unsettled(self.run.intents))
            self.problem(
                f"{self.result.unresolved} unknown outcomes never got a definite answer; "
                f"last answers: {last}"
            )
        if any(a.detail == "unreadable-201" for a in history.attempts):
            self.problem("some 201 answers carried no booking id")

    async def check_patients(self) -> dict[str, int]:
        """Every confirmed booking exists once, as its owner sees it; a patient told "no"
        holds nothing. Returns the active bookings per schedule the patients hold."""
        history, result = self.run.history, self.result
        holdings = await self.holdings()
        views = await self.owner_views()
        booked: dict[str, int] = {}
        for intent in self.run.intents:
            held = holdings[intent.patient_id]
            booked[intent.schedule_id] = booked.get(intent.schedule_id, 0) + len(held)
            confirmed = history.booking_ids(intent)
            if len(confirmed) > 1 or len(held) > 1:
                result.double_booked += 1
                self.example(
                    f"{intent.patient_id}: one key, 201s for {sorted(confirmed)}, holds {held}"
                )
            for booking_id in confirmed:
                view = views.get(booking_id)
                if booking_id not in held or view is None or view.get("status") != "booked":
                    result.lost += 1
                    self.example(f"LOST: 201 {booking_id} to {intent.patient_id}, owner: {view}")
            last = history.last(intent)
            if held and not confirmed and last is not None and last.settled:
                result.told_no_but_booked += 1
                self.example(
                    f"{intent.patient_id} was last answered {last.status} {last.detail} "
                    f"({last.phase}) but holds {held}"
                )
        if self.unlisted:
            self.problem(f"... and {self.unlisted} more patients' problems like those above")
        return booked

    async def holdings(self) -> dict[str, list[str]]:
        """Each patient's active bookings on the schedule they wanted, from GET /v1/me/bookings."""
        wanted = {i.patient_id: i.schedule_id for i in self.run.intents}

        async def held(patient_id: str) -> list[str]:
            answer = await self.get("/v1/me/bookings", patient_id)
            assert answer is not None
            return [
                str(b["id"])
                for b in answer["bookings"]
                if str(b["schedule_id"]) == wanted[patient_id] and b["status"] == "booked"
            ]

        found = await _bounded([held(p) for p in wanted])
        return dict(zip(wanted, found, strict=True))

    async def owner_views(self) -> dict[str, dict[str, Any] | None]:
        """GET /v1/bookings/{id} as the owner, for every id a client saw in a 201."""
        owners = {
            a.booking_id: a.intent.patient_id
            for a in self.run.history.attempts
            if a.booking_id is not None
        }

        async def view(booking_id: str, patient_id: str) -> dict[str, Any] | None:
            answer = await self.get(f"/v1/bookings/{booking_id}", patient_id)
            return answer["booking"] if answer is not None else None

        found = await _bounded([view(b, p) for b, p in owners.items()])
        return dict(zip(owners, found, strict=True))

    async def get(self, path: str, patient_id: str) -> dict[str, Any] | None:
        """A patient's read; None for a 404."""
        headers = {"Authorization": f"Bearer {self.run.token(patient_id)}"}
        async with self.session.get(self.base_url + path, headers=headers) as response:
            if response.status == 404:
                return None
            response.raise_for_status()
            answer: dict[str, Any] = await response.json()
            return answer

    def check_audit(self, audit: dict[str, Any], booked: dict[str, int]) -> None:
        self.result.oversold = int(audit["oversold"])
        for name in ("oversold", "duplicate_numbers", "duplicate_patients", "limit_violations"):
            if audit[name]:
                self.problem(f"audit: {name} = {audit[name]}")
        for schedule in audit["schedules"]:
            held = booked.get(str(schedule["id"]))
            if held is not None and schedule["booked"] != held:
                self.result.audit_mismatches += 1
                self.problem(
                    f"schedule {schedule['id']}: the audit counts {schedule['booked']} booked, "
                    f"the patients hold {held}"
                )

    async def check_redis(self, redis_url: str, audit: dict[str, Any]) -> None:
        """Once the leases are over, Redis holds exactly capacity - booked free numbers."""
        booked = {str(s["id"]): int(s["booked"]) for s in audit["schedules"]}
        keys = KeySpace(self.run.prefix, self.run.strategy)
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        self.result.redis_mismatches = 0
        try:
            for schedule in self.run.schedules:
                slot = keys.slot(slot_tag(schedule.hospital_id, self.run.visit_date))
                free = await _free_numbers(client, slot.free(schedule.id))
                expected = schedule.capacity - booked[schedule.id]
                if free != expected:
                    self.result.redis_mismatches += 1
                    self.problem(
                        f"schedule {schedule.id}: Redis has {free} free numbers, "
                        f"the ledger leaves {expected}"
                    )
        finally:
            await client.aclose()

    def check_server_errors(self, windows: Sequence[tuple[float, float]]) -> None:
        """503 busy naming a failed store call is expected inside a fault window only; a
        503 busy naming none (the strategy gave up under contention, which API.md allows at
        any time) is counted, not failed; any other 5xx is a failure anywhere."""
        outside: list[Attempt] = []
        for a in self.run.history.attempts:
            if a.status is None or a.status < 500:
                continue
            if a.status == 503 and any(a.overlaps(start, end) for start, end in windows):
                continue
            if a.status == 503 and a.reason is None:
                self.result.gave_up_outside_windows += 1
            else:
                outside.append(a)
        self.result.server_errors_outside_windows = len(outside)
        if outside:
            # When they came, counted from the end of the window before them (if any).
            ends = [end for _, end in windows]
            after = [
                round(a.started - max((e for e in ends if e < a.started), default=a.started), 2)
                for a in outside
            ]
            reasons = dict(Counter(a.reason for a in outside))
            self.problem(
                f"{len(outside)} answers were 5xx outside the fault windows: {reasons}, "
                f"sent {min(after)}..{max(after)} s after the window before them closed"
            )


def _answers(attempts: Iterable[Attempt | None]) -> dict[str, int]:
    """How often each answer came: "503 busy", "None TimeoutError", ..."""
    return dict(Counter(f"{a.status} {a.detail}" for a in attempts if a is not None))


async def _free_numbers(client: aioredis.Redis, key: str) -> int:
    """The free numbers of a schedule: a zset (redis-lua) or a list (redis-queue). A sold-out
    schedule's key is gone, as Redis deletes empty collections."""
    kind = await client.type(key)
    if kind == "zset":
        return int(await client.zcard(key))
    if kind == "list":
        return int(await client.llen(key))
    return 0


async def _bounded(
    calls: Sequence[Coroutine[Any, Any, _T]], limit: int = _READ_CONCURRENCY
) -> list[_T]:
    """Await `calls`, at most `limit` at a time."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Coroutine[Any, Any, _T]) -> _T:
        async with gate:
            return await call

    return list(await asyncio.gather(*(one(c) for c in calls)))


# --- the suite, its report and its command --------------------------------------------------


async def run_suite(config: SuiteConfig, services: Services, workdir: Path) -> list[ScenarioResult]:
    results = []
    for strategy in config.strategies:
        for fault in config.faults:
            if not applies(fault, strategy):
                continue
            print(f"faults: {strategy} under {fault} ...", flush=True)
            try:
                result = await run_scenario(services, strategy, fault, config, workdir)
            except Exception as exc:  # one broken scenario must not hide the others' figures
                result = ScenarioResult(strategy, fault, problems=[f"crashed: {exc!r}"])
            print(f"  {'passed' if result.passed else 'FAILED'} in {result.seconds} s", flush=True)
            for problem in result.problems:
                print(f"  - {problem}", flush=True)
            results.append(result)
    return results


_COLUMNS = (
    ("strategy", "strategy"),
    ("fault", "fault"),
    ("injected", "faults_injected"),
    ("requests", "requests"),
    ("ok", "ok"),
    ("failed", "failed"),
    ("unknown", "unknown"),
    ("refused", "refused"),
    ("uncertain patients", "uncertain"),
    ("resolved: booked", "unknown_resolved_booked"),
    ("resolved: none", "unknown_resolved_none"),
    ("unresolved", "unresolved"),
    ("lost", "lost"),
    ("double", "double_booked"),
    ("told no, booked", "told_no_but_booked"),
    ("oversold", "oversold"),
    ("Redis off", "redis_mismatches"),
    ("5xx outside", "server_errors_outside_windows"),
    ("busy, gave up", "gave_up_outside_windows"),
    ("outage (s)", "outage_seconds"),
    ("first success (s)", "first_success_seconds"),
)


def markdown_table(results: Sequence[ScenarioResult]) -> str:
    def cell(value: object) -> str:
        if value is None:
            return "-"
        if isinstance(value, list):
            return ", ".join(cell(v) for v in value) or "-"
        return str(value)

    lines = [
        "| " + " | ".join(title for title, _ in _COLUMNS) + " | result |",
        "|" + "---|" * (len(_COLUMNS) + 1),
    ]
    for r in results:
        cells = [cell(getattr(r, name)) for _, name in _COLUMNS]
        lines.append("| " + " | ".join(cells) + f" | {'pass' if r.passed else 'FAIL'} |")
    return "\n".join(lines)


def write_report(
    results: Sequence[ScenarioResult],
    config: SuiteConfig,
    machine: dict[str, Any],
    results_dir: Path,
    command: str,
) -> tuple[Path, Path]:
    """results/faults-<date>-<host>.json and .md: the figures beside what made them."""
    host = socket.gethostname()
    stem = f"faults-{dt.date.today().isoformat()}-{host}"
    results_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "suite": "faults",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
        "passed": all(r.passed for r in results),
        "machine": machine,
        "config": asdict(config),
        "scenarios": [{**asdict(r), "passed": r.passed} for r in results],
    }
    json_path = results_dir / f"{stem}.json"
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    passed = sum(r.passed for r in results)
    crowd = config.crowd
    summary = [
        f"# Fault suite, {document['created']} on {host}",
        "",
        f"`{command}`: {passed} of {len(results)} scenarios passed.",
        "",
        f"Crowd: {crowd.patients} patients for {crowd.schedules} schedules of "
        f"{crowd.capacity} numbers, in bursts over {crowd.duration} s, client timeout "
        f"{crowd.client_timeout} s; {config.strikes} strikes per timed fault; "
        f"{config.drop_rate:.0%} of responses dropped by the chaos proxy; "
        f"`--workers {config.workers}`; lease {config.lease_seconds} s.",
        f"Commit {machine['commit']}{' plus uncommitted changes' if machine['dirty'] else ''}, "
        f"Redis {machine['redis']}, "
        f"PostgreSQL {machine['postgresql']}, Python {machine['python']}, "
        f"{machine['cores']} cores.",
        "",
        markdown_table(results),
        "",
    ]
    md_path = results_dir / f"{stem}.md"
    md_path.write_text("\n".join(summary))
    return json_path, md_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strategy",
        dest="strategies",
        action="append",
        choices=sorted(STRATEGIES),
        help="a strategy to test (repeatable; default: all)",
    )
    parser.add_argument(
        "--fault",
        dest="faults",
        action="append",
        choices=FAULT_NAMES,
        help="a fault to inject (repeatable; default: all)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="the small crowd and single strike of the CI run"
    )
    parser.add_argument("--patients", type=int, help="patients in the crowd")
    parser.add_argument("--strikes", type=int, help="strikes per timed fault")
    parser.add_argument("--workers", type=int, help="server processes (worker-kill takes 2+)")
    parser.add_argument("--drop-rate", type=float, help="share of responses the proxy drops")
    parser.add_argument("--seed", type=int, default=0, help="the chaos proxy's random seed")
    parser.add_argument("--results-dir", type=Path, default=Path("results"))


def config_from_args(args: argparse.Namespace) -> SuiteConfig:
    config = QUICK if args.quick else FULL
    config = replace(
        config,
        strategies=tuple(args.strategies or sorted(STRATEGIES)),
        faults=tuple(args.faults or FAULT_NAMES),
        seed=args.seed,
    )
    if args.patients:
        config = replace(config, crowd=replace(config.crowd, patients=args.patients))
    overrides = {"strikes": args.strikes, "workers": args.workers, "drop_rate": args.drop_rate}
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    command = "slotrush faults " + " ".join(sys.argv[2:])
    return asyncio.run(_main(config, args.results_dir, command.strip()))


async def _main(config: SuiteConfig, results_dir: Path, command: str) -> int:
    with embedded_services() as services:
        machine = await asyncio.to_thread(
            describe_machine, services.redis.url, services.postgres.url
        )
        results = await run_suite(config, services, services.workdir)
    print(markdown_table(results))
    json_path, md_path = write_report(results, config, machine, results_dir, command)
    print(f"wrote {json_path} and {md_path}")
    return 0 if results and all(r.passed for r in results) else 1
