"""Tenants, their API key digests and their collections, in one SQLite database (`catalog.sqlite`).

Why SQLite: creating or dropping a collection (and later a tenant, a key, a role or an alias)
must be all or nothing across a crash or a power loss, which a transaction gives and a
rewritten JSON file does not. Each change is one transaction; `journal_mode=DELETE` with
`synchronous=EXTRA` fsyncs the rollback journal, the database and, on commit, the directory
that loses the journal, so a committed change survives kill -9 and power loss. Each kind of
thing is a table (not a JSON blob), so later issues add tables and columns, not formats.

Reads (every request authenticates and looks up its collection) come from an in-memory copy
that is changed only after a commit succeeds: a failed write (a read-only or full disk)
leaves the copy, the file and the caller's view exactly as they were.

Everything a restart needs to re-create the shards lives here: each collection's spec, its
unique id (so a dropped-and-recreated name never shares storage or cache keys with its
predecessor) and the storage layout `tenants/<tenant>/<name>-<uid>/shard-<i>`.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import secrets
import shutil
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from simsearch.contract.errors import (AlreadyExists, FailedPrecondition, NotFound, QuotaExceeded, ResourceExhausted,
                                       SimsearchError, Unavailable, excerpt)
from simsearch.contract.payload_index import MAX_PAYLOAD_INDEXES, check_index
from simsearch.router.auth import LEGACY_PREFIX, KeyHasher, load_secret
from simsearch.router.reindex_catalog import REINDEX_JOBS, ReindexJob, ReindexMixin
from simsearch.router.sqlite_files import Transaction
from simsearch.router.tenancy import DEFAULT_TENANT, TenancyMixin
from simsearch.shard import CollectionSpec, IndexParams
from simsearch.shard.snapshot import fsync_path

log = logging.getLogger(__name__)
CATALOG_FILE = "catalog.sqlite"
LEGACY_FILE = "catalog.json"  # the catalog before SQLite: imported once, then renamed to catalog.json.migrated
TENANTS_DIR = "tenants"
SCHEMA_VERSION = 5  # 2: aliases; 3: payload indexes; 4: roles, keyed key digests, tenant quotas; 5: reindex jobs
_NO_INDEXES: dict[str, str] = {}
_COLLECTION_DIR = re.compile(r"^.+-[0-9a-f]{12}$")  # <name>-<uid>: what `collection_dir` names

# Version 1's tables, as first released (kept to describe the upgrades; tests build old catalogs from it).
SCHEMA_V1 = (
    """CREATE TABLE tenants (
        name       TEXT PRIMARY KEY,
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE api_keys (
        digest     TEXT PRIMARY KEY,  -- SHA-256 of the key, which is never stored
        tenant     TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE collections (
        tenant     TEXT NOT NULL REFERENCES tenants(name),
        name       TEXT NOT NULL,
        uid        TEXT NOT NULL UNIQUE,  -- names the storage directory and the cache scope
        spec       TEXT NOT NULL,         -- the CollectionSpec as JSON, validated again on load
        created_at REAL NOT NULL,
        PRIMARY KEY (tenant, name)
    )""",
)
# An alias names a collection of its own tenant by name (not uid): a collection is never dropped while an
# alias names it, so the name always means the same uid; the foreign key refuses such a drop in SQL too.
ALIASES = """CREATE TABLE aliases (
        tenant     TEXT NOT NULL REFERENCES tenants(name),
        alias      TEXT NOT NULL,
        collection TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (tenant, alias),
        FOREIGN KEY (tenant, collection) REFERENCES collections(tenant, name)
    )"""
# A declared payload index (contract/payload_index.py): removed with its collection, in the drop's transaction.
PAYLOAD_INDEXES = """CREATE TABLE payload_indexes (
        tenant     TEXT NOT NULL,
        collection TEXT NOT NULL,
        field      TEXT NOT NULL,
        type       TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (tenant, collection, field),
        FOREIGN KEY (tenant, collection) REFERENCES collections(tenant, name)
    )"""
# API keys with roles (router/auth.py): only a digest of each is stored, HMAC-SHA256 under the server secret
# (or "sha256:<hex>" for one from before version 4, re-keyed on its first use).
KEYS = """CREATE TABLE keys (
        key_id      TEXT PRIMARY KEY,
        digest      TEXT NOT NULL UNIQUE,
        tenant      TEXT NOT NULL REFERENCES tenants(name),
        role        TEXT NOT NULL,
        collections TEXT,              -- a JSON list the key is limited to; NULL: every collection of its tenant
        created_at  REAL NOT NULL,
        expires_at  REAL NOT NULL DEFAULT 0,  -- 0: never
        last_used   REAL NOT NULL DEFAULT 0,
        bootstrap   INTEGER NOT NULL DEFAULT 0
    )"""
SCHEMA = (  # a new catalog: every table of the current version
    """CREATE TABLE tenants (
        name       TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        quotas     TEXT NOT NULL DEFAULT '{}'  -- JSON: max_collections, max_points, max_qps, max_concurrent_searches
    )""",
    SCHEMA_V1[2], ALIASES, PAYLOAD_INDEXES, KEYS, REINDEX_JOBS,
)
# Each version's statements from the one before it, run with the version bump in one transaction.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (ALIASES,),
    2: (PAYLOAD_INDEXES,),
    3: ("ALTER TABLE tenants ADD COLUMN quotas TEXT NOT NULL DEFAULT '{}'", KEYS,
        # the keys of before were each all-powerful in their tenant: the default tenant's become admin keys
        """INSERT INTO keys (key_id, digest, tenant, role, created_at, bootstrap)
           SELECT lower(hex(randomblob(6))), 'sha256:' || digest, tenant,
                  CASE WHEN tenant = 'default' THEN 'admin' ELSE 'tenant-admin' END, created_at, 1 FROM api_keys""",
        "DROP TABLE api_keys"),
    4: (REINDEX_JOBS,),
}


class CatalogError(Exception):
    """The catalog cannot be opened; the message names the file and the fix, in one line."""


@dataclass(frozen=True)
class CollectionRecord:
    tenant: str
    spec: CollectionSpec
    uid: str
    created_at: float

    def spec_json(self) -> str:
        return json.dumps(asdict(self.spec), sort_keys=True)

    @classmethod
    def from_row(cls, tenant: str, spec_json: str, uid: str, created_at: float) -> "CollectionRecord":
        spec = json.loads(spec_json)
        spec["index"] = IndexParams(**spec["index"])
        return cls(tenant, CollectionSpec(**spec), uid, created_at)


def write_error(e: Exception, what: str) -> SimsearchError:
    """A failed write to the data disk as the platform's error. The caller guarantees "nothing was
    changed" (the transaction rolled back, or the change was undone), so the message says so."""
    full = (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)
            or getattr(e, "sqlite_errorname", "") == "SQLITE_FULL")
    if isinstance(e, OSError):
        reason = f"{e.strerror or e}: {e.filename}" if e.filename else (e.strerror or str(e))
    else:
        reason = str(e)
    if full:
        return ResourceExhausted(f"could not {what}: the disk is full ({reason}); nothing was changed; free some "
                                 f"space and retry")
    return Unavailable(f"could not {what}: the write failed ({reason}); nothing was changed")


def _has_collection_data(root: Path) -> bool:
    """Anything under tenants/<tenant>/: an empty tenant directory (all its collections dropped) is not data."""
    tenants = root / TENANTS_DIR
    return tenants.is_dir() and any(any(t.iterdir()) for t in tenants.iterdir() if t.is_dir())


def _missing(root: Path) -> CatalogError:
    return CatalogError(f"the catalog {root / CATALOG_FILE} is missing or empty but {root / TENANTS_DIR} holds "
                        f"collection data; restore {CATALOG_FILE} (or {LEGACY_FILE}) from a backup, or move "
                        f"{root / TENANTS_DIR} away to start with an empty catalog")


class Catalog(TenancyMixin, ReindexMixin):
    """The catalog of one data directory. Writes are transactions under a lock (the event loop and
    worker threads both call in); the in-memory copies are replaced, never changed in place, so
    a reader iterating one is never disturbed by a write in another thread."""

    def __init__(self, root: Path, *, busy_timeout_s: float = 10.0):
        """Opens `root/catalog.sqlite`, creating it (or importing `catalog.json`) on first start.
        Raises CatalogError when it is missing while collection data exists, or cannot be read.
        busy_timeout_s: how long a write waits for another connection's lock (the data dir's one
        server holds the only connection, so this is only ever waited on by hand-run tools)."""
        self.root = root
        self.path = root / CATALOG_FILE
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)
        try:
            self.hasher = KeyHasher(load_secret(root))
        except (OSError, ValueError) as e:
            raise CatalogError(f"cannot read the server secret in {root} ({e}); it keys the API key digests: "
                               f"restore it from a backup") from e
        legacy = root / LEGACY_FILE
        if not self.path.exists() and not legacy.exists() and _has_collection_data(root):
            raise _missing(root)  # checked before connecting, which would create the file
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                       timeout=busy_timeout_s)
        except sqlite3.Error as e:
            raise CatalogError(f"cannot open the catalog {self.path} ({e}); check the file and its directory") from e
        try:
            self.path.chmod(0o600)  # key digests and the layout: the server's user only
            self._prepare(legacy)
            self._load()
        except CatalogError:
            self._db.close()
            raise
        except (sqlite3.Error, OSError, ValueError, KeyError, TypeError, SimsearchError) as e:
            self._db.close()
            raise CatalogError(f"the catalog {self.path} cannot be read ({type(e).__name__}: {e}); restore it from "
                               f"a backup or pass another --data-dir") from e

    # ---- opening ----

    def _prepare(self, legacy: Path) -> None:
        self._db.execute("PRAGMA journal_mode=DELETE")
        self._db.execute("PRAGMA synchronous=EXTRA")  # FULL, plus an fsync of the directory on commit
        self._db.execute("PRAGMA foreign_keys=ON")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ValueError(f"schema version {version} is newer than this simsearch knows ({SCHEMA_VERSION})")
        if 0 < version < SCHEMA_VERSION:
            self._migrate(version)
            version = SCHEMA_VERSION
        if version == SCHEMA_VERSION:
            if legacy.exists():  # a crash after the import's commit, before the rename
                self._retire(legacy)
            return
        if self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise ValueError("it holds tables but no simsearch schema version")
        # A new database (no file, an empty one, or a first transaction a crash undid).
        if not legacy.exists() and _has_collection_data(self.root):
            raise _missing(self.root)
        doc = None
        try:
            doc = json.loads(legacy.read_text()) if legacy.exists() else None
            with self._transaction():  # the schema, its version and the import commit together, or not at all
                for statement in SCHEMA:
                    self._db.execute(statement)
                # the default tenant always exists (its admin key comes with the first start's bootstrap)
                self._db.execute("INSERT INTO tenants (name, created_at) VALUES (?, ?)", (DEFAULT_TENANT, time.time()))
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                if doc is not None:
                    self._import(doc)
        except (OSError, ValueError, KeyError, TypeError, SimsearchError) as e:
            if not legacy.exists():
                raise
            raise CatalogError(f"cannot import the catalog {legacy} ({type(e).__name__}: {e}); nothing was imported; "
                               f"restore it from a backup or pass another --data-dir") from e
        if doc is not None:
            log.info("imported %s into %s (%d tenants, %d collections)", legacy, self.path, len(doc["tenants"]),
                     len(doc["collections"]))
            self._retire(legacy)

    def _migrate(self, version: int) -> None:
        """Bring an older schema up to SCHEMA_VERSION: every step and the new version commit together, so a
        crash or a refused write leaves the old schema whole (and it is tried again at the next start)."""
        try:
            with self._transaction():
                for v in range(version, SCHEMA_VERSION):
                    for statement in MIGRATIONS[v]:
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as e:
            raise CatalogError(f"cannot upgrade the catalog {self.path} from schema version {version} to "
                               f"{SCHEMA_VERSION} ({e}); nothing was changed; check that the disk is writable and "
                               f"has space, then restart") from e
        log.info("upgraded %s from schema version %d to %d", self.path, version, SCHEMA_VERSION)

    def _import(self, doc: dict) -> None:
        """catalog.json's tenants and collections, inside the transaction that creates the schema."""
        now = time.time()
        tenants = set(doc["tenants"]) | {c["tenant"] for c in doc["collections"]}
        self._db.executemany("INSERT OR IGNORE INTO tenants (name, created_at) VALUES (?, ?)",
                             [(t, now) for t in sorted(tenants)])
        # the keys of then were each all-powerful in their tenant, digested with plain SHA-256 (re-keyed on first use)
        self._db.executemany("INSERT INTO keys (key_id, digest, tenant, role, created_at, bootstrap) "
                             "VALUES (?, ?, ?, ?, ?, 1)",
                             [(secrets.token_hex(6), LEGACY_PREFIX + d, t, "admin" if t == DEFAULT_TENANT
                               else "tenant-admin", now)
                              for t, v in doc["tenants"].items() for d in v["key_hashes"]])
        for c in doc["collections"]:
            rec = CollectionRecord.from_row(c["tenant"], json.dumps(c["spec"]), c["uid"], c["created_at"])
            self._insert_row(rec)

    def _retire(self, legacy: Path) -> None:
        legacy.rename(legacy.with_name(LEGACY_FILE + ".migrated"))
        fsync_path(self.root)

    def _load(self) -> None:
        self._load_tenancy()
        self._collections: dict[tuple[str, str], CollectionRecord] = {}
        for row in self._db.execute("SELECT tenant, spec, uid, created_at FROM collections"):
            rec = CollectionRecord.from_row(*row)
            self._collections[(rec.tenant, rec.spec.name)] = rec
        self._aliases: dict[tuple[str, str], str] = {
            (tenant, alias): collection
            for tenant, alias, collection in self._db.execute("SELECT tenant, alias, collection FROM aliases")}
        indexes: dict[tuple[str, str], dict[str, str]] = {}
        for tenant, collection, field, kind in self._db.execute(
                "SELECT tenant, collection, field, type FROM payload_indexes ORDER BY field"):
            check_index(field, kind, f"payload index of {tenant}/{collection}", f"payload index of {tenant}/{collection}")
            indexes.setdefault((tenant, collection), {})[field] = kind
        self._indexes = indexes
        self._load_reindex()

    def close(self) -> None:
        self.flush_last_used(force=True)
        with self._lock:
            self._db.close()

    def _transaction(self) -> Transaction:
        return Transaction(self._db)

    # ---- collections ----

    @staticmethod
    def plan(tenant: str, spec: CollectionSpec) -> CollectionRecord:
        """A new collection's record, not yet stored: its directories are made before `insert` commits it."""
        return CollectionRecord(tenant, spec, uuid.uuid4().hex[:12], time.time())

    def add(self, tenant: str, spec: CollectionSpec) -> CollectionRecord:
        return self.insert(self.plan(tenant, spec))

    def insert(self, rec: CollectionRecord, indexes: dict[str, str] | None = None) -> CollectionRecord:
        """Commit `rec` with its declared payload indexes. AlreadyExists for a taken name; QuotaExceeded past
        the tenant's max_collections (checked again here, under the lock, for creates that raced);
        Unavailable / ResourceExhausted when the disk refuses the write (then nothing changed)."""
        with self._lock:
            if (rec.tenant, rec.spec.name) in self._collections:
                raise AlreadyExists(f"collection {excerpt(rec.spec.name)} already exists", field="name")
            self.check_collections_quota(rec.tenant)
            self.check_not_alias(rec.tenant, rec.spec.name)
            if rec.tenant not in self._tenant_records:  # deleted meanwhile (a DeleteTenant racing this create)
                raise NotFound(f"tenant {excerpt(rec.tenant)} does not exist", field="tenant")
            try:
                with self._transaction():
                    self._insert_row(rec)
                    self._db.executemany("INSERT INTO payload_indexes VALUES (?, ?, ?, ?, ?)",
                                         [(rec.tenant, rec.spec.name, f, t, rec.created_at)
                                          for f, t in (indexes or {}).items()])
            except sqlite3.Error as e:
                raise write_error(e, f"create collection {excerpt(rec.spec.name)} in {self.path}") from e
            self._collections = {**self._collections, (rec.tenant, rec.spec.name): rec}
            if indexes:
                self._indexes = {**self._indexes, (rec.tenant, rec.spec.name): dict(sorted(indexes.items()))}
            return rec

    def check_collections_quota(self, tenant: str) -> None:
        """QuotaExceeded when the tenant already has its max_collections."""
        limit = self.quotas(tenant).get("max_collections")
        have = len(self.names(tenant)) if limit else 0
        if limit and have >= limit:
            raise QuotaExceeded(f"tenant {excerpt(tenant)} has {have} collections, its quota (max_collections "
                                f"{limit:g}); drop one or ask for a higher quota", quota=f"tenant {tenant} max_collections")

    def _insert_row(self, rec: CollectionRecord) -> None:
        self._db.execute("INSERT INTO collections VALUES (?, ?, ?, ?, ?)",
                         (rec.tenant, rec.spec.name, rec.uid, rec.spec_json(), rec.created_at))

    def remove(self, tenant: str, name: str, *, delete_files: bool = True) -> CollectionRecord:
        """Forget the collection (committed at once); its files go too unless the caller removes
        them itself (the router does, off its event loop: a large collection takes a while).
        Unavailable / ResourceExhausted when the disk refuses the write (then nothing changed)."""
        with self._lock:
            rec = self._collections.get((tenant, name))
            if rec is None:
                target = self._aliases.get((tenant, name))
                if target is not None:
                    raise FailedPrecondition(f"{excerpt(name)} is an alias of collection {excerpt(target)}, not a "
                                             f"collection: drop the collection by its own name, or delete the "
                                             f"alias", field="name")
                raise NotFound(f"collection {excerpt(name)} does not exist", field="name")
            aliases = self.aliases_of(tenant, name)
            if aliases:
                named = ", ".join(map(excerpt, aliases))
                raise FailedPrecondition(f"collection {excerpt(name)} has aliases ({named}): "
                                         f"delete them or switch them to another collection first", field="name")
            try:
                with self._transaction():
                    self._db.execute("DELETE FROM payload_indexes WHERE tenant = ? AND collection = ?", (tenant, name))
                    self._delete_jobs(tenant, name)
                    self._db.execute("DELETE FROM collections WHERE tenant = ? AND name = ?", (tenant, name))
            except sqlite3.Error as e:
                raise write_error(e, f"drop collection {excerpt(name)} from {self.path}") from e
            self._collections = {k: v for k, v in self._collections.items() if k != (tenant, name)}
            self._indexes = {k: v for k, v in self._indexes.items() if k != (tenant, name)}
            self._forget_jobs(tenant, name)
        if delete_files:
            shutil.rmtree(self.collection_dir(rec), ignore_errors=True)
        return rec

    def update_spec(self, tenant: str, name: str, spec: CollectionSpec, *,
                    job: ReindexJob | None = None) -> CollectionRecord:
        """Store a collection's changed settings (same name, uid and layout), with a reindex job's new state in the
        same commit when given (a promotion), committed before the in-memory copies change. NotFound for a missing
        collection; Unavailable / ResourceExhausted when the disk refuses."""
        with self._lock:
            rec = self.get(tenant, name)
            new = CollectionRecord(tenant, spec, rec.uid, rec.created_at)
            try:
                with self._transaction():
                    self._db.execute("UPDATE collections SET spec = ? WHERE tenant = ? AND name = ?",
                                     (new.spec_json(), tenant, name))
                    if job is not None:
                        self._write_job(job)
            except sqlite3.Error as e:
                raise write_error(e, f"update collection {excerpt(name)} in {self.path}") from e
            self._collections = {**self._collections, (tenant, name): new}
            if job is not None:
                self._remember(job)
            return new

    def exists(self, tenant: str, name: str) -> bool:
        return (tenant, name) in self._collections

    def get(self, tenant: str, name: str, field: str = "collection") -> CollectionRecord:
        rec = self._collections.get((tenant, name))
        if rec is None:
            raise NotFound(f"collection {excerpt(name)} does not exist", field=field)
        return rec

    def names(self, tenant: str) -> list[str]:
        return sorted(name for (t, name) in self._collections if t == tenant)

    def records(self) -> list[CollectionRecord]:
        return list(self._collections.values())

    # ---- aliases ----

    def resolve(self, tenant: str, name: str) -> str:
        """The collection `name` means in `tenant`: itself, or the collection it is an alias of (one dict
        probe; names and aliases never clash). A name that is neither comes back as it is."""
        return self._aliases.get((tenant, name), name)

    def alias_target(self, tenant: str, alias: str) -> str | None:
        return self._aliases.get((tenant, alias))

    def aliases(self, tenant: str) -> list[tuple[str, str]]:
        """(alias, collection) for each of the tenant's aliases, by alias."""
        return sorted((alias, c) for (t, alias), c in self._aliases.items() if t == tenant)

    def aliases_of(self, tenant: str, collection: str) -> list[str]:
        return sorted(alias for (t, alias), c in self._aliases.items() if t == tenant and c == collection)

    def check_not_alias(self, tenant: str, name: str, field: str = "name") -> None:
        target = self._aliases.get((tenant, name))
        if target is not None:
            raise AlreadyExists(f"{excerpt(name)} is already an alias (of collection {excerpt(target)}); a "
                                f"collection and an alias cannot share a name", field=field)

    def _target(self, tenant: str, collection: str) -> None:
        """An alias's target: a collection of this tenant (not another alias)."""
        if (tenant, collection) not in self._collections:
            target = self._aliases.get((tenant, collection))
            hint = f" ({excerpt(collection)} is an alias of {excerpt(target)}; an alias names a collection)" \
                if target is not None else ""
            raise NotFound(f"collection {excerpt(collection)} does not exist{hint}", field="collection")

    def create_alias(self, tenant: str, alias: str, collection: str) -> None:
        """AlreadyExists when `alias` is taken (by an alias or a collection), NotFound when `collection` is
        not one; Unavailable / ResourceExhausted when the disk refuses the write (then nothing changed)."""
        with self._lock:
            if (tenant, alias) in self._collections:
                raise AlreadyExists(f"{excerpt(alias)} is already a collection; a collection and an alias cannot "
                                    f"share a name", field="alias")
            self.check_not_alias(tenant, alias, "alias")
            self._target(tenant, collection)
            try:
                with self._transaction():
                    self._db.execute("INSERT INTO aliases VALUES (?, ?, ?, ?)",
                                     (tenant, alias, collection, time.time()))
            except sqlite3.Error as e:
                raise write_error(e, f"create alias {excerpt(alias)} in {self.path}") from e
            self._aliases = {**self._aliases, (tenant, alias): collection}

    def switch_alias(self, tenant: str, alias: str, collection: str) -> str:
        """Point an existing alias at another collection in one commit; returns the previous target.
        NotFound for a missing alias or collection."""
        with self._lock:
            previous = self._aliases.get((tenant, alias))
            if previous is None:
                raise NotFound(f"alias {excerpt(alias)} does not exist", field="alias")
            self._target(tenant, collection)
            if previous == collection:
                return previous
            try:
                with self._transaction():
                    self._db.execute("UPDATE aliases SET collection = ? WHERE tenant = ? AND alias = ?",
                                     (collection, tenant, alias))
            except sqlite3.Error as e:
                raise write_error(e, f"switch alias {excerpt(alias)} in {self.path}") from e
            self._aliases = {**self._aliases, (tenant, alias): collection}
            return previous

    def delete_alias(self, tenant: str, alias: str) -> str:
        """Returns the collection it named. NotFound for a missing alias."""
        with self._lock:
            target = self._aliases.get((tenant, alias))
            if target is None:
                raise NotFound(f"alias {excerpt(alias)} does not exist", field="alias")
            try:
                with self._transaction():
                    self._db.execute("DELETE FROM aliases WHERE tenant = ? AND alias = ?", (tenant, alias))
            except sqlite3.Error as e:
                raise write_error(e, f"delete alias {excerpt(alias)} from {self.path}") from e
            self._aliases = {k: v for k, v in self._aliases.items() if k != (tenant, alias)}
            return target

    # ---- payload indexes ----

    def payload_indexes(self, tenant: str, collection: str) -> dict[str, str]:
        """The collection's declared payload indexes, field -> type, by field (shared: do not change it)."""
        return self._indexes.get((tenant, collection), _NO_INDEXES)

    def add_payload_index(self, tenant: str, collection: str, field: str, kind: str) -> bool:
        """Declare an index; False when the field already has one of this type. FailedPrecondition when it has
        one of another type; ResourceExhausted past MAX_PAYLOAD_INDEXES; NotFound for a missing collection."""
        with self._lock:
            self.get(tenant, collection)
            current = self.payload_indexes(tenant, collection)
            if current.get(field) == kind:
                return False
            if field in current:
                raise FailedPrecondition(f"field {excerpt(field)} of collection {excerpt(collection)} is already indexed "
                                         f"as {current[field]}; drop that index first to index it as {kind}",
                                         field="type")
            if len(current) >= MAX_PAYLOAD_INDEXES:
                raise ResourceExhausted(f"collection {excerpt(collection)} has {len(current)} payload indexes, the most "
                                        f"allowed ({MAX_PAYLOAD_INDEXES}); drop one first", field="field")
            try:
                with self._transaction():
                    self._db.execute("INSERT INTO payload_indexes VALUES (?, ?, ?, ?, ?)",
                                     (tenant, collection, field, kind, time.time()))
            except sqlite3.Error as e:
                raise write_error(e, f"create the payload index on {excerpt(field)} in {self.path}") from e
            self._indexes = {**self._indexes, (tenant, collection): dict(sorted({**current, field: kind}.items()))}
            return True

    def drop_payload_index(self, tenant: str, collection: str, field: str) -> None:
        """NotFound when the field has no index (or the collection does not exist)."""
        with self._lock:
            self.get(tenant, collection)
            current = self.payload_indexes(tenant, collection)
            if field not in current:
                raise NotFound(f"field {excerpt(field)} of collection {excerpt(collection)} has no payload index",
                               field="field")
            try:
                with self._transaction():
                    self._db.execute("DELETE FROM payload_indexes WHERE tenant = ? AND collection = ? AND field = ?",
                                     (tenant, collection, field))
            except sqlite3.Error as e:
                raise write_error(e, f"drop the payload index on {excerpt(field)} in {self.path}") from e
            self._indexes = {**self._indexes, (tenant, collection): {f: t for f, t in current.items() if f != field}}

    # ---- storage layout ----

    def collection_dir(self, rec: CollectionRecord) -> Path:
        return self.root / TENANTS_DIR / rec.tenant / f"{rec.spec.name}-{rec.uid}"

    def generation_dir(self, rec: CollectionRecord) -> Path:
        """Where the shards of the record's embedding generation live: the collection's directory for generation 0
        (the layout before reindexing existed), gen-<g>/ inside it for each later one. The collection's side
        stores (kept raw inputs, feedback) stay in the collection's directory: every generation shares them."""
        g = rec.spec.embedding_generation
        return self.collection_dir(rec) / f"gen-{g}" if g else self.collection_dir(rec)

    def shard_dir(self, rec: CollectionRecord, shard: int, replica: int = 0) -> Path:
        """A shard's directory; replica j > 0 of it has its own beside it (replica 0 keeps the plain name,
        which an unreplicated collection uses)."""
        return self.generation_dir(rec) / (f"shard-{shard}" if replica == 0 else f"shard-{shard}.replica-{replica}")

    def replica_state(self, rec: CollectionRecord, shard: int) -> Path:
        """The file naming a replicated shard's in-sync replicas (cluster/replicas.py)."""
        return self.generation_dir(rec) / f"shard-{shard}.in-sync.json"

    def stale_generations(self, rec: CollectionRecord, keep: set[int]) -> list[Path]:
        """Shard files of embedding generations other than `keep` (the serving one and a running reindex's
        target): left by a promotion, a refused or failed reindex, or a crash during one."""
        root = self.collection_dir(rec)
        if not root.is_dir():
            return []
        out = [p for p in root.glob("gen-*") if p.is_dir() and p.name[4:].isdigit() and int(p.name[4:]) not in keep]
        if 0 not in keep:
            out += [p for p in root.glob("shard-*")]
        return sorted(out)

    def orphans(self) -> list[Path]:
        """Collection directories no record names: left by a crash between making a collection's
        directories and committing it, or between committing a drop and deleting its files."""
        known = {self.collection_dir(rec) for rec in self._collections.values()}
        tenants = self.root / TENANTS_DIR
        if not tenants.is_dir():
            return []
        return sorted(d for t in tenants.iterdir() if t.is_dir() for d in t.iterdir()
                      if d.is_dir() and _COLLECTION_DIR.match(d.name) and d not in known)
