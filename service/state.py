"""What one server process holds: the settings, one Cascade (each model loaded once), the access
stores, the job layer, the workflows, the metrics and the rate limiter. Built by `create_app`,
read by `deps`."""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, TypeVar

from orchestrator import Cascade, Jobs, Settings, Workflows
from orchestrator.access import IdempotencyStore, KeyStore, WebhookStore
from orchestrator.audit.caller import acting_as

from service.metrics import Metrics
from service.ratelimit import RateLimiter

T = TypeVar("T")
log = logging.getLogger("service")


class SerialCascade:
    """The service's Cascade as the job layer sees it: `run` takes the model lock, so an embedded
    job's items and the task endpoints never use a model at once (llama.cpp contexts and Qdrant's
    local client are not thread-safe)."""

    def __init__(self, cascade: Cascade, lock: threading.Lock) -> None:
        self._cascade, self._lock = cascade, lock

    def run(self, *args: Any, **kwargs: Any):
        with self._lock:
            return self._cascade.run(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cascade, name)


class ServiceState:
    def __init__(self, settings: Settings, cascade: Cascade | None = None, backends: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self._owns_cascade = cascade is None
        self.cascade = cascade or Cascade(settings, backends=backends)
        self.model_lock = threading.Lock()
        url = settings.audit_url
        self.keys, self.idempotency, self.webhooks = KeyStore(url), IdempotencyStore(url), WebhookStore(url)
        self.jobs = Jobs(settings, cascade=SerialCascade(self.cascade, self.model_lock))
        self.workflows = Workflows(self.cascade)  # runs and resumes take the model lock (`call`)
        self.metrics = Metrics(self.jobs.store)
        self.rate_limiter = RateLimiter(settings.service_rate_limit_per_min)
        self.runners: dict[str, threading.Thread] = {}

    def call(self, key_id: str | None, work: Callable[[Cascade], T]) -> T:
        """Run SDK work on the model lock, its audit runs recorded as asked for by `key_id`."""
        with self.model_lock, acting_as(key_id):
            return work(self.cascade)

    def run_embedded_job(self, job_id: str) -> None:
        """Run an embedded job in a thread of this process (its items take the model lock one at a
        time; their runs record the key that submitted the job, kept on the job)."""
        def run() -> None:
            try:
                self.jobs.run(job_id)
            except Exception:  # noqa: BLE001  (the job store keeps the state; `status` shows it)
                log.exception("embedded job %s stopped", job_id)

        thread = threading.Thread(target=run, name=f"job-{job_id[:8]}", daemon=True)
        self.runners[job_id] = thread
        thread.start()

    def close(self) -> None:
        for store in (self.keys, self.idempotency, self.webhooks):
            store.close()
        self.jobs.close()
        self.workflows.close()
        if self._owns_cascade:
            self.cascade.close()
