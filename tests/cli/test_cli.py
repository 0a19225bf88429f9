"""The `cascade` command over the real small model and a real SQLite audit log."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.conftest import SMOL, write_config

runner = CliRunner()


@pytest.fixture
def env(tmp_path, data_dir):
    config = write_config(tmp_path / "c.yaml", [SMOL], threshold=0.0)
    return {"CASCADE_DATA_DIR": str(data_dir), "CASCADE_CONFIG": str(config)}


def cascade(env, *args):
    return runner.invoke(app, list(args), env=env)


def test_classify_json_then_audit_list_and_show(env):
    result = cascade(env, "classify", "Free entry to win a prize, text WIN now", "-l", "spam", "-l", "ham", "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["answer"] in ("spam", "ham") and answer["tier_name"] == "smollm2-135m"

    listed = cascade(env, "audit", "list", "--json")
    assert listed.exit_code == 0
    runs = json.loads(listed.stdout)
    assert [r["id"] for r in runs] == [answer["run_id"]]

    shown = cascade(env, "audit", "show", answer["run_id"], "--json")
    run = json.loads(shown.stdout)
    assert run["answer"] == answer["answer"] and run["attempts"][0]["decision"] == "accept"

    table = cascade(env, "audit", "show", answer["run_id"])
    assert table.exit_code == 0 and "smollm2-135m" in table.output


def test_classify_table_output(env):
    result = cascade(env, "classify", "hello there", "-l", "greeting", "-l", "complaint")
    assert result.exit_code == 0 and "audit run:" in result.output


def test_bad_input_exits_2_with_message(env):
    result = cascade(env, "classify", "hello", "-l", "spam", "-l", "spam")
    assert result.exit_code == 2 and "duplicate label 'spam'" in result.output


def test_unknown_run_id(env):
    result = cascade(env, "audit", "show", "no-such-run")
    assert result.exit_code == 2 and "no run with id no-such-run" in result.output


def test_malformed_config_exits_2(env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tiers: [unclosed")
    result = cascade({**env, "CASCADE_CONFIG": str(bad)}, "audit", "list")
    assert result.exit_code == 2 and "not valid YAML" in result.output


def test_examples_add_list_remove(env, tmp_path):
    file = tmp_path / "seed.jsonl"
    file.write_text('{"text": "my card was stolen", "label": "lost or stolen card"}\n'
                    '{"text": "where is my new card", "label": "card arrival"}\n')
    added = cascade(env, "examples", "add", str(file), "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout) == {"read": 2, "added": 2, "near_duplicates": 0, "total": 2}
    listed = json.loads(cascade(env, "examples", "list", "--json").stdout)
    assert {e["label"] for e in listed} == {"lost or stolen card", "card arrival"} and listed[0]["source"] == str(file)
    assert cascade(env, "examples", "remove", listed[0]["id"]).exit_code == 0
    assert len(json.loads(cascade(env, "examples", "list", "--json").stdout)) == 1


def test_examples_add_bad_row_names_it(env, tmp_path):
    file = tmp_path / "bad.jsonl"
    file.write_text('{"text": "ok", "label": "a"}\n{"text": "no label"}\n')
    result = cascade(env, "examples", "add", str(file))
    assert result.exit_code == 2 and "row 2: field 'label' is missing" in result.output
