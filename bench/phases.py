"""The workloads of a benchmark run and how their answers are read.

A workload is a list of pre-encoded requests with planned arrival times and, beside each,
what it means (a booking attempt of a patient on a schedule, a cancel, a read). After the
generator has run it, the answers are summarised (throughput, HDR latency, codes) and every
booking outcome goes into the same client tally the Locust scenarios keep.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench import loadgen, report
from loadtest.client.tally import Tally
from loadtest.client.tokens import patient_token

BOOK, CANCEL, READ = "book", "cancel", "read"


@dataclass(frozen=True, slots=True)
class Call:
    kind: str
    schedule_id: str | None = None
    patient_id: str | None = None
    booking_id: str | None = None


@dataclass
class Workload:
    name: str
    requests: list[bytes] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def add(self, request: bytes, arrival: float, call: Call) -> None:
        self.requests.append(request)
        self.arrivals.append(arrival)
        self.calls.append(call)

    def tail(self, start: int, count: int | None = None) -> Workload:
        """`count` requests (all the rest by default) from `start` on, arriving at once (for
        a flat-out slice)."""
        end = len(self.requests) if count is None else min(start + count, len(self.requests))
        return Workload(
            self.name, self.requests[start:end], [0.0] * (end - start), self.calls[start:end]
        )

    def sorted(self) -> Workload:
        """The same requests in arrival order (the generator's index is the arrival rank)."""
        order = sorted(range(len(self.arrivals)), key=self.arrivals.__getitem__)
        return Workload(
            self.name,
            [self.requests[i] for i in order],
            [self.arrivals[i] for i in order],
            [self.calls[i] for i in order],
        )


class Encoder:
    """Pre-encodes the API's requests for one server; mints each patient's token once."""

    def __init__(self, host: str, port: int, secret: str) -> None:
        self.host = f"{host}:{port}"
        self.secret = secret
        self._tokens: dict[str, str] = {}

    def _auth(self, patient_id: str) -> dict[str, str]:
        token = self._tokens.get(patient_id)
        if token is None:
            token = self._tokens[patient_id] = patient_token(self.secret, patient_id)
        return {"Authorization": f"Bearer {token}"}

    def book(self, schedule_id: str, patient_id: str) -> bytes:
        path = f"/v1/schedules/{schedule_id}/bookings"
        return self._with_body("POST", path, patient_id)

    def cancel(self, booking_id: str, patient_id: str) -> bytes:
        return self._with_body("POST", f"/v1/bookings/{booking_id}/cancel", patient_id)

    def ceiling_like_booking(self, patient_id: str) -> bytes:
        """GET /ceiling with a booking's headers and body: the constant answer, paid for with
        the HTTP parsing a booking request costs (a body alone adds about 6 µs a request)."""
        return self._with_body("GET", "/ceiling", patient_id)

    def _with_body(self, method: str, path: str, patient_id: str) -> bytes:
        """A request carrying the patient's token and an empty JSON body."""
        headers = {**self._auth(patient_id), "Content-Type": "application/json"}
        return loadgen.encode_request(method, path, host=self.host, headers=headers, body=b"{}")

    def get(self, path: str, patient_id: str | None = None) -> bytes:
        headers = self._auth(patient_id) if patient_id else {}
        return loadgen.encode_request("GET", path, host=self.host, headers=headers)


# --- building workloads --------------------------------------------------------------------


def ceiling(encoder: Encoder, count: int, *, like_booking: bool = False) -> Workload:
    request = encoder.ceiling_like_booking("ceiling") if like_booking else encoder.get("/ceiling")
    return Workload("ceiling", [request] * count, loadgen.burst(count), [Call(READ)] * count)


def crowd(
    encoder: Encoder,
    name: str,
    schedules: Sequence[str],
    patients: int,
    arrivals: Sequence[float],
    *,
    hot_share: float = 0.0,
    seed: int = 1,
) -> Workload:
    """`patients` distinct patients, one booking each; a `hot_share` of them all want the
    first schedule, the rest pick uniformly. Arrival i is patient i."""
    rng = random.Random(seed)
    workload = Workload(name)
    for i in range(patients):
        hot = rng.random() < hot_share
        schedule = schedules[0] if hot or len(schedules) == 1 else rng.choice(schedules)
        patient = f"{name}-{i}"
        workload.add(encoder.book(schedule, patient), arrivals[i], Call(BOOK, schedule, patient))
    return workload


def churn(
    encoder: Encoder, tally: Tally, losers: Sequence[Call], seconds: float, share: float
) -> Workload:
    """After a crowd: a `share` of the winners cancel while twice as many losers press again,
    all spread over `seconds`. Every cancelled number must find a new holder (invariant 7)."""
    rng = random.Random(2)
    winners = sorted(tally.active(), key=lambda c: c.booking_id)
    cancels = rng.sample(winners, int(len(winners) * share))
    retries = rng.sample(list(losers), min(len(losers), 2 * len(cancels)))
    workload = Workload("churn")
    total = len(cancels) + len(retries)
    times = loadgen.spread(total, seconds)
    rng.shuffle(times)
    for booking, at in zip(cancels, times, strict=False):
        call = Call(CANCEL, booking.schedule_id, booking.patient_id, booking.booking_id)
        workload.add(encoder.cancel(booking.booking_id, booking.patient_id), at, call)
    for loser, at in zip(retries, times[len(cancels) :], strict=True):
        assert loser.schedule_id is not None and loser.patient_id is not None
        workload.add(encoder.book(loser.schedule_id, loser.patient_id), at, loser)
    return workload.sorted()


def sustained(
    encoder: Encoder, schedules: Sequence[str], requests: int, seconds: float
) -> Workload:
    """A steady mix over `seconds`: half schedule views, 30% bookings by a pool of returning
    patients (who meet the already-booked and per-day limits), 20% "my bookings" reads."""
    rng = random.Random(3)
    pool = [f"sustained-{i}" for i in range(max(requests // 6, 1))]
    workload = Workload("crowd")
    for at in loadgen.spread(requests, seconds):
        roll, patient = rng.random(), rng.choice(pool)
        if roll < 0.5:
            workload.add(
                encoder.get(f"/v1/schedules/{rng.choice(schedules)}", patient), at, Call(READ)
            )
        elif roll < 0.8:
            schedule = rng.choice(schedules)
            workload.add(encoder.book(schedule, patient), at, Call(BOOK, schedule, patient))
        else:
            workload.add(encoder.get("/v1/me/bookings", patient), at, Call(READ))
    return workload


def verification(encoder: Encoder, tally: Tally) -> Workload:
    """GET every confirmed booking as its owner (invariant 6)."""
    workload = Workload("verify")
    for confirmed in tally.confirmed.values():
        path = f"/v1/bookings/{confirmed.booking_id}"
        call = Call(READ, confirmed.schedule_id, confirmed.patient_id, confirmed.booking_id)
        workload.add(encoder.get(path, confirmed.patient_id), 0.0, call)
    return workload


# --- reading answers -----------------------------------------------------------------------


_codes: dict[bytes, str] = {}


def code_of(status: int, body: bytes) -> str:
    """The stable code of a problem answer; "booked"/"ok" for successes."""
    if status == 201:
        return "booked"
    if 200 <= status < 300:
        return "ok"
    if status == 0:
        return "no_answer"
    code = _codes.get(body)
    if code is None:
        try:
            code = str(orjson.loads(body).get("code", f"http_{status}"))
        except (orjson.JSONDecodeError, AttributeError):
            code = f"http_{status}"
        if len(_codes) < 1000:
            _codes[body] = code
    return code


@dataclass
class PhaseResult:
    name: str
    requests: int
    answered: int
    elapsed: float
    throughput: float
    latency_ms: dict[str, float]
    codes: dict[str, int]
    retries: int
    errors: list[str]
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    ratio_to_ceiling: float | None = None
    # The ceiling measured in the slices around this phase's own, when it had them.
    ceiling_slices: list[float] = field(default_factory=list)
    # The sold-out phase's slices also ask the ceiling with a booking's headers and body.
    ratio_to_booking_shaped_ceiling: float | None = None
    booking_shaped_ceiling_slices: list[float] = field(default_factory=list)
    cdf: list[tuple[float, float]] = field(default_factory=list)

    @property
    def unanswered(self) -> int:
        return self.requests - self.answered

    def cpu_percent(self) -> dict[str, float]:
        wall = self.elapsed or math.nan
        return {name: 100 * seconds / wall for name, seconds in self.cpu_seconds.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "answered": self.answered,
            "unanswered": self.unanswered,
            "elapsed_s": self.elapsed,
            "throughput_rps": self.throughput,
            "ratio_to_ceiling": self.ratio_to_ceiling,
            "ceiling_slices_rps": self.ceiling_slices,
            "ratio_to_booking_shaped_ceiling": self.ratio_to_booking_shaped_ceiling,
            "booking_shaped_ceiling_slices_rps": self.booking_shaped_ceiling_slices,
            "latency_ms": self.latency_ms,
            "codes": self.codes,
            "busy_retries": self.retries,
            "cpu_seconds": self.cpu_seconds,
            "cpu_percent_of_one_core": self.cpu_percent(),
            "errors_sample": self.errors,
        }


def summarise(name: str, shot: loadgen.Shot) -> PhaseResult:
    hist = report.histogram(shot.latency)
    codes = Counter(
        f"{status} {code_of(status, body)}"
        for status, body, sent in zip(shot.status, shot.body, shot.sent, strict=True)
        if sent
    )
    return PhaseResult(
        name=name,
        requests=shot.requests,
        answered=shot.answered,
        elapsed=shot.elapsed,
        throughput=shot.throughput,
        latency_ms=report.latency_summary(hist),
        codes=dict(codes.most_common()),
        retries=shot.retries,
        errors=sorted(set(shot.errors.values()))[:5],
        cdf=report.cdf(hist),
    )


def record(tally: Tally, workload: Workload, shot: loadgen.Shot) -> None:
    """Every booking and cancel outcome of a run, into the client tally."""
    for call, status, body, attempts, index in zip(
        workload.calls, shot.status, shot.body, shot.attempts, range(len(shot.status)), strict=True
    ):
        if not shot.sent[index]:
            continue  # never left the generator: no attempt was made
        for _ in range(attempts - 1):
            tally.retried("busy" if status != 429 else "rate_limited")
        if call.kind == BOOK:
            _record_booking(tally, call, status, body, shot.errors.get(index))
        elif call.kind == CANCEL:
            assert call.booking_id is not None
            if status == 0:
                tally.cancel_lost(call.booking_id, "no_answer")
            else:
                tally.cancel_answered(call.booking_id, status, code_of(status, body))


def _record_booking(tally: Tally, call: Call, status: int, body: bytes, error: str | None) -> None:
    assert call.schedule_id is not None and call.patient_id is not None
    tally.attempt_started(call.schedule_id)
    if status == 201:
        tally.booked(orjson.loads(body)["booking"])
    elif status == 0:
        tally.outcome_unknown(call.schedule_id, error or "no_answer")
    elif status >= 500 or status == 429:
        # A 503 still standing after every retry, or a server error: nothing says whether a
        # number was taken.
        tally.outcome_unknown(call.schedule_id, code_of(status, body))
    else:
        tally.rejected(call.schedule_id, status, code_of(status, body), call.patient_id)


def fetched_bookings(workload: Workload, shot: loadgen.Shot) -> dict[str, dict[str, Any] | None]:
    """What the verification GETs returned: the booking, None for a 404, absent otherwise."""
    seen: dict[str, dict[str, Any] | None] = {}
    for call, status, body in zip(workload.calls, shot.status, shot.body, strict=True):
        assert call.booking_id is not None
        if status == 200:
            seen[call.booking_id] = orjson.loads(body)["booking"]
        elif status == 404:
            seen[call.booking_id] = None
    return seen


def successes(shot: loadgen.Shot) -> list[bool | None]:
    """Per arrival: got a number, was refused, or None when the outcome is unknown."""
    return [
        True if status == 201 else None if status == 0 or status >= 500 else False
        for status in shot.status
    ]
