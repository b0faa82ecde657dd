"""Thin gRPC servicers: authenticate, convert, delegate to the Engine, convert back.

`admit` is the one admission sequence (undecodable body, API key, the request's bounds) for
unary calls and stream messages alike; `@rpc` is the one place errors become statuses: a
SimsearchError becomes its status with rich details; anything else is a bug, answered INTERNAL
and logged with its traceback at most once per interval per method and exception type.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import sys
import time

import grpc

from simsearch.protos import convert, filters as filter_proto
from simsearch.contract import filters
from simsearch.contract.errors import (Internal, InvalidArgument, NotFound, PermissionDenied, QuotaExceeded,
                                       ResourceExhausted, SimsearchError, Unauthenticated, excerpt)
from simsearch.protos.simsearch.v1 import (collections_pb2, collections_pb2_grpc, encoders_pb2, encoders_pb2_grpc,
                                           points_pb2, points_pb2_grpc)
from simsearch.protos.status import status_proto, to_status
from simsearch.router.auth import ROLES, RPC_PERMISSIONS, Principal, key_from_metadata, key_prefix, may
from simsearch.router import metrics
from simsearch.router.deadline import Deadline
from simsearch.router.guard import AUDITED, source_of
from simsearch.router.encoders import has_inputs
from simsearch.router.engine import Engine, off_loop_if_large
from simsearch.router.reindex import Migration, ReindexOptions, job_view
from simsearch.router.replies import SearchReply
from simsearch.router.throttle import LogThrottle
from simsearch.router.validate import SearchOptions, check_request
from simsearch.router.wire import undecodable_error
from simsearch.shard import CollectionSpec, IndexParams

log = logging.getLogger(__name__)




def _collection_named(request) -> str:
    """The collection (or alias) a request names, "" for none: its `collection`, or a collection RPC's `name`."""
    name = getattr(request, "collection", "")
    if not name and type(request).__name__ in _NAMED_BY_NAME:
        name = request.name
    return name if isinstance(name, str) else ""


_NAMED_BY_NAME = ("CreateCollectionRequest", "DropCollectionRequest", "DescribeCollectionRequest", "BuildIndexRequest",
                  "UpdateCollectionRequest")


def authorize(engine: Engine, principal: Principal, method: str, request) -> None:
    """PERMISSION_DENIED unless the key's role grants what `method` needs and, for a key limited to some
    collections, the request's collection (as named, or what its alias resolves to) is one of them."""
    need = RPC_PERMISSIONS[method]
    if not may(principal.role, need):
        allowed = [r for r in ROLES if may(r, need)]
        raise PermissionDenied(f"{method} needs a key with role {' or '.join(allowed)}; this key "
                               f"({key_prefix(principal.key_id)}) is {principal.role}")
    if principal.collections is not None:
        names = [_collection_named(request)]
        alias = getattr(request, "alias", "")
        if isinstance(alias, str) and alias and engine.catalog.alias_target(principal.tenant, alias) is not None:
            names.append(alias)  # an existing alias (switched or deleted): what it names now must be allowed too
        for name in names:
            if name and name not in principal.collections and \
                    engine.resolve(principal.tenant, name) not in principal.collections:
                raise PermissionDenied(f"this key ({key_prefix(principal.key_id)}) may use only the collections "
                                       f"{', '.join(sorted(principal.collections))}", field="collection")


def spec_of(req: collections_pb2.CreateCollectionRequest) -> CollectionSpec:
    """The validated CollectionSpec a CreateCollection asks for (its constructors check every value)."""
    fields = convert.spec_fields(req)
    return CollectionSpec(**{**fields, "index": IndexParams(**fields["index"])})


BUG_LOG_INTERVAL_S = 10.0
_bug_log = LogThrottle(BUG_LOG_INTERVAL_S)


def bug(name: str) -> Internal:
    """The INTERNAL answer to the exception being handled. Its traceback is logged at most once
    per BUG_LOG_INTERVAL_S for each method and exception type, with a count of the others: a
    bug that every request hits must not flood the log."""
    admitted = _bug_log.admit((name, type(sys.exc_info()[1])))
    if admitted is not None:
        n, since_s = admitted
        if n == 1:
            log.exception("bug in %s", name)
        else:
            log.exception("bug in %s (%d times in the last %.0f s; one traceback per %.0f s is logged)",
                          name, n, since_s, BUG_LOG_INTERVAL_S)
    return Internal(f"internal error in {name}; see the server log")


