"""Two `slotrush serve` instances behind a real HAProxy: a crowd booking through it gets
exactly the numbers there are, from both instances, and the audit finds no oversell."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from bench.embedded import ServiceUrls
from bench.haproxy import INSTALL_HINT, haproxy
from bench.stack import ServerProcess
from loadtest.client.seed import AdminClient, SchedulePlan, new_run_id, opening_in
from loadtest.client.tokens import admin_token, new_secret, patient_token

pytestmark = pytest.mark.skipif(__import__("shutil").which("haproxy") is None, reason=INSTALL_HINT)
CAPACITY = 5
CROWD = 40


async def book_all(url: str, secret: str, schedule_id: str) -> list[int]:
    async with aiohttp.ClientSession() as session:

        async def book(patient: str) -> int:
            headers = {"Authorization": f"Bearer {patient_token(secret, patient)}"}
            path = f"{url}/v1/schedules/{schedule_id}/bookings"
            async with session.post(path, headers=headers) as answer:
                await answer.read()
                return answer.status

        return await asyncio.gather(*(book(f"p{i}") for i in range(CROWD)))


async def served_bookings(url: str, secret: str) -> float:
    """The booking requests one instance answered, from its own /metrics."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(url + "/metrics", headers={"Authorization": admin_token(secret)}) as answer,
    ):
        text = await answer.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("slotrush_http_requests_total") and 'route="book"' in line
    )


async def test_two_instances_behind_haproxy_never_oversell(
    service_urls: ServiceUrls, test_database_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    secret = new_secret()
    env = {
        "REDIS_URL": service_urls.redis_url,
        "DATABASE_URL": test_database_url,
        "SLOTRUSH_SECRET": secret,
        "SLOTRUSH_REDIS_PREFIX": redis_prefix,
    }
    servers = [ServerProcess("redis-lua", 1, env, tmp_path / f"serve-{i}.log") for i in (1, 2)]
    try:
        for server in servers:
            await asyncio.to_thread(server.start, secret)
        with haproxy([server.port for server in servers], tmp_path) as url:
            admin = AdminClient(url, secret)
            plan = SchedulePlan(new_run_id(), 1, CAPACITY, opening_in(-1), departments=1)
            (schedule,) = await asyncio.to_thread(admin.create_schedules, plan)
            statuses = await book_all(url, secret, schedule.id)
            audit = await asyncio.to_thread(admin.audit)
        served = [await served_bookings(server.url, secret) for server in servers]
    finally:
        for server in servers:
            server.stop()
    assert statuses.count(201) == CAPACITY, statuses
    assert set(statuses) <= {201, 409}, statuses
    assert audit["oversold"] == 0 and audit["duplicate_numbers"] == 0
    # Round robin: both instances answered bookings.
    assert all(count > 0 for count in served), served
