"""What a benchmark runs against: a fresh database and Redis key prefix per strategy, the
server and the sandbox payment provider as subprocesses, the CPU meter, and the description of
the machine and versions.

Only what this module created is ever removed or stopped: its own database (dropped), the
keys under its own prefix (deleted by SCAN, never FLUSHDB), its own server process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil
import redis
from redis.cluster import RedisCluster

from bench.child_server import free_port
from bench.embedded import ServiceUrls
from loadtest.client.seed import AdminClient

PACKAGES = (
    "aiohttp",
    "uvloop",
    "orjson",
    "redis",
    "asyncpg",
    "PyJWT",
    "locust",
    "hdrhistogram",
    "psutil",
)


# --- per-strategy data stores --------------------------------------------------------------


def database_at(url: str, name: str) -> str:
    """The URL of database `name` on the server of `url`."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


T = TypeVar("T")


def on_database(url: str, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """`work` on a connection of its own to `url`, from the harness's synchronous code."""

    async def run() -> T:
        conn = await asyncpg.connect(url)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(run())


@contextlib.contextmanager
def fresh_database(server_url: str, label: str) -> Iterator[str]:
    """A new, empty database on the server of `server_url`, dropped afterwards."""
    name = f"slotrush_bench_{label.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    on_database(server_url, lambda conn: conn.execute(f'CREATE DATABASE "{name}"'))
    try:
        yield database_at(server_url, name)
    finally:
        on_database(
            server_url, lambda conn: conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )


@contextlib.contextmanager
def fresh_prefix(redis_url: str, label: str) -> Iterator[str]:
    """A Redis key prefix of our own; its keys are deleted afterwards (on every primary of a
    Redis Cluster, when `redis_url` names a node of one)."""
    prefix = f"slotrush-bench-{label}-{uuid.uuid4().hex[:8]}"
    try:
        yield prefix
    finally:
        for client in _primaries(redis_url):
            try:
                _delete_keys(client, prefix)
            finally:
                client.close()


def _primaries(url: str) -> list[redis.Redis]:
    """A client of the Redis at `url`, or one of each primary of its cluster (SCAN is a
    node's own; redis-py's cluster SCAN leaves a connection open)."""
    nodes = _cluster_nodes(url)
    if nodes is None:
        return [redis.Redis.from_url(url)]
    addresses = [a for a, node in nodes.items() if _serving_primary(node["flags"])]
    return [redis.Redis(host=host, port=int(port)) for host, _, port in map(_split, addresses)]


def _serving_primary(flags: str) -> bool:
    return "master" in flags and "fail" not in flags


def _split(address: str) -> tuple[str, str, str]:
    return address.rpartition(":")


def _delete_keys(client: redis.Redis, prefix: str) -> None:
    # One key per DEL: a cluster node refuses a DEL naming keys of several slots.
    batch = client.pipeline(transaction=False)
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        batch.delete(key)
        if len(batch) >= 1000:
            batch.execute()
    batch.execute()


def redis_client(url: str) -> redis.Redis | RedisCluster:
    """A blocking client of the Redis at `url`, or of the Redis Cluster it is a node of."""
    return RedisCluster.from_url(url) if redis_cluster_shape(url) else redis.Redis.from_url(url)


def redis_cluster_shape(url: str) -> dict[str, int] | None:
    """The primaries and replicas of the Redis Cluster `url` names a node of; None for a
    single server."""
    nodes = _cluster_nodes(url)
    if nodes is None:
        return None
    roles = Counter(
        "primary" if _serving_primary(node["flags"]) else "replica"
        for node in nodes.values()
        if "fail" not in node["flags"]
    )
    return {"primaries": roles["primary"], "replicas": roles["replica"]}


def redis_ports(url: str) -> list[int]:
    """The port of the Redis at `url`, or of every node of its cluster."""
    nodes = _cluster_nodes(url)
    if nodes is None:
        return [urlsplit(url).port or 6379]
    return [int(address.rpartition(":")[2]) for address in nodes]


def _cluster_nodes(url: str) -> dict[str, dict[str, Any]] | None:
    """CLUSTER NODES by "host:port", or None when `url` names a single server (or one that
    does not answer: taken for a single server, as the server itself does)."""
    client = redis.Redis.from_url(url)
    try:
        if not client.info("cluster").get("cluster_enabled"):
            return None
        nodes: dict[str, dict[str, Any]] = client.cluster("NODES")
        return nodes
    except redis.RedisError:
        return None
    finally:
        client.close()


# --- the server under test -----------------------------------------------------------------


def slotrush_command() -> list[str]:
    """The `slotrush` entry point of this interpreter's environment."""
    script = Path(sys.executable).with_name("slotrush")
    if script.exists():
        return [str(script)]
    found = shutil.which("slotrush")
    if found:
        return [found]
    return [sys.executable, "-c", "from server.cli import main; main()"]


class ServerProcess:
    """`slotrush serve` in its own process group, so it and its workers stop together."""

    def __init__(self, strategy: str, workers: int, env: dict[str, str], log: Path) -> None:
        self.strategy = strategy
        self.workers = workers
        self.env = env
        self.log_path = log
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, secret: str, timeout: float = 60.0) -> None:
        self.port = free_port()
        command = [
            *slotrush_command(),
            "serve",
            "--strategy",
            self.strategy,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            command,
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            AdminClient(self.url, secret, timeout=5.0).wait_healthy(timeout)
        except Exception as exc:
            self.stop()
            raise RuntimeError(
                f"slotrush serve --strategy {self.strategy} did not become healthy: {exc}\n"
                f"{self.log_tail()}"
            ) from exc

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def processes(self) -> list[psutil.Process]:
        if not self.alive():
            return []
        assert self._proc is not None
        return _tree(self._proc.pid)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@contextlib.contextmanager
def fresh_stack(urls: ServiceUrls, label: str, secret: str) -> Iterator[dict[str, str]]:
    """A fresh database and Redis key prefix for `label`, as the environment `slotrush
    serve` takes (REDIS_URL, DATABASE_URL, SLOTRUSH_SECRET, SLOTRUSH_REDIS_PREFIX); both
    dropped afterwards."""
    with (
        fresh_database(urls.database_url, label) as database,
        fresh_prefix(urls.redis_url, label) as prefix,
    ):
        yield {
            "REDIS_URL": urls.redis_url,
            "DATABASE_URL": database,
            "SLOTRUSH_SECRET": secret,
            "SLOTRUSH_REDIS_PREFIX": prefix,
        }


@contextlib.contextmanager
def serving(
    strategy: str,
    workers: int,
    urls: ServiceUrls,
    secret: str,
    workdir: Path,
    *,
    env: dict[str, str] | None = None,
    prepare: Callable[[str], None] | None = None,
) -> Iterator[tuple[ServerProcess, str]]:
    """`slotrush serve --strategy S` on a fresh database and Redis key prefix, with the
    database's URL; everything dropped afterwards. `env` adds to the server's environment;
    `prepare(database_url)` runs before the server starts (database settings reach only the
    sessions opened after them)."""
    label = strategy.replace(":", "-").replace(".", "-").replace("_", "-").lower()
    with fresh_stack(urls, label, secret) as stack:
        database = stack["DATABASE_URL"]
        env = {**stack, **(env or {})}
        if prepare is not None:
            prepare(database)
        server = ServerProcess(strategy, workers, env, workdir / f"{label}.log")
        try:
            server.start(secret)
            yield server, database
        finally:
            server.stop()


def shorten_holds(database: str, seconds: float) -> None:
    """Unpaid holds of `database` lapse after `seconds` instead of their hospital's minutes
    (the dev/test knob `slotrush.payment_window_seconds`, README): a `prepare` for `serving`,
    since the setting reaches only sessions opened after it."""

    async def alter(conn: asyncpg.Connection) -> None:
        name = await conn.fetchval("SELECT current_database()")
        await conn.execute(
            f"ALTER DATABASE \"{name}\" SET slotrush.payment_window_seconds = '{seconds:g}'"
        )

    on_database(database, alter)


def settle(database: str) -> None:
    """VACUUM ANALYZE `database` before a measured phase, as pgbench vacuums before it runs: the
    phase then measures the strategy on a ledger whose planner statistics and dead rows are
    those of a database that has been running, not of one created seconds ago (where every
    plan is made from empty tables' statistics, and autovacuum may be off, as on this
    project's shared machines)."""
    on_database(database, lambda conn: conn.execute("VACUUM ANALYZE"))


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def listening_pid(port: int) -> int | None:
    """The process listening on a loopback TCP port (the embedded or local server)."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return conn.pid
    return None


# --- CPU -----------------------------------------------------------------------------------


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


@dataclass
class CpuMeter:
    """CPU seconds of each party, sampled before and after a phase. Server and PostgreSQL
    count their children (workers, backends); a backend that exits mid-phase takes its
    share with it, so PostgreSQL's figure is a lower bound."""

    groups: dict[str, Callable[[], list[psutil.Process]]]

    @classmethod
    def for_stack(cls, server: ServerProcess, redis_url: str, database_url: str) -> CpuMeter:
        # Every node of a Redis Cluster, replicas included: they replay every write.
        redis_pids = [pid for port in redis_ports(redis_url) if (pid := listening_pid(port))]
        pg_pid = listening_pid(urlsplit(database_url).port or 5432)
        me = psutil.Process()
        return cls(
            {
                "server": server.processes,
                "redis": lambda: [proc for pid in redis_pids for proc in _tree(pid)],
                "postgres": lambda: _tree(pg_pid) if pg_pid else [],
                "generator": lambda: [me],
            }
        )

    def sample(self) -> dict[str, float]:
        found = {name: _cpu(find()) for name, find in self.groups.items()}
        return {**found, "machine": _busy_seconds()}

    @staticmethod
    def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """CPU seconds per party, plus "others": what the rest of the machine used meanwhile
        (a benchmark on a shared machine must say how shared it was)."""
        spent = {name: max(after[name] - before.get(name, 0.0), 0.0) for name in after}
        machine = spent.pop("machine")
        return {**spent, "others": max(machine - sum(spent.values()), 0.0)}


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent not idle, over every core."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


# --- what the numbers were measured on -----------------------------------------------------


def describe_machine(redis_url: str, database_url: str) -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": _cpu_model(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "redis": _redis_version(redis_url),
        "redis_cluster": redis_cluster_shape(redis_url),
        "postgresql": _postgres_version(database_url),
        "packages": {name: _package_version(name) for name in PACKAGES},
        "commit": _git(["rev-parse", "HEAD"]),
        "dirty": bool(_git(["status", "--porcelain"])),
    }


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def _redis_version(url: str) -> str | None:
    client = redis.Redis.from_url(url)
    try:
        return str(client.info("server").get("redis_version"))
    except redis.RedisError:
        return None
    finally:
        client.close()


def _postgres_version(url: str) -> str | None:
    try:
        return str(on_database(url, lambda conn: conn.fetchval("SHOW server_version")))
    except (OSError, asyncpg.PostgresError):
        return None


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(args: list[str]) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent.parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()
