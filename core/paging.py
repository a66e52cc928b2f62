"""Keyset pagination: every list is read in a stable order, one page at a time, continuing
after the key of the last row a page covered, so a row is never seen twice and rows added
meanwhile never shift the rest (API.md 1.1: every list is cursor-paginated)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 500

T = TypeVar("T")
K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class Page(Generic[T, K]):
    items: list[T]
    # The key to continue after; None: the list ends with this page.
    next_key: K | None


def page_of(rows: Sequence[T], limit: int, key: Callable[[T], K]) -> Page[T, K]:
    """The first `limit` of `rows`, read with a limit of `limit + 1` so that one row more
    tells whether the list goes on."""
    if len(rows) <= limit:
        return Page(list(rows), None)
    items = list(rows[:limit])
    return Page(items, key(items[-1]))
