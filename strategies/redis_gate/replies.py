"""Redis replies as text: the shared client answers bytes, and redis-py types them loosely."""

from __future__ import annotations

from typing import Any


def text(reply: Any) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)
