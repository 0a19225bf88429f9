"""A real uvicorn server on 127.0.0.1 (a free port) serving the app over a two-tier ladder of
scripted fake backends, started once per session; real httpx clients; one API key per scope."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from agents.backends.llama_cpp import Generated, Scored
from agents.errors import TierUnreachableError
from orchestrator import KeyStore, load_settings
from orchestrator.access import SCOPES
from service import create_app
from tests.conftest import fake_tiers, free_port, write_config

MAX_BODY_KB = 64


class ScriptedBackend:
    """Answers every item by its text: sure of the first label; leaning to the last label at about
    0.5 when the text says "unsure" (it escalates; a fraud item then ends needs_review on the last
    tier, an unsure "legit" is never kept); unreachable when the text says "tier-down".
    Generates the ask and contract tasks' JSON (cannot answer; clause absent)."""

    def __init__(self, name: str) -> None:
        self.model_id, self.file_hash, self.calls = f"scripted-{name}", None, 0

    def _check(self, item: str) -> None:
        self.calls += 1
        if "tier-down" in item:
            raise TierUnreachableError(f"{self.model_id} is unreachable; start its server")

    def score(self, messages, item, continuations) -> Scored:
        self._check(item)
        sure = "unsure" not in item
        n = len(continuations)
        logprobs = [-0.01] + [-6.0] * (n - 1) if sure else [-0.7] * (n - 1) + [-0.69]
        return Scored(logprobs=logprobs, tokens_in=len(item.split()), tokens_out=len(continuations),
                      prefix_reused=False)

    def generate(self, messages, item, schema=None, max_tokens=128) -> Generated:
        self._check(item)
        text = json.dumps({"present": False, "clause": None} if "present" in json.dumps(schema or {})
                          else {"answer": None, "citations": []})
        return Generated(text=text, token_bytes=[1] * len(text), token_logprobs=[-0.01] * len(text),
                         tokens_in=len(item.split()), tokens_out=len(text))


@dataclass
class Served:
    url: str
    keys: dict[str, str]  # scope -> token
    key_ids: dict[str, str]
    settings: object
    app: object

    def client(self, scope: str | None = "admin", **kwargs) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[scope]}"} if scope else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120, **kwargs)  # a real model on a loaded 2-core machine


def start_server(app, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    return server, thread


def serve(tmp_path, **overrides) -> tuple[Served, uvicorn.Server, threading.Thread]:
    config = write_config(tmp_path / "cascade.yaml", fake_tiers(2), threshold=0.6)
    # A down tier fails an item after one quick retry (the defaults back off for about 30 s).
    settings = load_settings(config, data_dir=str(tmp_path / "data"), service_max_body_kb=MAX_BODY_KB,
                             batch_max_retries=1, batch_retry_backoff_s=0.05, **overrides)
    app = create_app(settings, backends={"t0": ScriptedBackend("t0"), "t1": ScriptedBackend("t1")},
                     webhook_interval_s=0.2)
    store = KeyStore(settings.audit_url)
    created = {scope: store.create([scope], name=f"{scope} key") for scope in SCOPES}
    store.close()
    port = free_port()
    server, thread = start_server(app, port)
    served = Served(f"http://127.0.0.1:{port}", {s: k.token for s, k in created.items()},
                    {s: k.key_id for s, k in created.items()}, settings, app)
    return served, server, thread


@pytest.fixture(scope="session")
def service(tmp_path_factory):
    served, server, thread = serve(tmp_path_factory.mktemp("service"), service_rate_limit_per_min=0)
    yield served
    server.should_exit = True
    thread.join(timeout=30)
