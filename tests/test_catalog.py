"""The SQLite catalog on its own: reopening, transactions that change all or nothing, the one-time
import of catalog.json, and the faults it refuses to start from (a missing or damaged file)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from simsearch import AlreadyExists, NotFound, Unauthenticated, Unavailable
from simsearch.router.catalog import Catalog, CatalogError
from simsearch.router.tenancy import BootstrapMismatch
from simsearch.shard import CollectionSpec, IndexParams

SPEC = CollectionSpec(name="c1", dim=4, metric="dot", shards=2, index=IndexParams(num_leaves=20, oversample=3))


def test_reopen_keeps_tenants_keys_and_collections(tmp_path):
    cat = Catalog(tmp_path)
    key = cat.bootstrap(None)
    rec = cat.add("default", SPEC)
    with pytest.raises(NotFound, match="tenant 'other' does not exist"):  # tenants are made by an admin first
        cat.add("other", CollectionSpec(name="c1", dim=8))
    cat.create_tenant("other", {"max_points": 10})
    other = cat.add("other", CollectionSpec(name="c1", dim=8))  # names are per tenant
    cat.close()
    again = Catalog(tmp_path)
    assert again.bootstrap(None) is None  # no second key on restart
    assert again.authenticate(key).tenant == "default" and again.authenticate(key).role == "admin"
    assert again.get("default", "c1") == rec and again.get("other", "c1") == other
    assert again.names("default") == ["c1"] and again.names("nobody") == []
    assert key.encode() not in (tmp_path / "catalog.sqlite").read_bytes()  # digests only
    assert again.shard_dir(rec, 1) == tmp_path / "tenants" / "default" / f"c1-{rec.uid}" / "shard-1"
    again.remove("default", "c1")
    again.close()
    assert Catalog(tmp_path).names("default") == []


def test_a_later_bootstrap_key_must_be_an_existing_key(tmp_path):
    """The first start's key is the admin key; a different one given later is refused, never added."""
    cat = Catalog(tmp_path)
    first = cat.bootstrap(None)
    assert first.startswith("ss_") and cat.bootstrap(first) is None
    with pytest.raises(BootstrapMismatch, match=r"is not a key of this data dir"):
        cat.bootstrap("second-key-0123456789")
    cat.close()
    again = Catalog(tmp_path)
    assert [k.role for k in again.keys_of("default")] == ["admin"]
    with pytest.raises(Unauthenticated):
        again.authenticate("second-key-0123456789")


def test_names_are_unique_per_tenant(tmp_path):
    cat = Catalog(tmp_path)
    cat.add("default", SPEC)
    with pytest.raises(AlreadyExists, match="'c1' already exists"):
        cat.add("default", CollectionSpec(name="c1", dim=4))
    with pytest.raises(NotFound, match="'c9' does not exist"):
        cat.remove("default", "c9")


def test_a_refused_write_changes_nothing(tmp_path):
    """Another connection holds the database's write lock: the catalog's transaction fails, and
    neither the file nor what the catalog answers changes (the same path as a read-only disk)."""
    cat = Catalog(tmp_path, busy_timeout_s=0.05)
    kept = cat.add("default", SPEC)
    blocker = sqlite3.connect(tmp_path / "catalog.sqlite", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(Unavailable, match=r"could not create collection 'c2' .*database is locked.*nothing "
                                              r"was changed"):
            cat.add("default", CollectionSpec(name="c2", dim=4))
        with pytest.raises(Unavailable, match=r"could not drop collection 'c1' .*nothing was changed"):
            cat.remove("default", "c1")
        assert cat.names("default") == ["c1"] and cat.get("default", "c1") == kept
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    cat.close()
    assert Catalog(tmp_path).names("default") == ["c1"]


@pytest.mark.integration  # a subprocess killed with SIGKILL
def test_a_committed_change_survives_kill_9(tmp_path):
    script = (f"import os, signal; from pathlib import Path; from simsearch.router.catalog import Catalog; "
              f"from simsearch.shard import CollectionSpec; c = Catalog(Path({str(tmp_path)!r})); "
              f"c.add('default', CollectionSpec(name='kept', dim=3)); c.remove('default', 'kept'); "
              f"c.add('default', CollectionSpec(name='last', dim=3)); os.kill(os.getpid(), signal.SIGKILL)")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    assert Catalog(tmp_path).names("default") == ["last"]


def test_readers_in_other_threads_never_see_a_half_change(tmp_path):
    """Writes come from worker threads while the event loop lists and looks up."""
    cat = Catalog(tmp_path)
    errors: list[BaseException] = []

    def write(t: int) -> None:
        try:
            for i in range(25):
                cat.add("default", CollectionSpec(name=f"t{t}-{i}", dim=2))
                if i % 2:
                    cat.remove("default", f"t{t}-{i}")
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(3)]
    for th in threads:
        th.start()
    while any(th.is_alive() for th in threads):
        kept = [n for n in cat.names("default") if int(n.split("-")[1]) % 2 == 0]  # never removed
        assert all(cat.get("default", n).spec.name == n for n in kept)
    assert not errors
    assert len(cat.names("default")) == 3 * 13
    cat.close()
    assert len(Catalog(tmp_path).names("default")) == 3 * 13


# ---- the one-time import of catalog.json ----