_TARGET_FIELDS = ("name", "collection", "alias", "field", "type", "tenant", "key_id", "role")


def _target(request) -> dict:
    """What an audited request acts on (names only: never a secret, never a payload)."""
    return {f: v for f in _TARGET_FIELDS if isinstance(v := getattr(request, f, None), str) and v}


def rpc(method):
    """Every unary method: an undecodable body is refused first, then the key is checked (a wrong one
    answered only after a delay, router/guard.py), then its role against the method, then the
    request's bounds (`check_request`: counts, lengths, k x queries), all before the body runs.
    The body gets the caller's tenant (or, with a `principal` parameter, the whole Principal); with
    a `checked` parameter, what the check derived. Admin actions are written to the audit log."""
    params = inspect.signature(method).parameters
    wants_checked = "checked" in params
    wants_principal = "principal" in params
    name = method.__name__
    audited = name in AUDITED

    @functools.wraps(method)
    async def wrapper(self, request, context: grpc.aio.ServicerContext):
        principal, outcome, source = None, "OK", source_of(context.peer())
        t0 = time.perf_counter()
        try:
            principal, checked = await admit(self.engine, request, context.invocation_metadata(), name, source)
            who = principal if wants_principal else principal.tenant
            if wants_checked:
                return await method(self, request, context, who, checked=checked)
            return await method(self, request, context, who)
        except SimsearchError as e:
            outcome = e.code
            _count_refusal(e, principal)
            await context.abort_with_status(to_status(e))
        except Exception:
            outcome = "INTERNAL"
            await context.abort_with_status(to_status(bug(method.__name__)))
        except asyncio.CancelledError:  # the caller went away (or its deadline passed)
            outcome = "CANCELLED"
            raise
        finally:
            metrics.rpc_done(name, outcome, t0)
            if audited and principal is not None and self.engine.audit is not None:
                await self.engine.audit.record(principal=principal, source=source, action=name,
                                               target=_target(request), outcome=outcome)

    return wrapper


def _count_refusal(e: SimsearchError, principal: Principal | None) -> None:
    if isinstance(e, QuotaExceeded) and principal is not None:
        metrics.QUOTA_REFUSALS.labels(principal.tenant, (e.quota or "").rsplit(" ", 1)[-1]).inc()
    elif isinstance(e, Unauthenticated):
        metrics.AUTH_FAILURES.labels("refused").inc()
    elif isinstance(e, ResourceExhausted) and principal is None and e.retry_after_s is not None:
        metrics.AUTH_FAILURES.labels("source-throttled").inc()


async def authenticate(engine: Engine, metadata, source: str) -> Principal:
    """The caller's principal. A source with its fill of wrong keys pending is refused at once; a wrong key
    is answered after the guard's delay (router/guard.py); a missing key at once."""
    engine.auth_guard.check(source)
    key = key_from_metadata(metadata)
    try:
        return engine.catalog.authenticate(key)
    except Unauthenticated:
        await engine.auth_guard.failed(source)
        raise


async def admit(engine: Engine, request, metadata, method: str, source: str) -> tuple[Principal, object]:
    """The one admission sequence of every request, unary or a stream's message: refuse an
    undecodable body, authenticate (a keyed digest and a dict probe, per message of a stream too, so
    a revocation takes effect at once), authorize the role, then check the request's bounds.
    Then the tenant's rate limit (router/quotas.py). Returns (principal, what the check derived)."""
    refused = undecodable_error(request)
    if refused is not None:
        raise refused
    principal = await authenticate(engine, metadata, source)
    authorize(engine, principal, method, request)
    engine.limits.admit(principal.tenant, engine.catalog.quotas(principal.tenant))
    return principal, check_request(request)


