"""The orchestrator: the public SDK over the cascade, the audit store, calibration and batch jobs.

Rooms, each importing only downward (routers, agents) and from the rooms listed before it:
- `audit/`: the SQL audit store (runs, attempts, reviews) and its hash chain;
- `calibration/`: fitting, applying and storing calibration artifacts;
- `core/`: settings, the LangGraph cascade and its task table, local model files and servers;
- `jobs/`: batch jobs (store, budget, input files, the runner shared by Celery and the in-process executor;
  a workflow job's items run `workflows/`, imported only when one runs);
- `access/`: API keys and scopes, idempotent POST responses, job-completion webhooks (the HTTP service's).
- `workflows/`: multi-step LangGraph workflows of routed task calls, checkpointed, paused for people.
Measurement lives in the separate `evaluation` package, which the runtime never imports.
"""

from agents.errors import (
    CascadeError,
    ConfigError,
    InvalidInputError,
    InvalidOutputError,
    ModelError,
    ModelFileError,
    ModelTimeoutError,
    RunConflictError,
    StorageError,
    TierUnreachableError,
    UnknownTaskError,
    UserError,
)
from agents.documents import Ingested, Passage
from agents.fraud import FraudResult, Indicator
from agents.qa import AnswerResult, CitedPassage
from agents.results import Attempt, CascadeResult

from .access import KeyStore, Principal
from .audit import AuditStore
from .audit.caller import acting_as
from .core import Cascade, Settings, load_settings
from .jobs import Jobs
from .workflows import WorkflowRun, Workflows

__all__ = [
    "AnswerResult", "Attempt", "AuditStore", "Cascade", "CascadeError", "CascadeResult", "CitedPassage", "ConfigError",
    "FraudResult", "Indicator", "Ingested", "KeyStore", "Passage", "Principal", "acting_as",
    "InvalidInputError", "InvalidOutputError", "Jobs", "ModelError", "ModelFileError", "ModelTimeoutError",
    "RunConflictError", "Settings", "StorageError", "TierUnreachableError", "UnknownTaskError", "UserError",
    "WorkflowRun", "Workflows", "load_settings",
]
