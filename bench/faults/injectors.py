"""The faults: what each one breaks, how long the outage lasts and how it is undone. A new fault
is a `Fault` subclass (struck while the crowd books) or a `ProxyFault` (a chaos proxy losing
replies), added to its registry below."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from bench.embedded import EmbeddedRedis
from bench.faults.config import CrowdPlan, uses_redis_state
from bench.faults.services import Services, running_workers, worker_pids
from bench.history import BookingClient, Intent
from bench.sandbox import SandboxProcess
from bench.stack import ServerProcess
from core.failpoints import CANCEL_AFTER_COMMIT, REFUND_AFTER_PROVIDER, SETTLE_AFTER_BATCH


@dataclass
class Stage:
    """What a fault acts upon."""

    services: Services
    server: ServerProcess
    crowd: CrowdPlan
    secret: str
    # Pointed at the server again when it restarts on another port.
    clients: list[BookingClient]
    # Books and cancels on the probes' schedule, for faults that need a request of their own.
    probe: Callable[[str], Awaitable[tuple[Intent, str]]]
    # A Redis key of the crowd's slot (hospital and date): a Redis Cluster fault strikes the
    # node that serves it.
    crowd_key: str
    # The sandbox payment provider of a paid run (a payment fault's), else None.
    sandbox: SandboxProcess | None = None
    # Asks for the day-end settlement of the paid day (a fault that settles_day), until the
    # server answers it.
    day_end: Callable[[], Coroutine[Any, Any, None]] | None = None

    async def restart_server(self) -> None:
        """What a process manager would do: start `serve` again."""
        await asyncio.to_thread(self.server.stop)
        await asyncio.to_thread(self.server.start, self.secret)
        for client in self.clients:
            client.base_url = self.server.url
        if self.sandbox is not None:
            await asyncio.to_thread(self.sandbox.notify, webhook_url(self.server.url))

    @property
    def provider(self) -> SandboxProcess:
        if self.sandbox is None:
            raise RuntimeError("a payment fault needs the run's sandbox provider")
        return self.sandbox


def webhook_url(server_url: str) -> str:
    """Where the sandbox provider's notices reach slotrush."""
    return f"{server_url}/v1/payments/sandbox/webhook"


class Fault(ABC):
    """A fault struck `strikes` times while the crowd books: inject, wait out the outage,
    recover, then time the first successful booking."""

    name: ClassVar[str]
    # Only meaningful where Redis holds state (the Redis strategies).
    redis_only: ClassVar[bool] = False
    # Struck at the suite's Redis Cluster, which the server then uses instead of its Redis.
    redis_cluster: ClassVar[bool] = False
    min_workers: ClassVar[int] = 1
    # Struck at payments: the crowd's schedules are paid, and a sandbox provider serves them.
    paid: ClassVar[bool] = False
    # Asks for a day-end settlement of paid bookings while it strikes.
    settles_day: ClassVar[bool] = False

    def __init__(self) -> None:
        # Where each strike fell, when it can fall in several places (the report shows it).
        self.struck_at: list[str] = []

    def outage(self, crowd: CrowdPlan) -> float:
        return 0.5

    def server_env(self, workdir: Path) -> dict[str, str]:
        """What the server must be started with for this fault to strike."""
        return {}

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


class RedisPrimaryKill(Fault):
    """SIGKILL the cluster primary that serves the crowd's slot; its replica elects itself
    once the node timeout has passed (no CLUSTER FAILOVER: the primary is gone). Then the
    killed node is started again, rejoins as the new primary's replica and syncs, so that a
    second strike (at the new primary) finds a replica in sync too.

    Replication is asynchronous: what the killed primary answered in its last moments may not
    have reached its replica. The server runs with SLOTRUSH_REDIS_REPLICA_WAIT_MS, so that no
    answer it acted on is among those writes (README, "Redis Cluster")."""

    name = "redis-primary-kill"
    redis_only = True
    redis_cluster = True

    def __init__(self) -> None:
        super().__init__()
        self._killed: EmbeddedRedis | None = None

    def server_env(self, workdir: Path) -> dict[str, str]:
        return {"SLOTRUSH_REDIS_REPLICA_WAIT_MS": str(_REPLICA_WAIT_MS)}

    def outage(self, crowd: CrowdPlan) -> float:
        return 0.0  # recover() waits for the replica to take over

    async def inject(self, stage: Stage) -> None:
        cluster = stage.services.redis_cluster
        self._killed = await asyncio.to_thread(cluster.serving, stage.crowd_key)
        await asyncio.to_thread(self._killed.kill, signal.SIGKILL)

    async def recover(self, stage: Stage) -> None:
        assert self._killed is not None
        cluster, killed = stage.services.redis_cluster, self._killed
        await asyncio.to_thread(cluster.await_promotion, killed)
        await asyncio.to_thread(killed.start)
        await asyncio.to_thread(cluster.await_in_sync, killed)


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
        super().__init__()
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
    """SIGKILL one of several workers. A supervisor may replace it (slotrush's does), or stop
    the whole server; then restart it as a process manager would."""

    name = "worker-kill"
    min_workers = 2

    def __init__(self) -> None:
        super().__init__()
        self._workers: list[int] = []

    async def inject(self, stage: Stage) -> None:
        self._workers = worker_pids(stage.server)
        if len(self._workers) < 2:
            raise RuntimeError(f"worker-kill needs several workers; serve runs {self._workers}")
        os.kill(self._workers[0], signal.SIGKILL)

    async def recover(self, stage: Stage) -> None:
        await _after_a_worker_died(stage, self._workers)


