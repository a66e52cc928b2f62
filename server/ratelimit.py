"""Per-patient and per-address request limits: fixed windows counted in this process.

Limits are written "N/second" (or minute, hour); an empty limit is no limit, the default for
trusted load generators. Counting is per process, so with --workers N a client may get up to
N times the limit: enough to stop one patient's script from starving a crowd, at no I/O cost.
"""

from __future__ import annotations

import math
import re
from time import monotonic
from typing import Final

from core.domain import Code
from core.errors import SlotrushError

_UNITS: Final = {"second": 1.0, "minute": 60.0, "hour": 3600.0}
_LIMIT: Final = re.compile(r"\s*([0-9]+)\s*/\s*(second|minute|hour)\s*")


class RateLimit:
    def __init__(self, count: int, window: float) -> None:
        if count < 1:
            raise ValueError("a rate limit must allow at least one request")
        self.count = count
        self.window = window
        self._window_index = -1
        self._counts: dict[str, int] = {}

    @classmethod
    def parse(cls, text: str) -> RateLimit | None:
        """None for "" (no limit); ValueError naming the text if it is not N/unit."""
        if not text.strip():
            return None
        found = _LIMIT.fullmatch(text)
        if found is None:
            raise ValueError(f"rate limit {text!r} is not of the form N/second|minute|hour")
        return cls(int(found[1]), _UNITS[found[2]])

    def hit(self, key: str) -> None:
        """Count one request of `key`; SlotrushError(rate_limited) over the limit."""
        now = monotonic()
        index = int(now // self.window)
        if index != self._window_index:
            # A new window: every count starts again, and the old keys go with the old dict.
            self._window_index = index
            self._counts = {}
        used = self._counts.get(key, 0) + 1
        self._counts[key] = used
        if used > self.count:
            retry_after = max(1, math.ceil((index + 1) * self.window - now))
            raise SlotrushError(Code.RATE_LIMITED, retry_after=retry_after)
