"""Tenants and their collections, persisted as one JSON document written atomically.

Everything a restart needs to re-create the shard actors lives here: each collection's
spec, its unique id (so a dropped-and-recreated name never shares storage or cache keys
with its predecessor) and the storage layout `tenants/<tenant>/<name>-<uid>/shard-<i>`.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from simsearch.contract.errors import AlreadyExists, NotFound
from simsearch.router.auth import hash_key, new_key
from simsearch.shard import CollectionSpec, IndexParams
from simsearch.shard.snapshot import write_json_atomic

DEFAULT_TENANT = "default"


@dataclass(frozen=True)
class CollectionRecord:
    tenant: str
    spec: CollectionSpec
    uid: str
    created_at: float

    def to_json(self) -> dict:
        spec = asdict(self.spec)
        return {"tenant": self.tenant, "spec": spec, "uid": self.uid, "created_at": self.created_at}

    @classmethod
    def from_json(cls, d: dict) -> "CollectionRecord":
        spec = dict(d["spec"])
        spec["index"] = IndexParams(**spec["index"])
        return cls(d["tenant"], CollectionSpec(**spec), d["uid"], d["created_at"])


class Catalog:
    def __init__(self, root: Path):
        self.root = root
        self.path = root / "catalog.json"
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)
        doc = json.loads(self.path.read_text()) if self.path.exists() else {"tenants": {}, "collections": []}
        self.tenants: dict[str, dict] = doc["tenants"]
        self._collections: dict[tuple[str, str], CollectionRecord] = {}
        for d in doc["collections"]:
            rec = CollectionRecord.from_json(d)
            self._collections[(rec.tenant, rec.spec.name)] = rec
        self._index_keys()

    def _persist(self) -> None:
        write_json_atomic(self.path, {
            "tenants": self.tenants,
            "collections": [r.to_json() for r in self._collections.values()],
        })

    # ---- tenants ----

    def _index_keys(self) -> None:
        """Key digest -> tenant, so authenticating a request is one dict lookup, not a scan of every tenant."""
        self._tenant_by_digest = {d: t for t, doc in self.tenants.items() for d in doc["key_hashes"]}

    def ensure_default_tenant(self, bootstrap_key: str | None) -> str | None:
        """Create the default tenant on first start. Returns a generated key to show once, else None."""
        with self._lock:
            generated = None
            if bootstrap_key is None and not self.tenants:
                bootstrap_key = generated = new_key()
            if bootstrap_key is not None:
                tenant = self.tenants.setdefault(DEFAULT_TENANT, {"name": DEFAULT_TENANT, "key_hashes": []})
                digest = hash_key(bootstrap_key)
                if digest not in tenant["key_hashes"]:
                    tenant["key_hashes"].append(digest)
                    self._persist()
                    self._index_keys()
            return generated

    def tenant_for_digest(self, digest: str) -> str | None:
        """For callers that hash a key once and check it per request (a search stream)."""
        return self._tenant_by_digest.get(digest)

    # ---- collections ----

    def add(self, tenant: str, spec: CollectionSpec) -> CollectionRecord:
        with self._lock:
            if (tenant, spec.name) in self._collections:
                raise AlreadyExists(f"collection {spec.name!r} already exists", field="name")
            rec = CollectionRecord(tenant, spec, uuid.uuid4().hex[:12], time.time())
            self._collections[(tenant, spec.name)] = rec
            self._persist()
            return rec

    def remove(self, tenant: str, name: str, *, delete_files: bool = True) -> CollectionRecord:
        """Forget the collection (persisted at once); its files go too unless the caller removes
        them itself (the router does, off its event loop: a large collection takes a while)."""
        with self._lock:
            rec = self._collections.pop((tenant, name), None)
            if rec is None:
                raise NotFound(f"collection {name!r} does not exist", field="name")
            self._persist()
        if delete_files:
            shutil.rmtree(self.collection_dir(rec), ignore_errors=True)
        return rec

    def get(self, tenant: str, name: str, field: str = "collection") -> CollectionRecord:
        rec = self._collections.get((tenant, name))
        if rec is None:
            raise NotFound(f"collection {name!r} does not exist", field=field)
        return rec

    def names(self, tenant: str) -> list[str]:
        return sorted(name for (t, name) in self._collections if t == tenant)

    def records(self) -> list[CollectionRecord]:
        return list(self._collections.values())

    def collection_dir(self, rec: CollectionRecord) -> Path:
        return self.root / "tenants" / rec.tenant / f"{rec.spec.name}-{rec.uid}"

    def shard_dir(self, rec: CollectionRecord, shard: int) -> Path:
        return self.collection_dir(rec) / f"shard-{shard}"
