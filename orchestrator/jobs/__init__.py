"""Batch jobs: input files (`input`), the job tables (`records`), the store with item leases
(`store`), the spend budget (`budget`), result reading (`results`), workflow items
(`workflow_items`) and `Jobs`, the one item code path shared by the in-process executor and the
Celery workers (`runner`).

Imports `core`, `audit` and `agents`, and `workflows` when a workflow job runs (`workflow_items`);
only the workers and the front doors import it.
"""

from .runner import Jobs

__all__ = ["Jobs"]
