"""The platform's one error hierarchy; each error knows its gRPC status code.

Servicers convert these to a status once, at the edge (see `status.py`); the SDK converts
a status back into the same classes, so callers catch `simsearch.InvalidArgument` whether
the check ran in the client or in a shard three processes away.
"""

from __future__ import annotations

import grpc


class SimsearchError(Exception):
    """Base class; `code` is the gRPC status this error travels as."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, field: str | None = None, retry_after_s: float | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.retry_after_s = retry_after_s

    def __reduce__(self):  # survive pickling across Ray process boundaries with kwargs intact
        return (_rebuild, (type(self), self.message, self.field, self.retry_after_s))


def _rebuild(cls: type[SimsearchError], message: str, field: str | None, retry: float | None) -> SimsearchError:
    return cls(message, field=field, retry_after_s=retry)


class InvalidArgument(SimsearchError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(SimsearchError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(SimsearchError):
    code = grpc.StatusCode.ALREADY_EXISTS


class Unauthenticated(SimsearchError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(SimsearchError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(SimsearchError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(SimsearchError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(SimsearchError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(SimsearchError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Internal(SimsearchError):
    code = grpc.StatusCode.INTERNAL


BY_CODE: dict[grpc.StatusCode, type[SimsearchError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument, NotFound, AlreadyExists, Unauthenticated, PermissionDenied,
        ResourceExhausted, FailedPrecondition, Unavailable, DeadlineExceeded, Internal,
    )
}


def invalid(field: str, message: str) -> InvalidArgument:
    """An InvalidArgument whose message starts with the field it is about."""
    return InvalidArgument(f"{field}: {message}", field=field)
