"""Embedded Redis/PostgreSQL: real servers, started and stopped for real."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis

from bench.embedded import EmbeddedPostgres, EmbeddedRedis, running_services

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Not tmp_path: pytest makes its folders 0700, which the postgres user cannot cross when the
    # tests run as root (PostgreSQL then runs as that user).
    path = Path(tempfile.mkdtemp(prefix="slotrush-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def processes_under(path: Path) -> list[psutil.Process]:
    """Live processes whose working directory is inside `path` (both servers chdir there)."""
    found = []
    for proc in psutil.process_iter(["cwd", "status"]):
        cwd = proc.info["cwd"]
        if cwd and Path(cwd).is_relative_to(path) and proc.info["status"] != "zombie":
            found.append(proc)
    return found


def assert_nothing_left(workdir: Path) -> None:
    assert processes_under(workdir) == []
    assert list(workdir.iterdir()) == []


async def pg_scalar(url: str, query: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5)


async def test_running_services_start_answer_and_clean_up(workdir: Path) -> None:
    # The session's own embedded services may already hold the SIGTERM handler.
    handler_before = signal.getsignal(signal.SIGTERM)
    with running_services(None, None, workdir=str(workdir)) as urls:
        assert urls.redis_url.startswith("redis://127.0.0.1:")
        assert urls.database_url.startswith("postgresql://postgres@127.0.0.1:")
        with redis_client(urls.redis_url) as client:
            assert client.ping()
            assert client.config_get("save") == {"save": ""}
            assert client.config_get("appendonly") == {"appendonly": "no"}
        assert await pg_scalar(urls.database_url, "SELECT 41 + 1") == 42
        assert await pg_scalar(urls.database_url, "SHOW max_connections") == "300"
        assert await pg_scalar(urls.database_url, "SHOW fsync") == "on"
        assert len(processes_under(workdir)) >= 2
        assert signal.getsignal(signal.SIGTERM) != signal.SIG_DFL
    assert_nothing_left(workdir)
    assert signal.getsignal(signal.SIGTERM) == handler_before


def test_given_urls_pass_through_untouched(workdir: Path) -> None:
    given = ("redis://redis.example:7000/3", "postgresql://app@db.example:6000/app")
    with running_services(*given, workdir=str(workdir)) as urls:
        assert (urls.redis_url, urls.database_url) == given
        assert_nothing_left(workdir)


def test_only_the_missing_server_is_started(workdir: Path) -> None:
    given = "redis://redis.example:7000/3"
    with running_services(given, None, workdir=str(workdir)) as urls:
        assert urls.redis_url == given
        names = {proc.name() for proc in processes_under(workdir)}
        assert "postgres" in names
        assert not any("redis" in name for name in names)
    assert_nothing_left(workdir)


def test_redis_restart_and_kill_keep_port_and_data(workdir: Path) -> None:
    server = EmbeddedRedis(workdir / "redis", appendfsync="always")
    server.start()
    try:
        port, first_pid = server.port, server.pid
        assert port not in (6379, 5432)
        with redis_client(server.url) as client:
            client.set("k", "v")
        server.restart()
        assert (server.port, server.url) == (port, f"redis://127.0.0.1:{port}/0")
        assert server.pid != first_pid
        server.kill(signal.SIGKILL)
        assert not psutil.pid_exists(first_pid)
        server.start()
        assert server.port == port
        with redis_client(server.url) as client:
            assert client.get("k") == b"v"
    finally:
        server.stop()
    assert processes_under(workdir) == []


async def test_postgres_immediate_stop_then_start(workdir: Path) -> None:
    server = EmbeddedPostgres(workdir / "pg")
    server.start()
    try:
        port = server.port
        await pg_scalar(server.url, "CREATE TABLE t AS SELECT 7 AS x")
        server.stop(mode="immediate")
        assert processes_under(workdir) == []
        server.start()
        assert server.port == port
        assert await pg_scalar(server.url, "SELECT x FROM t") == 7
        server.kill(signal.SIGKILL)
        assert processes_under(workdir) == []
        server.restart()
        assert await pg_scalar(server.url, "SELECT x FROM t") == 7
    finally:
        server.stop()
    assert processes_under(workdir) == []


def test_sigterm_to_the_parent_stops_the_servers(workdir: Path) -> None:
    script = (
        "import sys\n"
        "from bench.embedded import running_services\n"
        f"with running_services(None, None, workdir={str(workdir)!r}) as urls:\n"
        "    print(urls.database_url, flush=True)\n"
        "    sys.stdin.read()\n"  # blocks until killed
    )
    with subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline().startswith(b"postgresql://")
        assert len(processes_under(workdir)) >= 2
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == 128 + signal.SIGTERM
    assert_nothing_left(workdir)
