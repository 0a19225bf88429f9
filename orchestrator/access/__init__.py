"""API access: keys with scopes and the Principal they authenticate as (`keys`), idempotent POST
responses (`idempotency`) and job-completion webhooks (`webhooks`), in the audit database.

Imports `audit`, `jobs` (the jobs table a webhook belongs to) and `agents`; the service and the CLI
import it. Which key asked for a run is recorded by the audit store (orchestrator/audit/caller.py).
"""

from .idempotency import IdempotencyStore
from .keys import SCOPES, KeyStore, NewKey, Principal
from .webhooks import WebhookStore

__all__ = ["SCOPES", "IdempotencyStore", "KeyStore", "NewKey", "Principal", "WebhookStore"]
