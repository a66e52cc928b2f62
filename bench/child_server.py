"""A server run as our own child process: started on a free loopback port (never the well-known
port of the machine's own server), stopped in order, and never left behind: whatever is
still running at exit is stopped by an atexit hook.
"""

from __future__ import annotations

import abc
import atexit
import logging
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("slotrush.services")

LOOPBACK = "127.0.0.1"
# The well-known ports of the machine's own servers; an embedded server must never take them.
RESERVED_PORTS = frozenset({6379, 5432})
_START_ATTEMPTS = 3
_STOP_TIMEOUT = 30.0


def free_port() -> int:
    """A loopback port that was free a moment ago; starts retry if another process wins it."""
    while True:
        with socket.socket() as sock:
            sock.bind((LOOPBACK, 0))
            port: int = sock.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


class ChildServer(abc.ABC):
    """A server run as our own child, in its own session so a terminal Ctrl-C reaches only us
    and we shut it down in order."""

    name = "server"
    ready_timeout = 15.0

    def __init__(self, workdir: Path, port: int | None) -> None:
        if port in RESERVED_PORTS:
            raise ValueError(f"port {port} belongs to the machine's own server")
        self.workdir = Path(workdir)
        self._port = port
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self._port

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        """Started, and not stopped or killed since (by us)."""
        return self._proc is not None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError(f"{self.name} is already running")
        began = time.monotonic()
        self._prepare()
        # Only a port we picked ourselves may be swapped for another after losing a bind race.
        ports = [self._port] if self._port else [free_port() for _ in range(_START_ATTEMPTS)]
        for port in ports:
            if self._launch(port):
                self._port = port
                elapsed = time.monotonic() - began
                log.info("%s ready on port %d in %.2fs", self.name, port, elapsed)
                return
            log.warning("%s: port %d is taken", self.name, port)
        raise RuntimeError(f"{self.name} could not bind any of ports {ports}; see {self.log_path}")

    def stop(self) -> None:
        self._halt(signal.SIGTERM)

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Deliver a terminating signal (a crash, for fault tests) and wait until it is gone."""
        self._halt(sig)

    def _prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)

    @abc.abstractmethod
    def _command(self, port: int) -> list[str]: ...

    @abc.abstractmethod
    def _is_ready(self, port: int) -> bool: ...

    def _account(self) -> dict[str, Any]:
        return {}

    def _launch(self, port: int) -> bool:
        """Start on `port`; True once ready, False if the port was taken. Never leaves a child."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log.debug("%s: starting on port %d", self.name, port)
        with self.log_path.open("ab") as out:
            self._proc = subprocess.Popen(
                self._command(port), start_new_session=True, **self._child_io(out)
            )
        _live.add(self)
        ready = False
        try:
            ready = self._wait_ready(port, offset)
        finally:
            if not ready:
                self._halt(signal.SIGKILL)
        return ready

    def _wait_ready(self, port: int, log_offset: int) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                output = self._log_tail(log_offset)
                if "Address already in use" in output:
                    return False
                raise RuntimeError(f"{self.name} exited ({self._proc.returncode}): {output}")
            if self._is_ready(port):
                return True
            time.sleep(0.02)
        output = self._log_tail(log_offset)
        raise TimeoutError(f"{self.name} not ready after {self.ready_timeout}s: {output}")

    def _halt(self, sig: int) -> None:
        proc = self._proc
        if proc is None:
            return
        # Taken before the signal: a killed postmaster's orphans must be gone before a restart
        # can attach its shared memory.
        helpers = _children(proc.pid)
        if proc.poll() is None:
            proc.send_signal(sig)
            # A process paused with SIGSTOP (fault tests) only acts on the signal once resumed.
            proc.send_signal(signal.SIGCONT)
        try:
            proc.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.warning("%s (pid %d) ignored signal %d; killing it", self.name, proc.pid, sig)
            proc.kill()
            proc.wait()
        _wait_gone(helpers)
        self._proc = None
        _live.discard(self)
        log.info("%s (pid %d) stopped", self.name, proc.pid)

    def _child_io(self, out: IO[bytes]) -> dict[str, Any]:
        return {
            "stdin": subprocess.DEVNULL,
            "stdout": out,
            "stderr": subprocess.STDOUT,
            "cwd": self.workdir,
            **self._account(),
        }

    def _log_tail(self, offset: int) -> str:
        with self.log_path.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")[-2000:]


def _proc_status(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) from Linux /proc; None once the process is gone (or off Linux)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is parenthesised and may itself contain spaces or parentheses.
    state, ppid = text[text.rindex(")") + 2 :].split()[:2]
    return state, int(ppid)


def _children(pid: int) -> list[int]:
    """The server's forked helpers. Not found by process group: postgres backends call setsid()."""
    pids = (int(entry.name) for entry in Path("/proc").glob("[0-9]*"))
    return [child for child in pids if (status := _proc_status(child)) and status[1] == pid]


def _wait_gone(pids: list[int]) -> None:
    """Wait, without signalling anyone, until `pids` have exited. A zombie counts as gone: the
    orphans' new parent reaps them, or not, in its own time."""
    deadline = time.monotonic() + _STOP_TIMEOUT
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if (status := _proc_status(pid)) and status[0] not in "ZX"]
        time.sleep(0.02)
    if pids:
        log.warning("helper processes %s still running after %.0fs", pids, _STOP_TIMEOUT)


_live: set[ChildServer] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_live):
        try:
            server.stop()
        except Exception:
            log.exception("could not stop %s at exit", server.name)
