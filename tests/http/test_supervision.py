"""--workers N under a supervisor: a worker killed under load is replaced while the others
serve, /healthz is 503 until the replacement serves, and a crash loop ends the server with
status 1. (A clean SIGTERM of several workers: test_processes.)"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp
import psutil

from bench.embedded import ServiceUrls
from tests.http.conftest import (
    Client,
    Served,
    ServeFn,
    server_env,
    start_server,
    unique,
)
from tests.http.test_processes import connections

REPLACED_WITHIN = 60.0


def worker_processes(served: Served, *, serving: bool) -> set[int]:
    """The server's live worker processes; with `serving`, those listening on its port."""
    try:
        children = psutil.Process(served.process.pid).children()
    except psutil.NoSuchProcess:
        return set()
    found = set()
    for child in children:
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            if serving and not connections(child.pid, served.port, psutil.CONN_LISTEN):
                continue
            if "resource_tracker" not in " ".join(child.cmdline()):
                found.add(child.pid)
        except psutil.NoSuchProcess:
            continue  # a worker that died meanwhile
    return found


async def fresh_call(url: str, path: str) -> tuple[int, dict[str, object] | None]:
    """GET on a connection of its own, so the kernel picks a worker that is alive."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        answer = await Client(session, url).call("GET", path)
    return answer.status, answer.json if answer.status == 503 else None


async def test_a_worker_killed_under_load_is_replaced_while_the_other_serves(
    serve: ServeFn, session: aiohttp.ClientSession
) -> None:
    served = await serve("--strategy", "pg-pessimistic", "--workers", "2")
    schedule = await Client(session, served.url).create_schedule(capacity=100_000)
    workers = worker_processes(served, serving=True)
    assert len(workers) == 2
    assert (await fresh_call(served.url, "/healthz"))[0] == 200

    answers: list[tuple[float, int]] = []
    stop = asyncio.Event()

    async def patients() -> None:
        # A new connection per booking, as many clients behind a balancer would arrive.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as own:
            client = Client(own, served.url)
            while not stop.is_set():
                try:
                    status = (await client.book(schedule["id"], unique("p"))).status
                except aiohttp.ClientError:
                    status = 0  # it was talking to the killed worker
                answers.append((time.monotonic(), status))

    load = [asyncio.create_task(patients()) for _ in range(4)]
    await asyncio.sleep(0.5)
    killed = min(workers)
    os.kill(killed, signal.SIGKILL)
    killed_at = time.monotonic()

    health: list[tuple[int, dict[str, object] | None]] = []
    async with asyncio.timeout(REPLACED_WITHIN):
        while True:
            health.append(await fresh_call(served.url, "/healthz"))
            now_serving = worker_processes(served, serving=True)
            if health[-1][0] == 200 and killed not in now_serving and len(now_serving) == 2:
                break
            await asyncio.sleep(0.05)
    replaced_at = time.monotonic()
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*load)

    # Until the replacement served, health said how many workers did.
    unhealthy = [problem for status, problem in health if status == 503]
    assert unhealthy, health
    for problem in unhealthy:
        assert problem is not None and problem["workers"] == {"serving": 1, "expected": 2}
    # The surviving worker kept booking meanwhile; nobody got an error answer.
    assert any(status == 201 and killed_at < at < replaced_at for at, status in answers)
    assert {status for _, status in answers} <= {0, 201}
    assert "replaced by" in served.log_text()
    assert await served.stop() == 0, served.log_text()


async def test_a_crash_loop_ends_the_server_with_status_1(
    service_urls: ServiceUrls, test_database_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    env = server_env(service_urls.redis_url, test_database_url, redis_prefix)
    served = await start_server(env, tmp_path / "serve.log", "--workers", "2")
    try:
        async with asyncio.timeout(REPLACED_WITHIN):
            # Every worker that appears is killed: the sixth death in a minute is one too many.
            while served.process.returncode is None:
                for pid in worker_processes(served, serving=False):
                    os.kill(pid, signal.SIGKILL)
                await asyncio.sleep(0.1)
        assert await served.process.wait() == 1
    finally:
        if served.process.returncode is None:
            served.process.kill()
            await served.process.wait()
    log = served.log_text()
    assert log.count("replaced by") == 5, log
    assert "stopping all" in log
