"""The HTTP suite: `slotrush serve` as a real subprocess, spoken to over real sockets.

One pg-pessimistic server serves most of the package, on a database and Redis prefix of its
own (migrated by the server as it starts); tests stay out of each other's way by naming their
own hospitals and patients. A test that needs a server of its own (another strategy, SIGTERM,
workers, a dependency down) starts one with `serve`, on the test's own database and prefix.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
import msgspec
import orjson
import pytest
from multidict import CIMultiDictProxy
from prometheus_client.parser import text_string_to_metric_families

from bench.embedded import ServiceUrls
from bench.stack import fresh_database, fresh_prefix
from core.tokens import issue_token
from server import shapes
from tests.sandbox import sandbox_process

REPO = Path(__file__).resolve().parents[2]
SECRET = "http-suite-secret-0123456789abcdef0123456789abcdef"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 40.0
S = TypeVar("S", bound=msgspec.Struct)


def unique(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


def patient_token(patient_id: str) -> str:
    return issue_token(SECRET, subject=patient_id)


def admin_token() -> str:
    return issue_token(SECRET, admin=True)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- the server process ---------------------------------------------------------------------


@dataclass
class Served:
    url: str
    process: asyncio.subprocess.Process
    log: Path
    stdout: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log_text(self) -> str:
        return _read(self.log)

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the server and wait for it; its exit status."""
        if self.process.returncode is None:
            self.process.send_signal(sig)
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
                raise AssertionError(f"server ignored signal {sig}:\n{self.log_text()}") from None
        status = self.process.returncode
        assert status is not None
        return status


def _read(log: Path) -> str:
    return log.read_text(errors="replace")


def server_env(redis_url: str, database_url: str, prefix: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        REDIS_URL=redis_url,
        DATABASE_URL=database_url,
        SLOTRUSH_REDIS_PREFIX=prefix,
        SLOTRUSH_SECRET=SECRET,
    )
    env.update(extra)
    return env


async def start_server(env: dict[str, str], log: Path, *args: str) -> Served:
    """`slotrush serve --port 0 ARGS`, once it has announced where it listens."""
    with log.open("ab") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--port",
            "0",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            env=env,
            cwd=REPO,
        )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            while True:
                line = (await process.stdout.readline()).decode()
                if not line:
                    await process.wait()
                    raise AssertionError(f"server exited: {_read(log)}")
                lines.append(line)
                if line.startswith("slotrush: serving"):
                    url = line.split(" on ", 1)[1].split()[0]
                    return Served(url, process, log, lines)
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise


