"""The app factory: `create_app(settings)` builds the FastAPI app over one Cascade. Routes live in
service/routes/ (one module per resource), dependencies in service/deps.py, error mapping in
service/errors.py."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from agents.errors import ConfigError
from orchestrator import Cascade, Settings

from service import errors
from service.middleware import RequestContext
from service.routes import audit, documents, health, jobs, metrics, review, tasks, workflows
from service.state import ServiceState
from service.webhooks import WebhookSender


def check_deployment(settings: Settings, workers: int | None = None) -> None:
    """Qdrant's local mode lets one process open its directory: refuse, at start-up, a deployment
    that would make several processes open it."""
    workers = workers or settings.service_workers
    if settings.qdrant_url is None and (workers > 1 or settings.batch_mode == "distributed"):
        why = f"{workers} server processes" if workers > 1 else "distributed batch jobs (Celery workers)"
        raise ConfigError(f"{why} need a Qdrant server: the local Qdrant store in {settings.data_dir / 'qdrant'} "
                          "opens in one process only; set CASCADE_QDRANT_URL (or qdrant_url in the config), or run "
                          "one server process with embedded jobs")
    if workers > 1 and settings.database_url is None:
        raise ConfigError(f"{workers} server processes need a shared database; set CASCADE_DATABASE_URL to PostgreSQL")


def create_app(settings: Settings, *, cascade: Cascade | None = None, backends: dict[str, Any] | None = None,
               webhook_interval_s: float = 0.5) -> FastAPI:
    """The service over `cascade` (default: a Cascade built from `settings`, with `backends`
    replacing configured tiers, as in `Cascade(settings, backends=...)`)."""
    state = ServiceState(settings, cascade, backends)
    sender = WebhookSender(state, interval_s=webhook_interval_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        sender.start()
        try:
            yield
        finally:
            sender.stop()
            state.close()

    app = FastAPI(title="slm-cascade", version="1", lifespan=lifespan,
                  description="Tasks run on a small local model first and escalate only when they must; every "
                              "decision is in the audit log. Authenticate with an API key (`cascade keys create`).")
    app.state.service = state
    errors.install(app)
    for module in (tasks, workflows, documents, jobs, review, audit, health, metrics):
        app.include_router(module.router)
    app.add_middleware(RequestContext, metrics=state.metrics, max_body_bytes=int(settings.service_max_body_kb * 1024))
    return app
