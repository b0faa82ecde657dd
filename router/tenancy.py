"""Tenants and API keys in the catalog: records, the per-request key lookup, and their changes.

A mixin of `router.catalog.Catalog` (it shares the catalog's SQLite connection, lock and
transactions, so a tenant's deletion removes its collections, aliases, indexes and keys in one
commit). Every change commits first and then replaces the in-memory copies, like the rest of the
catalog, so a request admitted after a change returns sees it (a revoked key is refused from the
next request on, including the next message of an open search stream).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field

from simsearch.contract.errors import (AlreadyExists, FailedPrecondition, NotFound, Unauthenticated, excerpt,
                                       invalid)
from simsearch.router.auth import (ROLES, KeyHasher, Principal, key_prefix, legacy_digest, new_key, new_key_id)

DEFAULT_TENANT = "default"
QUOTA_FIELDS = ("max_collections", "max_points", "max_qps", "max_concurrent_searches", "max_payload_bytes")
LAST_USED_FLUSH_S = 60.0  # last-used times are kept in memory and stored at most this often


class BootstrapMismatch(Exception):
    """A bootstrap key given at a later start that is not one of the data dir's keys."""


@dataclass(frozen=True)
class TenantRecord:
    name: str
    created_at: float
    quotas: dict[str, float] = field(default_factory=dict)  # only the limits set (0 / absent: none)


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    digest: str
    tenant: str
    role: str
    collections: tuple[str, ...] | None
    created_at: float
    expires_at: float = 0.0
    bootstrap: bool = False

    def principal(self) -> Principal:
        return Principal(self.tenant, self.key_id, self.role,
                         None if self.collections is None else frozenset(self.collections), self.expires_at)


def check_quotas(quotas: dict[str, float]) -> dict[str, float]:
    """Quotas as stored: each a non-negative number, 0 dropped (no limit)."""
    out = {}
    for name, value in quotas.items():
        if name not in QUOTA_FIELDS:
            raise invalid(f"quotas.{name}", f"unknown quota; known: {', '.join(QUOTA_FIELDS)}")
        if value < 0:
            raise invalid(f"quotas.{name}", f"must be >= 0 (0: no limit), got {value}")
        if value:
            out[name] = value
    return out


