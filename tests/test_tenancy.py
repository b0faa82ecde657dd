"""Tenants, keys and roles: keyed digests and file modes, the bootstrap rule, the Admin service, every
role against every RPC (the table in docs/roles.md is generated from this test), revocation (an open
search stream included), and cross-tenant probes that must neither succeed nor reveal existence."""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import stat
import time

import grpc
import numpy as np
import pytest

from conftest import API_KEY, start_server
from simsearch import (AdminClient, Client, FailedPrecondition, NotFound, PermissionDenied, Unauthenticated)
from simsearch.protos.simsearch.v1 import admin_pb2, collections_pb2, encoders_pb2, points_pb2
from simsearch.router.auth import ROLES, RPC_PERMISSIONS, may
from simsearch.router.catalog import SCHEMA_V1, Catalog
from simsearch.router.tenancy import BootstrapMismatch

DIM = 4
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROLE_DOC = os.path.join(ROOT, "docs", "roles.md")


# ---- the catalog ----


@pytest.mark.unit
def test_keys_are_stored_as_keyed_digests_in_files_only_the_server_user_reads(tmp_path):
    cat = Catalog(tmp_path)
    key = cat.bootstrap(None)
    rec, secret = cat.create_key("default", "read-only", ("a", "b"), 0)
    cat.close()
    raw = (tmp_path / "catalog.sqlite").read_bytes()
    for k in (key, secret):
        assert k.encode() not in raw and hashlib.sha256(k.encode()).hexdigest().encode() not in raw
    assert stat.S_IMODE((tmp_path / "catalog.sqlite").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "server.secret").stat().st_mode) == 0o600
    again = Catalog(tmp_path)
    p = again.authenticate(secret)
    assert (p.tenant, p.role, p.collections, p.key_id) == ("default", "read-only", frozenset({"a", "b"}), rec.key_id)
    (tmp_path / "server.secret").write_bytes(os.urandom(32))  # another secret: no stored digest matches
    with pytest.raises(Unauthenticated):
        Catalog(tmp_path).authenticate(secret)


@pytest.mark.unit
def test_revoked_rotated_and_expired_keys_are_refused(tmp_path):
    cat = Catalog(tmp_path)
    cat.bootstrap(None)
    a, secret_a = cat.create_key("default", "read-write", None, 0)
    b, secret_b = cat.create_key("default", "read-only", None, time.time() + 0.3)
    _, rotated = cat.rotate_key(a.key_id)
    with pytest.raises(Unauthenticated, match="not recognised"):
        cat.authenticate(secret_a)
    assert cat.authenticate(rotated).key_id == a.key_id
    cat.revoke_key(a.key_id)
    with pytest.raises(Unauthenticated):
        cat.authenticate(rotated)
    assert cat.authenticate(secret_b).role == "read-only"
    time.sleep(0.35)
    with pytest.raises(Unauthenticated, match="expired"):
        cat.authenticate(secret_b)


def _version_3(tmp_path, keys: dict[str, str]) -> None:
    """A catalog as simsearch wrote it before roles (schema version 3), holding these keys (key -> tenant) as
    plain SHA-256 digests."""
    db = sqlite3.connect(tmp_path / "catalog.sqlite", isolation_level=None)
    for statement in SCHEMA_V1:
        db.execute(statement)
    db.execute("CREATE TABLE aliases (tenant TEXT, alias TEXT, collection TEXT, created_at REAL)")
    db.execute("CREATE TABLE payload_indexes (tenant TEXT, collection TEXT, field TEXT, type TEXT, created_at REAL)")
    db.execute("PRAGMA user_version=3")
    for tenant in sorted(set(keys.values())):
        db.execute("INSERT INTO tenants VALUES (?, 1.0)", (tenant,))
    for key, tenant in keys.items():
        db.execute("INSERT INTO api_keys VALUES (?, ?, 1.0)", (hashlib.sha256(key.encode()).hexdigest(), tenant))
    db.close()


