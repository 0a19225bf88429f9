"""A thread in each worker's main process that drives distributed jobs from the job store.

Every `batch_sweep_interval_s` it takes each active distributed job's lease (one process at a
time per job) and calls `Jobs.advance`: hand out the next items in flight as task messages,
re-send items whose message or worker was lost (older than `batch_item_lease_s`), move the job
from phase 1 to 2 under its budget, finish it. Because the job store, not the broker, is the
source of truth, a job survives a broker restart (lost messages are re-sent) and a killed worker
(its items are re-sent to another). Errors (database or broker down) are logged and retried on
the next sweep.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from celery.signals import worker_ready, worker_shutdown

from orchestrator.core.config import load_settings
from orchestrator.jobs.runner import Jobs
from workers.tasks import process_item

log = logging.getLogger("workers")


class Sweeper(threading.Thread):
    def __init__(self, owner: str) -> None:
        super().__init__(name="cascade-sweeper", daemon=True)
        self.owner = owner
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        settings = load_settings()
        jobs: Jobs | None = None
        interval = settings.batch_sweep_interval_s
        lease_s = max(5.0, 5 * interval)

        def dispatch(item_id: int, expected: str) -> None:
            process_item.apply_async(args=[item_id, expected], retry=True,
                                     retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5})

        while not self._stop.wait(interval):
            try:
                if jobs is None:
                    jobs = Jobs(settings)  # opens (and migrates) the store; no model is loaded here
                for job_id in jobs.store.active_job_ids("distributed"):
                    jobs.advance(job_id, dispatch, self.owner, lease_s=lease_s,
                                 stale_before=time.time() - settings.batch_item_lease_s)
            except Exception as exc:  # noqa: BLE001  (database or broker down: try again next sweep)
                log.warning("sweeper: %s: %s", type(exc).__name__, exc)


_sweeper: Sweeper | None = None


@worker_ready.connect
def _start_sweeper(sender=None, **_):
    global _sweeper
    owner = f"{getattr(sender, 'hostname', None) or socket.gethostname()}:{os.getpid()}"
    _sweeper = Sweeper(owner)
    _sweeper.start()


@worker_shutdown.connect
def _stop_sweeper(**_):
    if _sweeper is not None:
        _sweeper.stop()
