"""Bad input gets a clear error saying what to fix; no accepted task goes unrecorded."""

from __future__ import annotations

import pytest

from agents.errors import (
    ConfigError,
    InvalidInputError,
    ModelFileError,
    TierUnreachableError,
    UnknownTaskError,
)
from orchestrator import Cascade, load_settings
from tests.conftest import SMOL, free_port, gemma_tier, write_config


@pytest.fixture
def cascade(tmp_path, data_dir):
    with Cascade.from_config(write_config(tmp_path / "c.yaml", [SMOL]), data_dir=str(data_dir)) as c:
        yield c


@pytest.mark.parametrize("text, labels, message", [
    ("", ["a", "b"], "text is empty"),
    ("   \n", ["a", "b"], "text is empty"),
    (None, ["a", "b"], "text must be a string"),
    ("hello", [], "at least two labels"),
    ("hello", ["only"], "at least two labels"),
    ("hello", ["spam", "Spam"], "duplicate label 'Spam'"),
    ("hello", ["spam", ""], "non-empty string"),
    ("hello", "spam,ham", "labels must be a list"),
])
def test_bad_classify_input_is_rejected_before_acceptance(cascade, text, labels, message):
    with pytest.raises(InvalidInputError, match=message):
        cascade.classify(text, labels)
    assert cascade.audit.list_runs() == []  # rejected, so never accepted: nothing to record


def test_unknown_task(cascade):
    with pytest.raises(UnknownTaskError, match="unknown task 'summarise'; known tasks: classify"):
        cascade.run("summarise", text="x", labels=["a", "b"])


def test_missing_gguf_file_fails_the_run_and_records_it(tmp_path, data_dir):
    tier = {**SMOL, "model_path": str(tmp_path / "nope.gguf")}
    with Cascade.from_config(write_config(tmp_path / "c.yaml", [tier]), data_dir=str(data_dir)) as cascade:
        with pytest.raises(ModelFileError, match="nope.gguf does not exist; fix model_path") as info:
            cascade.classify("hello there", ["a", "b"])
        run = cascade.audit.get_run(info.value.run_id)
    assert run["status"] == "failed" and run["error_type"] == "ModelFileError"
    assert run["attempts"][0]["decision"] == "error" and "does not exist" in run["attempts"][0]["error"]


def test_corrupt_gguf_file(tmp_path, data_dir):
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + b"\x00garbage" * 1000)
    tier = {**SMOL, "model_path": str(corrupt)}
    with Cascade.from_config(write_config(tmp_path / "c.yaml", [tier]), data_dir=str(data_dir)) as cascade:
        with pytest.raises(ModelFileError, match="corrupt or not a GGUF model") as info:
            cascade.classify("hello there", ["a", "b"])
        assert cascade.audit.get_run(info.value.run_id)["status"] == "failed"


def test_unreachable_tier_says_what_to_run_and_keeps_tier1_attempt(tmp_path, data_dir):
    closed_port = free_port()  # nothing listens there
    config = write_config(tmp_path / "c.yaml", [SMOL, gemma_tier(closed_port)], threshold=1.0)
    with Cascade.from_config(config, data_dir=str(data_dir)) as cascade:
        with pytest.raises(TierUnreachableError, match="cascade models serve gemma3-270m") as info:
            cascade.classify("hello there", ["a", "b"])
        run = cascade.audit.get_run(info.value.run_id)
    assert run["status"] == "failed" and run["error_type"] == "TierUnreachableError"
    assert [a["decision"] for a in run["attempts"]] == ["escalate", "error"]
    assert run["attempts"][0]["answer"] in ("a", "b")


@pytest.mark.parametrize("content, message", [
    ("tiers: [unclosed", "not valid YAML"),
    ("- just\n- a list\n", "must hold a mapping"),
    ("tasks: {}\n", "tiers: Field required"),
    ("tiers: []\n", "tiers: List should have at least 1 item"),
    ("tiers:\n  - {name: a, kind: llama_cpp, model_path: x, colour: red}\n", "colour: Extra inputs are not permitted"),
    ("tiers:\n  - {name: a, kind: telepathy}\n", "does not match any of the expected tags"),
    ("tiers:\n  - {name: a, kind: llama_cpp, model_path: x}\n  - {name: a, kind: llama_cpp, model_path: y}\n",
     "tier names must be unique; repeated: a"),
    ("tiers:\n  - {name: a, kind: llama_cpp, model_path: x}\ntasks: {classify: {threshold: 1.5}}\n",
     "tasks.classify.threshold: Input should be less than or equal to 1"),
    ("tiers:\n  - {name: a, kind: llama_cpp, model_path: x}\ntasks: {poetry: {}}\n", "unknown task"),
])
def test_malformed_config(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(path)
    assert str(path) in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "absent.yaml")


def test_missing_api_key_variable_is_reported_at_start(tmp_path, data_dir, monkeypatch):
    monkeypatch.delenv("CASCADE_TEST_KEY", raising=False)
    tier = {"name": "cloud", "kind": "litellm", "locality": "external", "model": "openai/gpt-4o-mini", "api_key_env": "CASCADE_TEST_KEY"}
    with pytest.raises(ConfigError, match="CASCADE_TEST_KEY"):
        Cascade.from_config(write_config(tmp_path / "c.yaml", [SMOL, tier]), data_dir=str(data_dir))
