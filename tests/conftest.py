"""Shared fixtures: real bundled models, the real local server, real SQLite and PostgreSQL."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from orchestrator import load_settings  # noqa: E402  # noqa: E402
from orchestrator.core.models import resolve_model_path  # noqa: E402
from orchestrator.core.serving import server_log, start_tier_server  # noqa: E402
from orchestrator.core.models import stop_server  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
MODELS_DIR = Path(os.environ.get("CASCADE_TEST_MODELS", Path(__file__).parent.parent / ".cascade-data"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path: Path, tiers: list[dict], threshold: float = 0.6, **extra) -> Path:
    path.write_text(yaml.safe_dump({"tiers": tiers, "tasks": {"classify": {"threshold": threshold}}, **extra}))
    return path


SMOL = {"name": "smollm2-135m", "kind": "llama_cpp", "model_path": "bundled:smollm2"}


def fake_tiers(n: int) -> list[dict]:
    """n llama.cpp tiers whose model file is never opened: the tests hand in their backends."""
    return [{"name": f"t{i}", "kind": "llama_cpp", "model_path": "unused.gguf"} for i in range(n)]


class FakeEmbed:
    """A MiniLM stand-in for replay logic: 384-d unit vectors from the text's characters, calls counted."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, texts):
        self.calls += 1
        v = np.zeros((len(texts), 384))
        for j, t in enumerate(texts):
            v[j, 0], v[j, 1 + sum(map(ord, t)) % 300] = 1.0, 1.0
        return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(scope="session")
def embedder():
    """The bundled MiniLM, loaded once for the session: loading takes seconds."""
    from agents.retrieval import Embedder

    return Embedder()


def gemma_tier(port: int, start: str = "manual") -> dict:
    """The bundled Gemma behind its local server on `port`; `start: manual` unless a test wants the
    Cascade to start the server itself (on_demand, the default ladder's setting)."""
    return {"name": "gemma3-270m", "kind": "litellm", "locality": "local", "model": "openai/gemma-3-270m",
            "schema_mode": "json_object_schema", "max_tokens": 32, "logprobs": False,
            "serve": {"model_path": "bundled:gemma3-270m", "port": port, "chat_format": "gemma", "start": start}}


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """One data dir for assembled model files, shared by the session (assembling takes seconds)."""
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    resolve_model_path("bundled:gemma3-270m", MODELS_DIR)
    return MODELS_DIR


@pytest.fixture(scope="session")
def gemma_server(models_dir, tmp_path_factory):
    """The real llama-cpp-python OpenAI-compatible server with the bundled Gemma, on a free port."""
    port = free_port()
    config = write_config(tmp_path_factory.mktemp("server") / "cascade.yaml", [SMOL, gemma_tier(port)])
    settings = load_settings(config, data_dir=str(models_dir))
    tier = settings.tiers[1]
    process = start_tier_server(settings, tier)
    log = server_log(settings, tier)
    yield {"port": port, "tier": gemma_tier(port), "log": log}
    stop_server(process)


@pytest.fixture
def data_dir(tmp_path, models_dir) -> Path:
    """A fresh data dir per test, with the assembled Gemma file linked in."""
    d = tmp_path / "data"
    (d / "models").mkdir(parents=True)
    for f in (models_dir / "models").glob("*.gguf"):
        (d / "models" / f.name).symlink_to(f)
    return d


@pytest.fixture(scope="session")
def postgres_admin():
    try:
        conn = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL must run on 127.0.0.1:5432 (.ci/run starts it): {exc}")
    yield conn
    conn.close()


@pytest.fixture
def postgres_url(postgres_admin):
    """A new empty PostgreSQL database for one test, dropped after it."""
    name = f"cascade_test_{uuid.uuid4().hex[:12]}"
    postgres_admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    postgres_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, data_dir):
    if request.param == "sqlite":
        return f"sqlite:///{data_dir / 'audit.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def trained_reader() -> Path:
    """A small extractive reader for `ask`, trained once from the bundled MiniLM on HaluEval train rows
    and kept in MODELS_DIR: a later session with the same rows and recipe reuses it. A fixed number of
    steps (not a time budget) so every machine trains the same reader: about 2-3 minutes on 2 idle
    threads, several times that on a loaded machine. Skips when ../shared/data has no HaluEval."""
    import random

    from agents.errors import InvalidInputError
    from evaluation.reader_data import halueval_split
    from orchestrator.training.artifacts import versions
    from orchestrator.training.reader import ReaderRecipe, examples_hash, train_reader

    try:
        rows = halueval_split(train_rows=900).train
    except InvalidInputError as exc:
        pytest.skip(f"no HaluEval to train a reader on: {exc}")
    random.Random(0).shuffle(rows)
    train, heldout = rows[40:], rows[:40]
    recipe = ReaderRecipe(epochs=2, max_steps=90, batch_size=16, lr=1.5e-4, max_length=160, eval_every=30,
                          patience=2, threads=2, freeze_embeddings=True)
    wanted = {**recipe.model_dump(), "train_rows": len(train), "heldout_rows": len(heldout)}
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    for manifest in reversed(versions(MODELS_DIR, "reader", "ask")):
        if manifest.data_hash == examples_hash(train) and manifest.recipe == wanted:
            return manifest.path
    return train_reader(train, heldout, data_dir=MODELS_DIR, task="ask", recipe=recipe, progress=False).path
