"""A low-overhead open-loop HTTP/1.1 load generator.

Why not aiohttp's client or Locust: on a 2-core machine they run out of CPU before the server
does, and then the benchmark measures the generator. This one keeps a fixed pool of raw
keep-alive connections (asyncio protocols on uvloop), sends requests encoded in advance and
parses only the status line, Content-Length and, for 429/503, Retry-After.

Open loop: request i *arrives* at its planned time whether or not earlier ones have been
answered; it waits in a queue for a free connection if need be, and its latency is counted
from the planned arrival. A slow server therefore shows as latency instead of silently
slowing the arrivals (no coordinated omission). A 429 or 503 is retried after its
Retry-After, like a patient pressing again; the latency is the patient's, first arrival to
final answer. An answer that never comes (timeout, dropped connection, end of the run) is
recorded as status 0 with the reason, never retried: a booking may have been made.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import uvloop

_RETRYABLE = frozenset({429, 503})
# A busy or rate-limited answer is retried after its Retry-After this many times at most.
MAX_RETRIES = 30
_HEADER_END = b"\r\n\r\n"
_CONNECT_BATCH = 64


def encode_request(
    method: str,
    path: str,
    *,
    host: str,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Shot:
    """What happened to every request of one run, by request index (= arrival order)."""

    arrivals: list[float]
    status: list[int]
    body: list[bytes]
    latency: list[float]
    answered_at: list[float]
    attempts: list[int]
    sent: list[bool]
    errors: dict[int, str] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def requests(self) -> int:
        """Requests actually sent; a time-bounded run drops what it had no time to send."""
        return sum(self.sent)

    @property
    def answered(self) -> int:
        return sum(1 for s in self.status if s)

    @property
    def throughput(self) -> float:
        """Final answers per second, from the first planned arrival to the last answer."""
        return self.answered / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def retries(self) -> int:
        return sum(self.attempts) - len(self.attempts)

    @property
    def consumed(self) -> int:
        """How many requests from the front were used: sends go out in index order."""
        return max((i + 1 for i, sent in enumerate(self.sent) if sent), default=0)

    @classmethod
    def joined(cls, shots: Sequence[Shot]) -> Shot:
        """Several runs as one: answers side by side, elapsed times added."""
        whole = cls([], [], [], [], [], [], [])
        for shot in shots:
            offset = len(whole.status)
            whole.arrivals += shot.arrivals
            whole.status += shot.status
            whole.body += shot.body
            whole.latency += shot.latency
            whole.answered_at += shot.answered_at
            whole.attempts += shot.attempts
            whole.sent += shot.sent
            whole.errors.update({offset + i: e for i, e in shot.errors.items()})
            whole.elapsed += shot.elapsed
        return whole


class _Connection(asyncio.Protocol):
    def __init__(self, run: _Run) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.current: int | None = None
        self.sent_at = 0.0
        self.failure: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def send(self, index: int) -> None:
        assert self.transport is not None
        self.current = index
        self.run.shot.sent[index] = True
        self.sent_at = time.perf_counter()
        self.transport.write(self.run.requests[index])

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(_HEADER_END)
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            length = _header_int(head, b"\r\ncontent-length:", 0)
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            self.run.answered(self, int(head[9:12]), head, body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.lost(self, self.failure or (repr(exc) if exc else "connection closed"))

    def abort(self, reason: str) -> None:
        self.failure = reason
        if self.transport is not None:
            self.transport.abort()


def _header_int(head: bytes, name: bytes, default: int) -> int:
    start = head.find(name)
    if start < 0:
        return default
    start += len(name)
    end = head.find(b"\r\n", start)
    return int(head[start : end if end >= 0 else len(head)].strip())


class _Run:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        address: tuple[str, int],
        requests: Sequence[bytes],
        arrivals: Sequence[float],
        *,
        connections: int,
        timeout: float,
        max_retries: int,
        max_seconds: float,
        send_for: float | None,
        progress: Callable[[int], None] | None,
    ) -> None:
        n = len(requests)
        self.loop = loop
        self.address = address
        self.requests = requests
        self.size = connections
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_seconds = max_seconds
        self.send_for = max_seconds if send_for is None else min(send_for, max_seconds)
        self.progress = progress
        self.shot = Shot(
            arrivals=list(arrivals),
            status=[0] * n,
            body=[b""] * n,
            latency=[float("nan")] * n,
            answered_at=[float("nan")] * n,
            attempts=[0] * n,
            sent=[False] * n,
        )
        self.pending: deque[int] = deque()
        self.idle: list[_Connection] = []
        self.busy: set[_Connection] = set()
        self.open = 0
        self.final = 0
        self.closing = False
        self.reconnecting: set[asyncio.Task[None]] = set()
        self.start = 0.0
        self.done: asyncio.Future[None] = loop.create_future()

    async def execute(self) -> Shot:
        await self._connect(self.size)
        self.start = time.perf_counter()
        watcher = asyncio.ensure_future(self._watch())
        try:
            if self.requests:
                await self._pump()
                await self.done
        finally:
            watcher.cancel()
            self.closing = True
            for task in list(self.reconnecting):
                task.cancel()
            for conn in [*self.idle, *self.busy]:
                conn.abort("end of run")
        shot = self.shot
        last = max(
            (t for t, s in zip(shot.answered_at, shot.status, strict=True) if s), default=0.0
        )
        first = min(self.shot.arrivals, default=0.0)
        self.shot.elapsed = max(last - first, 0.0)
        return self.shot

    async def _connect(self, count: int) -> None:
        for start in range(0, count, _CONNECT_BATCH):
            batch = min(_CONNECT_BATCH, count - start)
            opened = await asyncio.gather(
                *(
                    self.loop.create_connection(lambda: _Connection(self), *self.address)
                    for _ in range(batch)
                )
            )
            for _, conn in opened:
                self.open += 1
                self._next(conn)

    async def _pump(self) -> None:
        """Release each request at its planned arrival; sleep only until the next one."""
        arrivals = self.shot.arrivals
        for index, offset in enumerate(arrivals):
            wait = offset - (time.perf_counter() - self.start)
            if wait > 0.0005:
                await asyncio.sleep(wait)
            self.arrive(index)

    def arrive(self, index: int) -> None:
        if self.closing:
            return
        if time.perf_counter() - self.start > self.send_for:
            self._drop(index)
            return
        self.shot.attempts[index] += 1
        if self.idle:
            conn = self.idle.pop()
            self.busy.add(conn)
            conn.send(index)
        else:
            self.pending.append(index)

    def _next(self, conn: _Connection) -> None:
        if self.pending and time.perf_counter() - self.start > self.send_for:
            while self.pending:
                self._drop(self.pending.popleft())
        if self.pending:
            self.busy.add(conn)
            conn.send(self.pending.popleft())
        else:
            self.busy.discard(conn)
            self.idle.append(conn)

    def answered(self, conn: _Connection, status: int, head: bytes, body: bytes) -> None:
        index = conn.current
        conn.current = None
        if index is not None:
            now = time.perf_counter() - self.start
            delay = _header_int(head, b"\r\nretry-after:", 1) if status in _RETRYABLE else 0
            retry = status in _RETRYABLE and self.shot.attempts[index] <= self.max_retries
            if retry and now + delay < self.send_for:
                self.loop.call_later(delay, self.arrive, index)
            else:
                self._finish(index, status, body, now)
        if not self.closing:
            self._next(conn)

    def lost(self, conn: _Connection, reason: str) -> None:
        self.open -= 1
        self.busy.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if conn.current is not None:
            self._finish(conn.current, 0, b"", time.perf_counter() - self.start, reason)
            conn.current = None
        if not self.closing and not self.done.done():
            task = asyncio.ensure_future(self._reconnect())
            self.reconnecting.add(task)
            task.add_done_callback(self.reconnecting.discard)

    async def _reconnect(self) -> None:
        """Replace a lost connection; keeps trying while the server is unreachable, since the
        run's deadline bounds the wait anyway."""
        while not self.closing:
            try:
                await self._connect(1)
                return
            except OSError:
                await asyncio.sleep(0.05)

    def _drop(self, index: int) -> None:
        """The run's sending window closed before this request could go out."""
        self._finish(index, 0, b"", time.perf_counter() - self.start, "not sent")

    def _finish(
        self, index: int, status: int, body: bytes, now: float, error: str | None = None
    ) -> None:
        shot = self.shot
        if shot.status[index] or index in shot.errors:
            return
        shot.status[index] = status
        shot.body[index] = body
        shot.answered_at[index] = now
        if status:
            shot.latency[index] = now - shot.arrivals[index]
        if error is not None:
            shot.errors[index] = error
        self.final += 1
        if self.final == len(self.requests) and not self.done.done():
            self.done.set_result(None)

    async def _watch(self) -> None:
        """Time out stuck requests, report progress, and end the run at its deadline."""
        while True:
            await asyncio.sleep(0.1)
            now = time.perf_counter()
            for conn in list(self.busy):
                if conn.current is not None and now - conn.sent_at > self.timeout:
                    conn.abort(f"timeout after {self.timeout:.0f}s")
            if now - self.start > self.send_for:
                while self.pending:
                    self._drop(self.pending.popleft())
            if self.progress is not None:
                self.progress(self.final)
            if now - self.start > self.max_seconds:
                self._give_up(now - self.start)
                return

    def _give_up(self, now: float) -> None:
        self.closing = True
        unanswered = [i for i, s in enumerate(self.shot.status) if not s]
        for index in unanswered:
            self._finish(index, 0, b"", now, f"no answer within {self.max_seconds:.0f}s")


