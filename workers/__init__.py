"""Celery workers for batch jobs: thin, idempotent tasks that pass ids (not built yet: the batch
issue adds the Celery app here; the cascade runs embedded through the SDK until then)."""
