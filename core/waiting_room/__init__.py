"""Waiting rooms for an opening: patients who come before a schedule's `opens_at` are
shuffled fairly, later ones queue in order, and the room admits them at a configured rate
with short-lived admission tokens; while the room is open only admitted patients book.

`rooms` keeps every room's state in Redis (one Cluster slot per room, Lua scripts on the
Redis clock), `tickets` signs the position and admission tokens, `directory` tells the
booking path which schedules have a room open. Not server.admission, which sheds a single
process's overload.
"""

from __future__ import annotations

from core.waiting_room.directory import OpenRooms
from core.waiting_room.rooms import Place, RoomConfig, RoomCounts, Standing, WaitingRooms
from core.waiting_room.tickets import RoomTickets

__all__ = [
    "OpenRooms",
    "Place",
    "RoomConfig",
    "RoomCounts",
    "RoomTickets",
    "Standing",
    "WaitingRooms",
]
