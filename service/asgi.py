"""`uvicorn --factory service.asgi:app_from_environment`: the app from CASCADE_* settings (how each
of several server processes builds its own; `cascade serve --workers N` sets them)."""

from __future__ import annotations

import logging
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network: don't fetch litellm's price map
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fastapi import FastAPI  # noqa: E402

from orchestrator import load_settings  # noqa: E402

from service.app import create_app  # noqa: E402
from service.middleware import RequestIdFilter  # noqa: E402

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def configure_logging(level: int = logging.INFO) -> None:
    """One handler on the root logger; every line carries the request id (`-` outside a request)."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def app_from_environment() -> FastAPI:
    configure_logging()
    return create_app(load_settings())
