"""The strategy registry: adding a strategy is one module plus one line here."""

from __future__ import annotations

from strategies.base import InventoryStrategy
from strategies.pg_optimistic import PgOptimistic
from strategies.pg_pessimistic import PgPessimistic
from strategies.pg_skip_locked import PgSkipLocked

STRATEGIES: dict[str, type[InventoryStrategy]] = {
    cls.name: cls
    for cls in (
        PgPessimistic,
        PgOptimistic,
        PgSkipLocked,
    )
}


def strategy_class(name: str) -> type[InventoryStrategy]:
    try:
        return STRATEGIES[name]
    except KeyError:
        known = ", ".join(sorted(STRATEGIES))
        raise ValueError(f"unknown strategy {name!r}; choose one of: {known}") from None
