"""`simsearch.AdminClient` / `AsyncAdminClient`: tenants and API keys (the Admin service).

Plain dicts and dataclasses out; every gRPC failure raised as a SimsearchError subclass. A key's
secret comes back once, from `create_key` and `rotate_key`; `list_keys` never shows secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from simsearch.client import _requests as rq
from simsearch.protos.simsearch.v1 import admin_pb2, admin_pb2_grpc

QUOTAS = ("max_collections", "max_points", "max_qps", "max_concurrent_searches", "max_payload_bytes")


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    tenant: str
    role: str
    collections: tuple[str, ...] | None  # None: every collection of its tenant
    created_at: float
    expires_at: float | None
    last_used: float | None
    prefix: str
    bootstrap: bool = False


@dataclass(frozen=True)
class NewKey:
    key: KeyInfo
    secret: str  # the API key itself: shown once


def _key(k: admin_pb2.ApiKey) -> KeyInfo:
    return KeyInfo(k.key_id, k.tenant, k.role, tuple(k.collections) or None, k.created_at, k.expires_at or None,
                   k.last_used or None, k.prefix, k.bootstrap)


def _tenant(t: admin_pb2.Tenant) -> dict[str, Any]:
    out: dict[str, Any] = {"name": t.name, "created_at": t.created_at,
                           "quotas": {q: getattr(t.quotas, q) or None for q in QUOTAS}}
    if t.HasField("usage"):
        out["usage"] = {"collections": t.usage.collections, "points": t.usage.points, "keys": t.usage.keys,
                        "payload_bytes": t.usage.payload_bytes}
    return out


def _quotas(quotas: dict[str, Any]) -> admin_pb2.Quotas:
    unknown = set(quotas) - set(QUOTAS)
    if unknown:
        raise TypeError(f"unknown quota {sorted(unknown)[0]!r}; known: {', '.join(QUOTAS)}")
    return admin_pb2.Quotas(**{k: v or 0 for k, v in quotas.items()})


def _create_key(tenant: str, role: str, collections: Sequence[str] | None, expires_at: float | None):
    return admin_pb2.CreateKeyRequest(tenant=tenant, role=role, collections=list(collections or ()),
                                      expires_at=expires_at or 0)


class AdminClient:
    """AdminClient("localhost:50051", api_key=ADMIN_OR_TENANT_ADMIN_KEY)."""

    def __init__(self, address: str, api_key: str | None = None, *, timeout: float | None = 60.0,
                 tls: bool = False, root_certificates: Any = None, client_cert: Any = None, client_key: Any = None):
        self._channel = rq.channel(address, tls=tls, root_certificates=root_certificates,
                                   client_cert=client_cert, client_key=client_key)
        self._admin = admin_pb2_grpc.AdminStub(self._channel)
        self._md = rq.metadata(api_key)
        self.timeout = timeout

    def _call(self, method, request):
        return rq.retrying(lambda: method(request, metadata=self._md, timeout=self.timeout))

    def create_tenant(self, name: str, **quotas: Any) -> dict[str, Any]:
        """quotas: max_collections, max_points, max_qps, max_concurrent_searches (None or 0: no limit)."""
        return _tenant(self._call(self._admin.CreateTenant, admin_pb2.CreateTenantRequest(name=name,
                                                                                         quotas=_quotas(quotas))))

    def list_tenants(self) -> list[dict[str, Any]]:
        return [_tenant(t) for t in self._call(self._admin.ListTenants, admin_pb2.ListTenantsRequest()).tenants]

    def describe_tenant(self, name: str = "") -> dict[str, Any]:
        """Its quotas and usage ("" = the caller's own tenant)."""
        return _tenant(self._call(self._admin.DescribeTenant, admin_pb2.DescribeTenantRequest(name=name)))

    def update_tenant(self, name: str, **quotas: Any) -> dict[str, Any]:
        """Replaces the tenant's quotas as a whole (unnamed ones: no limit)."""
        return _tenant(self._call(self._admin.UpdateTenant, admin_pb2.UpdateTenantRequest(name=name,
                                                                                         quotas=_quotas(quotas))))

    def delete_tenant(self, name: str) -> dict[str, int]:
        r = self._call(self._admin.DeleteTenant, admin_pb2.DeleteTenantRequest(name=name))
        return {"collections": r.collections, "keys": r.keys}

    def create_key(self, tenant: str = "", role: str = "read-write", collections: Sequence[str] | None = None,
                   expires_at: float | None = None) -> NewKey:
        r = self._call(self._admin.CreateKey, _create_key(tenant, role, collections, expires_at))
        return NewKey(_key(r.key), r.secret)

    def list_keys(self, tenant: str = "") -> list[KeyInfo]:
        return [_key(k) for k in self._call(self._admin.ListKeys, admin_pb2.ListKeysRequest(tenant=tenant)).keys]

    def revoke_key(self, key_id: str) -> None:
        self._call(self._admin.RevokeKey, admin_pb2.RevokeKeyRequest(key_id=key_id))

    def rotate_key(self, key_id: str) -> NewKey:
        r = self._call(self._admin.RotateKey, admin_pb2.RotateKeyRequest(key_id=key_id))
        return NewKey(_key(r.key), r.secret)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "AdminClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncAdminClient:
    """The same methods as AdminClient, awaitable."""

    def __init__(self, address: str, api_key: str | None = None, *, timeout: float | None = 60.0,
                 tls: bool = False, root_certificates: Any = None, client_cert: Any = None, client_key: Any = None):
        self._channel = rq.channel(address, tls=tls, root_certificates=root_certificates,
                                   client_cert=client_cert, client_key=client_key, aio=True)
        self._admin = admin_pb2_grpc.AdminStub(self._channel)
        self._md = rq.metadata(api_key)
        self.timeout = timeout

    async def _call(self, method, request):
        return await rq.retrying_async(lambda: method(request, metadata=self._md, timeout=self.timeout))

    async def create_tenant(self, name: str, **quotas: Any) -> dict[str, Any]:
        return _tenant(await self._call(self._admin.CreateTenant,
                                        admin_pb2.CreateTenantRequest(name=name, quotas=_quotas(quotas))))

    async def list_tenants(self) -> list[dict[str, Any]]:
        return [_tenant(t) for t in (await self._call(self._admin.ListTenants, admin_pb2.ListTenantsRequest())).tenants]

    async def describe_tenant(self, name: str = "") -> dict[str, Any]:
        return _tenant(await self._call(self._admin.DescribeTenant, admin_pb2.DescribeTenantRequest(name=name)))

    async def update_tenant(self, name: str, **quotas: Any) -> dict[str, Any]:
        return _tenant(await self._call(self._admin.UpdateTenant,
                                        admin_pb2.UpdateTenantRequest(name=name, quotas=_quotas(quotas))))

    async def delete_tenant(self, name: str) -> dict[str, int]:
        r = await self._call(self._admin.DeleteTenant, admin_pb2.DeleteTenantRequest(name=name))
        return {"collections": r.collections, "keys": r.keys}

    async def create_key(self, tenant: str = "", role: str = "read-write", collections: Sequence[str] | None = None,
                         expires_at: float | None = None) -> NewKey:
        r = await self._call(self._admin.CreateKey, _create_key(tenant, role, collections, expires_at))
        return NewKey(_key(r.key), r.secret)

    async def list_keys(self, tenant: str = "") -> list[KeyInfo]:
        return [_key(k) for k in (await self._call(self._admin.ListKeys,
                                                   admin_pb2.ListKeysRequest(tenant=tenant))).keys]

    async def revoke_key(self, key_id: str) -> None:
        await self._call(self._admin.RevokeKey, admin_pb2.RevokeKeyRequest(key_id=key_id))

    async def rotate_key(self, key_id: str) -> NewKey:
        r = await self._call(self._admin.RotateKey, admin_pb2.RotateKeyRequest(key_id=key_id))
        return NewKey(_key(r.key), r.secret)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "AsyncAdminClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
