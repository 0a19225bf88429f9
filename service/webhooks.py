"""Delivers job-completion webhooks from a thread of the server process: every `interval_s` it
POSTs the status of each finished job that has a callback due (signed, see
orchestrator/access/webhooks.py) and records the try. Several server processes may deliver one
webhook twice at worst; a receiver should key on the job id."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timezone

import httpx

from orchestrator.access.webhooks import SIGNATURE_HEADER, signature

from service.state import ServiceState

log = logging.getLogger("service.webhooks")


class WebhookSender:
    def __init__(self, state: ServiceState, interval_s: float = 0.5, timeout_s: float = 10.0) -> None:
        self.state, self.interval_s, self.timeout_s = state, interval_s, timeout_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout_s + 1)

    def _loop(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as client:
            while not self._stop.wait(self.interval_s):
                try:
                    for hook in self.state.webhooks.due():
                        self.deliver(client, hook)
                except Exception as exc:  # noqa: BLE001  (the database may be down; try again next round)
                    log.warning("webhook round failed: %s: %s", type(exc).__name__, exc)

    def deliver(self, client: httpx.Client, hook: dict) -> None:
        job_id = hook["job_id"]
        body = json.dumps({"event": "job.finished", "job": self.state.jobs.status(job_id)}, default=str).encode()
        secret = self.state.keys.webhook_secret(hook["key_id"]) or ""
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(secret, body),
                   "X-Cascade-Job": job_id}
        started = time.perf_counter()
        delivery = {"at": datetime.now(timezone.utc).isoformat(), "status_code": None, "error": None}
        try:
            response = client.post(hook["url"], content=body, headers=headers)
            delivery["status_code"] = response.status_code
        except httpx.HTTPError as exc:
            delivery["error"] = f"{type(exc).__name__}: {exc}"
        delivery["ms"] = round((time.perf_counter() - started) * 1000, 1)
        ok = delivery["status_code"] is not None and 200 <= delivery["status_code"] < 300
        self.state.webhooks.record_try(job_id, delivery, ok, self.state.settings.service_webhook_max_tries)
        log.info("webhook of job %s to %s: %s", job_id, hook["url"], delivery["status_code"] or delivery["error"])
