"""Per-key state that a long-lived process cannot grow without end.

Two shapes, because there are two kinds of per-key state: values that can be recomputed
(`LruCache`: the least recently used one goes once it is full), and objects that waiters
share, such as a lock (`InUse`: kept exactly while someone holds it, so an entry in use is
never evicted and an idle one costs nothing).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """A mapping of at most `max_size` entries; storing one more forgets the least recently
    used."""

    __slots__ = ("_entries", "max_size")

    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError(f"an LruCache holds at least one entry, not {max_size}")
        self.max_size = max_size
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        try:
            self._entries.move_to_end(key)
        except KeyError:
            return None
        return self._entries[key]

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> V | None:
        return self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


class _Entry(Generic[V]):
    __slots__ = ("users", "value")

    def __init__(self, value: V) -> None:
        self.value = value
        self.users = 0


class InUse(Generic[K, V]):
    """One shared object per key (made by `factory`) while at least one user holds it."""

    __slots__ = ("_entries", "_factory")

    def __init__(self, factory: Callable[[], V]) -> None:
        self._factory = factory
        self._entries: dict[K, _Entry[V]] = {}

    @contextmanager
    def use(self, key: K) -> Iterator[V]:
        """The key's object, shared with every other current user of the key."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(self._factory())
        entry.users += 1
        try:
            yield entry.value
        finally:
            entry.users -= 1
            # The entry may have been detached meanwhile and the key given a new one.
            if not entry.users and self._entries.get(key) is entry:
                del self._entries[key]

    def detach(self, key: K) -> V | None:
        """Remove the key's object and return it: its current users keep it, the next user
        of the key gets a new one."""
        entry = self._entries.pop(key, None)
        return None if entry is None else entry.value

    def __len__(self) -> int:
        return len(self._entries)
