"""Settings read once from the environment; everything else receives a Settings value."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


@dataclass(frozen=True)
class Settings:
    # None means unset: `slotrush serve` then refuses to start, while `serve --dev`, the tests
    # and the benchmarks start an embedded throwaway server (bench.embedded).
    redis_url: str | None = None
    database_url: str | None = None
    # A streaming replica of database_url for the public browsing reads (core/replica.py):
    # used while it is at most `replica_max_lag` seconds behind; None: the primary serves all.
    # With its check every half second, browsing lags at most the second API.md allows.
    database_replica_url: str | None = None
    replica_max_lag: float = 0.5
    secret: str | None = None
    # Signs waiting-room tokens (core/waiting_room); unset: derived from `secret`. A server
    # verifying bearer tokens by public key needs it for waiting rooms.
    waiting_room_secret: str | None = None
    # Tokens: `iss` and `aud` required to match when set; a PEM public key or a JWKS file
    # (paths) instead of the HS256 secret, so that this server cannot mint tokens.
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_public_key: str | None = None
    jwt_jwks: str | None = None
    strategy: str = "redis-lua"
    # Every Redis key starts with this, so a shared Redis can host several tenants or test runs.
    redis_prefix: str = "slotrush"
    # REDIS_URL names one node of a Redis Cluster (also found out by asking the server).
    redis_cluster: bool = False
    # Set (ms): on a Redis Cluster, each batch of script calls to a node ends with WAIT 1, so
    # its answers come once a replica has the writes (or this long has passed): a failover
    # then loses no write a booking was answered on. 0: asynchronous replication only.
    redis_replica_wait_ms: int = 0
    pg_pool_min: int = 2
    pg_pool_max: int = 20
    # A number taken in Redis whose ledger row has not appeared after this long is given back.
    lease_seconds: float = 10.0
    reconcile_interval: float = 1.0
    sold_out_ttl: float = 1.0
    optimistic_retries: int = 8
    busy_retry_after: int = 1
    # Backpressure: every request has a deadline (admin endpoints a longer one), a PostgreSQL
    # connection is waited for this long at most, and a process books at most
    # `bookings_in_flight` at once with `booking_queue` more waiting; past any of these the
    # answer is 503 busy at once.
    request_timeout: float = 5.0
    admin_request_timeout: float = 60.0
    pg_acquire_timeout: float = 2.0
    bookings_in_flight: int = 64
    booking_queue: int = 256
    # Connections: a request head must arrive within `header_timeout` of its first byte, and
    # a connection with no request under way is closed after `idle_timeout`.
    header_timeout: float = 10.0
    idle_timeout: float = 75.0
    # Rate limits: "N/second" per patient and per address; empty disables (trusted generators).
    rate_limit_patient: str = ""
    rate_limit_address: str = ""
    # Origins whose pages may call the API from a browser, comma-separated; empty: no CORS.
    cors_origins: str = ""
    # Whether a server process also runs the durable jobs (core.jobs); `serve --no-jobs`
    # leaves them to `slotrush worker` processes.
    run_jobs: bool = True
    # Payments: the sandbox provider's URL (`slotrush sandbox-pay`), the secret its webhooks
    # are signed with, and how long a call to a provider may take before it counts as down.
    # The defaults are the sandbox's own, for development and tests; a deployment sets its own.
    pay_sandbox_url: str = "http://127.0.0.1:8099"
    pay_secret: str = "sandbox-webhook-secret-change-me"
    pay_timeout: float = 3.0
    # Webhook notifications (core.notifications): a post waits `webhook_timeout` for its
    # answer; a failed one is tried again after `webhook_retry_seconds`, doubled each time,
    # and is dead after `webhook_max_attempts`. Reminders go out this many hours before the
    # visit starts.
    webhook_timeout: float = 10.0
    webhook_retry_seconds: float = 5.0
    webhook_max_attempts: int = 8
    reminder_hours: int = 24

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        base = cls(
            redis_url=os.environ.get("REDIS_URL") or None,
            database_url=os.environ.get("DATABASE_URL") or None,
            database_replica_url=os.environ.get("DATABASE_REPLICA_URL") or None,
            replica_max_lag=_env_float("SLOTRUSH_REPLICA_MAX_LAG", cls.replica_max_lag),
            secret=os.environ.get("SLOTRUSH_SECRET") or None,
            waiting_room_secret=os.environ.get("SLOTRUSH_WAITING_ROOM_SECRET") or None,
            jwt_issuer=os.environ.get("SLOTRUSH_JWT_ISSUER") or None,
            jwt_audience=os.environ.get("SLOTRUSH_JWT_AUDIENCE") or None,
            jwt_public_key=os.environ.get("SLOTRUSH_JWT_PUBLIC_KEY") or None,
            jwt_jwks=os.environ.get("SLOTRUSH_JWT_JWKS") or None,
            strategy=os.environ.get("SLOTRUSH_STRATEGY", cls.strategy),
            redis_prefix=os.environ.get("SLOTRUSH_REDIS_PREFIX", cls.redis_prefix),
            redis_cluster=os.environ.get("SLOTRUSH_REDIS_CLUSTER", "") not in ("", "0"),
            redis_replica_wait_ms=_env_int(
                "SLOTRUSH_REDIS_REPLICA_WAIT_MS", cls.redis_replica_wait_ms
            ),
            pg_pool_min=_env_int("SLOTRUSH_PG_POOL_MIN", cls.pg_pool_min),
            pg_pool_max=_env_int("SLOTRUSH_PG_POOL_MAX", cls.pg_pool_max),
            lease_seconds=_env_float("SLOTRUSH_LEASE_SECONDS", cls.lease_seconds),
            reconcile_interval=_env_float("SLOTRUSH_RECONCILE_INTERVAL", cls.reconcile_interval),
            sold_out_ttl=_env_float("SLOTRUSH_SOLD_OUT_TTL", cls.sold_out_ttl),
            optimistic_retries=_env_int("SLOTRUSH_OPTIMISTIC_RETRIES", cls.optimistic_retries),
            request_timeout=_env_float("SLOTRUSH_REQUEST_TIMEOUT", cls.request_timeout),
            admin_request_timeout=_env_float(
                "SLOTRUSH_ADMIN_REQUEST_TIMEOUT", cls.admin_request_timeout
            ),
            pg_acquire_timeout=_env_float("SLOTRUSH_PG_ACQUIRE_TIMEOUT", cls.pg_acquire_timeout),
            bookings_in_flight=_env_int("SLOTRUSH_BOOKINGS_IN_FLIGHT", cls.bookings_in_flight),
            booking_queue=_env_int("SLOTRUSH_BOOKING_QUEUE", cls.booking_queue),
            header_timeout=_env_float("SLOTRUSH_HEADER_TIMEOUT", cls.header_timeout),
            idle_timeout=_env_float("SLOTRUSH_IDLE_TIMEOUT", cls.idle_timeout),
            rate_limit_patient=os.environ.get("SLOTRUSH_RATE_LIMIT_PATIENT", ""),
            rate_limit_address=os.environ.get("SLOTRUSH_RATE_LIMIT_ADDRESS", ""),
            cors_origins=os.environ.get("SLOTRUSH_CORS_ORIGINS", ""),
            pay_sandbox_url=os.environ.get("SLOTRUSH_PAY_SANDBOX_URL") or cls.pay_sandbox_url,
            pay_secret=os.environ.get("SLOTRUSH_PAY_SECRET") or cls.pay_secret,
            pay_timeout=_env_float("SLOTRUSH_PAY_TIMEOUT", cls.pay_timeout),
            webhook_timeout=_env_float("SLOTRUSH_WEBHOOK_TIMEOUT", cls.webhook_timeout),
            webhook_retry_seconds=_env_float(
                "SLOTRUSH_WEBHOOK_RETRY_SECONDS", cls.webhook_retry_seconds
            ),
            webhook_max_attempts=_env_int(
                "SLOTRUSH_WEBHOOK_MAX_ATTEMPTS", cls.webhook_max_attempts
            ),
            reminder_hours=_env_int("SLOTRUSH_REMINDER_HOURS", cls.reminder_hours),
        )
        return replace(base, **overrides)  # type: ignore[arg-type]
