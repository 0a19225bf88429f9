"""The HTTP service (`cascade serve`): a FastAPI app, thin over the SDK. An entry point like `cli`:
it imports orchestrator, routers and agents, never evaluation."""

from .app import check_deployment, create_app

__all__ = ["check_deployment", "create_app"]
