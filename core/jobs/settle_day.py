"""Day-end settlement of one hospital's visit date, queued by settle_due."""

from __future__ import annotations

import datetime as dt
import json

from core.jobs.job import Job, JobContext
from core.lifecycle import settlement
from core.lifecycle.settlement import Due


def payload(due: Due) -> bytes:
    return json.dumps(
        {"hospital_id": due.hospital_id, "visit_date": due.visit_date.isoformat()}
    ).encode()


async def _run(context: JobContext, raw: bytes | None) -> None:
    item = json.loads(raw or b"{}")
    visit_date = dt.date.fromisoformat(item["visit_date"])
    await settlement.settle_day(
        context.stores.pg, context.inventory, item["hospital_id"], visit_date
    )


JOB = Job("settle_day", _run)
