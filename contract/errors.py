"""The platform's one error hierarchy; each error knows the name of its status code.

Codes are plain strings (gRPC's names), so this module imports nothing: shards and encoders
raise these without loading gRPC. Servicers convert them to a status once, at the edge
(`simsearch.protos.status`); the SDK converts
a status back into the same classes, so callers catch `simsearch.InvalidArgument` whether
the check ran in the client or in a shard three processes away.
"""

from __future__ import annotations


class SimsearchError(Exception):
    """Base class; `code` is the gRPC status this error travels as."""

    code: str = "UNKNOWN"

    def __init__(self, message: str, *, field: str | None = None, retry_after_s: float | None = None,
                 quota: str | None = None, info: dict[str, str] | None = None):
        """quota: the limit that refused the request ("tenant 'acme' max_qps"), sent as a QuotaFailure.
        info: machine-readable detail, {"reason": ..., key: value}, sent as a google.rpc.ErrorInfo (e.g. a
        partial write: {"reason": "PARTIAL_WRITE", "applied_shards": "0,2", "failed_shards": "1"})."""
        super().__init__(message)
        self.message = message
        self.field = field
        self.retry_after_s = retry_after_s
        self.quota = quota
        self.info = dict(info or {})

    def __reduce__(self):  # survive pickling across Ray process boundaries with kwargs intact
        return (_rebuild, (type(self), self.message, self.field, self.retry_after_s, self.quota, self.info))


def _rebuild(cls: type[SimsearchError], message: str, field: str | None, retry: float | None,
             quota: str | None = None, info: dict[str, str] | None = None) -> SimsearchError:
    return cls(message, field=field, retry_after_s=retry, quota=quota, info=info)


class InvalidArgument(SimsearchError):
    code = "INVALID_ARGUMENT"


class NotFound(SimsearchError):
    code = "NOT_FOUND"


class AlreadyExists(SimsearchError):
    code = "ALREADY_EXISTS"


class Unauthenticated(SimsearchError):
    code = "UNAUTHENTICATED"


class PermissionDenied(SimsearchError):
    code = "PERMISSION_DENIED"


class ResourceExhausted(SimsearchError):
    code = "RESOURCE_EXHAUSTED"


class QuotaExceeded(ResourceExhausted):
    """A tenant's quota or rate limit refused the request before any work (`quota` names it). With
    `retry_after_s` (a rate or concurrency limit) the same request may succeed later; without it (a
    collection or point quota) not until something is freed or the quota raised."""


class FailedPrecondition(SimsearchError):
    code = "FAILED_PRECONDITION"


class Unavailable(SimsearchError):
    code = "UNAVAILABLE"


class DeadlineExceeded(SimsearchError):
    code = "DEADLINE_EXCEEDED"


class Internal(SimsearchError):
    code = "INTERNAL"


BY_CODE: dict[str, type[SimsearchError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument, NotFound, AlreadyExists, Unauthenticated, PermissionDenied,
        ResourceExhausted, FailedPrecondition, Unavailable, DeadlineExceeded, Internal,
    )
}


def excerpt(value: object, limit: int = 48) -> str:
    """repr() of a client's value, cut to `limit` characters: errors never echo a whole input back."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(str(value)):,} characters)"


def invalid(field: str, message: str) -> InvalidArgument:
    """An InvalidArgument whose message starts with the field it is about."""
    return InvalidArgument(f"{field}: {message}", field=field)