def run(
    address: tuple[str, int],
    requests: Sequence[bytes],
    arrivals: Sequence[float],
    *,
    connections: int = 128,
    timeout: float = 30.0,
    max_retries: int = MAX_RETRIES,
    max_seconds: float = 120.0,
    send_for: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> Shot:
    """Send `requests[i]` at `arrivals[i]` seconds (ascending) and wait for every answer.

    With `send_for`, requests not yet sent that many seconds after the start are dropped
    (marked unsent) and the run ends when the ones in flight are answered: a throughput
    test bounded in time rather than in count."""
    if len(requests) != len(arrivals):
        raise ValueError("one arrival time per request")

    async def main() -> Shot:
        loop = asyncio.get_running_loop()
        return await _Run(
            loop,
            address,
            requests,
            arrivals,
            connections=max(1, min(connections, len(requests) or 1)),
            timeout=timeout,
            max_retries=max_retries,
            max_seconds=max_seconds,
            send_for=send_for,
            progress=progress,
        ).execute()

    return uvloop.run(main())


def burst(count: int) -> list[float]:
    """Every request arrives at once: the generator runs flat out (throughput tests)."""
    return [0.0] * count


def spread(count: int, seconds: float) -> list[float]:
    """Arrivals evenly spaced over `seconds` (a flash crowd arriving within that window)."""
    return [seconds * i / count for i in range(count)]
