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

from core.failures import STORE_FAILURES
from core.inventory import Inventory
from core.jobs import JOBS
from core.jobs.job import Job, JobContext
from core.notifications.delivery import Courier
from core.payments.providers import Providers
from core.queries import query
from core.stores import Stores

log = logging.getLogger("slotrush.jobs")

# Pause before starting again after the runner stopped on a failure.
_RESTART_SECONDS = 1.0
# How long stopping waits for the jobs under way (a stuck connection must not hold a server
# that is shutting down).
_STOP_SECONDS = 10.0
# How often the ticks of jobs with a `stale_after` are looked at for a dead claimant.
_WATCH_SECONDS = 1.0


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
        self._watch: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run_forever(), name="slotrush jobs")
            self._watch = asyncio.create_task(self._release_stale_ticks(), name="slotrush ticks")

    async def close(self) -> None:
        """Stop taking work and let the jobs under way finish, for a while: what is still
        running then is cancelled (its transaction rolls back; it runs again elsewhere)."""
        task, self._task = self._task, None
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            await asyncio.wait({watch})
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

    async def _release_stale_ticks(self) -> None:
        """pgqueuer gives a periodic tick whose process died to another one after 30 s
        without a heartbeat; the jobs that promise sooner (`stale_after`) get theirs back
        here, in every runner, so a runner killed mid-tick delays them by seconds only."""
        watched: dict[float, list[str]] = {}
        for job in self._jobs:
            if job.every is not None and job.stale_after is not None:
                watched.setdefault(job.stale_after, []).append(job.name)
        if not watched:
            return
        while not self._stopping.is_set():
            for seconds, names in watched.items():
                try:
                    released = await self._pool.fetch(query("release_stale_ticks"), names, seconds)
                except STORE_FAILURES as exc:
                    # The queuer meets the same outage and restarts; this looks again later.
                    log.debug("stale ticks not looked at: %r", exc)
                    continue
                for row in released:
                    log.warning("%s: a tick left by a dead process runs again", row["entrypoint"])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), _WATCH_SECONDS)

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
