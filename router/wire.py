"""Request bodies off the wire: a deserializer that never raises.

grpc answers UNKNOWN, and logs a traceback, when a request deserializer raises; a truncated
or garbage body would do that on every call. Here a body that does not parse becomes an
`Undecodable` sentinel instead, which the servicers refuse as INVALID_ARGUMENT before
authenticating or reading anything (`undecodable_error`). Refusals are logged as one
WARNING per interval with a count, never a traceback each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from google.protobuf.message import Message

from simsearch.contract.errors import InvalidArgument, SimsearchError, invalid
from simsearch.router.throttle import LogThrottle

log = logging.getLogger(__name__)
DECODE_LOG_INTERVAL_S = 10.0
_decode_log = LogThrottle(DECODE_LOG_INTERVAL_S)


class Undecodable:
    """Stands in for a request whose body did not parse.

    Reading any field of it raises the INVALID_ARGUMENT it stands for, so a code path that
    forgets to call `undecodable_error` first still answers correctly (never INTERNAL).
    """

    __slots__ = ("method", "message_type", "nbytes", "reason")

    def __init__(self, method: str, message_type: str, nbytes: int, reason: str):
        self.method = method  # "Points/Upsert"
        self.message_type = message_type  # "UpsertRequest"
        self.nbytes = nbytes
        self.reason = reason

    def error(self) -> InvalidArgument:
        return invalid("request body", f"could not be decoded as {self.message_type} ({self.nbytes:,} bytes)")

    def __getattr__(self, name: str):
        raise self.error()

    def __repr__(self) -> str:
        return f"Undecodable({self.method}, {self.nbytes} bytes: {self.reason})"


def undecodable_error(request: object) -> SimsearchError | None:
    """The error to answer for `request` if its body did not decode, else None (one isinstance
    check: cheap enough for every message of a stream)."""
    return request.error() if isinstance(request, Undecodable) else None


def request_deserializer(method: str, cls: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    """`cls.FromString`, except that a body that does not parse comes back as an Undecodable."""
    name = cls.DESCRIPTOR.name

    def decode(body: bytes) -> Message | Undecodable:
        try:
            return cls.FromString(body)
        except Exception as e:  # DecodeError, and whatever else a parser may raise on hostile bytes
            refused = Undecodable(method, name, len(body), f"{type(e).__name__}: {e}"[:200])
            _note_refusal(refused)
            return refused

    return decode


def _note_refusal(refused: Undecodable) -> None:
    admitted = _decode_log.admit("undecodable")
    if admitted is None:
        return
    n, since_s = admitted
    if n == 1:
        log.warning("refused an undecodable request (%s, %d bytes: %s); further ones are counted and "
                    "reported at most every %.0f s", refused.method, refused.nbytes, refused.reason,
                    DECODE_LOG_INTERVAL_S)
    else:
        log.warning("refused %d undecodable requests in the last %.0f s (last: %s, %d bytes: %s)",
                    n, since_s, refused.method, refused.nbytes, refused.reason)
