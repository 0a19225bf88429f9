"""`cascade train` from a JSONL file and from the example store; bad input is a clear error."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from cli.train import train
from tests.orchestrator.training.test_classifier import ROWS

app = typer.Typer()
app.command()(train)


def write_rows(path, rows):
    path.write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in rows))
    return path


def test_missing_data_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("CASCADE_CONFIG", raising=False)
    result = CliRunner().invoke(app, ["--task", "classify", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "give --data" in result.output
    result = CliRunner().invoke(app, ["--task", "ask", "--data", "x.jsonl", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "classify or fraud" in result.output


@pytest.mark.slow
def test_train_from_a_file_and_the_store(tmp_path, monkeypatch, embedder):
    from agents.retrieval import Example, ExampleStore

    monkeypatch.delenv("CASCADE_CONFIG", raising=False)
    rows = [(t, label) for label, texts in ROWS.items() for t in texts]
    data = write_rows(tmp_path / "rows.jsonl", rows[:-2])
    store = ExampleStore(path=tmp_path / "d" / "qdrant", embedder=embedder)
    store.add("classify", [Example(text=t, label=l, source="reviewer:alice") for t, l in rows[-2:]])
    store.close()
    args = ["--task", "classify", "--data", str(data), "--from-store", "--method", "frozen", "--threads", "1",
            "--heldout", "0.25", "--data-dir", str(tmp_path / "d"), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    manifest = json.loads((tmp_path / "d" / "trained" / "classifier" / "classify" / out["artifact"] /
                           "manifest.json").read_text())
    assert manifest["recipe"]["fit_rows"] + manifest["heldout"]["n"] == len(rows)  # file rows + store rows
    assert manifest["labels"] == sorted(ROWS) and out["heldout"]["accuracy"] is not None
