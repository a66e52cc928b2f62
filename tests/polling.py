"""Waiting in a test for something the system does by itself (a reconciler, a job runner)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float, what: str, *, poll: float = 0.05
) -> None:
    """Until `check` answers true; the test fails naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"not within {within:.1f}s: {what}"
        await asyncio.sleep(poll)
