"""Data policies: confidential items stay on the machine, external tiers see redacted text,
secrets never reach logs or the audit store, and bad policies fail at start-up."""

from __future__ import annotations

import json
import logging
import math
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import yaml
from sqlalchemy import create_engine, text

from agents.backends import FakeScoringBackend
from agents.backends.litellm_backend import Completion
from agents.errors import ConfigError, ModelError
from agents.retrieval import Example
from orchestrator import Cascade, load_settings
from tests.conftest import SMOL, free_port

LABELS = ["spam", "ham"]
CLOUD = {"name": "cloud", "kind": "litellm", "locality": "external", "model": "openai/gpt-4o-mini"}
LOCAL_T1 = {"name": "t1", "kind": "llama_cpp", "model_path": "y.gguf"}


class RecordingExternalTier:
    """Stands in for a cloud model: records every prompt it receives and answers with the first
    label its answer schema allows (so the answer is whatever label text it was sent)."""

    model_id = "recording-cloud"
    file_hash = None

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def complete(self, messages, schema=None) -> Completion:
        self.prompts.append("\n".join(m["content"] for m in messages))
        first = schema["properties"]["label"]["enum"][0]
        return Completion(text=json.dumps({"label": first}), tokens=None, tokens_in=10, tokens_out=2, cost=0.001)


def config(path, tiers, privacy=None, threshold=0.9, **extra):
    task = {"threshold": threshold, **({"privacy": privacy} if privacy else {})}
    path.write_text(yaml.safe_dump({"tiers": tiers, "tasks": {"classify": task}, **extra}))
    return path


def unsure(n=1):
    return FakeScoringBackend([{"spam": math.log(0.55), "ham": math.log(0.45)}] * n)


def test_confidential_item_ends_in_review_and_nothing_is_sent(tmp_path):
    """Real SmolLM2 on tier 1 (a threshold it cannot reach), a recording fake as the cloud."""
    cloud = RecordingExternalTier()
    path = config(tmp_path / "c.yaml", [SMOL, CLOUD], threshold=0.999)
    with Cascade.from_config(path, data_dir=str(tmp_path / "data"), backends={"cloud": cloud}) as cascade:
        result = cascade.classify("Your parcel is held, pay the fee at http://bit.ly/x", LABELS, confidential=True)
        run = cascade.audit.get_run(result.run_id)
        queue = cascade.review_queue()
    assert cloud.prompts == []
    assert result.outcome == "needs_review" and result.answer is None and len(result.attempts) == 1
    assert "data policy (forbid)" in result.reason and "['cloud']" in result.reason
    assert run["status"] == "needs_review"
    assert run["params"]["data_policy"] == {"source": "confidential call", "external": "forbid", "keep_examples": False}
    assert [r["id"] for r in queue] == [result.run_id]


def test_task_policy_forbid_keeps_every_item_local_but_local_tiers_still_run(tmp_path):
    cloud = RecordingExternalTier()
    t1 = FakeScoringBackend([{"spam": math.log(0.99), "ham": math.log(0.01)}])
    tiers = [{"name": "t0", "kind": "llama_cpp", "model_path": "x.gguf"}, CLOUD, LOCAL_T1]
    path = config(tmp_path / "c.yaml", tiers, privacy={"external": "forbid"})
    with Cascade.from_config(path, data_dir=str(tmp_path / "data"),
                             backends={"t0": unsure(), "cloud": cloud, "t1": t1}) as cascade:
        result = cascade.classify("hello", LABELS)
    assert cloud.prompts == []
    assert [a.tier_name for a in result.attempts] == ["t0", "t1"]  # skipped the external tier, not the local one
    assert result.outcome == "accepted" and result.answer == "spam"


def test_external_tier_gets_redacted_text_and_the_answer_is_restored(tmp_path):
    cloud = RecordingExternalTier()
    path = config(tmp_path / "c.yaml", [{"name": "t0", "kind": "llama_cpp", "model_path": "x.gguf"}, CLOUD],
                  privacy={"external": "redact"})
    labels = ["forward to Maria Garcia", "archive"]
    item = "Please ask Maria Garcia (maria.garcia@example.com, +44 20 7946 0958) to call me back about card 4111 1111 1111 1111."
    scores = FakeScoringBackend([{labels[0]: math.log(0.5), labels[1]: math.log(0.5)}])
    with Cascade.from_config(path, data_dir=str(tmp_path / "data"), backends={"t0": scores, "cloud": cloud}) as cascade:
        result = cascade.classify(item, labels)
        run = cascade.audit.get_run(result.run_id)
        engine = create_engine(cascade.settings.audit_url)
    [sent] = cloud.prompts
    for value in ("Maria Garcia", "maria.garcia@example.com", "7946 0958", "4111 1111 1111 1111"):
        assert value not in sent
    assert result.answer == "forward to Maria Garcia" and result.tier_name == "cloud"  # restored from a placeholder
    counts = result.attempts[1].redactions
    assert counts["PERSON"] == 1 and counts["EMAIL_ADDRESS"] == 1 and counts["PHONE_NUMBER"] == 1
    assert counts["CREDIT_CARD"] == 1 and result.attempts[0].redactions == {}  # the local tier saw the text
    assert run["attempts"][1]["redactions"] == counts
    with engine.connect() as db:  # the audit store holds counts, never a value sent out
        dump = json.dumps([[list(r) for r in db.execute(text(f"SELECT * FROM {t}"))]
                           for t in ("runs", "attempts")], default=str)
    engine.dispose()
    assert "maria.garcia@example.com" not in dump and "7946 0958" not in dump and "4111" not in dump


