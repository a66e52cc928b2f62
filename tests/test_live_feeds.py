"""Live feeds (server/live_feeds.py): one reader per feed, however many streams follow it."""

from __future__ import annotations

import asyncio

from server.live_feeds import PROBLEM, Inbox, LiveFeeds

# Generous: a reader reads every second, on a machine that may be busy.
WAIT_SECONDS = 30


class Pages:
    def __init__(self) -> None:
        self.reads = 0
        self.page = b"one"
        self.fail = False

    async def read(self) -> dict[str, bytes]:
        self.reads += 1
        if self.fail:
            raise ConnectionError("ledger gone")
        return {"schedules": self.page}


async def next_chunk(inbox: Inbox) -> bytes:
    async with asyncio.timeout(WAIT_SECONDS):
        await inbox.ready.wait()
    return inbox.take()


async def test_streams_of_one_feed_share_its_reader_and_get_only_changes() -> None:
    feeds, pages, other = LiveFeeds(), Pages(), Pages()
    with feeds.follow("h1", pages.read) as first:
        assert await next_chunk(first) == b"one"
        # A later stream gets what was read, from the same reader.
        with feeds.follow("h1", other.read) as second:
            assert second.take() == b"one"
            pages.page = b"two"
            assert await next_chunk(first) == b"two"
            assert await next_chunk(second) == b"two"
    assert other.reads == 0
    assert len(feeds._feeds) == 0


async def test_a_failed_read_reaches_every_stream_as_a_problem() -> None:
    feeds, pages = LiveFeeds(), Pages()
    pages.fail = True
    with feeds.follow("h1", pages.read) as inbox:
        assert await next_chunk(inbox) == PROBLEM


async def test_stopping_wakes_every_stream_and_cancels_the_readers() -> None:
    feeds, pages = LiveFeeds(), Pages()
    with feeds.follow("h1", pages.read) as inbox:
        await next_chunk(inbox)
        (reader,) = feeds._readers
        feeds.stop()
        assert feeds.stopping and inbox.ready.is_set()
        await asyncio.wait([reader], timeout=WAIT_SECONDS)
        assert reader.cancelled()
