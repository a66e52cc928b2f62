"""The faults: what each one breaks, how long the outage lasts and how it is undone. A new fault
is a `Fault` subclass (struck while the crowd books) or a `ProxyFault` (a chaos proxy dropping
responses), added to its registry below."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from bench.faults.config import CrowdPlan, uses_redis_state
from bench.faults.services import Services, worker_pids
from bench.history import BookingClient
from bench.stack import ServerProcess


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
    """SIGKILL one of several workers. A supervisor may replace it (slotrush's does), or stop
    the whole server; then restart it as a process manager would."""

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


def applies(fault: str, strategy: str) -> bool:
    redis_only = (
        PROXY_FAULTS[fault].redis_only if fault in PROXY_FAULTS else TIMED_FAULTS[fault].redis_only
    )
    return uses_redis_state(strategy) or not redis_only
