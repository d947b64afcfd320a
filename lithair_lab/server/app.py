"""The HTTP API over a ModelStore: a Starlette app.

Routes (``{model}`` is a route such as ``products`` or a model name):

====================================  ==============================================
``GET  /health``                      liveness, event count, integrity notes
``GET  /metrics``                     the seed's monitoring figures (JSON, or
                                      ``?format=prometheus`` for a scraper)
``GET  /api``                         the models: routes, keys, indexed fields
``GET  /api/{model}``                 list; ``?field=value`` on indexed fields,
                                      ``limit`` (default 100), ``offset``
``POST /api/{model}``                 create (201, ``Location``)
``GET  /api/{model}/{id}``            one entity
``PUT  /api/{model}/{id}``            upsert: create if absent (201), else update
                                      the given fields (200)
``PATCH /api/{model}/{id}``           update the given fields of an existing entity
``DELETE /api/{model}/{id}``          protected delete; ``?force=true`` cascades /
                                      sets null per relation
====================================  ==============================================

Errors are JSON ``{"error": kind, "message": text, "details": {...}}``:
malformed JSON 400, unknown model or id 404, unique / foreign-key / protected
conflicts 409, type and validation errors 422, a body over ``max_body_bytes``
413. A refused request writes nothing. An ``Idempotency-Key`` header becomes
the write's ``event_id``: a retry with the same key is refused with 409
(``duplicate``) instead of writing twice.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from ..engine.compaction import AutoCompaction
from ..engine.models import ModelStore
from ..engine.models.model import Model, json_type_of
from ..errors import ConstraintError, InvalidEventError, LithairLabError, NotFoundError, ValidationError
from .metrics import Monitor, prometheus_text

log = logging.getLogger("lithair_lab.server")

DEFAULT_MAX_BODY = 1 << 20
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MAX_IDEMPOTENCY_KEY = 256


class RequestError(Exception):
    """A request the API cannot take as sent (bad JSON, too large, bad header).

    HTTP-only, never raised out of the app: it becomes the response at once.
    """

    def __init__(self, status: int, kind: str, message: str) -> None:
        self.status = status
        self.kind = kind
        super().__init__(message)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(exc: BaseException) -> JSONResponse:
    """The one mapping from exceptions to HTTP errors."""
    status, kind = 500, "internal"
    details: dict[str, Any] = {}
    if isinstance(exc, RequestError):
        status, kind = exc.status, exc.kind
    elif isinstance(exc, NotFoundError):
        status, kind = 404, "not_found"
    elif isinstance(exc, ValidationError):
        status, kind = 422, "validation"
        details = {k: v for k, v in (("model", exc.model), ("field", exc.field)) if v is not None}
    elif isinstance(exc, InvalidEventError):  # e.g. a payload over the store's size limit
        status, kind = 422, "invalid_event"
    elif isinstance(exc, ConstraintError):
        status, kind, details = 409, exc.kind or "constraint", dict(exc.details)
    elif isinstance(exc, HTTPException):
        status = exc.status_code
        kind = {404: "not_found", 405: "method_not_allowed"}.get(status, "http")
    message = str(exc) if not isinstance(exc, HTTPException) else str(exc.detail)
    if status == 500:
        log.exception("internal error", exc_info=exc)
        message = f"internal error: {type(exc).__name__}: {exc}"
    body: dict[str, Any] = {"error": kind, "message": message}
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=status)


async def read_json(request: Request, limit: int) -> Any:
    """The request body as JSON, refusing bodies over ``limit`` bytes before reading them all."""
    declared = request.headers.get("content-length")
    too_big = f"request body is larger than {limit} bytes\n\nSend a smaller object, or start the server with a larger `max_body_bytes`."
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, "too_large", too_big)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise RequestError(413, "too_large", too_big)
    except ClientDisconnect:
        raise RequestError(400, "client_disconnected", "the client went away before sending the whole body") from None
    if not body.strip():
        raise RequestError(400, "malformed_json", "request body is empty\n\nSend a JSON object.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise RequestError(400, "malformed_json", f"request body is not valid JSON: {e}") from None


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        msg = f"`Idempotency-Key` must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters"
        raise RequestError(400, "bad_header", msg)
    return key


def _int_param(request: Request, name: str, default: int, maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or (maximum is not None and int(raw) > maximum):
        bound = f" up to {maximum}" if maximum is not None else ""
        msg = f"`{name}` must be a non-negative integer{bound}, got `{raw}`"
        raise ValidationError(msg, field=name)
    return int(raw)


def filter_values(m: Model, name: str, raws: list[str]) -> list[Any]:
    """Query-string values of field ``name`` as the JSON values they may stand for."""
    f = m.by_name.get(name)
    t = f.type if f is not None else None
    out: list[Any] = []
    for raw in raws:
        if t == "string":
            out.append(raw)
            continue
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = raw
        if t is None:
            out += [raw] if parsed == raw or isinstance(parsed, (dict, list)) else [raw, parsed]
        elif t == "boolean" and isinstance(parsed, bool) or t == "integer" and isinstance(parsed, int) and not isinstance(parsed, bool):
            out.append(parsed)
        elif t == "number" and isinstance(parsed, (int, float)) and not isinstance(parsed, bool):
            out.append(parsed)
        else:
            msg = f"`{m.name}.{name}` is {t}; `{raw}` is not"
            raise ValidationError(msg, model=m.name, field=name)
    return out


Handler = Callable[[Request], Awaitable[Response]]


def create_app(db: ModelStore, *, max_body_bytes: int = DEFAULT_MAX_BODY, compaction: AutoCompaction | None = None) -> Starlette:
    """The Starlette app serving every model of ``db``.

    Parameters
    ----------
    db
        The models to serve (see :func:`lithair_lab.open_models`).
    max_body_bytes
        Larger request bodies get 413 without being read in full.
    compaction
        The store's background compaction (``Store.auto_compact``), reported
        by ``/metrics``.

    Returns
    -------
    starlette.applications.Starlette
        Serve it with any ASGI server; :func:`lithair_lab.serve` uses uvicorn.
    """
    stats: Counter[int] = Counter()
    started = time.time()
    monitor = Monitor(db, compaction)

    def endpoint(fn: Callable[[Request], Awaitable[Response]]) -> Handler:
        async def wrapped(request: Request) -> Response:
            try:
                response = await fn(request)
            except (LithairLabError, HTTPException, RequestError) as e:
                response = error_response(e)
            stats[response.status_code] += 1
            return response

        return wrapped

    def blocking(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
        # Writes may wait for the disk and reads take the write lock: keep both off the event loop.
        return run_in_threadpool(fn, *args, **kwargs)

    async def health(request: Request) -> Response:
        body = {"status": "ok", "models": sorted(db.models), "events": db.store.event_count, "violations": db.violations}
        return JSONResponse(body)

    async def metrics(request: Request) -> Response:
        figures = await blocking(monitor.collect)
        figures["http"] = {"uptime_seconds": time.time() - started, "responses": {str(k): v for k, v in sorted(stats.items())}}
        fmt = request.query_params.get("format", "json")
        if fmt == "prometheus":
            return Response(prometheus_text(figures), media_type="text/plain; version=0.0.4")
        if fmt != "json":
            raise ValidationError(f"`format` must be `json` or `prometheus`, got `{fmt}`", field="format")
        return JSONResponse(figures)

    async def api_index(request: Request) -> Response:
        models = [
            {"model": m.name, "route": f"/api/{m.route}", "primary_key": m.primary_key, "filters": db.indexed_fields(m.name)}
            for m in db.models.values()
        ]
        return JSONResponse({"models": models})

    async def list_or_create(request: Request) -> Response:
        m = db.model(request.path_params["model"])
        if request.method == "POST":
            body = await read_json(request, max_body_bytes)
            created = await blocking(db.create, m.name, _object(m, body), event_id=_idempotency_key(request))
            key = m.key_of(created[m.primary_key])
            return JSONResponse(created, status_code=201, headers={"location": f"/api/{m.route}/{key}"})
        limit = _int_param(request, "limit", DEFAULT_LIMIT, MAX_LIMIT)
        offset = _int_param(request, "offset", 0)
        where: dict[str, list[Any]] = {}
        for name in request.query_params:
            if name not in ("limit", "offset") and name not in where:
                where[name] = filter_values(m, name, request.query_params.getlist(name))
        page = await blocking(db.find, m.name, limit=limit, offset=offset, **where)
        return JSONResponse({"items": page.items, "total": page.total, "limit": limit, "offset": offset})

    async def one(request: Request) -> Response:
        m = db.model(request.path_params["model"])
        key = request.path_params["id"]
        if request.method == "GET":
            return JSONResponse(await blocking(db.get, m.name, key))
        if request.method == "DELETE":
            force = request.query_params.get("force", "false").lower()
            if force not in ("true", "false", "1", "0"):
                raise ValidationError(f"`force` must be `true` or `false`, got `{force}`", field="force")
            result = await blocking(db.delete, m.name, key, force=force in ("true", "1"), event_id=_idempotency_key(request))
            return JSONResponse({"deleted": [list(d) for d in result.deleted], "nulled": [list(n) for n in result.nulled]})
        body = _object(m, await read_json(request, max_body_bytes))
        eid = _idempotency_key(request)
        if request.method == "PUT":
            obj, created = await blocking(db.put, m.name, key, body, event_id=eid)
            return JSONResponse(obj, status_code=201 if created else 200)
        return JSONResponse(await blocking(db.update, m.name, key, body, event_id=eid))

    async def not_found(request: Request, exc: Exception) -> Response:
        stats[404 if not isinstance(exc, HTTPException) else exc.status_code] += 1
        return error_response(exc)

    async def internal(request: Request, exc: Exception) -> Response:
        stats[500] += 1
        return error_response(exc)

    routes = [
        Route("/health", endpoint(health), methods=["GET"]),
        Route("/metrics", endpoint(metrics), methods=["GET"]),
        Route("/api", endpoint(api_index), methods=["GET"]),
        Route("/api/{model}", endpoint(list_or_create), methods=["GET", "POST"]),
        Route("/api/{model}/{id:path}", endpoint(one), methods=["GET", "PUT", "PATCH", "DELETE"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: not_found, Exception: internal})


def _object(m: Model, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        msg = f"a `{m.name}` must be a JSON object, got {json_type_of(body)}\n\nSend `{{\"field\": value, ...}}`."
        raise ValidationError(msg, model=m.name)
    return body
