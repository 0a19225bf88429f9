"""`cascade eval` with fake tiers: the replay cache (a second run makes no model calls), the whole
policy comparison end to end, and bad data files (errors naming the row and the field)."""

import hashlib
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from agents.backends.llama_cpp import Scored
from agents.errors import InvalidInputError
from cli.main import app
from evaluation.replay import TierSpec, check_jsonl, load_eval_data
from evaluation.ladder import Price, price_of
from evaluation.run import run_eval


class KeywordScorer:
    """Scores 'fraud' high when the item mentions a prize; `noise` flips some answers by text hash.
    Answers "yes" to verification. Counts its calls."""

    def __init__(self, noise: int) -> None:
        self.noise, self.calls = noise, 0

    def score(self, messages, item, continuations) -> Scored:
        self.calls += 1
        text = item.rsplit("Text:\n", 1)[-1]
        if continuations == ["yes", "no"]:
            return Scored(logprobs=[-0.2, -1.7], tokens_in=len(item.split()), tokens_out=2, prefix_reused=True)
        fraud = "prize" in text
        if int(hashlib.sha256(text.encode()).hexdigest(), 16) % self.noise == 0:
            fraud = not fraud
        scores = {"fraud": -0.1 if fraud else -2.5, "legit": -2.5 if fraud else -0.1}
        return Scored(logprobs=[scores[c] for c in continuations], tokens_in=len(item.split()), tokens_out=3,
                      prefix_reused=True)


def fake_embed(texts):
    """384-d like MiniLM: one direction for prizes, another for the rest, a third by text hash."""
    v = np.zeros((len(texts), 384))
    for i, t in enumerate(texts):
        v[i, 0 if "prize" in t else 1] = 1.0
        v[i, 2] = (int(hashlib.sha256(t.encode()).hexdigest(), 16) % 100) / 100
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def write_rows(path, n=160):
    rows = [{"text": f"Claim your prize number {i} now" if i % 4 == 0 else f"See you at lunch, item {i}",
             "label": "spam" if i % 4 == 0 else "ham"} for i in range(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def fake_tiers():
    small, large = KeywordScorer(noise=5), KeywordScorer(noise=23)
    return (TierSpec("small", "a" * 64, lambda: small), TierSpec("large", "b" * 64, lambda: large),
            TierSpec("verify", "a" * 64, lambda: small))


def run(tmp_path, data, **kw):
    return run_eval("fraud", str(data), n=40, fit_size=60, data_dir=tmp_path / "data", demos=2, demo_pool=40,
                    price_small=Price(0.0, 0.0, "test"), price_large=Price(1.0, 2.0, "test"), tiers=fake_tiers(),
                    embed=fake_embed, **kw)


def test_second_run_replays_without_model_calls(tmp_path):
    data = write_rows(tmp_path / "rows.jsonl")
    first = run(tmp_path, data, plot_dir=tmp_path / "plots")
    assert first["model_calls"] == {"small": 100, "large": 100, "verify": 40}
    second = run(tmp_path, data)
    assert second["model_calls"] == {"small": 0, "large": 0, "verify": 0}
    assert second["policies"] == first["policies"]
    assert {p.rsplit("/", 1)[-1] for p in first["plots"]} == {
        "cost-quality.png", "reliability-cascade.png", "reliability-self-verification.png"}


def test_every_policy_is_reported(tmp_path):
    result = run(tmp_path, write_rows(tmp_path / "rows.jsonl"))
    rows = {row["policy"]: row for row in result["policies"]}
    assert set(rows) == {"always-small", "always-large", "random", "oracle", "calibrated cascade",
                         "prompt-only kNN router", "self-verification"}
    assert result["quality_metric"] == "F1 (fraud)"
    assert rows["always-small"]["escalation_rate"] == 0 and rows["always-large"]["escalation_rate"] == 1
    assert rows["oracle"]["quality"] >= max(rows["always-small"]["quality"], rows["always-large"]["quality"])
    m = result["calibration"]["escalated"] / result["sizes"]["test"]
    for name in ("random", "prompt-only kNN router", "self-verification", "calibrated cascade"):
        assert rows[name]["escalation_rate"] == pytest.approx(m)  # compared at the cascade's rate
    assert rows["always-small"]["cost_per_item"] == 0  # tier 1 priced 0 here
    assert rows["always-large"]["silent_failure_rate"] == 0


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ('{"question": "q", "answer": "a"}\n', 'row 1: missing field "text"'),
    ('{"text": "hi", "label": "ham"}\n{"text": "hi there"}\n', 'row 2: missing field "label"'),
    ('{"text": "hi", "label": 3}\n', 'row 1: field "label" must be a string'),
    ('{"text": "  ", "label": "ham"}\n', 'row 1: field "text" is empty'),
    ('{"text": "hi", "label": "maybe"}\n', 'row 1: field "label" is \'maybe\''),
    ('{"text": "hi", "label": "ham"}\nnot json\n', "row 2: not valid JSON"),
    ('["hi", "ham"]\n', "row 1: expected a JSON object"),
])
def test_bad_data_files_name_the_row_and_field(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_jsonl(path, "fraud")


def test_bad_task_or_set():
    with pytest.raises(InvalidInputError, match="label tasks"):
        load_eval_data("ask", "sms")
    with pytest.raises(InvalidInputError, match="no fraud labels"):
        load_eval_data("fraud", "banking77")


def test_price_from_litellm_map_or_number():
    assert price_of("0.5") == Price(0.5, 0.5, "configured")
    mapped = price_of("gpt-4o-mini")
    assert mapped.input_per_1k > 0 and mapped.output_per_1k > mapped.input_per_1k
    with pytest.raises(InvalidInputError, match="price map"):
        price_of("no-such-model-xyz")


def test_cli_bad_file_exits_2_naming_row_and_field(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text('{"text": "a", "label": "ham"}\n{"question": "q", "answer": "a"}\n')
    result = CliRunner().invoke(app, ["eval", "--task", "classify", "--data", str(path), "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "row 2" in result.output and 'missing field "text"' in result.output
