"""One reader per hospital's live pages, however many consoles stream them (issue 14).

A feed is the pages of one hospital and span of visit dates. While at least one stream
follows it, a single task reads them every second from the shared snapshots and hands
what changed to every stream's inbox; a stream wakes only to write. With a task per
stream instead, 50 idle consoles cost the server process 0.02 cores in wake-ups alone
(bench.consoles).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Final

from core.domain import Code
from core.failures import STORE_UNAVAILABLE
from core.keyed import InUse

log = logging.getLogger("slotrush.server")

READ_EVERY_SECONDS: Final = 1.0
# Every event's data as it would be written now, by event name: the pages due this time.
Read = Callable[[], Awaitable[dict[str, bytes]]]
PROBLEM: Final = b'event: problem\ndata: {"code": "%s"}\n\n' % Code.BUSY.encode()


class Inbox:
    """What one stream has yet to write: the newest of each event, and a wake-up."""

    def __init__(self) -> None:
        self._pending: dict[str, bytes] = {}
        self.ready = asyncio.Event()

    def put(self, events: dict[str, bytes]) -> None:
        if events:
            self._pending.update(events)
            self.ready.set()

    def take(self) -> bytes:
        chunk = b"".join(self._pending.values())
        self._pending.clear()
        self.ready.clear()
        return chunk


class _Feed:
    def __init__(self, readers: set[asyncio.Task[None]]) -> None:
        self.inboxes: set[Inbox] = set()
        self.latest: dict[str, bytes] = {}
        self.task: asyncio.Task[None] | None = None
        self._readers = readers

    def join(self, inbox: Inbox, read: Read) -> None:
        inbox.put(self.latest)
        self.inboxes.add(inbox)
        if self.task is None:
            self.task = asyncio.create_task(self._run(read))
            self._readers.add(self.task)
            self.task.add_done_callback(self._readers.discard)

    async def _run(self, read: Read) -> None:
        while self.inboxes:
            try:
                changed = {
                    name: event
                    for name, event in (await read()).items()
                    if self.latest.get(name) != event
                }
            except STORE_UNAVAILABLE as exc:
                log.warning("live pages: store unavailable: %r", exc)
                changed = {"problem": PROBLEM}
            except Exception:
                # A bug: logged with its traceback; the streams end rather than go quiet.
                log.exception("live pages: reading failed")
                changed = {"problem": PROBLEM}
            else:
                self.latest.update(changed)
            for inbox in self.inboxes:
                inbox.put(changed)
            await asyncio.sleep(READ_EVERY_SECONDS)
        self.task = None


class LiveFeeds:
    def __init__(self) -> None:
        self._readers: set[asyncio.Task[None]] = set()
        self._feeds: InUse[Hashable, _Feed] = InUse(lambda: _Feed(self._readers))
        self._inboxes: set[Inbox] = set()
        self.stopping = False

    @contextmanager
    def follow(self, key: Hashable, read: Read) -> Iterator[Inbox]:
        """An inbox of the feed `key`, read by `read` if no other stream follows it yet: the
        first delivery is every page as last read, then whatever changes."""
        inbox = Inbox()
        with self._feeds.use(key) as feed:
            feed.join(inbox, read)
            self._inboxes.add(inbox)
            try:
                yield inbox
            finally:
                feed.inboxes.discard(inbox)
                self._inboxes.discard(inbox)

    def stop(self) -> None:
        """The server is stopping: every stream wakes up and ends, and no reader reads on
        while the stores close."""
        self.stopping = True
        for inbox in self._inboxes:
            inbox.ready.set()
        for reader in self._readers:
            reader.cancel()
