"""SQL records of API access: keys (only a hash of each secret), idempotent POST responses, and
job-completion webhooks. On the audit log's metadata: one database, one Alembic history (0007)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.audit.records import Base
from orchestrator.jobs import records as _job_records  # noqa: F401  (jobs table, target of job_webhooks' key)


class ApiKeyRecord(Base):
    """One API key. The secret part of the key is never stored, only its SHA-256; the webhook
    secret is stored as is, since the service signs with it."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # public part of the key: csk_<id>_<secret>
    name: Mapped[str] = mapped_column(String(128))
    scopes: Mapped[list] = mapped_column(JSON)
    secret_hash: Mapped[str] = mapped_column(String(64))
    webhook_secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class IdempotencyRecord(Base):
    """The first response to a POST carrying an Idempotency-Key, per API key. `status_code` is None
    while the first request is still running."""

    __tablename__ = "idempotency_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response: Mapped[str | None] = mapped_column(Text, nullable=True)  # the JSON body as sent
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JobWebhookRecord(Base):
    """A job's completion callback: where to POST, under which key's secret, and every delivery try."""

    __tablename__ = "job_webhooks"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), index=True)  # waiting | delivered | failed
    tries: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    deliveries: Mapped[list] = mapped_column(JSON)  # [{at, status_code, error, ms}]
