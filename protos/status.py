"""Error <-> gRPC status, with rich details (BadRequest field violations, QuotaFailure, ErrorInfo, RetryInfo).

The server calls `to_status`; the SDK calls `from_rpc_error`. Both sides share this
module so the mapping cannot drift.
"""

from __future__ import annotations

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from simsearch.contract.errors import BY_CODE, QuotaExceeded, ResourceExhausted, SimsearchError

_CODES = {c.value[0]: c for c in grpc.StatusCode}


def grpc_code(err: SimsearchError) -> grpc.StatusCode:
    """The gRPC status code an error travels as (the contract names codes as plain strings)."""
    return grpc.StatusCode[err.code]


def error_from_status_proto(proto: status_pb2.Status) -> SimsearchError:
    """The SimsearchError a google.rpc.Status stands for (a stream's per-request error)."""
    return error_from_status(_CODES.get(proto.code, grpc.StatusCode.UNKNOWN), proto.message, proto)


def to_status(err: SimsearchError) -> grpc.Status:
    return rpc_status.to_status(status_proto(err))


def status_proto(err: SimsearchError) -> status_pb2.Status:
    """The google.rpc.Status of an error: what a unary call's trailer and a stream's reply carry."""
    details = []
    if err.field:
        violation = error_details_pb2.BadRequest.FieldViolation(field=err.field, description=err.message)
        details.append(error_details_pb2.BadRequest(field_violations=[violation]))
    if err.quota:
        violation = error_details_pb2.QuotaFailure.Violation(subject=err.quota, description=err.message)
        details.append(error_details_pb2.QuotaFailure(violations=[violation]))
    if err.info:
        details.append(error_details_pb2.ErrorInfo(reason=err.info.get("reason", ""), domain="simsearch",
                                                   metadata={k: v for k, v in err.info.items() if k != "reason"}))
    if err.retry_after_s is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(err.retry_after_s * 1e9))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    proto = status_pb2.Status(code=getattr(code_pb2, err.code), message=err.message)
    for d in details:
        proto.details.add().Pack(d)
    return proto


def from_rpc_error(e: grpc.RpcError) -> SimsearchError:
    """Turn a failed call into the matching SimsearchError subclass (details included)."""
    try:
        proto = rpc_status.from_call(e)
    except (ValueError, AttributeError):  # aio errors and mismatched trailers carry no rich status
        proto = None
    return error_from_status(e.code(), e.details(), proto)


def error_from_status(code: grpc.StatusCode, message: str | None, proto: status_pb2.Status | None) -> SimsearchError:
    """The SimsearchError for a status code, its message and (when there is one) its rich status."""
    message = message or code.name
    field = None
    retry = None
    quota = None
    info: dict[str, str] = {}
    if proto is not None:
        for any_msg in proto.details:
            if any_msg.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                br = error_details_pb2.BadRequest()
                any_msg.Unpack(br)
                if br.field_violations:
                    field = br.field_violations[0].field
            elif any_msg.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
                qf = error_details_pb2.QuotaFailure()
                any_msg.Unpack(qf)
                if qf.violations:
                    quota = qf.violations[0].subject
            elif any_msg.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                ei = error_details_pb2.ErrorInfo()
                any_msg.Unpack(ei)
                info = {"reason": ei.reason, **ei.metadata}
            elif any_msg.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                ri = error_details_pb2.RetryInfo()
                any_msg.Unpack(ri)
                retry = ri.retry_delay.ToNanoseconds() / 1e9
    cls = BY_CODE.get(code.name, SimsearchError)
    if quota is not None and cls is ResourceExhausted:
        cls = QuotaExceeded
    err = cls(message, field=field, retry_after_s=retry, quota=quota, info=info)
    if cls is SimsearchError:
        err.code = code.name
    return err
