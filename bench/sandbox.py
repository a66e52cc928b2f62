"""`slotrush sandbox-pay` as a process of the bench's own: started on a free port (or a given
one), killed as a crash would, started again on the same port with the journal it keeps, so
that slotrush, which knows it by URL, finds it where it was and it remembers what it did."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import urllib.request
from pathlib import Path

from bench.stack import slotrush_command

_START_SECONDS = 60.0


class SandboxProcess:
    def __init__(self, workdir: Path, label: str = "sandbox") -> None:
        self.journal = workdir / f"{label}.journal"
        self.log = workdir / f"{label}.log"
        self.port = 0
        self.webhook_url: str | None = None
        self._process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Listening once this returns; on the port of the previous start, if any."""
        command = [
            *slotrush_command(),
            "sandbox-pay",
            "--port",
            str(self.port),
            "--state",
            str(self.journal),
        ]
        if self.webhook_url is not None:
            command += ["--webhook-url", self.webhook_url]
        with self.log.open("ab") as err:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True)
        self._process = process
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("slotrush sandbox-pay: serving on "):
            self.kill(signal.SIGKILL)
            raise RuntimeError(f"slotrush sandbox-pay did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])

    def kill(self, sig: int = signal.SIGTERM) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
            process.wait(_START_SECONDS)
        if process is not None and process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> SandboxProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def control(self, faults: dict[str, object]) -> None:
        """POST /control: the faults (or the webhook URL) the sandbox runs with from now."""
        request = urllib.request.Request(
            f"{self.url}/control",
            data=json.dumps(faults).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=_START_SECONDS) as answer:
            answer.read()

    def notify(self, webhook_url: str) -> None:
        """Send notices to `webhook_url`, now and after every restart."""
        self.webhook_url = webhook_url
        self.control({"webhook_url": webhook_url})
