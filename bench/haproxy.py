"""HAProxy in front of N `slotrush serve` processes, as production runs them: a config
generated into a temporary folder, `haproxy -f` in the foreground, stopped at exit.

HAProxy comes from PATH (`make bench` installs Debian's package when it is missing and runs
as root); without it `NoHaproxy` says what to install.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench.child_server import free_port

INSTALL_HINT = "HAProxy is not on PATH: install it (Debian: apt-get install haproxy)"
# Below the servers' idle timeout (SLOTRUSH_IDLE_TIMEOUT, 75 s), so the server never closes
# a connection HAProxy is about to reuse.
_CONFIG = """\
global
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 30s
frontend slotrush
    bind 127.0.0.1:{port}
    default_backend servers
backend servers
    balance roundrobin
    option httpchk GET /healthz
{servers}
"""


class NoHaproxy(RuntimeError):
    pass


def haproxy_binary() -> str:
    found = shutil.which("haproxy")
    if found is None:
        raise NoHaproxy(INSTALL_HINT)
    return found


@contextlib.contextmanager
def haproxy(backend_ports: Sequence[int], workdir: Path) -> Iterator[str]:
    """HAProxy balancing over the loopback `backend_ports`, round robin, health-checked by
    /healthz; yields its URL once it answers /healthz itself."""
    binary = haproxy_binary()
    port = free_port()
    servers = "\n".join(
        f"    server s{i} 127.0.0.1:{backend} check inter 1s"
        for i, backend in enumerate(backend_ports, 1)
    )
    config = workdir / f"haproxy-{port}.cfg"
    config.write_text(_CONFIG.format(port=port, servers=servers))
    log = (workdir / f"haproxy-{port}.log").open("ab")
    proc = subprocess.Popen(
        [binary, "-db", "-f", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGUSR1)  # soft stop: finish what is in flight
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"haproxy exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"haproxy at {url} did not answer /healthz in {timeout:g} s")
        time.sleep(0.2)
