"""The servers the fault suite kills and restarts: a Redis, a Redis Cluster and a PostgreSQL of
its own, and the workers of `slotrush serve`."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil

from bench.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedRedisCluster
from bench.stack import ServerProcess


class Services:
    """The suite's own Redis and PostgreSQL: a fault test may kill them, so never the
    machine's. Redis fsyncs every write, so a SIGKILL loses nothing it acknowledged. The
    Redis Cluster (3 primaries, 3 replicas) starts when a fault first needs it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.redis = EmbeddedRedis(workdir / "redis", appendfsync="always")
        self.postgres = EmbeddedPostgres(workdir / "postgres")
        self._cluster: EmbeddedRedisCluster | None = None

    @property
    def redis_cluster(self) -> EmbeddedRedisCluster:
        if self._cluster is None:
            cluster = EmbeddedRedisCluster(self.workdir / "redis-cluster", masters=3)
            cluster.start()
            self._cluster = cluster
        return self._cluster

    def ensure_running(self) -> None:
        """Start whichever server a failed scenario left stopped (a cluster node rejoins as
        a replica of the node that took over)."""
        for server in (self.redis, self.postgres):
            if not server.running:
                server.start()
        if self._cluster is not None:
            for node in self._cluster.nodes:
                if not node.running:
                    # Back before its replica took over, an empty primary would serve its
                    # slots empty.
                    self._cluster.await_promotion(node)
                    node.start()
                self._cluster.await_in_sync(node)

    def stop(self) -> None:
        if self._cluster is not None:
            self._cluster.stop()
        self.redis.stop()
        self.postgres.stop()


@contextlib.contextmanager
def embedded_services() -> Iterator[Services]:
    base = Path(tempfile.mkdtemp(prefix="slotrush-faults-"))
    # mkdtemp makes it 0700; as root, PostgreSQL runs as `postgres`, who must get through it.
    base.chmod(0o755)
    services = Services(base)
    try:
        services.redis.start()
        services.postgres.start()
        yield services
    finally:
        services.stop()
        shutil.rmtree(base, ignore_errors=True)


def worker_pids(server: ServerProcess) -> list[int]:
    """The processes serving requests: the children of `serve`, or `serve` itself when it
    serves in-process."""
    workers = running_workers(server)
    if not workers:
        raise RuntimeError(f"slotrush serve is not running; log:\n{server.log_tail()}")
    return workers


def running_workers(server: ServerProcess) -> list[int]:
    """worker_pids, or none when `serve` is not running (or just stopped)."""
    tree = server.processes()
    if not tree:
        return []
    workers = []
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in tree[0].children():
            # A supervisor spawning workers also runs multiprocessing's resource tracker; a
            # killed worker is a zombie until its supervisor reaps it.
            if child.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(
                child.cmdline()
            ):
                workers.append(child.pid)
    return workers or [tree[0].pid]
