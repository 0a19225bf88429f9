"""The one place errors become HTTP responses: the project's error tree (agents/errors.py),
request validation, HTTP errors and anything unexpected. Every error body is
{"error": <kind>, "detail": <what to fix>, "request_id": ...} (plus "run_id", "tier", "fields"
where they apply); never a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agents.errors import (CascadeError, ConfigError, InvalidInputError, ModelError, RunConflictError, StorageError,
                           UnknownTaskError, UserError)

log = logging.getLogger("service")

STATUS = [  # first match wins: subclasses before their bases
    (RunConflictError, 409), (UnknownTaskError, 404), (InvalidInputError, 422), (ConfigError, 503),
    (UserError, 422), (ModelError, 503), (StorageError, 503),
]


def error_body(request: Request, kind: str, detail: str, **extra) -> dict:
    return {"error": kind, "detail": detail, "request_id": getattr(request.state, "request_id", None),
            **{k: v for k, v in extra.items() if v is not None}}


def _failed_tier(request: Request, run_id: str | None) -> str | None:
    """The tier whose attempt failed, from the run the SDK recorded as failed."""
    if not run_id:
        return None
    try:
        run = request.app.state.service.cascade.audit.get_run(run_id)
    except Exception:  # noqa: BLE001  (the store may be what is down)
        return None
    failed = [a for a in (run or {}).get("attempts", []) if a.get("error")]
    return failed[-1]["tier_name"] if failed else None


async def cascade_error(request: Request, exc: CascadeError) -> JSONResponse:
    status = next((code for cls, code in STATUS if isinstance(exc, cls)), 500)
    tier = _failed_tier(request, exc.run_id) if isinstance(exc, ModelError) else None
    detail = f"tier {tier!r} failed: {exc.message}" if tier else exc.message
    return JSONResponse(error_body(request, type(exc).__name__, detail, run_id=exc.run_id, tier=tier),
                        status_code=status)


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    fields = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e.get("loc", ()))
        fields.append({"field": where, "problem": e.get("msg", "invalid")})
    detail = "; ".join(f"{f['field']}: {f['problem']}" for f in fields) or "invalid request"
    return JSONResponse(error_body(request, "invalid_request", detail, fields=fields), status_code=422)


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    kind = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 409: "conflict",
            413: "body_too_large", 429: "rate_limited"}.get(exc.status_code, "http_error")
    return JSONResponse(error_body(request, kind, str(exc.detail)), status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected %s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
    response = JSONResponse(error_body(request, "internal_error", "the server failed unexpectedly; the request id "
                                       "finds its log line"), status_code=500)
    response.headers["X-Request-ID"] = getattr(request.state, "request_id", "") or ""
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(CascadeError, cascade_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
