"""The secrets and tokens a run's server and clients share."""

from __future__ import annotations

import secrets

from core.tokens import issue_token

# Long enough for the slowest run to finish on one set of tokens.
TOKEN_TTL_SECONDS = 6 * 3600


def new_secret() -> str:
    return secrets.token_hex(32)


def patient_token(secret: str, patient_id: str) -> str:
    return issue_token(secret, subject=patient_id, ttl=TOKEN_TTL_SECONDS)


def admin_token(secret: str) -> str:
    return issue_token(secret, admin=True, ttl=TOKEN_TTL_SECONDS)
