"""Job-completion webhooks: which job calls back where, and every delivery try.

The body is signed with HMAC-SHA256 under the submitting key's webhook secret; the receiver
recomputes it over the raw body (`X-Cascade-Signature: sha256=<hex>`). A failed delivery (no
answer, or a status other than 2xx) is tried again after 1, 2, 4... seconds (capped at 60) up to
`max_tries`; then the webhook is `failed`. Every try is listed in the job's status.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import or_, select

from orchestrator.access.records import JobWebhookRecord
from orchestrator.audit.sql import SqlStore
from orchestrator.jobs.records import JobRecord

SIGNATURE_HEADER = "X-Cascade-Signature"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


class WebhookStore(SqlStore):
    NAME = "webhook store"

    def add(self, job_id: str, key_id: str, url: str) -> None:
        with self._tx() as s:
            s.add(JobWebhookRecord(job_id=job_id, key_id=key_id, url=url, state="waiting", tries=0, deliveries=[]))

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._tx() as s:
            r = s.get(JobWebhookRecord, job_id)
            return None if r is None else {"url": r.url, "state": r.state, "tries": r.tries,
                                           "deliveries": list(r.deliveries)}

    def due(self, limit: int = 20) -> list[dict[str, Any]]:
        """Waiting webhooks whose job has finished (done or cancelled) and whose next try is due."""
        now = _now()
        with self._tx() as s:
            rows = s.execute(
                select(JobWebhookRecord, JobRecord.status).join(JobRecord, JobRecord.id == JobWebhookRecord.job_id)
                .where(JobWebhookRecord.state == "waiting", JobRecord.status.in_(("done", "cancelled")),
                       or_(JobWebhookRecord.next_try_at.is_(None), JobWebhookRecord.next_try_at <= now))
                .limit(limit)).all()
            return [{"job_id": r.job_id, "key_id": r.key_id, "url": r.url, "tries": r.tries} for r, _ in rows]

    def record_try(self, job_id: str, delivery: dict[str, Any], delivered: bool, max_tries: int) -> None:
        with self._tx() as s:
            r = s.get(JobWebhookRecord, job_id)
            r.tries += 1
            r.deliveries = [*r.deliveries, delivery]
            if delivered:
                r.state, r.next_try_at = "delivered", None
            elif r.tries >= max_tries:
                r.state, r.next_try_at = "failed", None
            else:
                r.next_try_at = _now() + timedelta(seconds=min(60.0, 2.0 ** (r.tries - 1)))
