"""Running the server: in this process, or as a supervisor of N worker processes.

Workers each bind the same port with SO_REUSEPORT, so the kernel spreads connections over
them. SIGTERM (or SIGINT) stops accepting, lets requests in flight finish (a booking is
committed or not at all, never half-written), then closes the stores. A worker that dies on
its own takes the whole group down: a process manager restarts it cleanly.

Workers are spawned, not forked, so each imports prometheus_client afresh after the
supervisor has set PROMETHEUS_MULTIPROC_DIR: their metrics then add up across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvloop
from aiohttp import web

from core.failures import STORE_FAILURES
from core.settings import Settings
from server.accesslog import JsonAccessLogger
from server.app import create_app
from server.metrics import MULTIPROC_ENV

log = logging.getLogger("slotrush.server")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Long enough for any booking in flight; after this, what is left is cancelled.
SHUTDOWN_TIMEOUT = 30.0
_READY_TIMEOUT = 120.0
_BACKLOG = 2048


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    access_log: bool = False
    shutdown_timeout: float = SHUTDOWN_TIMEOUT


def serve(settings: Settings, options: ServeOptions) -> int:
    """Serve until SIGTERM or SIGINT; the exit status of the whole server."""
    with _metrics_folder(options.workers):
        if options.workers == 1:
            return _serve_in_this_process(settings, options)
        return _supervise(settings, options)


def announce(settings: Settings, options: ServeOptions, port: int) -> None:
    # Scripts and tests wait for this line (and read the port from it when given --port 0).
    host = f"[{options.host}]" if ":" in options.host else options.host
    print(
        f"slotrush: serving strategy {settings.strategy} on http://{host}:{port} "
        f"with {options.workers} worker(s)",
        flush=True,
    )


@contextlib.contextmanager
def _metrics_folder(workers: int) -> Iterator[None]:
    """A clean PROMETHEUS_MULTIPROC_DIR: the given one emptied of old values, or, for several
    workers, a temporary one of our own."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        # Only prometheus-client's files (kind_pid.db), and not this process's own: they may
        # exist already and are live. The folder may hold anything else too.
        mine = f"_{os.getpid()}"
        for stale in folder.glob("*.db"):
            if not stale.stem.endswith(mine):
                stale.unlink()
        yield
        return
    if workers == 1:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="slotrush-metrics-") as ours:
        os.environ[MULTIPROC_ENV] = ours
        try:
            yield
        finally:
            del os.environ[MULTIPROC_ENV]


# --- one process --------------------------------------------------------------------------


def _serve_in_this_process(settings: Settings, options: ServeOptions) -> int:
    with _signal_handlers_restored():
        return _run_worker(
            settings, options, options.port, lambda port: announce(settings, options, port)
        )


def _run_worker(
    settings: Settings, options: ServeOptions, port: int, on_ready: Callable[[int], None]
) -> int:
    """Serve until signalled: 0, or 1 if the server could not start (port taken, a store
    unreachable), which is logged without a traceback."""
    app = create_app(settings)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve_until_signalled(app, options, port, on_ready))
    except STORE_FAILURES as exc:
        log.error("pid %d could not start: %s", os.getpid(), exc)
        return 1
    return 0


async def _serve_until_signalled(
    app: web.Application, options: ServeOptions, port: int, on_ready: Callable[[int], None]
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(
        app,
        access_log=logging.getLogger("slotrush.access") if options.access_log else None,
        access_log_class=JsonAccessLogger,
        shutdown_timeout=options.shutdown_timeout,
        # A client that gave up may retry with its Idempotency-Key and be told "no": an
        # attempt left running for it could still book after that answer.
        handler_cancellation=True,
    )
    try:
        await runner.setup()
        site = web.TCPSite(
            runner, options.host, port, reuse_port=options.workers > 1, backlog=_BACKLOG
        )
        await site.start()
        on_ready(runner.addresses[0][1])
        await stop.wait()
        log.info("pid %d stopping: finishing the requests in flight", os.getpid())
    finally:
        await runner.cleanup()
    log.info("pid %d stopped", os.getpid())


@contextlib.contextmanager
def _signal_handlers_restored() -> Iterator[None]:
    # Closing an event loop resets the signals it handled to their defaults; whoever handled
    # them before (bench.embedded stops embedded servers on SIGTERM) must get them back.
    previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --- several processes --------------------------------------------------------------------


def _supervise(settings: Settings, options: ServeOptions) -> int:
    try:
        reservation = _reserve_port(options.host, options.port)
    except OSError as exc:
        log.error("could not start: %s", exc)
        return 1
    with reservation, _signal_handlers_restored():
        supervisor = _Supervisor(settings, options, reservation.getsockname()[1])
        for sig in _SIGNALS:
            signal.signal(sig, supervisor.on_signal)
        return supervisor.run()


class _Supervisor:
    """Starts the workers, stops them all on a signal or when one of them dies."""

    def __init__(self, settings: Settings, options: ServeOptions, port: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.settings, self.options, self.port = settings, options, port
        self.ready: multiprocessing.Queue[int] = context.Queue()
        self.workers = [
            context.Process(
                target=_worker_process,
                args=(settings, options, port, self.ready),
                name=f"slotrush-worker-{i}",
            )
            for i in range(options.workers)
        ]
        self.stopping = False

    def run(self) -> int:
        """The exit status: 0 when every worker stopped cleanly because it was asked to."""
        try:
            for worker in self.workers:
                worker.start()
            if self._all_ready() and not self.stopping:
                announce(self.settings, self.options, self.port)
            else:
                self.stop()
            failed = self._wait_for_exit()
        finally:
            self.ready.close()
        return 1 if failed else 0

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping = True
        for worker in self.workers:
            if worker.pid is not None and worker.exitcode is None:
                os.kill(worker.pid, signal.SIGTERM)

    def _all_ready(self) -> bool:
        waiting = {worker.pid for worker in self.workers}
        deadline = time.monotonic() + _READY_TIMEOUT
        while waiting and time.monotonic() < deadline:
            if any(worker.exitcode is not None for worker in self.workers):
                log.error("a worker exited while starting")
                return False
            with contextlib.suppress(queue.Empty):
                waiting.discard(self.ready.get(timeout=0.2))
        return not waiting

    def _wait_for_exit(self) -> bool:
        """Wait until every worker has exited; True if any failed or exited unasked."""
        failed = False
        while running := [w for w in self.workers if w.exitcode is None]:
            fired = multiprocessing.connection.wait([w.sentinel for w in running])
            # A sentinel can fire before the process is reaped: join() reaps it, so its
            # exitcode is set now and the exit is handled in this round, not lost.
            exited = [w for w in running if w.sentinel in fired]
            for worker in exited:
                worker.join()
            if exited and not self.stopping:
                log.error("worker %s exited (%s); stopping all", exited[0].pid, exited[0].exitcode)
                failed = True
                self.stop()
        return failed or any(worker.exitcode != 0 for worker in self.workers)


def _worker_process(
    settings: Settings, options: ServeOptions, port: int, ready: multiprocessing.Queue[int]
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    status = _run_worker(settings, options, port, lambda _: ready.put(os.getpid()))
    raise SystemExit(status)


def _reserve_port(host: str, port: int) -> socket.socket:
    """A socket holding the port (bound, not listening) while the workers run, so that port 0
    means one port for all of them and no other program takes it meanwhile; the workers share
    it through SO_REUSEPORT."""
    family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock
