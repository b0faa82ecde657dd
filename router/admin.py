"""The Admin gRPC service: tenants and API keys (protos/simsearch/v1/admin.proto).

Authorization has two layers. `@rpc` checks the role against the method (router/auth.py's
table: tenant and key management needs tenant-admin, tenants themselves admin). Here, a
tenant-admin is confined to its own tenant: naming another tenant, or another tenant's key,
answers exactly what a name that does not exist answers (NOT_FOUND with the same message), so
a tenant learns nothing about the others. Only an admin key may make an admin key, and the last
admin key cannot be revoked (the deployment would be locked out).
"""

from __future__ import annotations

import time

from simsearch.contract.errors import NotFound, PermissionDenied, excerpt, invalid
from simsearch.protos.simsearch.v1 import admin_pb2, admin_pb2_grpc
from simsearch.router.auth import ROLES, Principal, key_prefix
from simsearch.router.engine import Engine
from simsearch.router.servicers import rpc
from simsearch.router.tenancy import QUOTA_FIELDS, KeyRecord, TenantRecord
from simsearch.router.validate import check_name

MAX_KEY_COLLECTIONS = 1000


def _within(principal: Principal, rec: KeyRecord) -> bool:
    """Whether `rec` is no more than a collection-limited caller could make: limited to some of its collections."""
    return principal.collections is None or (rec.collections is not None and
                                             set(rec.collections) <= principal.collections)


def _quotas(q: admin_pb2.Quotas) -> dict[str, float]:
    return {f: getattr(q, f) for f in QUOTA_FIELDS}


def _tenant_proto(rec: TenantRecord, usage: dict[str, int] | None = None) -> admin_pb2.Tenant:
    out = admin_pb2.Tenant(name=rec.name, created_at=rec.created_at, quotas=admin_pb2.Quotas(**rec.quotas))
    if usage is not None:
        out.usage.CopyFrom(admin_pb2.Usage(**usage))
    return out


class AdminServicer(admin_pb2_grpc.AdminServicer):
    def __init__(self, engine: Engine):
        self.engine = engine
        self.catalog = engine.catalog

    # ---- scoping ----

    def _tenant_for(self, principal: Principal, name: str, field: str = "tenant") -> str:
        """The tenant a request names ("" = the caller's own). A tenant-admin naming another gets the
        NOT_FOUND of a tenant that does not exist."""
        name = name or principal.tenant
        check_name(name, field)
        if principal.role != "admin" and name != principal.tenant:
            raise NotFound(f"tenant {excerpt(name)} does not exist", field=field)
        self.catalog.tenant(name)  # NotFound, same message
        return name

    def _key_for(self, principal: Principal, key_id: str) -> KeyRecord:
        """A key the caller may revoke or rotate: another tenant's answers NOT_FOUND; an admin key, to anyone
        but an admin, PERMISSION_DENIED (rotating it would hand a tenant-admin the admin's powers)."""
        rec = self.catalog.key(key_id)
        if rec is None or (principal.role != "admin" and rec.tenant != principal.tenant):
            raise NotFound(f"key {excerpt(key_id)} does not exist", field="key_id")
        if rec.role == "admin" and principal.role != "admin":
            raise PermissionDenied("only an admin key may revoke or rotate an admin key", field="key_id")
        if not _within(principal, rec):
            raise PermissionDenied("a key limited to some collections may only revoke or rotate keys limited to "
                                   "those", field="key_id")
        return rec

    def _key_proto(self, rec: KeyRecord) -> admin_pb2.ApiKey:
        return admin_pb2.ApiKey(key_id=rec.key_id, tenant=rec.tenant, role=rec.role, collections=rec.collections or (),
                                created_at=rec.created_at, expires_at=rec.expires_at,
                                last_used=self.catalog.last_used(rec.key_id), prefix=key_prefix(rec.key_id),
                                bootstrap=rec.bootstrap)

    # ---- tenants ----

    @rpc
    async def CreateTenant(self, request, context, principal):
        check_name(request.name, "name")
        rec = await self.engine.run_catalog(self.catalog.create_tenant, request.name, _quotas(request.quotas))
        return _tenant_proto(rec)

    @rpc
    async def ListTenants(self, request, context, principal):
        return admin_pb2.ListTenantsResponse(tenants=[_tenant_proto(self.catalog.tenant(n))
                                                      for n in self.catalog.tenant_names()])

    @rpc
    async def DescribeTenant(self, request, context, principal):
        name = self._tenant_for(principal, request.name, "name")
        usage = await self.engine.tenant_usage(name)
        return _tenant_proto(self.catalog.tenant(name), usage)

    @rpc
    async def UpdateTenant(self, request, context, principal):
        check_name(request.name, "name")
        rec = await self.engine.run_catalog(self.catalog.update_tenant, request.name, _quotas(request.quotas))
        return _tenant_proto(rec)

    @rpc
    async def DeleteTenant(self, request, context, principal):
        check_name(request.name, "name")
        collections, keys = await self.engine.delete_tenant(request.name)
        return admin_pb2.DeleteTenantResponse(deleted=True, collections=collections, keys=keys)

    # ---- keys ----

    @rpc
    async def CreateKey(self, request, context, principal):
        tenant = self._tenant_for(principal, request.tenant)
        role = request.role or "read-write"
        if role not in ROLES:
            raise invalid("role", f"must be one of {', '.join(ROLES)}, got {excerpt(role)}")
        if role == "admin" and principal.role != "admin":
            raise PermissionDenied("only an admin key may create an admin key", field="role")
        if role == "admin" and tenant != principal.tenant:
            raise invalid("role", "an admin key belongs to the admin's own tenant")
        names = list(request.collections)
        if len(names) > MAX_KEY_COLLECTIONS:
            raise invalid("collections", f"must hold at most {MAX_KEY_COLLECTIONS} names, got {len(names)}")
        for i, n in enumerate(names):
            check_name(n, f"collections[{i}]")
        if principal.collections is not None and (not names or set(names) - principal.collections):
            raise PermissionDenied("a key limited to some collections may only create keys limited to those",
                                   field="collections")
        if request.expires_at and request.expires_at <= time.time():
            raise invalid("expires_at", f"must be in the future (unix seconds) or 0 for never, got {request.expires_at}")
        if principal.expires_at and not 0 < request.expires_at <= principal.expires_at:
            raise PermissionDenied(f"a key that expires may only create keys that expire no later (expires_at <= "
                                   f"{principal.expires_at:.0f})", field="expires_at")
        rec, secret = await self.engine.run_catalog(self.catalog.create_key, tenant, role,
                                                    tuple(sorted(set(names))) if names else None, request.expires_at)
        return admin_pb2.CreatedKey(key=self._key_proto(rec), secret=secret)

    @rpc
    async def ListKeys(self, request, context, principal):
        tenant = self._tenant_for(principal, request.tenant)
        self.catalog.flush_last_used()
        return admin_pb2.ListKeysResponse(keys=[self._key_proto(k) for k in self.catalog.keys_of(tenant)
                                                if _within(principal, k)])

    @rpc
    async def RevokeKey(self, request, context, principal):
        rec = self._key_for(principal, request.key_id)
        await self.engine.run_catalog(self.catalog.revoke_key, rec.key_id)  # refuses the last admin key
        return admin_pb2.RevokeKeyResponse(revoked=True)

    @rpc
    async def RotateKey(self, request, context, principal):
        rec = self._key_for(principal, request.key_id)
        new, secret = await self.engine.run_catalog(self.catalog.rotate_key, rec.key_id)
        return admin_pb2.CreatedKey(key=self._key_proto(new), secret=secret)
