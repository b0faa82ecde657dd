"""API keys: read from call metadata, stored only as SHA-256 digests.

Keys are random tokens (secrets.token_urlsafe, 256 bits), so a plain digest is enough:
there is nothing to brute-force that a slow KDF would protect.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable

from simsearch.contract.errors import Unauthenticated

KEY_HEADER = "x-api-key"


def new_key() -> str:
    return "ss_" + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    for name, value in metadata or ():
        if isinstance(value, bytes):
            continue
        if name == KEY_HEADER and value:
            return value
        if name == "authorization" and value.lower().startswith("bearer "):
            return value[7:].strip()
    raise Unauthenticated(f"missing API key: send it as '{KEY_HEADER}' metadata (or 'authorization: Bearer KEY')")

