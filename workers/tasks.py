"""The Celery task of batch jobs: one item, by id. Thin: the job layer does the work."""

from __future__ import annotations

import logging
import os

from celery.signals import worker_process_init

from orchestrator.core.config import LlamaCppTier, load_settings
from orchestrator.jobs.runner import Jobs

from workers.app import app

log = logging.getLogger("workers")
_jobs: Jobs | None = None


def jobs() -> Jobs:
    """This process's job layer and Cascade: built once, so each model loads once per process.

    A local (llama.cpp) tier without n_threads gets the machine's cores divided among the
    worker's processes, so two processes on two cores do not fight over four threads."""
    global _jobs
    if _jobs is None:
        settings = load_settings()
        processes = int(os.environ.get("CASCADE_WORKER_PROCESSES", "1"))
        threads = max(1, (os.cpu_count() or 1) // max(1, processes))
        for tier in settings.tiers:
            if isinstance(tier, LlamaCppTier) and tier.n_threads is None:
                tier.n_threads = threads
        _jobs = Jobs(settings)
        log.info("worker process %s: job store %s; llama.cpp threads per local tier: %s", os.getpid(),
                 settings.audit_url.split("@")[-1],
                 {t.name: t.n_threads for t in settings.tiers if isinstance(t, LlamaCppTier)})
    return _jobs


@worker_process_init.connect
def _fresh_process(**_):
    """A forked pool process starts with no inherited Cascade or database connections."""
    global _jobs
    _jobs = None


@app.task(name="cascade.process_item", bind=True, acks_late=True, reject_on_worker_lost=True,
          ignore_result=True, max_retries=None)
def process_item(self, item_id: int, expected: str) -> str | None:
    """Run one job item's phase (`expected` is the status it was dispatched in). Idempotent: a
    re-delivered message finds the item no longer `expected` and does nothing."""
    job_layer = jobs()
    try:
        return job_layer.process_item(item_id, expected)
    except Exception as exc:  # noqa: BLE001  (retried with backoff, or recorded as the item's failure)
        delay = job_layer.handle_failure(item_id, expected, exc, self.request.retries)
        if delay is None:
            log.warning("item %s failed: %s", item_id, exc)
            return "failed"
        log.info("item %s: %s; retry %d in %.1f s", item_id, exc, self.request.retries + 1, delay)
        raise self.retry(countdown=delay, max_retries=None) from None
