"""`cascade serve`: the HTTP service on uvicorn; `cascade keys`: its API keys."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from agents.errors import CascadeError
from cli.common import ConfigOpt, JsonOpt, command_group, err, fail, out

keys_app = command_group("API keys of the HTTP service: create (shown once), list, revoke.")


def serve(
    host: Annotated[Optional[str], typer.Option(help="address to listen on (else $CASCADE_SERVICE_HOST, 127.0.0.1)")] = None,
    port: Annotated[Optional[int], typer.Option(help="port (else $CASCADE_SERVICE_PORT, 8000)")] = None,
    workers: Annotated[Optional[int], typer.Option(help="server processes (more than 1 needs a Qdrant server and PostgreSQL)")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="data directory (else $CASCADE_DATA_DIR)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the cascade over HTTP (FastAPI on uvicorn): task, job, document, review and audit
    endpoints under /v1, docs at /docs, metrics at /metrics."""
    import uvicorn

    from orchestrator import load_settings
    from service import check_deployment
    from service.asgi import configure_logging

    try:
        settings = load_settings(config, service_host=host, service_port=port, service_workers=workers,
                                 data_dir=str(data_dir) if data_dir else None)
        check_deployment(settings)
    except CascadeError as exc:
        fail(exc)
    configure_logging()
    err.print(f"serving on http://{settings.service_host}:{settings.service_port} ({settings.service_workers} "
              f"process(es)); docs at /docs; audit store {settings.audit_url.split('@')[-1]}")
    common = {"host": settings.service_host, "port": settings.service_port, "log_config": None, "access_log": False}
    if settings.service_workers == 1:
        from service import create_app

        try:
            app = create_app(settings)
        except CascadeError as exc:
            fail(exc)
        uvicorn.run(app, **common)
        return
    # Each process builds its own app from the environment: hand the settings given here down.
    if config:
        os.environ["CASCADE_CONFIG"] = str(config)
    os.environ["CASCADE_DATA_DIR"] = str(settings.data_dir)
    uvicorn.run("service.asgi:app_from_environment", factory=True, workers=settings.service_workers, **common)


def _keys(config: Path | None):
    from orchestrator import KeyStore, load_settings

    settings = load_settings(config)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return KeyStore(settings.audit_url)


@keys_app.command("create")
def keys_create(
    scope: Annotated[list[str], typer.Option("--scope", "-s", help="tasks, jobs, review, audit or admin (all); repeat")],
    name: Annotated[str, typer.Option(help="who or what the key is for")] = "",
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Create a key. Its token and webhook secret are printed once; only a hash of the token is stored."""
    try:
        store = _keys(config)
        key = store.create(scope, name)
        store.close()
    except CascadeError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps({"id": key.key_id, "name": key.name, "scopes": key.scopes, "key": key.token,
                                   "webhook_secret": key.webhook_secret}))
        return
    out.print(f"key {key.key_id} ({key.name}), scopes: {', '.join(key.scopes)}")
    out.print(f"key:            {key.token}", highlight=False, soft_wrap=True)
    out.print(f"webhook secret: {key.webhook_secret}", highlight=False, soft_wrap=True)
    err.print("store both now: they are not shown again")


@keys_app.command("list")
def keys_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List keys (ids, names, scopes; never the keys themselves)."""
    try:
        store = _keys(config)
        rows = store.list()
        store.close()
    except CascadeError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("id", "name", "scopes", "created", "revoked")
    for r in rows:
        table.add_row(r["id"], r["name"], ", ".join(r["scopes"]), r["created_at"], r["revoked_at"] or "-")
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key's id (from `cascade keys list`)")],
                config: ConfigOpt = None) -> None:
    """Revoke a key: its next request gets 401."""
    try:
        store = _keys(config)
        store.revoke(key_id)
        store.close()
    except CascadeError as exc:
        fail(exc)
    out.print(f"revoked {key_id}")


def bench_serve(
    clients: Annotated[int, typer.Option(help="concurrent clients")] = 32,
    seconds: Annotated[float, typer.Option(help="how long the clients send requests")] = 60.0,
    pairs: Annotated[int, typer.Option(help="items timed through the SDK and over HTTP, paired")] = 30,
    database_url: Annotated[Optional[str], typer.Option(help="database of the run (default: SQLite in a fresh data dir)")] = None,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Load the HTTP service on loopback: req/s, latency p50/p95/p99, errors, one finished audit run
    per accepted request, and the server's added latency over the same SDK call."""
    from evaluation.benchmarks.serve import run_serve_bench

    if not 1 <= clients <= 256 or not 0 < seconds <= 900:
        err.print("clients must be 1..256 and seconds 0..900 (the benchmark is bounded)")
        raise typer.Exit(2)
    with err.status(f"{clients} clients for {seconds:g} s, then {pairs} paired calls..."):
        result = run_serve_bench(clients, seconds, pairs, config=config, database_url=database_url)
    if as_json:
        out.print_json(json.dumps(result))
        return
    table = Table("measure", "value")
    for k, v in result.items():
        table.add_row(k, str(v))
    out.print(table)
