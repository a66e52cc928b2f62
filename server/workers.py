"""How many of the server's worker processes serve: what /healthz needs of the runner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Workers:
    """How many worker processes serve now, out of how many the server runs. With
    --workers N the supervisor keeps the count in memory it shares with every worker."""

    expected: int
    serving: Callable[[], int]


ONE_PROCESS: Final = Workers(1, lambda: 1)
