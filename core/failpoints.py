"""Crash points for the fault suite: a test-only way to kill a process between two steps.

`SLOTRUSH_FAILPOINTS=name[:switch],...` arms the named points: a process reaching an armed
point kills itself with SIGKILL, as a crash would, at once or only while the file `switch`
exists (so a harness decides when). Read once at import; unset, as in production, reaching a
point costs one test of an empty dict.
"""

from __future__ import annotations

import os
import signal

# After a cancellation committed in the ledger, before Redis was told (strategies.base).
CANCEL_AFTER_COMMIT = "cancel_after_commit"
# After a batch of day-end settlement committed, before the next (core.lifecycle.settlement).
SETTLE_AFTER_BATCH = "settle_after_batch"
# After a provider confirmed a refund, before the ledger recorded it (core.payments.refunds).
REFUND_AFTER_PROVIDER = "refund_after_provider"


def _armed(spec: str) -> dict[str, str | None]:
    points: dict[str, str | None] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, switch = item.partition(":")
        points[name] = switch or None
    return points


_ARMED = _armed(os.environ.get("SLOTRUSH_FAILPOINTS", ""))


def failpoint(name: str) -> None:
    if _ARMED and name in _ARMED:
        switch = _ARMED[name]
        if switch is None or os.path.exists(switch):
            os.kill(os.getpid(), signal.SIGKILL)
