"""The dashboard's pages (Starlette + Jinja2 templates; charts drawn by Plotly in the browser from JSON the
page carries): the login form, collections and their state, live charts, the query page, the embedding map
and the distance histograms. Read-only: handlers call the Engine's read methods only (`data.py` holds the
larger reads)."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
from pathlib import Path
from urllib.parse import quote

import numpy as np
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from simsearch.contract.errors import ResourceExhausted, SimsearchError, Unauthenticated, invalid
from simsearch.protos.simsearch.v1 import common_pb2
from simsearch.router import metrics
from simsearch.router.auth import Principal
from simsearch.router.dashboard import analysis, data, images
from simsearch.router.dashboard.series import Sampler
from simsearch.router.dashboard.session import Sessions
from simsearch.router.engine import Engine
from simsearch.router.guard import source_of

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
HTTP_STATUS = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "FAILED_PRECONDITION": 409, "PERMISSION_DENIED": 403,
               "UNAUTHENTICATED": 401, "RESOURCE_EXHAUSTED": 429, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504}
MAX_K = 50
NEIGHBOURS = 10  # per point in the distance histograms
HISTOGRAM_QUERIES = 200
RANDOM_PAIRS = 2_000
SECURITY_HEADERS = {
    # scripts only from this server (page data travels as JSON blocks); Plotly sets inline styles
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "script-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def plotly_js() -> Path:
    """plotly.min.js as the `plotly` package ships it (the browser may have no internet)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        raise RuntimeError("the dashboard needs the plotly package: pip install 'simsearch[server]'")
    return Path(spec.origin).parent / "package_data" / "plotly.min.js"


