"""The orchestrator: settings, the LangGraph cascade, the audit store, batch jobs and the public SDK."""

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

from .audit import AuditStore
from .cascade import Cascade
from .config import Settings, load_settings
from .jobs import Jobs

__all__ = [
    "AnswerResult", "Attempt", "AuditStore", "Cascade", "CascadeError", "CascadeResult", "CitedPassage", "ConfigError",
    "FraudResult", "Indicator", "Ingested", "Passage",
    "InvalidInputError", "InvalidOutputError", "Jobs", "ModelError", "ModelFileError", "ModelTimeoutError",
    "RunConflictError", "Settings", "StorageError", "TierUnreachableError", "UnknownTaskError", "UserError",
    "load_settings",
]
