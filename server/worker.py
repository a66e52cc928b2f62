"""`slotrush worker`: the durable jobs of core.jobs without an HTTP server.

It opens the stores (migrating the schema, as a server does) and the strategy the servers
use, so that numbers freed by its jobs go back through that strategy's release path, then
runs the jobs until SIGTERM or SIGINT and lets the ones under way finish.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import uvloop

from core.failures import STORE_FAILURES
from core.jobs.runner import JobRunner
from core.settings import Settings
from core.stores import open_stores
from server.courier import WebhookCourier
from strategies import strategy_class

log = logging.getLogger("slotrush.worker")


def work(settings: Settings) -> int:
    """Run the jobs until signalled: 0, or 1 if the stores could not be opened."""
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_work(settings))
    except STORE_FAILURES as exc:
        log.error("pid %d could not start: %s", os.getpid(), exc)
        return 1
    return 0


async def _work(settings: Settings) -> None:
    if settings.redis_url is None or settings.database_url is None:
        raise ValueError("a worker needs redis_url and database_url")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with (
        open_stores(
            settings, redis_url=settings.redis_url, database_url=settings.database_url
        ) as stores,
        WebhookCourier(settings.webhook_timeout) as courier,
    ):
        strategy = strategy_class(settings.strategy)(stores)
        await strategy.start()
        jobs = JobRunner(stores, strategy, courier)
        jobs.start()
        print(f"slotrush: running jobs with strategy {settings.strategy}", flush=True)
        try:
            await stop.wait()
        finally:
            await jobs.close()
            await strategy.close()
