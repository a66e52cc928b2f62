"""Every Redis key slotrush uses, in one module.

Keys live under `<redis_prefix>:<strategy>:`, so two strategies never read each other's state
(one keeps the patients' counts, the other does not). Inventory keys carry a hash tag
`{<hospital_id>|<YYYY-MM-DD>}`: everything one booking touches (the schedule's free numbers,
the patient's counters, the rules, the leases) lives in one Redis Cluster slot, so each Lua
script stays inside one slot. Ids are `[A-Za-z0-9._-]`, so they never contain the braces or
the `|` the tag is made of.

A slot holds:
- `slot`          hash {loaded, and for redis-lua max_per_day, max_per_department and the
                  hospital's config_version they come from}; present once the slot is loaded
- `schedules`     set of the schedule ids whose free numbers are loaded
- `free:<id>`     the free numbers of one schedule: a bitmap, bit n set while number n is free
                  (one bit per number; BITPOS finds the lowest free one)
- `blacklist`     hash patient -> blacklisted until (epoch ms); redis-lua only
- `counters`      hash of the patients' active bookings that day: `<patient>:day` (count),
                  `<patient>:d:<dept>` (count per department), `<patient>:s:<schedule>` (the
                  lease id, which is the ledger row's request id, of the booking held there);
                  redis-lua only. One hash per slot, so a reload replaces every patient's
                  counts at once
- `leases`        zset lease id -> lease deadline (epoch ms): numbers taken, ledger unwritten
- `lease_records` hash lease id -> "schedule|number|patient|department|request id"
- `lease_requests` hash request id -> the lease out for it (a retry finds its lease)
- `in_flight`     hash schedule id -> leases not yet settled (sold out is certain only at 0)
- `released`      set of the request ids of cancelled bookings whose numbers came back since
                  the slot was loaded (a release applies once)
- `closed`        set of the ids of schedules the hospital suspended: takes answer closed,
                  loads and releases add none of their numbers (kept when a slot is reloaded)

Two keys outside any slot help find the slots: `pending_slots` (zset slot tag -> when a
number was last taken there, so the reconciler knows where leases may be) and
`loaded_dates:<hospital>` (dates loaded for a hospital, so rule and blacklist changes reach
them; redis-lua only). Both are only ever touched by single-key commands, never inside a
script or beside slot keys in one command, so they may live on any Redis Cluster node.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


def slot_tag(hospital_id: str, visit_date: dt.date) -> str:
    """The slot's name inside the hash tag braces, also what `pending_slots` stores."""
    return f"{hospital_id}|{visit_date.isoformat()}"


@dataclass(frozen=True, slots=True)
class SlotKeys:
    tag: str
    slot: str
    schedules: str
    blacklist: str
    leases: str
    lease_records: str
    lease_requests: str
    in_flight: str
    released: str
    closed: str
    counters: str
    free_prefix: str

    def free(self, schedule_id: int | str) -> str:
        return f"{self.free_prefix}{schedule_id}"

    @property
    def hospital_id(self) -> str:
        return self.tag.partition("|")[0]


class KeySpace:
    """The keys of one strategy under one prefix (settings.redis_prefix: a tenant, a test)."""

    def __init__(self, prefix: str, strategy: str) -> None:
        self.prefix = f"{prefix}:{strategy}"
        self.pending_slots = f"{self.prefix}:pending_slots"

    def slot(self, tag: str) -> SlotKeys:
        base = f"{self.prefix}:{{{tag}}}:"
        return SlotKeys(
            tag=tag,
            slot=base + "slot",
            schedules=base + "schedules",
            blacklist=base + "blacklist",
            leases=base + "leases",
            lease_records=base + "lease_records",
            lease_requests=base + "lease_requests",
            in_flight=base + "in_flight",
            released=base + "released",
            closed=base + "closed",
            counters=base + "counters",
            free_prefix=base + "free:",
        )

    def loaded_dates(self, hospital_id: str) -> str:
        return f"{self.prefix}:loaded_dates:{hospital_id}"


@dataclass(frozen=True, slots=True)
class RoomKeys:
    """A schedule's waiting room (core/waiting_room): every key shares the hash tag
    `{room:<schedule id>}`, one Redis Cluster slot per opening, so each room script stays in
    one slot and rooms spread over the cluster.

    - `config`    hash {opens_at, closes_at, expire_at (epoch ms), rate, admission_ms,
                  abandon_ms, seed}: present while the room exists
    - `queue`     zset patient -> place (early arrivals shuffled in [0, 1), later ones FIFO)
    - `seen`      zset patient -> when a waiting patient last asked (epoch ms)
    - `admitted`  hash patient -> when the patient's admission expires (epoch ms)
    - `stats`     hash {arrivals, admitted, abandoned, and the admission bucket's tokens, last}
    - `arrivals`  hash patient -> arrival number
    - `log`       list of the admitted patients in admission order (the fairness record)
    """

    config: str
    queue: str
    seen: str
    admitted: str
    stats: str
    arrivals: str
    log: str

    @property
    def all(self) -> tuple[str, ...]:
        return (
            self.config,
            self.queue,
            self.seen,
            self.admitted,
            self.stats,
            self.arrivals,
            self.log,
        )


def room_keys(prefix: str, schedule_id: int) -> RoomKeys:
    base = f"{prefix}:room:{{room:{schedule_id}}}:"
    names = ("config", "queue", "seen", "admitted", "stats", "arrivals", "log")
    return RoomKeys(*(base + name for name in names))