class CollectionsServicer(collections_pb2_grpc.CollectionsServicer):
    def __init__(self, engine: Engine):
        self.engine = engine

    @rpc
    async def CreateCollection(self, request, context, tenant, checked):
        bound = self.engine.encoders.bind(request)
        status = await self.engine.create_collection(tenant, spec_of(bound), checked)
        if bound.encoder:
            await self.engine.encoders.warm(bound.encoder)
        return convert.collection_status(status)

    @rpc
    async def DropCollection(self, request, context, tenant):
        await self.engine.drop_collection(tenant, request.name)
        return collections_pb2.DropCollectionResponse(dropped=True)

    @rpc
    async def ListCollections(self, request, context, principal):
        names = self.engine.list_collections(principal.tenant)
        if principal.collections is not None:  # a key limited to some collections sees only those
            names = [n for n in names if n in principal.collections]
        return collections_pb2.ListCollectionsResponse(names=names)

    @rpc
    async def DescribeCollection(self, request, context, tenant):
        return convert.collection_status(await self.engine.describe(tenant, request.name))

    @rpc
    async def BuildIndex(self, request, context, tenant):
        return convert.collection_status(await self.engine.build_index(tenant, request.name, request.wait))

    @rpc
    async def CreateAlias(self, request, context, tenant):
        await self.engine.create_alias(tenant, request.alias, request.collection)
        return collections_pb2.Alias(alias=request.alias, collection=request.collection)

    @rpc
    async def SwitchAlias(self, request, context, tenant):
        previous = await self.engine.switch_alias(tenant, request.alias, request.collection)
        return collections_pb2.SwitchAliasResponse(alias=request.alias, collection=request.collection,
                                                   previous=previous)

    @rpc
    async def DeleteAlias(self, request, context, tenant):
        collection = await self.engine.delete_alias(tenant, request.alias)
        return collections_pb2.DeleteAliasResponse(deleted=True, collection=collection)

    @rpc
    async def CreatePayloadIndex(self, request, context, tenant):
        timeout = context.time_remaining() if request.wait else None
        return convert.collection_status(await self.engine.create_payload_index(
            tenant, request.collection, request.field, request.type, request.wait, timeout))

    @rpc
    async def DropPayloadIndex(self, request, context, tenant):
        return convert.collection_status(await self.engine.drop_payload_index(tenant, request.collection,
                                                                              request.field))

    @rpc
    async def Reindex(self, request, context, tenant):
        job = await self.engine.start_reindex(tenant, request.collection, request.encoder, reindex_options(request))
        return convert.reindex_status(job_view(job))

    @rpc
    async def GetReindex(self, request, context, tenant):
        jobs = self.engine.reindex_jobs(tenant, request.collection)
        if not jobs:
            self.engine.spec(tenant, self.engine.resolve(tenant, request.collection))  # NOT_FOUND for no collection
            raise NotFound(f"collection {excerpt(request.collection)} has never been reindexed", field="collection")
        return convert.reindex_status(jobs[0])

    @rpc
    async def CancelReindex(self, request, context, tenant):
        return convert.reindex_status(job_view(await self.engine.cancel_reindex(tenant, request.collection)))

    @rpc
    async def UpdateCollection(self, request, context, tenant):
        changes = {f: getattr(request, f) for f in ("leaves_to_search", "oversample", "target_recall", "recall_slo")
                   if request.HasField(f)}
        return convert.collection_status(await self.engine.update_collection(tenant, request.name, changes))

    @rpc
    async def ResetDriftReference(self, request, context, tenant):
        return convert.collection_status(await self.engine.reset_drift_reference(tenant, request.collection,
                                                                                 request.kind))

    @rpc
    async def ListAliases(self, request, context, principal):
        allowed = principal.collections  # a key limited to some collections sees only the aliases of those
        return collections_pb2.ListAliasesResponse(aliases=[
            collections_pb2.Alias(alias=a, collection=c) for a, c in self.engine.list_aliases(principal.tenant)
            if allowed is None or c in allowed])


def reindex_options(request: collections_pb2.ReindexRequest) -> ReindexOptions:
    """A ReindexRequest's options, 0 / "" taking the defaults (checked by the engine before any work)."""
    flt = None
    if request.HasField("eval_filter"):
        flt = filters.to_dict(filter_proto.from_proto(request.eval_filter, "eval_filter"))
    d = ReindexOptions()
    return ReindexOptions(label_field=request.label_field, eval_filter=flt, eval_size=request.eval_size or d.eval_size,
                          k=request.k or d.k, min_gain=request.min_gain, min_overlap=request.min_overlap,
                          canary_fraction=request.canary_fraction,
                          canary_seconds=request.canary_seconds or d.canary_seconds,
                          max_latency_ratio=request.max_latency_ratio or d.max_latency_ratio,
                          batch=request.batch or d.batch, skip_gate=request.skip_gate)


