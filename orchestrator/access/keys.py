"""API keys with scopes, and the Principal they authenticate as.

A key reads `csk_<id>_<secret>`: the id is public (shown by `cascade keys list`, recorded on each
audit run the key asked for), the secret is 32 random bytes of which only the SHA-256 is stored
(a secret that long needs no slow hash). A key is shown once, when created; so is its webhook
secret, which signs the job-completion callbacks of the jobs the key submits.

`Principal` is what an authenticated caller is, whatever authenticated it: a later session login
for a person can produce the same object and reuse the scope checks.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select

from agents.errors import InvalidInputError

from orchestrator.access.records import ApiKeyRecord
from orchestrator.audit.sql import SqlStore

SCOPES = ("tasks", "jobs", "review", "audit", "admin")
PREFIX = "csk_"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: an API key (or, later, a person logged in) and what it may do."""

    key_id: str
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        """`admin` grants every scope."""
        return scope in self.scopes or "admin" in self.scopes


@dataclass(frozen=True)
class NewKey:
    """A key as created: the only time its token and webhook secret are shown."""

    key_id: str
    name: str
    scopes: list[str]
    token: str
    webhook_secret: str


def check_scopes(scopes: list[str]) -> list[str]:
    scopes = sorted({s.strip() for s in scopes if s and s.strip()})
    if not scopes:
        raise InvalidInputError(f"a key needs at least one scope; choose from {', '.join(SCOPES)}")
    if unknown := [s for s in scopes if s not in SCOPES]:
        raise InvalidInputError(f"unknown scope(s) {unknown}; the scopes are {', '.join(SCOPES)}")
    return scopes


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class KeyStore(SqlStore):
    """API keys in the audit database."""

    NAME = "key store"

    def create(self, scopes: list[str], name: str = "") -> NewKey:
        scopes = check_scopes(scopes)
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        webhook_secret = secrets.token_hex(32)
        name = (name or "").strip() or f"key {key_id}"
        with self._tx() as s:
            s.add(ApiKeyRecord(id=key_id, name=name[:128], scopes=scopes, secret_hash=_digest(secret),
                               webhook_secret=webhook_secret, created_at=datetime.now(timezone.utc)))
        return NewKey(key_id, name[:128], scopes, f"{PREFIX}{key_id}_{secret}", webhook_secret)

    def list(self) -> list[dict[str, Any]]:
        with self._tx() as s:
            rows = s.scalars(select(ApiKeyRecord).order_by(ApiKeyRecord.created_at)).all()
            return [{"id": r.id, "name": r.name, "scopes": list(r.scopes), "created_at": r.created_at.isoformat(),
                     "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None} for r in rows]

    def revoke(self, key_id: str) -> None:
        with self._tx() as s:
            record = s.get(ApiKeyRecord, key_id)
            if record is None:
                raise InvalidInputError(f"no API key with id {key_id!r}; see `cascade keys list`")
            if record.revoked_at is None:
                record.revoked_at = datetime.now(timezone.utc)

    def authenticate(self, token: str | None) -> Principal | None:
        """The key's Principal, or None for a missing, malformed, unknown, wrong or revoked key."""
        if not token or not token.startswith(PREFIX) or token.count("_") < 2:
            return None
        key_id, _, secret = token[len(PREFIX):].partition("_")
        with self._tx() as s:
            record = s.get(ApiKeyRecord, key_id)
            if record is None or record.revoked_at is not None:
                return None
            if not hmac.compare_digest(record.secret_hash, _digest(secret)):
                return None
            return Principal(record.id, record.name, frozenset(record.scopes))

    def webhook_secret(self, key_id: str) -> str | None:
        with self._tx() as s:
            record = s.get(ApiKeyRecord, key_id)
            return record.webhook_secret if record else None