@pytest.mark.unit
def test_a_version_3_catalog_keeps_its_keys_as_admin_keys_rekeyed_on_first_use(tmp_path):
    old = "old-admin-key-0123456789"
    _version_3(tmp_path, {old: "default"})
    cat = Catalog(tmp_path)
    assert cat.authenticate(old).role == "admin"
    cat.close()
    raw = (tmp_path / "catalog.sqlite").read_bytes()
    assert hashlib.sha256(old.encode()).hexdigest().encode() not in raw  # re-keyed
    assert Catalog(tmp_path).authenticate(old).tenant == "default"
    with pytest.raises(BootstrapMismatch):
        Catalog(tmp_path).bootstrap("another-key-0123456789")


# ---- through a real server ----


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("tenancy"))
    yield s
    s.stop()


def _rpcs() -> list[tuple[str, str, type]]:
    out = []
    for module, service in ((collections_pb2, "Collections"), (points_pb2, "Points"), (encoders_pb2, "Encoders"),
                            (admin_pb2, "Admin")):
        desc = module.DESCRIPTOR.services_by_name[service]
        for m in desc.methods:
            out.append((service, m.name, m.client_streaming))
    return out


def _outcome(channel: grpc.Channel, service: str, method: str, streaming: bool, key: str) -> grpc.StatusCode:
    """An empty request of `method` with `key`: authorization runs before any check of the body."""
    path = f"/simsearch.v1.{service}/{method}"
    md = (("x-api-key", key),)
    try:
        if streaming:
            call = channel.stream_stream(path)(iter([b""]), metadata=md, timeout=30)
            for reply in call:
                return grpc.StatusCode.OK if reply else grpc.StatusCode.OK
            return grpc.StatusCode.OK
        channel.unary_unary(path)(b"", metadata=md, timeout=30)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


def _role_table(allowed: dict[tuple[str, str], bool]) -> str:
    lines = ["# Roles × RPCs", "",
             "Generated by `tests/test_tenancy.py::test_every_role_against_every_rpc` from what a real server",
             "answered (an empty request per RPC, sent with a key of each role): ✓ = admitted past",
             "authorization, ✗ = PERMISSION_DENIED. Regenerate with `SIMSEARCH_WRITE_ROLE_TABLE=1 pytest",
             "tests/test_tenancy.py -k every_role`. A tenant-admin's Admin calls reach only its own tenant",
             "(another tenant, or its keys, answer NOT_FOUND as if they did not exist); a key limited to some",
             "collections gets PERMISSION_DENIED for any other.", "",
             "| service | RPC | " + " | ".join(ROLES) + " |", "|---|---|" + "---|" * len(ROLES)]
    for service, method, _ in _rpcs():
        cells = ["✓" if allowed[(method, role)] else "✗" for role in ROLES]
        lines.append(f"| {service} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@pytest.mark.integration
def test_every_role_against_every_rpc(served):
    with AdminClient(served.address, api_key=API_KEY) as admin:
        admin.create_tenant("roles")
        keys = {"admin": API_KEY}
        for role in ROLES[1:]:
            keys[role] = admin.create_key("roles", role).secret
    allowed = {}
    with grpc.insecure_channel(served.address) as channel:
        for service, method, streaming in _rpcs():
            assert method in RPC_PERMISSIONS, f"{method} has no entry in router/auth.py's RPC_PERMISSIONS"
            for role in ROLES:
                code = _outcome(channel, service, method, streaming, keys[role])
                allowed[(method, role)] = code != grpc.StatusCode.PERMISSION_DENIED
                assert allowed[(method, role)] == may(role, RPC_PERMISSIONS[method]), (method, role, code)
                assert code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAUTHENTICATED)
    table = _role_table(allowed)
    if os.environ.get("SIMSEARCH_WRITE_ROLE_TABLE"):
        with open(ROLE_DOC, "w") as f:
            f.write(table)
    with open(ROLE_DOC) as f:
        assert f.read() == table, "docs/roles.md is out of date: rerun with SIMSEARCH_WRITE_ROLE_TABLE=1"


