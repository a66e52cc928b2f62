"""Test databases cloned from a migrated template ahead of the tests that take them, and
dropped behind them, on a thread of their own.

A clone costs PostgreSQL about 0.3 s (CREATE DATABASE copies and WAL-logs every page of the
template, fsync or not), and most tests take one: made in line, that was about a third of
the suite's time. Made ahead, it overlaps the test before it, which mostly waits on I/O.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import uuid

import asyncpg

# Clones kept ready (made or being made), and made at once: PostgreSQL clones in a backend
# process each, so two use both cores while the tests wait on I/O.
_AHEAD = 3
_CLONERS = 2
_POLL_SECONDS = 0.005
# A test waiting longer than this for its database means the supply has stopped.
_TAKE_SECONDS = 120.0


class DatabaseSupply:
    def __init__(self, server_url: str, template: str, *, prefix: str = "slotrush_test") -> None:
        self._server_url = server_url
        self._template = template
        self._prefix = prefix
        self._ready: queue.Queue[str] = queue.Queue(maxsize=_AHEAD)
        self._to_drop: queue.Queue[str] = queue.Queue()
        # What stopped the supply, told to every test that asks after it.
        self._failure: BaseException | None = None
        # Clones under way (counted on the supply's own event loop only).
        self._cloning = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._work()), name="database supply", daemon=True
        )

    def __enter__(self) -> DatabaseSupply:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join()

    def take(self) -> str:
        """A fresh database's name, a clone of the template no one else has."""
        deadline = time.monotonic() + _TAKE_SECONDS
        while self._failure is None:
            try:
                return self._ready.get(timeout=0.1)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no test database within {_TAKE_SECONDS:g} s") from None
        raise RuntimeError("the test database supply stopped") from self._failure

    def give_back(self, name: str) -> None:
        """Dropped behind the tests (connections still open to it are closed)."""
        self._to_drop.put(name)

    async def _work(self) -> None:
        try:
            await asyncio.gather(*(self._clone_and_drop() for _ in range(_CLONERS)))
        except Exception as exc:
            self._failure = exc

    async def _clone_and_drop(self) -> None:
        admin = await asyncpg.connect(self._server_url)
        try:
            while not self._stopping.is_set():
                if not self._to_drop.empty():
                    await self._drop(admin, self._to_drop.get())
                elif self._ready.qsize() + self._cloning < _AHEAD:
                    self._cloning += 1
                    name = f"{self._prefix}_{uuid.uuid4().hex[:12]}"
                    try:
                        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
                    finally:
                        self._cloning -= 1
                    self._ready.put(name)
                else:
                    await asyncio.sleep(_POLL_SECONDS)
            # Whatever is left, made ahead or given back, goes with the supply.
            while not self._to_drop.empty():
                await self._drop(admin, self._to_drop.get())
            while not self._ready.empty():
                await self._drop(admin, self._ready.get())
        finally:
            await admin.close()

    @staticmethod
    async def _drop(admin: asyncpg.Connection, name: str) -> None:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
