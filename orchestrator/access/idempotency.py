"""Idempotent POSTs: the first response to a request with an Idempotency-Key is stored, and a
retry with the same key (same caller, same endpoint, same body) gets it back without running again.

Only successful responses are kept: a request that failed (a tier down, bad input) frees its key,
so a retry after the failure runs. A retry that arrives while the first request is still running
is told so (409) instead of starting a second run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from orchestrator.access.records import IdempotencyRecord
from orchestrator.audit.sql import SqlStore


def request_hash(endpoint: str, body: Any) -> str:
    return hashlib.sha256(json.dumps([endpoint, body], sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    """What to do with a request: run it (`new`), send the stored response (`replay`), or refuse
    it (`running`: the first is not finished; `mismatch`: the key was used for another request)."""

    state: Literal["new", "replay", "running", "mismatch"]
    status_code: int | None = None
    body: str | None = None


class IdempotencyStore(SqlStore):
    NAME = "idempotency store"

    def claim(self, key_id: str, idempotency_key: str, endpoint: str, digest: str) -> Claim:
        record = IdempotencyRecord(key_id=key_id, idempotency_key=idempotency_key, endpoint=endpoint,
                                   request_hash=digest, created_at=datetime.now(timezone.utc))
        try:
            with self._sessions.begin() as s:  # the primary key makes one of two racing requests lose
                s.add(record)
            return Claim("new")
        except IntegrityError:
            pass
        with self._tx() as s:
            first = s.get(IdempotencyRecord, (key_id, idempotency_key))
            if first is None:  # the first request failed and freed the key meanwhile
                return Claim("running")
            if first.endpoint != endpoint or first.request_hash != digest:
                return Claim("mismatch")
            if first.status_code is None:
                return Claim("running")
            return Claim("replay", first.status_code, first.response)

    def complete(self, key_id: str, idempotency_key: str, status_code: int, body: str) -> None:
        with self._tx() as s:
            record = s.get(IdempotencyRecord, (key_id, idempotency_key))
            if record is not None:
                record.status_code, record.response = status_code, body

    def release(self, key_id: str, idempotency_key: str) -> None:
        with self._tx() as s:
            s.execute(delete(IdempotencyRecord).where(IdempotencyRecord.key_id == key_id,
                                                      IdempotencyRecord.idempotency_key == idempotency_key))