def test_confidential_item_never_becomes_an_example(tmp_path):
    """A confident local tier-2 answer is normally learned; not for a confidential item."""
    t1 = FakeScoringBackend([{"spam": math.log(0.99), "ham": math.log(0.01)}] * 2)
    tiers = [{"name": "t0", "kind": "llama_cpp", "model_path": "x.gguf"}, LOCAL_T1]
    path = config(tmp_path / "c.yaml", tiers)
    with Cascade.from_config(path, data_dir=str(tmp_path / "data"), backends={"t0": unsure(2), "t1": t1}) as cascade:
        cascade.examples.add("classify", [Example(text="seed example", label="ham", source="test")])
        secret = cascade.classify("Transfer 5000 EUR to account 12, code 7781", LABELS, confidential=True)
        ordinary = cascade.classify("Win a free cruise, reply YES", LABELS)
        stored = {e.text for e in cascade.examples.list("classify")}
        secret_run = cascade.audit.get_run(secret.run_id)
    assert secret.tier_name == ordinary.tier_name == "t1"
    assert "Transfer 5000 EUR to account 12, code 7781" not in stored and "Win a free cruise, reply YES" in stored
    assert "learned_example" not in secret_run["params"]


def test_review_resolution_is_audited_and_teaches_unless_confidential(tmp_path):
    path = config(tmp_path / "c.yaml", [{"name": "t0", "kind": "llama_cpp", "model_path": "x.gguf"}, CLOUD],
                  privacy={"external": "forbid"})
    with Cascade.from_config(path, data_dir=str(tmp_path / "data"), backends={"t0": unsure(2)}) as cascade:
        plain = cascade.classify("Claim your reward now", LABELS)
        secret = cascade.classify("My PIN is 4455", LABELS, confidential=True)
        with pytest.raises(Exception, match="not one of"):
            cascade.resolve_review(plain.run_id, "maybe", reviewer="ana")
        cascade.resolve_review(plain.run_id, "spam", reviewer="ana", note="obvious", text="Claim your reward now")
        cascade.resolve_review(secret.run_id, "ham", reviewer="ana", text="My PIN is 4455")
        with pytest.raises(Exception, match="already"):
            cascade.resolve_review(plain.run_id, "spam", reviewer="bo")
        stored = {e.text: e for e in cascade.examples.list("classify")}
        run = cascade.audit.get_run(plain.run_id)
        assert cascade.review_queue() == []
    assert stored["Claim your reward now"].reviewer == "ana" and "My PIN is 4455" not in stored
    assert run["review"]["answer"] == "spam" and run["review"]["reviewer"] == "ana"


class _EchoingAuthServer(BaseHTTPRequestHandler):
    """A provider that rejects the key and, carelessly, quotes it back in its error body."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"error": {"message": f"bad key: {self.headers.get('Authorization')}",
                                     "type": "invalid_request_error"}}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_api_key_never_reaches_logs_errors_or_the_audit_store(tmp_path, monkeypatch, caplog, capsys):
    secret = "sk-test-SECRET-5f1c9a77d2"
    monkeypatch.setenv("CASCADE_TEST_PROVIDER_KEY", secret)
    server = HTTPServer(("127.0.0.1", free_port()), _EchoingAuthServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cloud = {**CLOUD, "api_base": f"http://127.0.0.1:{server.server_port}/v1", "api_key_env": "CASCADE_TEST_PROVIDER_KEY"}
    path = config(tmp_path / "c.yaml", [{"name": "t0", "kind": "llama_cpp", "model_path": "x.gguf"}, cloud],
                  privacy={"external": "allow"})
    caplog.set_level(logging.DEBUG)
    try:
        with Cascade.from_config(path, data_dir=str(tmp_path / "data"), backends={"t0": unsure()}) as cascade:
            with pytest.raises(ModelError) as failure:
                cascade.classify("hello there", LABELS)
            logging.getLogger("provider").warning("request failed with key %s", secret)  # a careless library
            engine = create_engine(cascade.settings.audit_url)
            exported = json.dumps(list(cascade.audit.export(since=None)), default=str)
    finally:
        server.shutdown()
    with engine.connect() as db:
        dump = json.dumps([[list(r) for r in db.execute(text(f"SELECT * FROM {t}"))]
                           for t in ("runs", "attempts")], default=str)
    engine.dispose()
    captured = capsys.readouterr()
    assert "gpt-4o-mini" in str(failure.value)  # the error still says which tier failed
    assert failure.value.run_id and "failed" in dump
    for place in (str(failure.value), caplog.text, captured.out, captured.err, dump, exported):
        assert secret not in place
    assert "request failed with key ***" in caplog.text


@pytest.mark.parametrize("bad, message", [
    ({"tasks": {"classify": {"privacy": {"external": "sometimes"}}}}, "tasks.classify.privacy.external"),
    ({"tasks": {"classify": {"privacy": {"entities": ["EMAIL_ADDRESS", "SHOE_SIZE"]}}}}, "SHOE_SIZE"),
    ({"tasks": {"classify": {"privacy": {"redact": True}}}}, "privacy.redact"),
])
def test_bad_policies_fail_at_start_up(tmp_path, bad, message):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"tiers": [SMOL], **bad}))
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_settings(path)


def test_a_litellm_tier_without_locality_fails_at_start_up(tmp_path):
    tier = {k: v for k, v in CLOUD.items() if k != "locality"}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"tiers": [SMOL, tier]}))
    with pytest.raises(ConfigError, match=r"tiers\.1\.litellm\.locality: Field required"):
        load_settings(path)
