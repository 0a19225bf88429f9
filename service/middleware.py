"""Every request: a request id (the caller's X-Request-ID if it is a plain token, else a new one) on
the response and on every log line written while it runs, the body limit (413), one access log
line (never a key: only the key's public id) and the request metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar

from fastapi import HTTPException

from service.metrics import Metrics

log = logging.getLogger("service.access")
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
_TOKEN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every log record (`-` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"request body over the limit of {limit // 1024} kB (CASCADE_SERVICE_MAX_BODY_KB)")


class RequestContext:
    def __init__(self, app, metrics: Metrics, max_body_bytes: int) -> None:
        self.app, self.metrics, self.limit = app, metrics, max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _TOKEN.match(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started, status, received = time.perf_counter(), [500], [0]
        limit = self.limit
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            async def receive_checked():  # refuse before reading a byte of the body
                raise _too_large(limit)
        else:
            async def receive_checked():
                message = await receive()
                if message["type"] == "http.request":
                    received[0] += len(message.get("body", b""))
                    if received[0] > limit:
                        raise _too_large(limit)
                return message

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive_checked, send_with_id)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            seconds = time.perf_counter() - started
            self.metrics.observe_request(endpoint, scope["method"], status[0], seconds)
            log.info("%s %s %s %.1f ms key=%s", scope["method"], scope["path"], status[0], seconds * 1000,
                     state.get("key_id", "-"))
            request_id_var.reset(token)
