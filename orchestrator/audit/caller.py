"""Which API key asked for the runs being recorded: a context variable the HTTP service sets per
request (`with acting_as(key_id): cascade.classify(...)`), read by the audit store when a run starts.

A context variable rather than one more keyword on every SDK call: a request may start several runs
(a contract review is one run per clause category), and each thread or task sees only its own value.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

_caller: ContextVar[str | None] = ContextVar("cascade_caller_key_id", default=None)


def current_caller() -> str | None:
    """The API key id the runs started now are recorded under (None: not an API call)."""
    return _caller.get()


@contextmanager
def acting_as(key_id: str | None) -> Iterator[None]:
    """Record every run started inside the block as asked for by `key_id`."""
    token = _caller.set(key_id)
    try:
        yield
    finally:
        _caller.reset(token)