@pytest.mark.integration
def test_admin_service_tenants_keys_and_their_limits(served):
    with AdminClient(served.address, api_key=API_KEY) as admin:
        t = admin.create_tenant("acme", max_collections=5, max_qps=100)
        assert t["quotas"] == {"max_collections": 5, "max_points": None, "max_qps": 100.0,
                               "max_concurrent_searches": None, "max_payload_bytes": None}
        ta = admin.create_key("acme", "tenant-admin")
        assert ta.secret.startswith(f"ss_{ta.key.key_id}_") and ta.key.prefix == f"ss_{ta.key.key_id}_…"
        assert ta.secret not in repr(admin.list_keys("acme"))
        assert [t["name"] for t in admin.list_tenants()] == sorted(t["name"] for t in admin.list_tenants())
    with AdminClient(served.address, api_key=ta.secret) as tadmin, Client(served.address, api_key=ta.secret) as c:
        c.create_collection("docs", DIM)
        c.upsert("docs", ["a", "b"], np.eye(2, DIM, dtype=np.float32))
        usage = tadmin.describe_tenant()["usage"]
        assert usage == {"collections": 1, "points": 2, "keys": 1, "payload_bytes": 0}
        with pytest.raises(PermissionDenied, match="only an admin key may create an admin key"):
            tadmin.create_key(role="admin")
        with pytest.raises(PermissionDenied):
            tadmin.create_tenant("evil")
        ro = tadmin.create_key(role="read-only", collections=["docs"])
        rw_other = tadmin.create_key(role="read-write", collections=["other"])
    with Client(served.address, api_key=ro.secret) as c:
        assert c.list_collections() == ["docs"] and c.get("docs", ["a"]).ids == ["a"]
        with pytest.raises(PermissionDenied, match="needs a key with role admin or tenant-admin or read-write"):
            c.upsert("docs", ["x"], np.ones((1, DIM), np.float32))
    with Client(served.address, api_key=rw_other.secret) as c:
        assert c.list_collections() == []
        with pytest.raises(PermissionDenied, match="may use only the collections other"):
            c.get("docs", ["a"])
    with AdminClient(served.address, api_key=API_KEY) as admin:
        default_ta = admin.create_key("default", "tenant-admin").secret
        admin_id = next(k.key_id for k in admin.list_keys("default") if k.role == "admin")
    with AdminClient(served.address, api_key=default_ta) as tadmin:  # the admin's own tenant: still no escalation
        for act in (tadmin.rotate_key, tadmin.revoke_key):
            with pytest.raises(PermissionDenied, match="only an admin key may revoke or rotate an admin key"):
                act(admin_id)
    with Client(served.address, api_key=ta.secret) as c:  # ta's tenant acme: "docs" exists; alias it
        c.create_collection("other", DIM)
        c.create_alias("docs-live", "docs")
        c.create_alias("other-live", "other")
    with Client(served.address, api_key=ro.secret) as c:  # limited to docs: sees only docs' aliases
        assert c.list_aliases() == {"docs-live": "docs"}
    with AdminClient(served.address, api_key=API_KEY) as admin:
        with pytest.raises(FailedPrecondition, match="last admin key"):
            admin.revoke_key(next(k.key_id for k in admin.list_keys("default") if k.role == "admin"))
        gone = admin.delete_tenant("acme")
        assert gone == {"collections": 2, "keys": 3}
        with pytest.raises(NotFound):
            admin.describe_tenant("acme")
    with pytest.raises(Unauthenticated), Client(served.address, api_key=ta.secret) as c:
        c.list_collections()


@pytest.mark.integration
def test_a_revoked_key_is_refused_at_the_next_message_of_an_open_stream(served):
    with AdminClient(served.address, api_key=API_KEY) as admin:
        admin.create_tenant("streamy")
        k = admin.create_key("streamy", "tenant-admin")
    with Client(served.address, api_key=k.secret) as c:
        c.create_collection("s", DIM)
        c.upsert("s", ["a"], np.ones((1, DIM), np.float32))
        assert c.search("s", np.ones(DIM, np.float32), 1).ids[0, 0] == "a"  # on the stream
        stream = c._streams._idle[0] if c._streams._idle else None
        with AdminClient(served.address, api_key=API_KEY) as admin:
            admin.revoke_key(k.key.key_id)
        with pytest.raises(Unauthenticated):
            c.search("s", np.ones(DIM, np.float32), 1)
        assert stream is not None