class CancelCrash(Fault):
    """A worker dies between a cancellation's ledger commit and its Redis release: the
    failpoint of core.failpoints, armed while a probe cancels its booking. Its number must
    come back all the same, and the patient must be able to book again."""

    name = "cancel-crash"

    def __init__(self) -> None:
        super().__init__()
        self._workers: list[int] = []
        self._switch: Path | None = None

    def server_env(self, workdir: Path) -> dict[str, str]:
        self._switch = workdir / f"failpoint-{os.getpid()}-{id(self)}"
        return {"SLOTRUSH_FAILPOINTS": f"{CANCEL_AFTER_COMMIT}:{self._switch}"}

    async def inject(self, stage: Stage) -> None:
        if self._switch is None:
            raise RuntimeError("cancel-crash needs the server started with its failpoint")
        intent, booking_id = await stage.probe("crash")
        self._workers = worker_pids(stage.server)
        self._switch.touch()
        try:
            await stage.clients[0].cancel(intent, booking_id, "probe")
        finally:
            self._switch.unlink()

    async def recover(self, stage: Stage) -> None:
        await _after_a_worker_died(stage, self._workers)


class PaymentFault(Fault):
    """A fault of the payment provider: struck while the paid crowd checks out, completes
    and is refunded."""

    paid = True


class PayProviderDown(PaymentFault):
    """The provider answers every checkout, refund and query 503 for the outage."""

    name = "pay-provider-down"

    def outage(self, crowd: CrowdPlan) -> float:
        return _PROVIDER_OUTAGE_SECONDS

    async def inject(self, stage: Stage) -> None:
        await asyncio.to_thread(stage.provider.control, {"fail": True})

    async def recover(self, stage: Stage) -> None:
        await asyncio.to_thread(stage.provider.control, {"fail": False})


class PayProviderSlow(PaymentFault):
    """The provider answers every call later than slotrush waits for it: each call times out
    at slotrush, and is carried out at the provider all the same (a refund slotrush then
    asks for again gets that one back)."""

    name = "pay-provider-slow"

    def server_env(self, workdir: Path) -> dict[str, str]:
        # Shorter than the crowd's own timeout, so the crowd hears slotrush's answer.
        return {"SLOTRUSH_PAY_TIMEOUT": str(_PAY_TIMEOUT_SECONDS)}

    def outage(self, crowd: CrowdPlan) -> float:
        return _PROVIDER_OUTAGE_SECONDS

    async def inject(self, stage: Stage) -> None:
        await asyncio.to_thread(stage.provider.control, {"timeout": 2 * _PAY_TIMEOUT_SECONDS})

    async def recover(self, stage: Stage) -> None:
        await asyncio.to_thread(stage.provider.control, {"timeout": 0.0})


class PayProviderKill(PaymentFault):
    """SIGKILL the provider's process, then start it again on the same port (slotrush knows
    it by URL); it remembers what it answered and notifies again what it had not delivered
    (its journal, as a real provider's database)."""

    name = "pay-provider-kill"

    def outage(self, crowd: CrowdPlan) -> float:
        return 1.0

    async def inject(self, stage: Stage) -> None:
        await asyncio.to_thread(stage.provider.kill, signal.SIGKILL)

    async def recover(self, stage: Stage) -> None:
        await asyncio.to_thread(stage.provider.start)


