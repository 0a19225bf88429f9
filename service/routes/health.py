"""Liveness and readiness (no key needed)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.deps import StateDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def health():
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz")
def ready(state: StateDep):
    """The database answers, the broker too when jobs are distributed, and tier 1 loads."""
    checks: dict[str, str] = {}
    try:
        with state.cascade.audit.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001  (a check reports, it does not raise)
        checks["database"] = f"failed: {type(exc).__name__}"
    if state.settings.batch_mode == "distributed":
        try:
            from kombu import Connection

            with Connection(state.settings.broker_url, connect_timeout=2) as conn:
                conn.ensure_connection(max_retries=1)
            checks["broker"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["broker"] = f"failed: {type(exc).__name__}"
    # A request holding the model lock is using tier 1: it loaded. Don't queue a probe behind it.
    if state.model_lock.acquire(timeout=2.0):
        try:
            state.cascade.load_tier(0)
            checks["tier1"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["tier1"] = f"failed: {getattr(exc, 'message', type(exc).__name__)}"
        finally:
            state.model_lock.release()
    else:
        checks["tier1"] = "busy"
    ok = all(v in ("ok", "busy") for v in checks.values())
    return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503)
