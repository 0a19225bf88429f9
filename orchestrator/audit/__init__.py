"""The audit store: every run, attempt, review and audit-log entry in SQL (SQLite or PostgreSQL),
and the hash chain a compliance officer verifies.

Owns the SQLAlchemy records (`records`, the Base Alembic's env.py migrates), the store (`store`) and
the chain (`chain`). Imports only `agents`; every other room may import it.
"""

from .store import AuditStore

__all__ = ["AuditStore"]