class JobRunnerKill(PaymentFault):
    """SIGKILL a process running the durable jobs mid-work. serve's workers run them, so it
    is a worker: the first to reach a refund's failpoint (the provider refunded, the ledger
    not yet) or a day-end settlement's (a batch settled, the settlement not finished), armed
    while a day-end is asked for; if none reaches one within a few seconds, a worker is
    killed wherever it is (mid-expiry, mid-request). Then serve replaces it, or is restarted,
    and the day-end is asked for again until it answers."""

    name = "job-runner-kill"
    settles_day = True
    min_workers = 2

    def __init__(self) -> None:
        super().__init__()
        self._workers: list[int] = []
        self._switch: Path | None = None
        self._day_end: asyncio.Task[None] | None = None

    def server_env(self, workdir: Path) -> dict[str, str]:
        self._switch = workdir / f"failpoint-{os.getpid()}-{id(self)}"
        points = (REFUND_AFTER_PROVIDER, SETTLE_AFTER_BATCH)
        return {"SLOTRUSH_FAILPOINTS": ",".join(f"{p}:{self._switch}" for p in points)}

    def outage(self, crowd: CrowdPlan) -> float:
        return 0.0  # recover() waits for serve's verdict on the dead worker

    async def inject(self, stage: Stage) -> None:
        if self._switch is None or stage.day_end is None:
            raise RuntimeError("job-runner-kill needs its failpoints armed and a day to settle")
        self._workers = worker_pids(stage.server)
        self._switch.touch()
        try:
            self._day_end = asyncio.create_task(stage.day_end())
            deadline = time.monotonic() + _MID_WORK_SECONDS
            while time.monotonic() < deadline:
                if not set(self._workers) <= set(running_workers(stage.server)):
                    self.struck_at.append("at a failpoint")
                    return
                await asyncio.sleep(0.02)
            os.kill(self._workers[0], signal.SIGKILL)
            self.struck_at.append("anywhere")
        finally:
            self._switch.unlink()

    async def recover(self, stage: Stage) -> None:
        await _after_a_worker_died(stage, self._workers)
        if self._day_end is not None:
            await self._day_end


async def _after_a_worker_died(stage: Stage, workers: list[int]) -> None:
    """Wait for the supervisor's verdict on a dead worker: replaced, or the whole server gone
    (then restart it, as a process manager would)."""
    deadline = time.monotonic() + _SUPERVISOR_VERDICT_SECONDS
    while time.monotonic() < deadline:
        now = running_workers(stage.server)
        if not now:
            await stage.restart_server()
            return
        if not set(workers) <= set(now) and len(now) >= stage.server.workers:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(
        f"{_SUPERVISOR_VERDICT_SECONDS:.0f} s after a worker of {workers} died, serve neither "
        f"exited nor replaced it; it runs {worker_pids(stage.server)}"
    )


# Long enough for a replica on a busy machine; what a primary without one (just promoted,
# its old primary not back yet) adds to each batch.
_REPLICA_WAIT_MS = 200

# How long the payment provider stays down or slow, and how long slotrush waits for it then.
_PROVIDER_OUTAGE_SECONDS = 2.0
_PAY_TIMEOUT_SECONDS = 1.0
# How long job-runner-kill waits for a worker to reach a failpoint before killing one itself.
_MID_WORK_SECONDS = 3.0

# A supervisor gives its other workers this long to finish their requests (server.runner's
# shutdown timeout is 30 s) before it exits.
_SUPERVISOR_VERDICT_SECONDS = 35.0


@dataclass(frozen=True)
class ProxyFault:
    """A chaos proxy losing replies: in front of the server (lost 201s, resent by clients),
    of the server's Redis (lost script replies) or of its PostgreSQL (lost replies to
    commits that landed)."""

    name: str
    site: str
    redis_only: bool
    # Whether 503 is an expected answer while the proxy drops.
    busy_expected: bool


@dataclass(frozen=True)
class ReplyLoss(ProxyFault):
    """Every reply lost for `window` seconds, `strikes` times spread over the crowd, each
    struck while requests are in flight: the first `first_at` of a spacing into the crowd
    (0: as it arrives, while the Redis slots load)."""

    window: float = 1.0
    first_at: float = 0.0


RESPONSE_DROP = ProxyFault("response-drop", site="server", redis_only=False, busy_expected=False)
REDIS_REPLY_DROP = ReplyLoss(
    "redis-reply-drop", site="redis", redis_only=True, busy_expected=True, window=0.5
)
# Half a spacing in, bookings are being written: commits land with their replies lost.
POSTGRES_REPLY_DROP = ReplyLoss(
    "postgres-reply-drop",
    site="postgres",
    redis_only=False,
    busy_expected=True,
    window=1.5,
    first_at=0.5,
)

TIMED_FAULTS: dict[str, type[Fault]] = {
    f.name: f
    for f in (
        RedisKill,
        RedisPrimaryKill,
        PostgresImmediateStop,
        WorkerPause,
        WorkerKill,
        CancelCrash,
        PayProviderDown,
        PayProviderSlow,
        PayProviderKill,
        JobRunnerKill,
    )
}
PROXY_FAULTS: dict[str, ProxyFault] = {
    f.name: f for f in (RESPONSE_DROP, REDIS_REPLY_DROP, POSTGRES_REPLY_DROP)
}
FAULT_NAMES: tuple[str, ...] = (*TIMED_FAULTS, *PROXY_FAULTS)


def is_paid(fault: str) -> bool:
    """Whether the fault strikes at payments, so that its crowd pays."""
    return fault in TIMED_FAULTS and TIMED_FAULTS[fault].paid


def applies(fault: str, strategy: str) -> bool:
    redis_only = (
        PROXY_FAULTS[fault].redis_only if fault in PROXY_FAULTS else TIMED_FAULTS[fault].redis_only
    )
    return uses_redis_state(strategy) or not redis_only