@pytest.mark.integration
def test_cross_tenant_probes_neither_succeed_nor_reveal_existence(served):
    """Tenant B's keys (every role) name tenant A's collections, aliases, keys and tenant: each answer is
    exactly the answer for a name that exists nowhere (with the name swapped), never a success."""
    rng = random.Random(17)
    with AdminClient(served.address, api_key=API_KEY) as admin:
        admin.create_tenant("alpha")
        admin.create_tenant("beta")
        a_key = admin.create_key("alpha", "tenant-admin")
        b_keys = {r: admin.create_key("beta", r).secret for r in ("tenant-admin", "read-write", "read-only")}
    with Client(served.address, api_key=a_key.secret) as a:
        for name in ("secret-docs", "payroll"):
            a.create_collection(name, DIM)
            a.upsert(name, ["p1", "p2"], np.eye(2, DIM, dtype=np.float32), payloads=[{"x": 1}, {"x": 2}])
        a.create_alias("hr", "payroll")
        a.search("payroll", np.ones(DIM, np.float32), 2)  # warm the cache for A
    secret_names = ["secret-docs", "payroll", "hr"]
    vec = np.ones((1, DIM), np.float32)

    def probes(c: Client, ad: AdminClient, name: str):
        return [
            lambda: c.get(name, ["p1"]), lambda: c.search(name, vec, 2), lambda: c.count(name),
            lambda: c.scroll(name), lambda: c.describe_collection(name), lambda: c.delete(name, ["p1"]),
            lambda: c.upsert(name, ["z"], vec), lambda: c.set_payload(name, ["p1"], {"y": 1}),
            lambda: c.drop_collection(name), lambda: c.build_index(name), lambda: c.delete(name, filter={"x": 1}),
            lambda: c.create_payload_index(name, "x", "integer"), lambda: c.switch_alias(name, "payroll"),
            lambda: c.delete_alias(name), lambda: c.create_alias("mine", name),
            lambda: ad.describe_tenant("alpha" if name in secret_names else "gamma"),
            lambda: ad.list_keys("alpha" if name in secret_names else "gamma"),
            lambda: ad.revoke_key(a_key.key.key_id if name in secret_names else "000000000000"),
            lambda: ad.rotate_key(a_key.key.key_id if name in secret_names else "000000000000"),
            lambda: ad.create_key("alpha" if name in secret_names else "gamma"),
        ]

    def answer(fn):
        try:
            fn()
            return "OK"
        except Exception as e:  # noqa: BLE001 (every outcome is compared)
            return f"{type(e).__name__}: {getattr(e, 'message', str(e))}"

    n = 0
    for role, secret in b_keys.items():
        with Client(served.address, api_key=secret) as c, AdminClient(served.address, api_key=secret) as ad:
            assert set(c.list_collections()).isdisjoint(secret_names) and c.list_aliases() == {}
            for _ in range(334):
                i = rng.randrange(20)
                name = rng.choice(secret_names)
                got = answer(probes(c, ad, name)[i])
                want = answer(probes(c, ad, "nowhere-" + name)[i])
                normal = got.replace(name, "X").replace("alpha", "T").replace(a_key.key.key_id, "K")
                expect = want.replace("nowhere-" + name, "X").replace("gamma", "T").replace("000000000000", "K")
                assert got != "OK" and normal == expect, (role, i, name, got, want)
                n += 1
    with Client(served.address, api_key=a_key.secret) as a:  # A's data untouched
        assert a.count("payroll") == 2 and a.get("secret-docs", ["p1"]).payloads == [{"x": 1}]
        assert a.list_aliases() == {"hr": "payroll"}
    assert n == 1002


