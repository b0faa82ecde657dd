"""Collection aliases: the catalog on its own (persisted, transactional, name clashes, drops refused
while aliased, tenants apart, the schema upgrade from version 1), then through a real server (every
data call by alias; a switch under search load, with the hot-query cache on)."""

from __future__ import annotations

import sqlite3
import threading
import time

import numpy as np
import pytest

from simsearch import AlreadyExists, AsyncClient, Client, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from simsearch.router.catalog import SCHEMA_V1, SCHEMA_VERSION, Catalog, CatalogError
from simsearch.shard import CollectionSpec

from conftest import API_KEY

A = CollectionSpec(name="prod-a", dim=4)
B = CollectionSpec(name="prod-b", dim=4)


def _two(tmp_path, **kw) -> Catalog:
    cat = Catalog(tmp_path, **kw)
    cat.add("default", A)
    cat.add("default", B)
    return cat


# ---- the catalog ----

def test_aliases_persist_across_reopen(tmp_path):
    cat = _two(tmp_path)
    cat.create_alias("default", "prod", "prod-a")
    cat.create_alias("default", "other", "prod-a")
    assert cat.resolve("default", "prod") == "prod-a" and cat.resolve("default", "prod-b") == "prod-b"
    assert cat.resolve("default", "nothing") == "nothing"  # neither: the caller's NotFound names it as given
    assert cat.switch_alias("default", "prod", "prod-b") == "prod-a"
    assert cat.switch_alias("default", "prod", "prod-b") == "prod-b"  # the same target: no change
    assert cat.delete_alias("default", "other") == "prod-a"
    cat.close()
    again = Catalog(tmp_path)
    assert again.aliases("default") == [("prod", "prod-b")]
    assert again.resolve("default", "prod") == "prod-b"
    assert again.names("default") == ["prod-a", "prod-b"]  # aliases are not collections


