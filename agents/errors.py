"""The project's error tree. Every error says what went wrong and what to do about it.

    CascadeError
    ├── UserError            the caller can fix it
    │   ├── ConfigError      malformed or inconsistent configuration
    │   ├── InvalidInputError  bad task input (empty text, bad label set, ...)
    │   │   └── RunConflictError  a caller-chosen run id names a run that cannot be (re)started
    │   └── UnknownTaskError
    ├── ModelError           a model tier could not give a usable answer
    │   ├── ModelFileError   GGUF file missing or unreadable
    │   ├── TierUnreachableError  provider or local server down
    │   ├── ModelTimeoutError
    │   └── InvalidOutputError   output could not be parsed into the task's answer
    └── StorageError         the audit store failed

Errors carry only strings so they pickle across a Celery boundary.
"""

from __future__ import annotations

from .secrets import scrub


class CascadeError(Exception):
    """Base of every error this project raises on purpose."""

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        message = scrub(message)  # a provider's error text may quote the API key
        super().__init__(message)
        self.message = message
        self.run_id = run_id

    def __reduce__(self):  # keep keyword state when pickled across processes
        return (_rebuild, (type(self), self.message, self.run_id))

    def __str__(self) -> str:
        if self.run_id:
            return f"{self.message} (audit run {self.run_id})"
        return self.message


def _rebuild(cls, message, run_id):
    return cls(message, run_id=run_id)


class UserError(CascadeError):
    """The caller can fix it: configuration or input."""


class ConfigError(UserError):
    """Malformed or inconsistent configuration."""


class InvalidInputError(UserError):
    """The task input is unusable (empty text, bad label set...)."""


class RunConflictError(InvalidInputError):
    """A caller-chosen audit run id names a run that is not an unfinished run of the same input."""


class UnknownTaskError(UserError):
    """No such task family."""


class ModelError(CascadeError):
    """A model tier could not produce a usable answer."""


class ModelFileError(ModelError):
    """The GGUF file is missing or is not a loadable model."""


class TierUnreachableError(ModelError):
    """The provider or local server behind a tier did not answer."""


class ModelTimeoutError(ModelError):
    """The tier took longer than its timeout."""


class InvalidOutputError(ModelError):
    """The tier answered, but not with something the task accepts."""


class StorageError(CascadeError):
    """The audit store could not be read or written."""