class TenancyMixin:
    """Catalog methods for tenants and keys (see the module docstring)."""

    _db: sqlite3.Connection
    _lock: threading.Lock
    hasher: KeyHasher

    def _load_tenancy(self) -> None:
        self._tenant_records = {
            name: TenantRecord(name, created_at, json.loads(quotas))
            for name, created_at, quotas in self._db.execute("SELECT name, created_at, quotas FROM tenants")}
        self._tenants = set(self._tenant_records)
        keys = {}
        for key_id, digest, tenant, role, collections, created, expires, bootstrap in self._db.execute(
                "SELECT key_id, digest, tenant, role, collections, created_at, expires_at, bootstrap FROM keys"):
            if role not in ROLES:
                raise ValueError(f"key {key_id} has an unknown role {role!r}")
            keys[key_id] = KeyRecord(key_id, digest, tenant, role,
                                     None if collections is None else tuple(json.loads(collections)), created,
                                     expires, bool(bootstrap))
        self._set_keys(keys)
        self._last_used = dict(self._db.execute("SELECT key_id, last_used FROM keys WHERE last_used > 0"))
        self._last_used_stored = time.monotonic()

    def _set_keys(self, keys: dict[str, KeyRecord]) -> None:
        self._keys = keys
        self._by_digest = {k.digest: k for k in keys.values()}

    # ---- per request ----

    def authenticate(self, key: str) -> Principal:
        """The principal a key acts as: one keyed digest and one dict probe (plus, for a key stored before
        keyed digests, a one-time re-keying). Unauthenticated for an unknown, revoked or expired key."""
        digest = self.hasher.digest(key)
        rec = self._by_digest.get(digest)
        if rec is None:
            rec = self._by_digest.get(legacy_digest(key))
            if rec is None:
                raise Unauthenticated("API key not recognised")
            rec = self._rekey(rec, digest)
        if rec.expires_at and time.time() >= rec.expires_at:
            raise Unauthenticated(f"API key {key_prefix(rec.key_id)} expired at "
                                  f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(rec.expires_at))}")
        self._last_used[rec.key_id] = time.time()
        return rec.principal()

    def _rekey(self, rec: KeyRecord, digest: str) -> KeyRecord:
        """Replace a legacy SHA-256 digest with the keyed one (the key itself is known only now). Under the
        lock, and only while the record still holds that legacy digest: a key revoked or rotated since it
        was looked up stays revoked or rotated."""
        with self._lock:
            current = self._keys.get(rec.key_id)
            if current is None or current.digest != rec.digest:
                raise Unauthenticated("API key not recognised")
            with self._transaction():  # type: ignore[attr-defined]
                self._db.execute("UPDATE keys SET digest = ? WHERE key_id = ? AND digest = ?",
                                 (digest, rec.key_id, rec.digest))
            new = KeyRecord(rec.key_id, digest, rec.tenant, rec.role, rec.collections, rec.created_at,
                            rec.expires_at, rec.bootstrap)
            self._set_keys({**self._keys, rec.key_id: new})
            return new

    # ---- bootstrap ----

    def bootstrap(self, bootstrap_key: str | None) -> str | None:
        """First start: the default tenant and its admin key (the one given, else a generated one, returned
        to be shown once). Later starts: a given key must be one of the data dir's keys, or
        BootstrapMismatch (the catalog keeps its keys; a second admin key is never added silently)."""
        with self._lock:
            if any(k.role == "admin" for k in self._keys.values()):
                if bootstrap_key is not None:
                    rec = self._by_digest.get(self.hasher.digest(bootstrap_key)) or \
                        self._by_digest.get(legacy_digest(bootstrap_key))
                    if rec is None:
                        raise BootstrapMismatch(
                            "the bootstrap key given (--bootstrap-key or $SIMSEARCH_BOOTSTRAP_KEY) is not a key of "
                            "this data dir: keys are made at its first start and then with `simsearch keys create`; "
                            "pass an existing key, or leave the bootstrap key out")
                return None
            generated = None
            if bootstrap_key is None:
                bootstrap_key = generated = new_key(new_key_id())
            elif self._by_digest.get(self.hasher.digest(bootstrap_key)) or \
                    self._by_digest.get(legacy_digest(bootstrap_key)):
                raise BootstrapMismatch("the bootstrap key given is a key of this data dir without the admin role, "
                                        "and the data dir has no admin key: pass a new key to become its admin key")
            now = time.time()
            key_id = _key_id_of(bootstrap_key) or new_key_id()
            rec = KeyRecord(key_id, self.hasher.digest(bootstrap_key), DEFAULT_TENANT, "admin", None, now,
                            bootstrap=True)
            with self._transaction():  # type: ignore[attr-defined]
                self._db.execute("INSERT OR IGNORE INTO tenants (name, created_at) VALUES (?, ?)", (DEFAULT_TENANT, now))
                self._insert_key(rec)
            if DEFAULT_TENANT not in self._tenant_records:
                self._tenant_records = {**self._tenant_records, DEFAULT_TENANT: TenantRecord(DEFAULT_TENANT, now)}
                self._tenants = set(self._tenant_records)
            self._set_keys({**self._keys, key_id: rec})
            return generated

    def _insert_key(self, rec: KeyRecord) -> None:
        self._db.execute("INSERT INTO keys (key_id, digest, tenant, role, collections, created_at, expires_at, "
                         "bootstrap) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (rec.key_id, rec.digest, rec.tenant, rec.role,
                          None if rec.collections is None else json.dumps(list(rec.collections)), rec.created_at,
                          rec.expires_at, int(rec.bootstrap)))

    # ---- tenants ----

    def tenant(self, name: str) -> TenantRecord:
        rec = self._tenant_records.get(name)
        if rec is None:
            raise NotFound(f"tenant {excerpt(name)} does not exist", field="name")
        return rec

    def quotas(self, tenant: str) -> dict[str, float]:
        """The tenant's quotas ({} for none, or for a tenant that does not exist)."""
        rec = self._tenant_records.get(tenant)
        return rec.quotas if rec is not None else {}

    def tenant_names(self) -> list[str]:
        return sorted(self._tenant_records)

    def create_tenant(self, name: str, quotas: dict[str, float]) -> TenantRecord:
        quotas = check_quotas(quotas)
        with self._lock:
            if name in self._tenant_records:
                raise AlreadyExists(f"tenant {excerpt(name)} already exists", field="name")
            rec = TenantRecord(name, time.time(), quotas)
            with self._transaction():  # type: ignore[attr-defined]
                self._db.execute("INSERT INTO tenants (name, created_at, quotas) VALUES (?, ?, ?)",
                                 (name, rec.created_at, json.dumps(quotas, sort_keys=True)))
            self._tenant_records = {**self._tenant_records, name: rec}
            self._tenants = set(self._tenant_records)
            return rec

    def update_tenant(self, name: str, quotas: dict[str, float]) -> TenantRecord:
        quotas = check_quotas(quotas)
        with self._lock:
            old = self.tenant(name)
            with self._transaction():  # type: ignore[attr-defined]
                self._db.execute("UPDATE tenants SET quotas = ? WHERE name = ?", (json.dumps(quotas, sort_keys=True), name))
            rec = TenantRecord(name, old.created_at, quotas)
            self._tenant_records = {**self._tenant_records, name: rec}
            return rec

    def remove_tenant(self, name: str) -> tuple[list, int]:
        """Forget the tenant and everything of it in one commit: (its collection records, keys revoked). The
        caller stops the shards and removes the files (a crash before that leaves orphans, removed at start)."""
        with self._lock:
            self.tenant(name)
            admins = [k.key_id for k in self._keys.values() if k.tenant == name and k.role == "admin"]
            if admins:
                raise FailedPrecondition(f"tenant {excerpt(name)} holds admin keys ({', '.join(admins)}); an admin "
                                         f"key's tenant cannot be deleted", field="name")
            records = [r for (t, _), r in self._collections.items() if t == name]  # type: ignore[attr-defined]
            keys = [k for k in self._keys.values() if k.tenant == name]
            with self._transaction():  # type: ignore[attr-defined]
                for table, column in (("payload_indexes", "tenant"), ("aliases", "tenant"), ("collections", "tenant"),
                                      ("keys", "tenant"), ("tenants", "name")):
                    self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))
                    if table == "aliases":
                        self._delete_jobs(name)  # type: ignore[attr-defined]
            self._collections = {k: v for k, v in self._collections.items() if k[0] != name}  # type: ignore
            self._aliases = {k: v for k, v in self._aliases.items() if k[0] != name}  # type: ignore
            self._indexes = {k: v for k, v in self._indexes.items() if k[0] != name}  # type: ignore
            self._forget_jobs(name)  # type: ignore[attr-defined]
            self._set_keys({k: v for k, v in self._keys.items() if v.tenant != name})
            self._tenant_records = {k: v for k, v in self._tenant_records.items() if k != name}
            self._tenants = set(self._tenant_records)
            return records, len(keys)

    # ---- keys ----

    def keys_of(self, tenant: str) -> list[KeyRecord]:
        return sorted((k for k in self._keys.values() if k.tenant == tenant), key=lambda k: (k.created_at, k.key_id))

    def key(self, key_id: str) -> KeyRecord | None:
        return self._keys.get(key_id)

    def last_used(self, key_id: str) -> float:
        return self._last_used.get(key_id, 0.0)

    def create_key(self, tenant: str, role: str, collections: tuple[str, ...] | None,
                   expires_at: float) -> tuple[KeyRecord, str]:
        """A new key of `tenant`: (its record, the key itself, to be shown once)."""
        with self._lock:
            self.tenant(tenant)
            key_id = new_key_id()
            secret = new_key(key_id)
            rec = KeyRecord(key_id, self.hasher.digest(secret), tenant, role, collections, time.time(), expires_at)
            with self._transaction():  # type: ignore[attr-defined]
                self._insert_key(rec)
            self._set_keys({**self._keys, key_id: rec})
            return rec, secret

    def revoke_key(self, key_id: str) -> KeyRecord:
        """NotFound for a missing key; FailedPrecondition for the last admin key (the deployment would be
        locked out), checked under the lock so two revocations cannot both pass it."""
        with self._lock:
            rec = self._keys.get(key_id)
            if rec is None:
                raise NotFound(f"key {excerpt(key_id)} does not exist", field="key_id")
            if rec.role == "admin" and sum(k.role == "admin" for k in self._keys.values()) == 1:
                raise FailedPrecondition("this is the last admin key; create another admin key before revoking it",
                                         field="key_id")
            with self._transaction():  # type: ignore[attr-defined]
                self._db.execute("DELETE FROM keys WHERE key_id = ?", (key_id,))
            self._set_keys({k: v for k, v in self._keys.items() if k != key_id})
            return rec

    def rotate_key(self, key_id: str) -> tuple[KeyRecord, str]:
        with self._lock:
            old = self._keys.get(key_id)
            if old is None:
                raise NotFound(f"key {excerpt(key_id)} does not exist", field="key_id")
            secret = new_key(key_id)
            rec = KeyRecord(key_id, self.hasher.digest(secret), old.tenant, old.role, old.collections, old.created_at,
                            old.expires_at, old.bootstrap)
            with self._transaction():  # type: ignore[attr-defined]
                self._db.execute("UPDATE keys SET digest = ? WHERE key_id = ?", (rec.digest, key_id))
            self._set_keys({**self._keys, key_id: rec})
            return rec, secret

    def flush_last_used(self, force: bool = False) -> None:
        """Store the in-memory last-used times (at most once per LAST_USED_FLUSH_S unless forced)."""
        if not force and time.monotonic() - self._last_used_stored < LAST_USED_FLUSH_S:
            return
        with self._lock:
            rows = [(t, k) for k, t in self._last_used.items() if k in self._keys]
            try:
                with self._transaction():  # type: ignore[attr-defined]
                    self._db.executemany("UPDATE keys SET last_used = ? WHERE key_id = ?", rows)
            except sqlite3.Error:
                pass  # informational: kept in memory, tried again at the next flush
            self._last_used_stored = time.monotonic()


def _key_id_of(key: str) -> str | None:
    """The key id inside a key of the `ss_<id>_<secret>` form, else None (a bootstrap key chosen by hand)."""
    parts = key.split("_", 2)
    if len(parts) == 3 and parts[0] == "ss" and len(parts[1]) == 12 and all(c in "0123456789abcdef" for c in parts[1]):
        return parts[1]
    return None
