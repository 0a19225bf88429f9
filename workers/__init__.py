"""Celery workers for batch jobs (`cascade worker`, or `celery -A workers.app worker`).

Thin, idempotent tasks that pass item ids, never objects (`workers.tasks.process_item`), and a
sweeper thread in each worker that dispatches the items of distributed jobs from the job store
and re-sends items whose message or worker was lost (`workers.sweeper`). All the logic is the
orchestrator's job layer (`orchestrator.jobs.runner.Jobs`), shared with the embedded executor.
"""
