"""Prometheus metrics of this server process (admin scope: cost and volumes are not public)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.deps import AdminKey, StateDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
def metrics(state: StateDep, principal: AdminKey):
    """Requests and latency per endpoint, attempts and escalations per tier, cost, queue depth."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
