"""Send a POST's response once: with an Idempotency-Key, a retry gets the first response back
(header `Idempotent-Replayed: true`) and runs nothing (orchestrator/access/idempotency.py)."""

from __future__ import annotations

from typing import Any, Callable

from fastapi import HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from orchestrator.access import Principal
from orchestrator.access.idempotency import request_hash

from service.state import ServiceState

HEADER = "Idempotency-Key"


def _response(value: Any, status_code: int) -> JSONResponse:
    return JSONResponse(jsonable_encoder(value), status_code=status_code)


def respond_once(request: Request, state: ServiceState, principal: Principal, body: Any,
                 work: Callable[[], Any], status_code: int = 200) -> Response:
    """`work()`'s value as the response; remembered under the request's Idempotency-Key, if any."""
    key = request.headers.get(HEADER)
    if key is None:
        return _response(work(), status_code)
    if not 1 <= len(key) <= 255:
        raise HTTPException(422, f"{HEADER} must be 1 to 255 characters")
    endpoint = request.url.path
    claim = state.idempotency.claim(principal.key_id, key, endpoint, request_hash(endpoint, jsonable_encoder(body)))
    if claim.state == "replay":
        return Response(claim.body, status_code=claim.status_code, media_type="application/json",
                        headers={"Idempotent-Replayed": "true"})
    if claim.state == "running":
        raise HTTPException(409, f"a request with this {HEADER} is still running; retry when it has finished")
    if claim.state == "mismatch":
        raise HTTPException(422, f"this {HEADER} was used for a different request (another endpoint or body); "
                                 "use a new key for a new request")
    try:
        response = _response(work(), status_code)
    except BaseException:
        state.idempotency.release(principal.key_id, key)  # a failed request may be retried
        raise
    state.idempotency.complete(principal.key_id, key, response.status_code, response.body.decode())
    return response
