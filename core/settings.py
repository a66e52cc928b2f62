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
    secret: str | None = None
    # Tokens: `iss` and `aud` required to match when set; a PEM public key or a JWKS file
    # (paths) instead of the HS256 secret, so that this server cannot mint tokens.
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_public_key: str | None = None
    jwt_jwks: str | None = None
    strategy: str = "redis-lua"
    # Every Redis key starts with this, so a shared Redis can host several tenants or test runs.
    redis_prefix: str = "slotrush"
    pg_pool_min: int = 2
    pg_pool_max: int = 20
    # A number taken in Redis whose ledger row has not appeared after this long is given back.
    lease_seconds: float = 10.0
    reconcile_interval: float = 1.0
    sold_out_ttl: float = 1.0
    optimistic_retries: int = 8
    busy_retry_after: int = 1
    # Rate limits: "N/second" per patient and per address; empty disables (trusted generators).
    rate_limit_patient: str = ""
    rate_limit_address: str = ""
    # Origins whose pages may call the API from a browser, comma-separated; empty: no CORS.
    cors_origins: str = ""

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        base = cls(
            redis_url=os.environ.get("REDIS_URL") or None,
            database_url=os.environ.get("DATABASE_URL") or None,
            secret=os.environ.get("SLOTRUSH_SECRET") or None,
            jwt_issuer=os.environ.get("SLOTRUSH_JWT_ISSUER") or None,
            jwt_audience=os.environ.get("SLOTRUSH_JWT_AUDIENCE") or None,
            jwt_public_key=os.environ.get("SLOTRUSH_JWT_PUBLIC_KEY") or None,
            jwt_jwks=os.environ.get("SLOTRUSH_JWT_JWKS") or None,
            strategy=os.environ.get("SLOTRUSH_STRATEGY", cls.strategy),
            redis_prefix=os.environ.get("SLOTRUSH_REDIS_PREFIX", cls.redis_prefix),
            pg_pool_min=_env_int("SLOTRUSH_PG_POOL_MIN", cls.pg_pool_min),
            pg_pool_max=_env_int("SLOTRUSH_PG_POOL_MAX", cls.pg_pool_max),
            lease_seconds=_env_float("SLOTRUSH_LEASE_SECONDS", cls.lease_seconds),
            reconcile_interval=_env_float("SLOTRUSH_RECONCILE_INTERVAL", cls.reconcile_interval),
            sold_out_ttl=_env_float("SLOTRUSH_SOLD_OUT_TTL", cls.sold_out_ttl),
            optimistic_retries=_env_int("SLOTRUSH_OPTIMISTIC_RETRIES", cls.optimistic_retries),
            rate_limit_patient=os.environ.get("SLOTRUSH_RATE_LIMIT_PATIENT", ""),
            rate_limit_address=os.environ.get("SLOTRUSH_RATE_LIMIT_ADDRESS", ""),
            cors_origins=os.environ.get("SLOTRUSH_CORS_ORIGINS", ""),
        )
        return replace(base, **overrides)  # type: ignore[arg-type]
