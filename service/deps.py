"""FastAPI dependencies: the process's state, its settings and Cascade, and the caller's key with
its scope check (`Depends(require("tasks"))` returns the caller's Principal, or answers 401/403/429)."""

from __future__ import annotations

from typing import Annotated, Callable

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from orchestrator import Cascade, Settings
from orchestrator.access import Principal

from service.state import ServiceState

_bearer = HTTPBearer(auto_error=False, description="an API key from `cascade keys create`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the same key, as a header")


def get_state(request: Request) -> ServiceState:
    return request.app.state.service


def get_settings(state: Annotated[ServiceState, Depends(get_state)]) -> Settings:
    return state.settings


def get_cascade(state: Annotated[ServiceState, Depends(get_state)]) -> Cascade:
    return state.cascade


def require(scope: str) -> Callable[..., Principal]:
    """A dependency admitting callers whose key has `scope` (or admin), within their rate limit."""

    def check(request: Request, state: Annotated[ServiceState, Depends(get_state)],
              bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
              header: Annotated[str | None, Depends(_header)]) -> Principal:
        token = bearer.credentials if bearer else header
        if not token:
            raise HTTPException(401, "no API key: send it as `Authorization: Bearer <key>` or `X-API-Key: <key>`",
                                headers={"WWW-Authenticate": "Bearer"})
        principal = state.keys.authenticate(token)
        if principal is None:
            raise HTTPException(401, "the API key is not valid (unknown, revoked or mistyped)",
                                headers={"WWW-Authenticate": "Bearer"})
        request.state.key_id = principal.key_id  # for the access log line; never the key itself
        if not principal.allows(scope):
            raise HTTPException(403, f"this key lacks the {scope!r} scope (it has: {', '.join(sorted(principal.scopes))})")
        wait = state.rate_limiter.retry_after(principal.key_id)
        if wait is not None:
            raise HTTPException(429, f"rate limit of {state.rate_limiter.per_minute} requests per minute for this key "
                                "reached", headers={"Retry-After": str(wait)})
        return principal

    check.__name__ = f"require_{scope}"
    return check


StateDep = Annotated[ServiceState, Depends(get_state)]
TasksKey = Annotated[Principal, Depends(require("tasks"))]
JobsKey = Annotated[Principal, Depends(require("jobs"))]
ReviewKey = Annotated[Principal, Depends(require("review"))]
AuditKey = Annotated[Principal, Depends(require("audit"))]
AdminKey = Annotated[Principal, Depends(require("admin"))]
