"""The Celery app of batch jobs: broker from the project's settings (CASCADE_BROKER_URL), no result backend.

Start a worker with `cascade worker` or `celery -A workers.app worker`; the worker reads the same
settings as the SDK (CASCADE_CONFIG, CASCADE_DATA_DIR, CASCADE_DATABASE_URL, CASCADE_BATCH_*).
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network: don't fetch litellm's price map
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from celery import Celery  # noqa: E402
from celery.signals import worker_init  # noqa: E402

from orchestrator.core.config import load_settings  # noqa: E402

log = logging.getLogger("workers")
faulthandler.register(signal.SIGUSR2, all_threads=True)  # `kill -USR2 PID` prints every thread's stack

_settings = load_settings()

app = Celery("slm_cascade", broker=_settings.broker_url, include=["workers.tasks", "workers.sweeper"])
app.conf.update(
    task_acks_late=True,  # the tasks are idempotent: a message is acknowledged only after its item ran
    task_reject_on_worker_lost=True,  # a killed pool process puts its message back
    worker_prefetch_multiplier=1,  # hold one message per process: a killed worker strands few
    task_ignore_result=True,  # results live in the job store
    task_default_queue="cascade-batch",
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,  # wait out a broker restart
    # Redis gives an unacknowledged message back after visibility_timeout (the job store's item lease
    # re-sends it long before). RabbitMQ (amqp://) gives it back as soon as the dead consumer's
    # connection drops, and closes a channel holding one past its consumer_timeout (30 min by
    # default): far above an item's time or a retry's countdown (at most ~75 s).
    broker_transport_options={"visibility_timeout": 3600},
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
)


@worker_init.connect
def _share_cores(sender=None, **_):
    """Before the pool forks: tell each process how many of the machine's cores are its own."""
    processes = getattr(sender, "concurrency", None) or 1
    if getattr(sender, "pool_cls", None) and "solo" in str(sender.pool_cls).lower():
        processes = 1
    os.environ.setdefault("CASCADE_WORKER_PROCESSES", str(processes))