def _local(target: str) -> str:
    """Where to go after logging in: a path on this server only."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def page(handler):
    """A page behind the session: no valid session redirects to the login form (a JSON endpoint answers
    401); a collection the key may not use is 404, like a missing one; platform errors become a page."""
    @functools.wraps(handler)
    async def wrapper(self: "Dashboard", request: Request) -> Response:
        principal = self.sessions.principal(request)
        if principal is None:
            if request.url.path.endswith(".json"):
                return JSONResponse({"error": "not logged in"}, status_code=401)
            response = RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
            if request.cookies:
                self.sessions.clear(response)
            return response
        try:
            name = request.path_params.get("name")
            if name is not None:
                data.check_visible(self.engine, principal, name)
            return await handler(self, request, principal)
        except SimsearchError as e:
            return self.render(request, "error.html", principal, {"error": e.message, "code": e.code},
                               status_code=HTTP_STATUS.get(e.code, 500))
    return wrapper


class Dashboard:
    def __init__(self, engine: Engine, sampler: Sampler, *, secure: bool):
        self.engine = engine
        self.sampler = sampler
        self.sessions = Sessions(engine.catalog, secure=secure)
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.plotly = plotly_js()

    def render(self, request: Request, template: str, principal: Principal | None, context: dict,
               status_code: int = 200) -> Response:
        names = data.visible(self.engine, principal) if principal is not None else []
        return self.templates.TemplateResponse(request, template, {"principal": principal, "collections": names,
                                                                   **context}, status_code=status_code)

    # ---- login ----

    async def login_form(self, request: Request) -> Response:
        return self.render(request, "login.html", None, {"next": _local(request.query_params.get("next", "/"))})

    async def login(self, request: Request) -> Response:
        """An API key in, a session cookie out. Wrong keys are answered after the gRPC edge's delay and counted
        against the client's address (router/guard.py), and in simsearch_auth_failures_total."""
        form = await request.form()
        target = _local(str(form.get("next") or "/"))
        client = request.client
        source = source_of(f"ipv6:[{client.host}]:{client.port}" if client and ":" in client.host else
                           f"ipv4:{client.host}:{client.port}" if client else None)

        def refused(message: str, status: int) -> Response:
            return self.render(request, "login.html", None, {"next": target, "error": message}, status_code=status)

        try:
            self.engine.auth_guard.check(source)
        except ResourceExhausted as e:
            metrics.AUTH_FAILURES.labels("source-throttled").inc()
            return refused(e.message, 429)
        key = str(form.get("api_key") or "").strip()
        if not key:
            return refused("enter an API key", 400)
        try:
            principal = self.engine.catalog.authenticate(key)
        except Unauthenticated as e:
            metrics.AUTH_FAILURES.labels("refused").inc()
            await self.engine.auth_guard.failed(source)
            return refused(e.message, 401)
        response = RedirectResponse(target, status_code=303)
        self.sessions.issue(response, principal)
        return response

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        self.sessions.clear(response)
        return response

    # ---- pages ----

    @page
    async def collections_page(self, request: Request, principal: Principal) -> Response:
        rows = await data.overview(self.engine, principal)
        names = set(data.visible(self.engine, principal))
        aliases = [(a, c) for a, c in self.engine.list_aliases(principal.tenant) if c in names]
        return self.render(request, "collections.html", principal, {"rows": rows, "aliases": aliases})

    @page
    async def collection_page(self, request: Request, principal: Principal) -> Response:
        name = request.path_params["name"]
        row = data.state(name, await self.engine.describe(principal.tenant, name))
        return self.render(request, "collection.html", principal, {"name": name, "row": row,
                                                                   "every_s": self.sampler.every_s})

    @page
    async def series(self, request: Request, principal: Principal) -> Response:
        return JSONResponse(self.sampler.charts(principal.tenant, request.path_params["name"]))

    def _query_kinds(self, tenant: str, name: str) -> tuple[str, tuple[int, ...]]:
        """The collection's raw-input kind ("text", "image" or "" without an encoder) and input shape."""
        spec = self.engine.spec(tenant, name)
        if not spec.encoder:
            return "", ()
        m = self.engine.encoders.manifest(spec.encoder, "encoder")
        return m["kind"], tuple(m["input_shape"])

    @page
    async def query_page(self, request: Request, principal: Principal) -> Response:
        name, tenant = request.path_params["name"], principal.tenant
        kind, shape = self._query_kinds(tenant, name)
        ids = (await self.engine.scroll(tenant, name, 200, "", None, False, False))[0]
        context = {"name": name, "kind": kind, "ids": ids, "k": NEIGHBOURS, "mode": "id", "query": None,
                   "results": None, "error": None}
        if request.method == "POST":
            form = await request.form()
            try:
                context.update(await self._answer(tenant, name, form, kind, shape))
            except SimsearchError as e:
                context.update(error=e.message, mode=str(form.get("mode") or "id"))
        return self.render(request, "query.html", principal, context,
                           status_code=400 if context["error"] else 200)

    async def _answer(self, tenant: str, name: str, form, kind: str, shape: tuple[int, ...]) -> dict:
        mode = str(form.get("mode") or "id")
        try:
            k = int(str(form.get("k") or NEIGHBOURS))
        except ValueError:
            raise invalid("k", f"must be an integer in [1, {MAX_K}]") from None
        if not 1 <= k <= MAX_K:
            raise invalid("k", f"must be in [1, {MAX_K}], got {k}")
        query: dict = {"mode": mode}
        if mode == "id":
            point = str(form.get("id") or "").strip()
            found, vectors, missing, payloads = await self.engine.get(tenant, name, [point])
            if not found:
                raise invalid("id", f"no point has id {point!r}")
            inputs = await data.kept_inputs(self.engine, tenant, name, found)
            query.update(id=point, payload=payloads[0], input=images.rendered(inputs)[0] if inputs else None)
        elif mode == "text" and kind == "text":
            text = str(form.get("text") or "").strip()
            if not text:
                raise invalid("text", "type a text to search for")
            inputs = common_pb2.RawInputs(texts=[text])
            vectors = await data.embed(self.engine, tenant, name, inputs)
            query.update(input={"text": text})
        elif mode == "image" and kind == "image":
            upload = form.get("image")
            if upload is None or isinstance(upload, str) or not upload.filename:
                raise invalid("image", "choose an image file to upload")
            inputs = images.from_upload(await upload.read(), shape)  # type: ignore[arg-type]
            vectors = await data.embed(self.engine, tenant, name, inputs)
            query.update(input=images.rendered(inputs)[0], filename=upload.filename)
        else:
            raise invalid("mode", f"this collection takes queries by id{' or ' + kind if kind else ''}")
        hits = await data.search(self.engine, tenant, name, vectors, k)
        inputs = await data.kept_inputs(self.engine, tenant, name, hits.ids)
        shown = images.rendered(inputs) if inputs is not None else [None] * len(hits.ids)
        results = [{"rank": i + 1, "id": h, "score": float(s), "payload": (hits.payloads or [""] * len(hits.ids))[i],
                    "input": shown[i]} for i, (h, s) in enumerate(zip(hits.ids, hits.scores))]
        return {"mode": mode, "k": k, "query": query, "results": results,
                "score_label": analysis.score_label(self.engine.spec(tenant, name).metric)}

    @page
    async def map_page(self, request: Request, principal: Principal) -> Response:
        name = request.path_params["name"]
        s = data.subsample(await data.scan(self.engine, principal.tenant, name, data.MAP_SCAN), data.MAP_SAMPLE)
        xy, share = await asyncio.to_thread(analysis.pca_2d, s.vectors)
        fields = analysis.payload_fields(s.payloads)
        field = request.query_params.get("field", fields[0] if fields else "")
        if field not in fields:
            field = ""
        colour = analysis.colouring(s.payloads, field) if field else None
        plot = {"x": xy[:, 0].round(5).tolist(), "y": xy[:, 1].round(5).tolist(), "ids": s.ids, "field": field,
                "colour": colour, "share": share}
        return self.render(request, "map.html", principal, {"name": name, "plot": plot, "fields": fields,
                                                            "field": field, "sampled": len(s.ids),
                                                            "scanned": s.scanned})

    @page
    async def distances_page(self, request: Request, principal: Principal) -> Response:
        """Exact neighbours in numpy over the points read, not the collection's search: these are not live
        queries, and must not enter the live-recall or query-drift samples."""
        name, tenant = request.path_params["name"], principal.tenant
        metric = self.engine.spec(tenant, name).metric
        s = await data.scan(self.engine, tenant, name, data.DISTANCE_SCAN)
        rng = np.random.default_rng(0)
        queries = np.sort(rng.choice(len(s.ids), min(HISTOGRAM_QUERIES, len(s.ids)), replace=False))
        neighbour = await asyncio.to_thread(analysis.neighbour_scores, s.vectors, queries, metric, NEIGHBOURS)
        rand = await asyncio.to_thread(analysis.random_pair_scores, s.vectors, metric, RANDOM_PAIRS)
        plot = {"neighbour": neighbour.round(6).tolist(), "random": rand.round(6).tolist(),
                "label": analysis.score_label(metric)}
        return self.render(request, "distances.html", principal, {
            "name": name, "plot": plot, "queries": len(queries), "k": NEIGHBOURS, "pairs": len(rand),
            "scanned": s.scanned,
            "neighbour_median": float(np.median(neighbour)) if len(neighbour) else None,
            "random_median": float(np.median(rand)) if len(rand) else None})

    async def plotly_asset(self, request: Request) -> Response:
        return FileResponse(self.plotly, media_type="text/javascript",
                            headers={"cache-control": "public, max-age=86400"})


def create_app(engine: Engine, sampler: Sampler, *, secure: bool = False) -> Starlette:
    d = Dashboard(engine, sampler, secure=secure)
    routes = [
        Route("/login", d.login_form, methods=["GET"]),
        Route("/login", d.login, methods=["POST"]),
        Route("/logout", d.logout, methods=["POST"]),
        Route("/", d.collections_page),
        Route("/collections/{name}", d.collection_page),
        Route("/collections/{name}/series.json", d.series),
        Route("/collections/{name}/query", d.query_page, methods=["GET", "POST"]),
        Route("/collections/{name}/map", d.map_page),
        Route("/collections/{name}/distances", d.distances_page),
        Route("/assets/plotly.min.js", d.plotly_asset),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])


class SecurityHeaders:
    """SECURITY_HEADERS on every response that does not set its own (pure ASGI middleware)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for k, v in SECURITY_HEADERS.items():
                    if k not in headers:
                        headers[k] = v
            await send(message)

        await self.app(scope, receive, send_with_headers)
