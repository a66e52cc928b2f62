"""The strategy registry: adding a strategy is one module plus one line here."""

from __future__ import annotations

import importlib

from strategies.base import InventoryStrategy
from strategies.pg_batched import PgBatched
from strategies.pg_optimistic import PgOptimistic
from strategies.pg_pessimistic import PgPessimistic
from strategies.pg_skip_locked import PgSkipLocked
from strategies.redis_lua import RedisLua
from strategies.redis_queue import RedisQueue

STRATEGIES: dict[str, type[InventoryStrategy]] = {
    cls.name: cls
    for cls in (
        PgPessimistic,
        PgBatched,
        PgOptimistic,
        PgSkipLocked,
        RedisLua,
        RedisQueue,
    )
}


def strategy_class(name: str) -> type[InventoryStrategy]:
    """A registered strategy by name, or "module:Class" for one outside the registry (the
    deliberately racy strategy of the tests is served that way)."""
    if name in STRATEGIES:
        return STRATEGIES[name]
    if ":" in name:
        module, _, attribute = name.partition(":")
        found = getattr(importlib.import_module(module), attribute, None)
        if isinstance(found, type) and issubclass(found, InventoryStrategy):
            return found
    known = ", ".join(sorted(STRATEGIES))
    raise ValueError(f"unknown strategy {name!r}; choose one of: {known} (or module:Class)")
