"""API keys and roles: keys read from call metadata, stored only as keyed digests; who may call what.

A key is `ss_<key id>_<secret>`: random (secrets.token_urlsafe, 256 bits), so nothing slow is
needed to protect it, but its digest is keyed: HMAC-SHA256 with the data dir's server secret
(`server.secret`, 32 random bytes, mode 0600), so a leaked catalog cannot be matched against
keys known from elsewhere. Digests written before keying (plain SHA-256, marked "sha256:") are
re-keyed the first time their key is used.

Roles, each a superset of the next (`may`): admin (the whole deployment: tenants and every key),
tenant-admin (its tenant's collections, aliases, payload indexes and keys), read-write (its
tenant's points), read-only (search, get, count, scroll, describe, list). `RPC_PERMISSIONS` says
what every RPC needs; docs/architecture.md carries the table the role test generates.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from simsearch.contract.errors import Unauthenticated

KEY_HEADER = "x-api-key"
SECRET_FILE = "server.secret"
LEGACY_PREFIX = "sha256:"
ROLES = ("admin", "tenant-admin", "read-write", "read-only")
# What each role may do: permissions in increasing order of power.
PERMISSIONS = ("read", "write", "manage", "admin")
_GRANTS = {"read-only": 1, "read-write": 2, "tenant-admin": 3, "admin": 4}

RPC_PERMISSIONS: dict[str, str] = {
    # points and encoders
    "Get": "read", "Search": "read", "SearchStream": "read", "Count": "read", "Scroll": "read",
    "Embed": "read", "ListModels": "read", "ListFeedback": "read",
    "Upsert": "write", "Delete": "write", "SetPayload": "write", "Feedback": "write",
    # collections
    "ListCollections": "read", "DescribeCollection": "read", "ListAliases": "read",
    "CreateCollection": "manage", "DropCollection": "manage", "BuildIndex": "manage",
    "CreateAlias": "manage", "SwitchAlias": "manage", "DeleteAlias": "manage",
    "CreatePayloadIndex": "manage", "DropPayloadIndex": "manage",
    "Reindex": "manage", "CancelReindex": "manage", "GetReindex": "read",
    "ResetDriftReference": "manage", "UpdateCollection": "manage",
    # tenants and keys (a tenant-admin only within its own tenant)
    "DescribeTenant": "manage", "CreateKey": "manage", "ListKeys": "manage", "RevokeKey": "manage",
    "RotateKey": "manage",
    "CreateTenant": "admin", "ListTenants": "admin", "UpdateTenant": "admin", "DeleteTenant": "admin",
}


def may(role: str, permission: str) -> bool:
    return _GRANTS.get(role, 0) > PERMISSIONS.index(permission)


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the key's tenant, id, role and collection limit (None: all of its tenant's)."""

    tenant: str
    key_id: str
    role: str
    collections: frozenset[str] | None = None
    expires_at: float = 0.0


def new_key_id() -> str:
    return secrets.token_hex(6)


def new_key(key_id: str) -> str:
    return f"ss_{key_id}_{secrets.token_urlsafe(32)}"


def key_prefix(key_id: str) -> str:
    return f"ss_{key_id}_…"


def legacy_digest(key: str) -> str:
    """The digest catalogs stored before keyed digests (plain SHA-256)."""
    return LEGACY_PREFIX + hashlib.sha256(key.encode()).hexdigest()


class KeyHasher:
    """Keyed digests of API keys under one server secret."""

    def __init__(self, secret: bytes):
        self._secret = secret

    def digest(self, key: str) -> str:
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()


def load_secret(root: Path) -> bytes:
    """The data dir's server secret, created (0600, never world-readable even for an instant) on first use."""
    path = root / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        data = path.read_bytes()
        if len(data) != 32:
            raise ValueError(f"{path} holds {len(data)} bytes, expected 32 (the server secret keys the API key "
                             f"digests; restore it from a backup)") from None
        return data
    secret = secrets.token_bytes(32)
    try:
        os.write(fd, secret)
        os.fsync(fd)
    finally:
        os.close(fd)
    return secret


def key_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    for name, value in metadata or ():
        if isinstance(value, bytes):
            continue
        if name == KEY_HEADER and value:
            return value
        if name == "authorization" and value.lower().startswith("bearer "):
            return value[7:].strip()
    raise Unauthenticated(f"missing API key: send it as '{KEY_HEADER}' metadata (or 'authorization: Bearer KEY')")