def test_a_refused_write_changes_no_alias(tmp_path):
    """Another connection holds the write lock (the same path as a read-only or full disk): each alias
    change fails UNAVAILABLE saying nothing changed, and neither the file nor the in-memory copy moved."""
    cat = _two(tmp_path, busy_timeout_s=0.05)
    cat.create_alias("default", "prod", "prod-a")
    blocker = sqlite3.connect(tmp_path / "catalog.sqlite", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(Unavailable, match=r"could not create alias 'new' .*nothing was changed"):
            cat.create_alias("default", "new", "prod-a")
        with pytest.raises(Unavailable, match=r"could not switch alias 'prod' .*nothing was changed"):
            cat.switch_alias("default", "prod", "prod-b")
        with pytest.raises(Unavailable, match=r"could not delete alias 'prod' .*nothing was changed"):
            cat.delete_alias("default", "prod")
        assert cat.aliases("default") == [("prod", "prod-a")] and cat.resolve("default", "prod") == "prod-a"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    cat.close()
    assert Catalog(tmp_path).aliases("default") == [("prod", "prod-a")]


def test_names_of_aliases_and_collections_never_clash(tmp_path):
    cat = _two(tmp_path)
    cat.create_alias("default", "prod", "prod-a")
    with pytest.raises(AlreadyExists, match="'prod-b' is already a collection") as e:
        cat.create_alias("default", "prod-b", "prod-a")
    assert e.value.field == "alias"
    with pytest.raises(AlreadyExists, match="'prod' is already an alias") as e:
        cat.create_alias("default", "prod", "prod-b")
    assert e.value.field == "alias"
    with pytest.raises(AlreadyExists, match="'prod' is already an alias .*cannot share a name") as e:
        cat.add("default", CollectionSpec(name="prod", dim=4))
    assert e.value.field == "name"
    with pytest.raises(NotFound, match="collection 'missing' does not exist") as e:
        cat.create_alias("default", "x", "missing")
    assert e.value.field == "collection"
    with pytest.raises(NotFound, match="'prod' is an alias of 'prod-a'; an alias names a collection"):
        cat.create_alias("default", "x", "prod")  # no alias of an alias
    with pytest.raises(NotFound, match="alias 'nope' does not exist") as e:
        cat.switch_alias("default", "nope", "prod-a")
    assert e.value.field == "alias"
    with pytest.raises(NotFound, match="collection 'missing' does not exist"):
        cat.switch_alias("default", "prod", "missing")
    with pytest.raises(NotFound, match="alias 'nope' does not exist"):
        cat.delete_alias("default", "nope")
    assert cat.aliases("default") == [("prod", "prod-a")]


def test_a_collection_with_aliases_cannot_be_dropped(tmp_path):
    cat = _two(tmp_path)
    cat.create_alias("default", "prod", "prod-a")
    cat.create_alias("default", "live", "prod-a")
    with pytest.raises(FailedPrecondition, match=r"collection 'prod-a' has aliases \('live', 'prod'\)") as e:
        cat.remove("default", "prod-a")
    assert e.value.field == "name"
    with pytest.raises(FailedPrecondition, match="'prod' is an alias of collection 'prod-a', not a collection"):
        cat.remove("default", "prod")  # drop by the collection's own name
    assert cat.names("default") == ["prod-a", "prod-b"]
    # the foreign key refuses it in SQL too
    with pytest.raises(sqlite3.IntegrityError):
        cat._db.execute("DELETE FROM collections WHERE name = 'prod-a'")
    cat.switch_alias("default", "prod", "prod-b")
    cat.delete_alias("default", "live")
    cat.remove("default", "prod-a")  # no alias names it any more
    cat.close()
    again = Catalog(tmp_path)
    assert again.names("default") == ["prod-b"] and again.aliases("default") == [("prod", "prod-b")]


def test_aliases_are_per_tenant(tmp_path):
    cat = _two(tmp_path)
    cat.create_tenant("team-b", {})
    cat.add("team-b", CollectionSpec(name="mine", dim=4))
    cat.create_alias("default", "prod", "prod-a")
    assert cat.aliases("team-b") == [] and cat.resolve("team-b", "prod") == "prod"
    with pytest.raises(NotFound, match="collection 'prod-a' does not exist"):
        cat.create_alias("team-b", "x", "prod-a")  # another tenant's collection
    with pytest.raises(NotFound, match="alias 'prod' does not exist"):
        cat.switch_alias("team-b", "prod", "mine")
    with pytest.raises(NotFound, match="alias 'prod' does not exist"):
        cat.delete_alias("team-b", "prod")
    cat.create_alias("team-b", "prod", "mine")  # the same alias name in another tenant
    cat.add("team-b", CollectionSpec(name="prod-a", dim=4))  # no clash across tenants either
    assert cat.aliases("team-b") == [("prod", "mine")] and cat.aliases("default") == [("prod", "prod-a")]


def _version_1(tmp_path) -> None:
    """A catalog as simsearch wrote it before aliases: three tables, user_version 1, one collection."""
    db = sqlite3.connect(tmp_path / "catalog.sqlite", isolation_level=None)
    for statement in SCHEMA_V1:
        db.execute(statement)
    db.execute("PRAGMA user_version=1")
    rec = Catalog.plan("default", A)
    db.execute("INSERT INTO tenants VALUES ('default', 1.0)")
    db.execute("INSERT INTO collections VALUES (?, ?, ?, ?, ?)",
               (rec.tenant, rec.spec.name, rec.uid, rec.spec_json(), rec.created_at))
    db.close()


def _user_version(tmp_path) -> int:
    db = sqlite3.connect(tmp_path / "catalog.sqlite")
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def test_a_version_1_catalog_is_upgraded_in_one_transaction(tmp_path):
    _version_1(tmp_path)
    # a refused write during the upgrade: start-up fails naming the file, and the old schema is whole
    blocker = sqlite3.connect(tmp_path / "catalog.sqlite", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # others may read, not write
    try:
        with pytest.raises(CatalogError, match=r"cannot upgrade the catalog .*catalog.sqlite from schema version 1 "
                                               r"to 5 .*nothing was changed"):
            Catalog(tmp_path, busy_timeout_s=0.05)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert _user_version(tmp_path) == 1
    cat = Catalog(tmp_path)
    assert _user_version(tmp_path) == SCHEMA_VERSION == 5
    assert cat.names("default") == ["prod-a"] and cat.aliases("default") == []
    cat.create_alias("default", "prod", "prod-a")
    assert cat.add_payload_index("default", "prod-a", "color", "keyword")  # version 3's table
    assert cat.reindex_jobs("default", "prod-a") == ()  # version 5's table
    cat.close()
    again = Catalog(tmp_path)
    assert again.aliases("default") == [("prod", "prod-a")]
    assert again.payload_indexes("default", "prod-a") == {"color": "keyword"}


# ---- through a real server ----

DIM = 8


def _data(prefix: str, seed: int) -> tuple[list[str], np.ndarray]:
    vecs = np.random.default_rng(seed).standard_normal((50, DIM)).astype(np.float32)
    return [f"{prefix}{i}" for i in range(len(vecs))], vecs


@pytest.fixture(scope="module")
def pair(client) -> tuple[str, str]:
    """Two collections with different ids ("a…" and "b…"): a hit's first letter says which answered."""
    for name, prefix, seed in (("al-a", "a", 1), ("al-b", "b", 2)):
        client.create_collection(name, DIM, shards=2)
        client.upsert(name, *_data(prefix, seed))
    return "al-a", "al-b"


@pytest.mark.integration
def test_every_data_call_accepts_an_alias(server, client, pair):
    client.create_alias("al", "al-a")
    try:
        assert client.list_aliases() == {"al": "al-a"}
        assert "al" not in client.list_collections()
        ids, vecs = _data("a", 1)
        res = client.search("al", vecs[:3], 5, no_cache=True)
        assert list(res.ids[:, 0]) == ids[:3]
        assert client.get("al", ["a4"]).ids == ["a4"]
        assert client.count("al") == 50
        info = client.describe_collection("al")
        assert info.name == "al-a"  # describes the collection the alias names
        client.build_index("al")
        # writes through the alias land in the target
        client.upsert("al", ["new"], np.ones((1, DIM), np.float32))
        assert client.count("al-a") == 51 and client.get("al-a", ["new"]).ids == ["new"]
        assert client.delete("al", ["new"]) == 1 and client.count("al-a") == 50
        assert client.switch_alias("al", "al-b") == "al-a"
        assert client.count("al") == 50 and client.get("al", ["b0"]).ids == ["b0"]
        # the errors, each naming its field
        with pytest.raises(AlreadyExists, match="'al' is already an alias"):
            client.create_alias("al", "al-a")
        with pytest.raises(AlreadyExists, match="'al' is already an alias"):
            client.create_collection("al", DIM)
        with pytest.raises(AlreadyExists, match="'al-a' is already a collection"):
            client.create_alias("al-a", "al-b")
        with pytest.raises(NotFound, match="collection 'ghost' does not exist") as e:
            client.switch_alias("al", "ghost")
        assert e.value.field == "collection"
        with pytest.raises(NotFound, match="alias 'ghost' does not exist"):
            client.delete_alias("ghost")
        with pytest.raises(InvalidArgument) as e:
            client.create_alias("bad name!", "al-a")
        assert e.value.field == "alias"
        with pytest.raises(InvalidArgument) as e:
            client.switch_alias("al", "")
        assert e.value.field == "collection"
        with pytest.raises(FailedPrecondition, match=r"collection 'al-b' has aliases \('al'\)"):
            client.drop_collection("al-b")
        with pytest.raises(FailedPrecondition, match="'al' is an alias of collection 'al-b', not a collection"):
            client.drop_collection("al")
        assert client.count("al-b") == 50 and client.list_aliases() == {"al": "al-b"}
    finally:
        client.delete_alias("al")
    assert client.list_aliases() == {}
    with pytest.raises(NotFound, match="collection 'al' does not exist"):
        client.search("al", np.ones((1, DIM), np.float32), 5)


@pytest.mark.integration
def test_the_async_client_manages_aliases(server, pair):
    import asyncio

    async def go() -> tuple:
        async with AsyncClient(server.address, api_key=API_KEY) as c:
            await c.create_alias("al-async", "al-a")
            first = await c.list_aliases()
            previous = await c.switch_alias("al-async", "al-b")
            hit = (await c.search("al-async", _data("b", 2)[1][:1], 1, no_cache=True)).ids[0, 0]
            await c.delete_alias("al-async")
            return first, previous, hit, await c.list_aliases()

    first, previous, hit, after = asyncio.run(go())
    assert first == {"al-async": "al-a"} and previous == "al-a" and hit == "b0" and after == {}


@pytest.mark.integration
def test_a_switch_under_search_load_fails_nothing_and_never_serves_the_old_target(server, client, pair):
    """A thread searches through the alias back to back (the same queries, so the hot-query cache holds
    them) while the main thread switches the alias between the two collections 20 times. No request
    fails, and every search that starts after a switch returns answers from the new target, cached or not."""
    query = np.ones((1, DIM), np.float32)  # the same query for both: its nearest point differs by collection
    client.create_alias("live", "al-a")
    stop = threading.Event()
    seen: list[tuple[float, float, str, bool]] = []  # (start, end, first letter of the top hit, cached)
    errors: list[BaseException] = []

    def load() -> None:
        with Client(server.address, api_key=API_KEY) as c:
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    res = c.search("live", query, 3)
                except BaseException as e:  # noqa: BLE001 (asserted on in the main thread)
                    errors.append(e)
                    continue
                seen.append((t0, time.monotonic(), str(res.ids[0, 0])[:1], res.cached))

    switches: list[tuple[float, float, str]] = []  # (switch sent, switch returned, the new target's letter)
    checks: list[tuple[str, str, bool]] = []  # (expected, seen, cached) for searches sent right after a switch
    thread = threading.Thread(target=load)
    thread.start()
    try:
        time.sleep(0.3)  # searches under way (and cached) before the first switch
        for i in range(20):
            target = "al-b" if i % 2 == 0 else "al-a"
            sent = time.monotonic()
            client.switch_alias("live", target)
            switches.append((sent, time.monotonic(), target[-1]))
            for _ in range(3):  # repeated: the later ones come from the cache
                res = client.search("live", query, 3)
                checks.append((target[-1], str(res.ids[0, 0])[:1], res.cached))
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=60)
        client.delete_alias("live")
    assert not thread.is_alive()
    assert errors == []
    assert len(seen) > 40, len(seen)
    assert [(want, got) for want, got, _ in checks if want != got] == []
    assert any(cached for _, _, cached in checks), "the hot-query cache never answered: the test proves less"
    # the load thread: each search that started after a switch returned, and ended before the next switch
    # was sent, saw that switch's target (one that overlaps a switch may see either)
    wrong, judged = [], 0
    for i, (_, returned, letter) in enumerate(switches):
        until = switches[i + 1][0] if i + 1 < len(switches) else float("inf")
        between = [s for s in seen if returned < s[0] and s[1] < until]
        judged += len(between)
        wrong += [(i, letter, s) for s in between if s[2] != letter]
    assert wrong == []
    assert judged > 20, judged
    assert {s[2] for s in seen} == {"a", "b"}