def deadline_of(engine: Engine, context: grpc.aio.ServicerContext | None, timeout_ms: int = 0) -> Deadline:
    """The request's one deadline: the call's gRPC deadline, params.timeout_ms and the server default."""
    return Deadline.at_edge(context.time_remaining() if context is not None else None, timeout_ms,
                            engine.default_timeout_s)


class PointsServicer(points_pb2_grpc.PointsServicer):
    def __init__(self, engine: Engine):
        self.engine = engine

    @rpc
    async def Upsert(self, request, context, tenant, checked):
        name = self.engine.resolve(tenant, request.collection)  # once: an alias switched meanwhile changes nothing here
        vectors = await self.engine.encoders.vectors_for(
            self.engine.spec(tenant, name), lambda: convert.matrix_from_proto(request.vectors, "vectors"),
            request.inputs, request.encoder, "vectors", deadline_of(self.engine, context))
        inputs = None
        if has_inputs(request.inputs):  # embedded above: kept, so that another encoder version can re-embed them
            inputs = await off_loop_if_large(len(request.inputs.images.pixels) + len(request.inputs.texts) * 64,
                                             convert.encode_inputs, request.inputs)
        n, generation = await self.engine.upsert(tenant, name, checked.ids, vectors, checked.payloads, inputs)
        return points_pb2.UpsertResponse(upserted=n, generation=generation)

    @rpc
    async def Delete(self, request, context, tenant, checked):
        if checked.filter is not None:
            n, generation = await self.engine.delete_where(tenant, request.collection, checked.filter)
        else:
            n, generation = await self.engine.delete(tenant, request.collection, checked.ids)
        metrics.DELETED.labels(tenant).inc(n)
        return points_pb2.DeleteResponse(deleted=n, generation=generation)

    @rpc
    async def SetPayload(self, request, context, tenant, checked):
        n, generation = await self.engine.set_payload(tenant, request.collection, checked.ids, checked.patch,
                                                      checked.delete_keys, request.replace)
        return points_pb2.SetPayloadResponse(updated=n, generation=generation)

    @rpc
    async def Scroll(self, request, context, tenant, checked):
        ids, vectors, payloads, cursor = await self.engine.scroll(tenant, request.collection, request.limit,
                                                                  request.cursor, checked, request.with_vectors,
                                                                  request.with_payload)
        reply = points_pb2.ScrollResponse(ids=ids, payloads=payloads or [], next_cursor=cursor)
        if vectors is not None:
            reply.vectors.CopyFrom(convert.matrix_to_proto(vectors))
        return reply

    @rpc
    async def Count(self, request, context, tenant, checked):
        return points_pb2.CountResponse(count=await self.engine.count(tenant, request.collection, checked))

    @rpc
    async def Get(self, request, context, tenant, checked):
        ids, vectors, missing, payloads = await self.engine.get(tenant, request.collection, checked)
        reply = points_pb2.GetResponse(ids=ids, vectors=convert.matrix_to_proto(vectors), missing=missing,
                                       payloads=payloads if any(payloads) else [])
        if request.with_inputs:
            blobs = await self.engine.get_inputs(tenant, request.collection, ids)
            reply.inputs.CopyFrom(await off_loop_if_large(sum(len(b or b"") for b in blobs), convert.decode_inputs,
                                                          blobs))
            reply.without_inputs.extend(i for i, b in zip(ids, blobs) if b is None)
        return reply

    @rpc
    async def Feedback(self, request, context, tenant, checked):
        name = self.engine.resolve(tenant, request.collection)
        if has_inputs(request.inputs):  # kept as sent (compressed), after the encoder's own checks
            self.engine.encoders.check_inputs(self.engine.spec(tenant, name), request.inputs, "inputs")
            query = convert.encode_inputs(request.inputs)[0]
        else:
            query = convert.matrix_from_proto(request.query, "query")
        event = await self.engine.record_feedback(tenant, name, query, checked, request.chosen)
        return points_pb2.FeedbackResponse(event=event)

    @rpc
    async def ListFeedback(self, request, context, tenant, checked):
        events, next_after = await self.engine.list_feedback(tenant, request.collection, request.after, request.limit)
        return await off_loop_if_large(sum(len(e.query) for e in events), convert.feedback_page, events, next_after)

    @rpc
    async def Search(self, request, context, tenant, checked):
        return convert.search_response(await self._search(request, tenant, checked, context))

    async def SearchStream(self, request_iterator, context: grpc.aio.ServicerContext):
        """Answers each request in order on one call. A failed request gets its own error status
        and the stream goes on; the key is checked once up front (so a bad key fails the call
        itself) and its digest again per request (so revoking it takes effect at once). Each
        message's deadline is its own params.timeout_ms (a call deadline would cover the stream)."""
        metadata, source = context.invocation_metadata(), source_of(context.peer())
        try:
            t0 = time.perf_counter()
            authorize(self.engine, await authenticate(self.engine, metadata, source), "SearchStream", None)
        except SimsearchError as e:
            metrics.rpc_done("SearchStream", e.code, t0)
            await context.abort_with_status(to_status(e))
            return
        async for request in request_iterator:
            principal, code, t0 = None, "OK", time.perf_counter()
            try:
                principal, opts = await admit(self.engine, request, metadata, "SearchStream", source)
                found = await self._search(request, principal.tenant, opts, None)
                reply = points_pb2.SearchStreamResponse(result=convert.search_response(found))
            except Exception as e:
                error = e if isinstance(e, SimsearchError) else bug("SearchStream")
                _count_refusal(error, principal)
                code = error.code
                reply = points_pb2.SearchStreamResponse(error=status_proto(error))
            metrics.rpc_done("SearchStream", code, t0)
            yield reply

    async def _search(self, request, tenant: str, opts: SearchOptions,
                      context: grpc.aio.ServicerContext | None) -> SearchReply:
        deadline = deadline_of(self.engine, context, opts.timeout_ms)
        name = self.engine.resolve(tenant, request.collection)  # once: an alias switched meanwhile changes nothing here
        with self.engine.limits.search(tenant, self.engine.catalog.quotas(tenant)):  # embedding included
            mig = self.engine.migration_of(tenant, name) if has_inputs(request.inputs) else None
            if mig is not None:
                return await self._search_reindexing(mig, request, tenant, name, opts, deadline)
            queries = await self.engine.encoders.vectors_for(
                self.engine.spec(tenant, name), lambda: convert.matrix_from_proto(request.queries, "queries"),
                request.inputs, request.encoder, "queries", deadline)
            return await self.engine.search(tenant, name, queries, opts, deadline)

    async def _search_reindexing(self, mig: Migration, request, tenant: str, name: str, opts: SearchOptions,
                                 deadline: Deadline) -> SearchReply:
        """A raw-input search while the collection is being reindexed: its first inputs are kept for the gate's
        live-overlap figure; during the canary it may be served by the new generation, and either way its
        outcome is counted for the canary's verdict."""
        mig.recent.extend(convert.encode_inputs(request.inputs)[:4])
        canary = mig.route()
        stats = mig.canary
        t0 = time.perf_counter()
        try:
            if canary:
                queries = (await self.engine.encoders.embed(mig.encoder, request.inputs, "inputs", deadline))[1]
                reply = await self.engine.search(tenant, name, queries, opts, deadline, live=mig.target)
            else:
                queries = (await self.engine.encoders.embed(mig.live.spec.encoder, request.inputs, "inputs",
                                                            deadline))[1]
                reply = await self.engine.search(tenant, name, queries, opts, deadline, live=mig.live)
        except SimsearchError as e:
            if stats is not None and not isinstance(e, (InvalidArgument, NotFound, PermissionDenied)):
                stats.record("canary" if canary else "current", time.perf_counter() - t0, False)
            raise
        if stats is not None:
            stats.record("canary" if canary else "current", time.perf_counter() - t0, True)
        return reply


class EncodersServicer(encoders_pb2_grpc.EncodersServicer):
    def __init__(self, engine: Engine):
        self.engine = engine

    @rpc
    async def Embed(self, request, context, tenant):
        ref, vectors = await self.engine.encoders.embed(request.model, request.inputs, "inputs",
                                                        deadline_of(self.engine, context))
        return encoders_pb2.EmbedResponse(model=ref, vectors=convert.matrix_to_proto(vectors))

    @rpc
    async def ListModels(self, request, context, tenant):
        return self.engine.encoders.list_models()
