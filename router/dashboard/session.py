"""Who is looking: an API key, entered once on the login form, becomes a signed session cookie.

The cookie never holds the key. It holds the key's id, a fingerprint of the key's stored digest (so a
rotated or revoked key ends its sessions at the next page) and an expiry, signed with HMAC-SHA256
(itsdangerous) under a key derived from the data dir's server secret; it is HttpOnly, SameSite=Strict,
Secure when the dashboard serves TLS, and expires after SESSION_TTL_S. Every page reads the key's record
again, so the session acts exactly as the key would over gRPC: its tenant, and only the collections a
limited key may use.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from simsearch.router.auth import Principal
from simsearch.router.catalog import Catalog

COOKIE = "simsearch_dashboard"
SESSION_TTL_S = 8 * 3600
_DERIVATION_LABEL = "simsearch dashboard session cookie v1"


class Sessions:
    def __init__(self, catalog: Catalog, *, secure: bool, ttl_s: int = SESSION_TTL_S):
        self.catalog = catalog
        self.secure = secure
        self.ttl_s = ttl_s
        # HMAC-SHA256(server secret, label): a key of its own, so a cookie can never stand for a key digest
        self._key = catalog.hasher.digest(_DERIVATION_LABEL).encode()
        self._serializer = URLSafeTimedSerializer(self._key, salt="session",
                                                  signer_kwargs={"digest_method": hashlib.sha256})

    def _fingerprint(self, digest: str) -> str:
        return hmac.new(self._key, digest.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self, response: Response, principal: Principal) -> None:
        """Set the session cookie for a key that just authenticated."""
        rec = self.catalog.key(principal.key_id)
        assert rec is not None
        value = self._serializer.dumps({"kid": rec.key_id, "fp": self._fingerprint(rec.digest)})
        response.set_cookie(COOKIE, value, max_age=self.ttl_s, path="/", httponly=True, samesite="strict",
                            secure=self.secure)

    def principal(self, request: Request) -> Principal | None:
        """The session's principal, or None: no cookie, a bad signature, past its age, or a key since
        revoked, rotated or expired."""
        value = request.cookies.get(COOKIE)
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=self.ttl_s)
        except BadSignature:  # SignatureExpired is one too
            return None
        rec = self.catalog.key(str(data.get("kid", "")))
        if rec is None or not hmac.compare_digest(self._fingerprint(rec.digest), str(data.get("fp", ""))):
            return None
        if rec.expires_at and time.time() >= rec.expires_at:
            return None
        return rec.principal()

    @staticmethod
    def clear(response: Response) -> None:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
