"""The server as processes: a graceful SIGTERM in the middle of a rush, and --workers."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import aiohttp
import asyncpg
import psutil

from tests.http.conftest import Client, ServeFn, metric, schedule_in

RUSH = 600
SCHEDULES = 4
CAPACITY = 100


async def test_sigterm_during_a_rush_loses_no_confirmed_booking(
    serve: ServeFn, session: aiohttp.ClientSession, test_database_url: str
) -> None:
    served = await serve("--strategy", "pg-pessimistic")
    api = Client(session, served.url)
    schedules = await api.create_schedules(
        *(schedule_in(capacity=CAPACITY) for _ in range(SCHEDULES))
    )
    confirmed: list[tuple[float, dict[str, Any]]] = []
    under_way = asyncio.Event()

    async def patient(i: int) -> None:
        try:
            answer = await api.book(schedules[i % SCHEDULES]["id"], f"rush-{i}")
        except aiohttp.ClientError:
            return  # refused or cut off by the stopping server: nothing was promised
        if answer.status == 201:
            confirmed.append((time.monotonic(), answer.json["booking"]))
            if len(confirmed) == 50:
                under_way.set()

    rush = [asyncio.create_task(patient(i)) for i in range(RUSH)]
    await asyncio.wait_for(under_way.wait(), 60)
    signalled = time.monotonic()
    served.process.send_signal(signal.SIGTERM)
    await asyncio.gather(*rush)
    assert await served.process.wait() == 0, served.log_text()

    # Requests the server had taken in were finished, not dropped.
    assert any(at > signalled for at, _ in confirmed)
    conn = await asyncpg.connect(test_database_url)
    try:
        rows = await conn.fetch("SELECT id, patient_id, schedule_id, number, status FROM bookings")
        taken = await conn.fetchval(
            "SELECT count(*) FROM schedule_numbers WHERE booking_id IS NOT NULL"
        )
    finally:
        await conn.close()
    ledger = {str(r["id"]): r for r in rows}
    for _, booking in confirmed:
        row = ledger[booking["id"]]
        assert row["status"] == "booked"
        assert (row["patient_id"], str(row["schedule_id"]), row["number"]) == (
            booking["patient_id"],
            booking["schedule_id"],
            booking["number"],
        )
    # Nothing half-written: every active booking holds its number and nothing else does.
    assert taken == sum(1 for r in rows if r["status"] == "booked")


async def http_get(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A keep-alive connection of its own that has had one answer to GET `path`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return reader, writer


def connections(pid: int, port: int, status: str) -> int:
    return sum(
        1
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == status and c.laddr and c.laddr.port == port
    )


async def test_two_workers_share_the_port_and_add_up_their_metrics(serve: ServeFn) -> None:
    served = await serve("--strategy", "pg-pessimistic", "--workers", "2")
    supervisor = psutil.Process(served.process.pid)
    workers = [
        child.pid
        for child in supervisor.children()
        if connections(child.pid, served.port, psutil.CONN_LISTEN)
    ]
    assert len(workers) == 2

    held = [await http_get(served.port, "/ceiling") for _ in range(16)]
    try:
        # The kernel spread the connections: each worker holds some of them.
        assert all(connections(pid, served.port, psutil.CONN_ESTABLISHED) for pid in workers)
    finally:
        for _, writer in held:
            writer.close()
            await writer.wait_closed()

    # Whichever worker answers /metrics, it counts the requests of both.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as fresh:
        api = Client(fresh, served.url)
        counts = {
            await metric(api, "slotrush_http_requests_total", route="ceiling", status="200")
            for _ in range(6)
        }
    assert counts == {16}

    assert await served.stop() == 0, served.log_text()
    assert not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in workers
    )