def _legacy(tmp_path: Path) -> dict:
    doc = {"tenants": {"default": {"name": "default", "key_hashes": [hashlib.sha256(b"old-key-0123456789").hexdigest()]}},
           "collections": [
               {"tenant": "default", "uid": "0123456789ab", "created_at": 1700000000.5,
                "spec": {"name": "old", "dim": 4, "metric": "cosine", "shards": 2, "encoder": "",
                         "index": {"num_leaves": 0, "leaves_to_search": 0, "dims_per_block": 0,
                                   "rebuild_threshold": 0, "min_index_size": 2048, "oversample": 4}}},
               {"tenant": "team-b", "uid": "ba9876543210", "created_at": 1700000001.0,
                "spec": {"name": "b", "dim": 3, "metric": "l2", "shards": 1, "encoder": "",
                         "index": {"num_leaves": 0, "leaves_to_search": 0, "dims_per_block": 0,
                                   "rebuild_threshold": 0, "min_index_size": 2048, "oversample": 4}}}]}
    (tmp_path / "catalog.json").write_text(json.dumps(doc))
    return doc


def test_catalog_json_is_imported_once_and_renamed(tmp_path):
    _legacy(tmp_path)
    (tmp_path / "tenants" / "default" / "old-0123456789ab" / "shard-0").mkdir(parents=True)  # its data
    cat = Catalog(tmp_path)
    assert not (tmp_path / "catalog.json").exists() and (tmp_path / "catalog.json.migrated").exists()
    old = cat.get("default", "old")
    assert (old.uid, old.created_at, old.spec.metric, old.spec.shards) == ("0123456789ab", 1700000000.5, "cosine", 2)
    assert cat.get("team-b", "b").uid == "ba9876543210"  # a tenant with collections but no keys
    assert cat.authenticate("old-key-0123456789").tenant == "default"  # re-keyed on this first use
    assert cat.bootstrap(None) is None  # the imported tenant has a key: none is generated
    assert cat.orphans() == []
    cat.close()
    again = Catalog(tmp_path)  # reopened: nothing imported twice
    assert again.names("default") == ["old"] and again.names("team-b") == ["b"]


def test_a_crash_after_the_import_commits_keeps_the_sqlite_catalog(tmp_path):
    """Both files present = the import committed but the rename did not happen: SQLite wins."""
    _legacy(tmp_path)
    Catalog(tmp_path).close()
    (tmp_path / "catalog.json.migrated").rename(tmp_path / "catalog.json")
    cat = Catalog(tmp_path)
    assert cat.names("default") == ["old"]
    assert not (tmp_path / "catalog.json").exists() and (tmp_path / "catalog.json.migrated").exists()


# ---- faults that stop start-up ----

def test_a_missing_catalog_beside_collection_data_is_refused(tmp_path):
    (tmp_path / "tenants" / "default" / "c1-0123456789ab" / "shard-0").mkdir(parents=True)
    with pytest.raises(CatalogError, match=rf"the catalog {tmp_path}/catalog.sqlite is missing or empty but "
                                           rf"{tmp_path}/tenants holds collection data; restore catalog.sqlite"):
        Catalog(tmp_path)
    assert not (tmp_path / "catalog.sqlite").exists()  # refusing wrote nothing
    (tmp_path / "catalog.sqlite").write_bytes(b"")  # an empty file is no catalog either
    with pytest.raises(CatalogError, match="is missing or empty"):
        Catalog(tmp_path)


def test_empty_tenant_directories_are_not_collection_data(tmp_path):
    (tmp_path / "tenants" / "default").mkdir(parents=True)  # every collection dropped
    assert Catalog(tmp_path).names("default") == []


@pytest.mark.parametrize("content", [b"not a database at all" * 100, b"SQLite format 3\x00" + bytes(range(256)) * 8])
def test_a_damaged_catalog_is_refused_naming_the_file(tmp_path, content):
    (tmp_path / "catalog.sqlite").write_bytes(content)
    with pytest.raises(CatalogError, match=rf"the catalog {tmp_path}/catalog.sqlite cannot be read .*restore it"):
        Catalog(tmp_path)


def test_a_catalog_from_a_newer_version_is_refused(tmp_path):
    Catalog(tmp_path).close()
    db = sqlite3.connect(tmp_path / "catalog.sqlite")
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    with pytest.raises(CatalogError, match=r"schema version 99 is newer"):
        Catalog(tmp_path)


def test_orphans_are_collection_directories_no_record_names(tmp_path):
    cat = Catalog(tmp_path)
    kept = cat.add("default", SPEC)
    cat.collection_dir(kept).mkdir(parents=True)
    orphan = tmp_path / "tenants" / "default" / "gone-0123456789ab"
    stranger = tmp_path / "tenants" / "default" / "notes"  # not a name the catalog makes: left alone
    for d in (orphan, stranger):
        d.mkdir(parents=True)
    assert cat.orphans() == [orphan]


def test_a_catalog_json_that_does_not_import_is_refused_naming_it(tmp_path):
    doc = _legacy(tmp_path)
    doc["collections"][0]["spec"]["dim"] = 0  # no longer a valid spec
    (tmp_path / "catalog.json").write_text(json.dumps(doc))
    with pytest.raises(CatalogError, match=rf"cannot import the catalog {tmp_path}/catalog.json \(InvalidArgument: "
                                           rf"dim: .*nothing was imported"):
        Catalog(tmp_path)
    assert (tmp_path / "catalog.json").exists()  # left for the operator
    doc["collections"][0]["spec"]["dim"] = 4
    (tmp_path / "catalog.json").write_text(json.dumps(doc))
    assert Catalog(tmp_path).names("default") == ["old"]  # the failed attempt left nothing half-made
