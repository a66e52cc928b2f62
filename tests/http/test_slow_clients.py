"""Slow and broken clients: a head or a body sent slowly cannot hold a connection, 500 of
them do not slow a crowd booking at the same time, a client that hangs up in the middle of
its body is a client abort (not a store failure), and what HTTP's parser refuses is
answered problem+json without a word of the input."""

from __future__ import annotations

import asyncio
import math
import time

import aiohttp
import orjson
import pytest

from tests.http.conftest import Client, Served, ServeFn, metric, patient_token, unique

HEADER_TIMEOUT = 2.0
DEADLINE = 2.0
SLOW_CLIENTS = 500
CROWD = 200
# How late a closing may come, on a machine busy with 500 clients.
LATE = 2.0
LINGER = 2.0


def head(path: str, patient: str | None = None, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1"]
    if patient is not None:
        lines.append(f"Authorization: Bearer {patient_token(patient)}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n").encode()


async def slow_client(port: int, first: bytes) -> tuple[float, float, bytes]:
    """Send `first`, then a byte every 0.2 s, never finishing. Seconds until an answer came
    (inf if none), until the server closed the connection, and the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(first)

    async def drip() -> None:
        while not writer.is_closing():
            await asyncio.sleep(0.2)
            writer.write(b"a")

    dripping = asyncio.create_task(drip())
    answered_after, answer = math.inf, b""
    try:
        while chunk := await reader.read(65536):
            answered_after = min(answered_after, time.monotonic() - started)
            answer += chunk
    except ConnectionResetError:
        # Closed with our drip unread: the kernel says so with a reset instead of an end.
        pass
    finally:
        dripping.cancel()
        writer.close()
    return answered_after, time.monotonic() - started, answer


async def crowd(api: Client, patients: int) -> float:
    """Seconds for `patients` new patients to book one schedule that does not run out."""
    schedule = await api.create_schedule(capacity=patients)
    started = time.monotonic()
    bookings = (api.book(schedule["id"], unique("p")) for _ in range(patients))
    answers = await asyncio.gather(*bookings)
    assert {a.status for a in answers} == {201}
    return time.monotonic() - started


async def test_slow_clients_are_closed_in_time_and_do_not_slow_a_crowd(
    serve: ServeFn, session: aiohttp.ClientSession
) -> None:
    timeouts = {
        "SLOTRUSH_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "SLOTRUSH_REQUEST_TIMEOUT": str(DEADLINE),
    }
    served = await serve("--strategy", "pg-pessimistic", env=timeouts)
    api = Client(session, served.url)
    schedule = await api.create_schedule()
    booking_path = f"/v1/schedules/{schedule['id']}/bookings"
    alone = await crowd(api, CROWD)

    # Half send a head that never ends, half a head and then a body that never ends.
    slow_heads = [head(booking_path) for _ in range(SLOW_CLIENTS // 2)]
    slow_bodies = [
        head(booking_path, unique("p"), Content_Length="1000") + b"\r\n{"
        for _ in range(SLOW_CLIENTS // 2)
    ]
    slow = [asyncio.create_task(slow_client(served.port, first)) for first in slow_heads]
    slow += [asyncio.create_task(slow_client(served.port, first)) for first in slow_bodies]
    await asyncio.sleep(0.5)
    beside_them = await crowd(api, CROWD)
    async with asyncio.timeout(30):
        closed = await asyncio.gather(*slow)

    assert beside_them < 3 * alone + 1.0, (alone, beside_them)
    heads, bodies = closed[: len(slow_heads)], closed[len(slow_heads) :]
    for _, closed_after, answer in heads:
        assert answer == b""
        assert HEADER_TIMEOUT / 2 < closed_after < HEADER_TIMEOUT + LATE
    for answered_after, closed_after, answer in bodies:
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b'"code":"request_timeout"' in answer
        assert DEADLINE / 2 < answered_after < DEADLINE + LATE
        # The server reads and drops what still comes for a moment, then closes.
        assert closed_after < answered_after + LINGER + LATE
    closings = {
        reason: await metric(api, "slotrush_connections_closed_total", reason=reason)
        for reason in ("header_timeout", "body_timeout")
    }
    assert closings == {"header_timeout": len(heads), "body_timeout": len(bodies)}


async def test_a_client_hanging_up_mid_body_is_counted_as_a_client_abort(
    api: Client, api_server: Served
) -> None:
    schedule = await api.create_schedule()

    async def answered(status: str) -> float:
        return await metric(
            api, "slotrush_http_requests_total", route="book", method="POST", status=status
        )

    aborted, busy = await answered("499"), await answered("503")
    _, writer = await asyncio.open_connection("127.0.0.1", api_server.port)
    path = f"/v1/schedules/{schedule['id']}/bookings"
    writer.write(head(path, unique("p"), Content_Length="100") + b"\r\n{")
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    await writer.wait_closed()

    for _ in range(50):
        if await answered("499") > aborted:
            break
        await asyncio.sleep(0.1)
    assert await answered("499") == aborted + 1
    assert await answered("503") == busy
    assert "the client went away" in api_server.log_text()


MARK = b"<evil-0123456789>"


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        pytest.param(b"GET " + MARK + b"\r\n\r\n", 400, "invalid_request", id="request line"),
        pytest.param(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-\x01" + MARK + b": 1\r\n\r\n",
            400,
            "invalid_request",
            id="header character",
        ),
        pytest.param(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + MARK * 600 + b"\r\n\r\n",
            431,
            "headers_too_large",
            id="header over 8 KiB",
        ),
        pytest.param(
            b"GET /" + MARK * 600 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            431,
            "headers_too_large",
            id="request line over 8 KiB",
        ),
        pytest.param(
            b"POST /v1/schedules/1/bookings HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + MARK + b"\r\n",
            400,
            "invalid_request",
            id="chunking",
        ),
    ],
)
async def test_what_the_parser_refuses_is_a_problem_that_echoes_nothing(
    api_server: Served, request_bytes: bytes, status: int, code: str
) -> None:
    answer = await exchange(api_server.port, [request_bytes])
    assert_problem(answer, status, code)


async def test_bad_chunking_after_the_head_is_a_problem_too(api_server: Served) -> None:
    chunked = head("/v1/schedules/1/bookings", unique("p"), Transfer_Encoding="chunked")
    answer = await exchange(api_server.port, [chunked + b"\r\n", MARK + b"\r\n"])
    assert_problem(answer, 400, "invalid_request")


async def exchange(port: int, parts: list[bytes]) -> bytes:
    """Send the parts a moment apart; everything answered until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.2)
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


def assert_problem(answer: bytes, status: int, code: str) -> None:
    head_bytes, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head_bytes.decode().split("\r\n")
    assert status_line.split()[1] == str(status), answer
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    assert headers["content-type"] == "application/problem+json"
    problem = orjson.loads(body)
    assert (problem["status"], problem["code"]) == (status, code)
    assert MARK not in answer and b"evil" not in answer
