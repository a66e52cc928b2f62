"""Verification codes patients show at the counter."""

from __future__ import annotations

import secrets

# No 0/O, 1/I/L: the code is read aloud and typed by people.
_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 8


def new_verification_code() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(LENGTH))
