"""What a Redis gate spends on a schedule's free numbers, in bytes per free number.

Measured on a schedule of `NUMBERS` numbers after its first booking loaded it into Redis:
MEMORY USAGE of its free-number key (every sample, not an estimate) over how many numbers
the key still holds free. One bit per number is the floor; the bench records the figure
beside the throughputs, with the target of at most one byte.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import redis

from core.keys import KeySpace, slot_tag
from loadtest.client.seed import SeededSchedule

# A schedule as large as the largest a hospital opens at once.
NUMBERS = 100_000


@dataclass(frozen=True, slots=True)
class FreeNumberMemory:
    free_numbers: int
    key_bytes: int

    @property
    def bytes_per_free_number(self) -> float | None:
        return self.key_bytes / self.free_numbers if self.free_numbers else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "free_numbers": self.free_numbers,
            "key_bytes": self.key_bytes,
            "bytes_per_free_number": self.bytes_per_free_number,
        }


def measure(
    client: redis.Redis | redis.RedisCluster,
    prefix: str,
    strategy: str,
    schedule: SeededSchedule,
    visit_date: dt.date,
) -> FreeNumberMemory:
    """The schedule's free-number key as the strategy keeps it under `prefix`."""
    slot = KeySpace(prefix, strategy).slot(slot_tag(schedule.hospital_id, visit_date))
    key = slot.free(schedule.id)
    used = client.memory_usage(key, samples=0)
    free = client.bitcount(key)
    return FreeNumberMemory(free_numbers=int(free), key_bytes=int(used or 0))