ServeFn = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve(
    service_urls: ServiceUrls, test_database_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[ServeFn]:
    """Start servers of this test's own on its database and prefix; stopped (and required to
    exit cleanly) at the end."""
    started: list[Served] = []

    async def serve(*args: str, env: dict[str, str] | None = None) -> Served:
        log = tmp_path / f"serve-{len(started)}.log"
        full_env = server_env(
            service_urls.redis_url, test_database_url, redis_prefix, **(env or {})
        )
        served = await start_server(full_env, log, *args)
        started.append(served)
        return served

    yield serve
    for served in started:
        status = await served.stop()
        assert status == 0, served.log_text()


@pytest.fixture(scope="package")
def shared_stores(service_urls: ServiceUrls) -> Iterator[tuple[str, str]]:
    """(database url, Redis prefix) of the package's server: an empty database, so the
    server's own schema migration at start is exercised too."""
    with (
        fresh_database(service_urls.database_url, "http") as database_url,
        fresh_prefix(service_urls.redis_url, "http") as prefix,
    ):
        yield database_url, prefix


@pytest.fixture(scope="package")
async def sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The package's payment provider: `slotrush sandbox-pay`, notifying the package's server."""
    async with sandbox_process(tmp_path_factory.mktemp("sandbox")) as url:
        yield url


@pytest.fixture(scope="package")
async def api_server(
    service_urls: ServiceUrls,
    shared_stores: tuple[str, str],
    sandbox_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Served]:
    database_url, prefix = shared_stores
    log = tmp_path_factory.mktemp("http") / "serve.log"
    env = server_env(
        service_urls.redis_url, database_url, prefix, SLOTRUSH_PAY_SANDBOX_URL=sandbox_url
    )
    served = await start_server(env, log, "--strategy", "pg-pessimistic")
    async with aiohttp.ClientSession() as session:
        webhook = {"webhook_url": f"{served.url}/v1/payments/sandbox/webhook"}
        async with session.post(f"{sandbox_url}/control", json=webhook) as told:
            assert told.status == 200, await told.text()
    yield served
    # Whatever the package sent it, this server never failed: no 500, no traceback.
    async with aiohttp.ClientSession() as session:
        failures = await metric(
            Client(session, served.url), "slotrush_http_requests_total", status="500"
        )
    assert await served.stop() == 0, served.log_text()
    assert failures == 0, served.log_text()
    assert "Traceback" not in served.log_text()


@pytest.fixture
async def shared_ledger(shared_stores: tuple[str, str]) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the package server's ledger, for what no endpoint does yet (settling a
    visit, back-dating a booking)."""
    conn = await asyncpg.connect(shared_stores[0])
    try:
        yield conn
    finally:
        await conn.close()


async def settle(
    conn: asyncpg.Connection, booking_id: str, status: str, created_at: dt.datetime | None = None
) -> None:
    """What a check-in, day-end settlement or cancellation leaves in the ledger; and when the
    booking was made, if not now."""
    await conn.execute(
        "UPDATE bookings SET status = $2, created_at = coalesce($3, created_at),"
        " cancelled_at = CASE WHEN $2 = 'cancelled' THEN now() END WHERE id = $1",
        int(booking_id),
        status,
        created_at,
    )


async def fill(conn: asyncpg.Connection, schedule_id: str, status: str = "booked") -> None:
    """Book every number of a schedule in one statement, each for a patient of its own."""
    await conn.execute(
        """
        WITH b AS (
            INSERT INTO bookings (schedule_id, patient_id, hospital_id, department_id,
                                  doctor_id, visit_date, period, fee_cents, number,
                                  verification_code, request_id, status)
            SELECT s.id, 'bulk-' || s.id || '-' || n, s.hospital_id, s.department_id,
                   s.doctor_id, s.visit_date, s.period, s.fee_cents, n,
                   'ABCDEF', gen_random_uuid(), $2
            FROM schedules s, generate_series(1, s.capacity) AS n WHERE s.id = $1
            RETURNING id, schedule_id, number
        )
        UPDATE schedule_numbers n SET booking_id = b.id FROM b
        WHERE n.schedule_id = b.schedule_id AND n.number = b.number
        """,
        int(schedule_id),
        status,
    )


# --- the client -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    raw_headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    def shaped(self, shape: type[S]) -> S:
        """The body as the server's `shape`: fails on a missing, extra or mistyped field."""
        return msgspec.convert(self.json, shape)

    def problem(
        self, status: int, code: str, extensions: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """Assert this is the RFC 9457 problem of API.md with `code` (and no members but
        `extensions` beyond the standard ones); the problem."""
        assert self.status == status, (self.status, self.body)
        assert self.headers["Content-Type"] == "application/problem+json", self.headers
        problem = self.json
        assert problem["type"] == "about:blank"
        assert problem["status"] == status
        assert problem["code"] == code, problem
        assert isinstance(problem["title"], str) and problem["title"]
        assert set(problem) <= {"type", "title", "status", "code", "detail", *extensions}
        assert b"Traceback" not in self.body
        return problem


class Client:
    """A keep-alive client of one server that reads every answer in full."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        all_headers = {**(bearer(token) if token else {}), **(headers or {})}
        if json is not None:
            data = orjson.dumps(json)
            all_headers.setdefault("Content-Type", "application/json")
        # BytesIO: aiohttp warns about large raw bytes bodies (a batch of 10,000 schedules).
        payload = None if data is None else io.BytesIO(data)
        async with self.session.request(
            method, self.url + path, data=payload, headers=all_headers, allow_redirects=False
        ) as response:
            body = await response.read()
            return Answer(response.status, response.headers, response.raw_headers, body)

    async def create_schedules(self, *items: dict[str, Any]) -> list[dict[str, Any]]:
        answer = await self.call(
            "POST", "/v1/admin/schedules", token=admin_token(), json={"schedules": list(items)}
        )
        assert answer.status == 201, answer.body
        answer.shaped(shapes.ScheduleList)
        schedules: list[dict[str, Any]] = answer.json["schedules"]
        return schedules

    async def create_schedule(self, **fields: Any) -> dict[str, Any]:
        (schedule,) = await self.create_schedules(schedule_in(**fields))
        return schedule

    async def book(self, schedule_id: str, patient_id: str, **kwargs: Any) -> Answer:
        return await self.call(
            "POST",
            f"/v1/schedules/{schedule_id}/bookings",
            token=patient_token(patient_id),
            **kwargs,
        )


def schedule_in(**fields: Any) -> dict[str, Any]:
    """A valid ScheduleIn of a hospital of its own, open now, visit in 30 days."""
    visit = dt.date.today() + dt.timedelta(days=30)
    return {
        "hospital_id": unique("h"),
        "department_id": "cardiology",
        "doctor_id": "dr-lee",
        "visit_date": visit.isoformat(),
        "period": "am",
        "capacity": 5,
        **fields,
    }


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


@pytest.fixture
def api(api_server: Served, session: aiohttp.ClientSession) -> Client:
    return Client(session, api_server.url)


async def metric(client: Client, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`, from /metrics."""
    answer = await client.call("GET", "/metrics")
    assert answer.status == 200
    return sum(
        sample.value
        for family in text_string_to_metric_families(answer.body.decode())
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )
