"""The router's side of server-side embedding: bind collections to registered encoders,
check raw inputs against the encoder's manifest, embed them on replica actors, and refuse
vectors that another encoder version produced."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simsearch.encoder import manifests as registry
from simsearch.encoder.inputs import check_images, check_texts
from simsearch.contract.errors import FailedPrecondition, NotFound, invalid
from simsearch.protos.convert import decode_inputs
from simsearch.protos.simsearch.v1 import collections_pb2, common_pb2, encoders_pb2
from simsearch.router import metrics
from simsearch.router.deadline import Deadline
from simsearch.shard import CollectionSpec

if TYPE_CHECKING:
    from simsearch.cluster.encoder_actor import EncoderReplicas

ReplicaFactory = Callable[[str, Path], "EncoderReplicas"]


def _replicas(ref: str, root: Path, replicas: int) -> "EncoderReplicas":
    """Encoder replicas run torch: imported here, on first use, so a server installed without the
    training extra serves plain-vector collections and says what to install when asked to embed."""
    try:
        from simsearch.cluster.encoder_actor import EncoderReplicas
    except ImportError as e:
        raise FailedPrecondition(f"serving encoders needs PyTorch ({e.name} is not installed): "
                                 "pip install 'simsearch[train]'", field="encoder") from None
    return EncoderReplicas.create(ref, root, replicas=replicas)


def has_inputs(inputs: common_pb2.RawInputs) -> bool:
    return bool(len(inputs.texts) or inputs.images.count or inputs.images.pixels)


class EncoderHub:
    def __init__(self, models_dir: Path, *, replicas: int = 1,
                 factory: ReplicaFactory | None = None) -> None:
        self.models_dir = models_dir
        # how many embedding calls a bulk job (a reindex's backfill) keeps in flight: one per replica, at least 2
        self.parallelism = max(2, replicas)
        self._factory = factory or (lambda ref, root: _replicas(ref, root, replicas))
        self._pools: dict[str, "EncoderReplicas"] = {}
        self._starting: dict[str, asyncio.Future] = {}
        self._manifests: dict[str, dict[str, Any]] = {}  # name@version -> manifest (versions never change)

    def manifest(self, ref: str, field: str) -> dict[str, Any]:
        """Read once per published version: every search on a bound collection asks for it."""
        if ref in self._manifests:
            return self._manifests[ref]
        try:
            m = registry.manifest(ref, self.models_dir)
        except ValueError as e:
            raise invalid(field, str(e)) from None
        except LookupError as e:
            raise NotFound(f"{field}: {e}", field=field) from None
        if registry.parse_ref(ref)[1] is not None:  # "name" alone must keep resolving to the latest
            self._manifests[ref] = m
        return m

    def bind(self, req: collections_pb2.CreateCollectionRequest) -> collections_pb2.CreateCollectionRequest:
        """Resolve `encoder` to name@version and fill dim/metric from its manifest."""
        if not req.encoder:
            return req
        m = self.manifest(req.encoder, "encoder")
        if req.dim not in (0, m["embedding_dim"]):
            raise invalid("dim", f"must be 0 or {m['embedding_dim']} (the embedding_dim of {m['ref']}), got {req.dim}")
        bound = collections_pb2.CreateCollectionRequest()
        bound.CopyFrom(req)
        bound.encoder, bound.dim = m["ref"], m["embedding_dim"]
        return bound

    async def warm(self, ref: str) -> None:
        """Start the replicas now (actor start-up imports torch: seconds) rather than on first use."""
        await self._pool(ref)

    async def _pool(self, ref: str) -> "EncoderReplicas":
        """The replicas of `ref`, created once, on first use, in a worker thread: creating them may
        start Ray (seconds), which must not stall the event loop. The creation is shielded: a
        request whose deadline passes meanwhile stops waiting, and the replicas are still kept
        (not started again, nor left running unowned)."""
        if ref not in self._pools:
            task = self._starting.get(ref)
            if task is None:
                task = asyncio.ensure_future(asyncio.to_thread(self._factory, ref, self.models_dir))
                self._starting[ref] = task
                task.add_done_callback(lambda t: self._started(ref, t))
            await asyncio.shield(task)
        return self._pools[ref]

    def _started(self, ref: str, task: asyncio.Future) -> None:
        self._starting.pop(ref, None)
        if not task.cancelled() and task.exception() is None:
            self._pools[ref] = task.result()

    async def embed(self, ref: str, inputs: common_pb2.RawInputs, field: str = "inputs",
                    deadline: Deadline | None = None) -> tuple[str, np.ndarray]:
        if deadline is not None:
            return await deadline.run("embedding", self._embed(ref, inputs, field))
        return await self._embed(ref, inputs, field)

    def _checked(self, m: dict[str, Any], inputs: common_pb2.RawInputs, field: str) -> tuple[str, Any]:
        """The encoder's own checks of raw inputs (kind, image shape, empty texts): ("texts", list) or
        ("images", uint8 array)."""
        texts, images = len(inputs.texts), inputs.images.count or len(inputs.images.pixels)
        if bool(texts) == bool(images):
            raise invalid(field, "set exactly one of texts or images")
        if texts:
            return "texts", check_texts(list(inputs.texts), m["kind"], f"{field}.texts")
        im = inputs.images
        return "images", check_images(im.count, (im.channels, im.height, im.width), im.pixels, m["kind"],
                                      tuple(m["input_shape"]), f"{field}.images")

    def check_inputs(self, spec: CollectionSpec, inputs: common_pb2.RawInputs, field: str) -> None:
        """Raw inputs a collection's encoder would take, checked without embedding them."""
        if not spec.encoder:
            raise FailedPrecondition(f"collection {spec.name!r} is not bound to an encoder: send the {field} as a "
                                     f"vector", field=field)
        self._checked(self.manifest(spec.encoder, "encoder"), inputs, field)

    async def _embed(self, ref: str, inputs: common_pb2.RawInputs, field: str) -> tuple[str, np.ndarray]:
        m = self.manifest(ref, "model" if field == "inputs" else "encoder")
        kind, checked = self._checked(m, inputs, field)
        pool = await self._pool(m["ref"])
        t0 = time.perf_counter()
        vectors = await (pool.embed_texts(checked) if kind == "texts" else pool.embed_images(checked))
        metrics.embed_seconds(m["ref"]).observe(time.perf_counter() - t0)
        return m["ref"], np.ascontiguousarray(vectors, np.float32)

    async def embed_kept(self, ref: str, blobs: list[bytes]) -> np.ndarray:
        """Kept raw inputs (protos/convert.py encode_inputs: one kind and shape), embedded by `ref`."""
        inputs = decode_inputs(blobs) if len(blobs) <= 64 else await asyncio.to_thread(decode_inputs, blobs)
        return (await self._embed(ref, inputs, "inputs"))[1]

    async def vectors_for(self, spec: CollectionSpec, vectors: Callable[[], np.ndarray],
                          inputs: common_pb2.RawInputs, claim: str, field: str,
                          deadline: Deadline | None = None) -> np.ndarray:
        """The request's vectors: embedded from raw inputs, or as sent after checking `claim`
        (the encoder version the client says produced them) against the collection's."""
        if has_inputs(inputs):
            if not spec.encoder:
                raise FailedPrecondition(f"collection {spec.name!r} is not bound to an encoder: send {field} "
                                         f"as vectors, or create it with an encoder", field="inputs")
            return (await self.embed(spec.encoder, inputs, "inputs", deadline))[1]
        if claim and claim != spec.encoder:
            bound = spec.encoder or "no encoder"
            raise FailedPrecondition(f"{field} were embedded by {claim} but collection {spec.name!r} is bound to "
                                     f"{bound}; re-embed with {bound}" if spec.encoder else
                                     f"{field} were embedded by {claim} but collection {spec.name!r} has no encoder",
                                     field="encoder")
        return vectors()

    def list_models(self) -> encoders_pb2.ListModelsResponse:
        out = encoders_pb2.ListModelsResponse()
        for m in registry.list_models(self.models_dir):
            metrics = {k: float(v) for k, v in m["metrics"].items() if isinstance(v, (int, float))}
            out.models.add(ref=m["ref"], kind=m["kind"], embedding_dim=m["embedding_dim"],
                           input_shape=m["input_shape"], created=m["created"], metrics=metrics,
                           data_fingerprint=m["data_fingerprint"])
        return out

    def close(self) -> None:
        for pool in self._pools.values():
            pool.kill()
        self._pools.clear()
