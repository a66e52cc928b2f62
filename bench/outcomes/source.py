"""Where a report's numbers come from: a running server's analytics endpoint, or the ledger
itself through the same query. Either way they arrive as the endpoint's answer."""

from __future__ import annotations

import datetime as dt
import urllib.parse
import urllib.request

import asyncpg
import msgspec

from core import analytics
from core.analytics import GroupBy
from server.encoding import analytics_out
from server.shapes.analytics import Analytics


def from_server(
    url: str, token: str, hospital: str, group_by: GroupBy, first: dt.date, last: dt.date
) -> Analytics:
    query = {"group_by": group_by.value}
    if first != dt.date.min:
        query["from"] = first.isoformat()
    if last != dt.date.max:
        query["to"] = last.isoformat()
    request = urllib.request.Request(
        f"{url.rstrip('/')}/v1/admin/hospitals/{urllib.parse.quote(hospital)}/analytics?"
        + urllib.parse.urlencode(query),
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return msgspec.json.decode(answer.read(), type=Analytics)


async def from_ledger(
    pool: asyncpg.Pool, hospital: str, group_by: GroupBy, first: dt.date, last: dt.date
) -> Analytics:
    groups = await analytics.outcomes(pool, hospital, group_by, first, last)
    return analytics_out(hospital, group_by, first, last, groups)
