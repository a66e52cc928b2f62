"""Verification codes patients show at the counter."""

from __future__ import annotations

import secrets

# 32 symbols, so a random byte maps onto one without bias; no 0/O or 1/I, which people
# confuse when a code is read aloud and typed.
_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
LENGTH = 8


def new_verification_code() -> str:
    # One call for all the randomness: a booking's hot path pays for this on every request.
    return "".join(_ALPHABET[byte % 32] for byte in secrets.token_bytes(LENGTH))