@pytest.mark.integration
def test_wrong_keys_are_answered_slowly_per_source_and_admin_actions_are_audited(served):
    import asyncio

    from simsearch import AsyncClient
    from simsearch.router.guard import FAILURE_DELAY_S, MAX_PENDING_FAILURES

    async def burst(n: int) -> list[str]:
        async with AsyncClient(served.address, api_key="ss_000000000000_wrong", timeout=30) as c:
            async def one() -> str:
                try:
                    await c.list_collections()
                    return "OK"
                except Exception as e:  # noqa: BLE001
                    return type(e).__name__
            return await asyncio.gather(*(one() for _ in range(n)))

    t0 = time.monotonic()
    got = asyncio.run(burst(200))
    took = time.monotonic() - t0
    # at most MAX_PENDING_FAILURES wrong keys are looked at per FAILURE_DELAY_S; the rest refused unread
    assert got.count("Unauthenticated") <= MAX_PENDING_FAILURES * (1 + took / FAILURE_DELAY_S)
    assert got.count("ResourceExhausted") >= 200 - MAX_PENDING_FAILURES * (1 + took / FAILURE_DELAY_S)
    assert "OK" not in got and set(got) <= {"Unauthenticated", "ResourceExhausted"}
    time.sleep(FAILURE_DELAY_S + 0.2)  # the pending answers went out: the source is clear again
    with Client(served.address, api_key=API_KEY) as c:
        c.list_collections()

    with AdminClient(served.address, api_key=API_KEY) as admin:
        admin.create_tenant("audited")
        made = admin.create_key("audited", "read-only")
        with pytest.raises(NotFound):
            admin.revoke_key("00000000audi")
        admin.revoke_key(made.key.key_id)
    path = served.config.data_dir / "audit.log"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert made.secret not in text
    entries = [json.loads(line) for line in text.splitlines()]
    mine = [e for e in entries if e["target"].get("tenant") == "audited" or e["target"].get("name") == "audited"
            or e["target"].get("key_id") in (made.key.key_id, "00000000audi")]
    assert [(e["action"], e["outcome"]) for e in mine] == [("CreateTenant", "OK"), ("CreateKey", "OK"),
                                                           ("RevokeKey", "NOT_FOUND"), ("RevokeKey", "OK")]
    assert all(e["role"] == "admin" and e["tenant"] == "default" and e["source"].startswith("ipv") for e in mine)


@pytest.mark.unit
def test_a_legacy_key_revoked_before_its_rekeying_stays_revoked(tmp_path):
    _version_3(tmp_path, {"legacy-admin-key-0123": "default", "legacy-team-key-0123": "team"})
    cat = Catalog(tmp_path)
    ids = {k.tenant: k.key_id for t in ("default", "team") for k in cat.keys_of(t)}
    assert all(len(i) == 12 for i in ids.values())
    assert hashlib.sha256(b"legacy-team-key-0123").hexdigest()[:12] != ids["team"]  # ids are random, not the hash
    legacy = cat.key(ids["team"])
    cat.revoke_key(ids["team"])  # revoked between authenticate's lookup and its re-keying
    with pytest.raises(Unauthenticated):
        cat._rekey(legacy, cat.hasher.digest("legacy-team-key-0123"))
    with pytest.raises(Unauthenticated):
        cat.authenticate("legacy-team-key-0123")
    with pytest.raises(FailedPrecondition, match="last admin key"):
        cat.revoke_key(ids["default"])


@pytest.mark.integration
def test_limited_and_expiring_keys_cannot_widen_themselves(served):
    with AdminClient(served.address, api_key=API_KEY) as admin:
        admin.create_tenant("narrowed")
        full = admin.create_key("narrowed", "tenant-admin")
        limited = admin.create_key("narrowed", "tenant-admin", collections=["a"])
        expiring = admin.create_key("narrowed", "tenant-admin", expires_at=time.time() + 3600)
    with Client(served.address, api_key=full.secret) as c:
        for name in ("a", "b"):
            c.create_collection(name, DIM)
        c.create_alias("live", "b")
    with AdminClient(served.address, api_key=limited.secret) as lim, Client(served.address, api_key=limited.secret) as c:
        for act in (lim.rotate_key, lim.revoke_key):
            with pytest.raises(PermissionDenied, match="may only revoke or rotate keys limited to those"):
                act(full.key.key_id)
        assert {k.key_id for k in lim.list_keys()} == {limited.key.key_id}
        for act in (lambda: c.switch_alias("live", "a"), lambda: c.delete_alias("live")):
            with pytest.raises(PermissionDenied, match="may use only the collections a"):
                act()
        assert c.list_aliases() == {}
    with AdminClient(served.address, api_key=expiring.secret) as exp:
        with pytest.raises(PermissionDenied, match="may only create keys that expire no later"):
            exp.create_key(role="read-only")
        exp.create_key(role="read-only", expires_at=time.time() + 60)
    with Client(served.address, api_key=full.secret) as c:
        assert c.list_aliases() == {"live": "b"}
