"""Running the jobs of core.jobs in this process, with pgqueuer over the stores' pool.

Every `slotrush serve` worker runs one by default, and `slotrush worker` runs one alone:
however many run, each periodic tick and each queued item runs once (pgqueuer claims them
in PostgreSQL), so adding processes adds capacity, not repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from pgqueuer import PgQueuer
from pgqueuer.executors import DatabaseRetryEntrypointExecutor
from pgqueuer.models import Job as QueuedJob
from pgqueuer.models import Schedule as Tick

from core.inventory import Inventory
from core.jobs import JOBS
from core.jobs.job import Job, JobContext
from core.notifications.delivery import Courier
from core.payments.providers import Providers
from core.stores import Stores

log = logging.getLogger("slotrush.jobs")

# Pause before starting again after the runner stopped on a failure.
_RESTART_SECONDS = 1.0
# How long stopping waits for the jobs under way (a stuck connection must not hold a server
# that is shutting down).
_STOP_SECONDS = 10.0


class JobRunner:
    def __init__(
        self, stores: Stores, inventory: Inventory, courier: Courier, jobs: Sequence[Job] = JOBS
    ) -> None:
        self._pool = stores.pg
        self._providers = Providers.from_settings(stores.settings)
        self._context = JobContext(stores, inventory, self._providers, courier)
        self._jobs = jobs
        self._queuer: PgQueuer | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run_forever(), name="slotrush jobs")

    async def close(self) -> None:
        """Stop taking work and let the jobs under way finish, for a while: what is still
        running then is cancelled (its transaction rolls back; it runs again elsewhere)."""
        task, self._task = self._task, None
        if task is not None:
            await self._stop(task)
        await self._providers.close()

    async def _stop(self, task: asyncio.Task[None]) -> None:
        self._stopping.set()
        if self._queuer is not None:
            self._queuer.shutdown.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), _STOP_SECONDS)
        except TimeoutError:
            log.warning("jobs still running after %g s: cancelled", _STOP_SECONDS)
            task.cancel()
            # Bounded too: a job stuck in a driver call that ignores the cancellation is
            # left behind; closing the pool cuts its connection.
            await asyncio.wait({task}, timeout=_STOP_SECONDS)

    async def _run_forever(self) -> None:
        # pgqueuer stops on a lost connection (PostgreSQL restarted, a network cut): what it
        # had claimed is claimed again after its heartbeat, so starting afresh loses nothing.
        while not self._stopping.is_set():
            self._queuer = self._queuer_of_jobs()
            try:
                await self._queuer.run()
            except Exception as exc:
                if self._stopping.is_set():
                    return
                log.warning("jobs stopped (%r); starting again in %g s", exc, _RESTART_SECONDS)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), _RESTART_SECONDS)

    def _queuer_of_jobs(self) -> PgQueuer:
        queuer = PgQueuer.from_asyncpg_pool(self._pool)
        for job in self._jobs:
            if job.every is None:
                queuer.entrypoint(
                    job.name,
                    accepts_context=False,
                    executor_factory=DatabaseRetryEntrypointExecutor,
                )(_queued(job, self._context))
            else:
                queuer.schedule(job.name, job.every, accepts_context=False)(
                    _periodic(job, self._context)
                )
        return queuer


def _queued(job: Job, context: JobContext) -> Callable[[QueuedJob], Awaitable[None]]:
    async def run(item: QueuedJob) -> None:
        await job.run(context, item.payload)

    return run


def _periodic(job: Job, context: JobContext) -> Callable[[Tick], Awaitable[None]]:
    async def run(tick: Tick) -> None:
        await job.run(context, None)

    return run
