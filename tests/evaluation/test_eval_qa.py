"""`cascade eval --task ask` (document QA): correctness encoding, the policies on a hand-checkable
case, replay with fake tiers (a second run makes no model call), bad input, and one real run on six
HaluEval items with the bundled models."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from agents.backends.llama_cpp import Generated, Scored
from agents.errors import InvalidInputError
from cli.main import app
from evaluation.qa import encode, qa_splits
from evaluation.replay import TierSpec
from evaluation.ladder import Price
from evaluation.run import run_eval
from evaluation.policies import (
    accuracy,
    always_large,
    always_small,
    oracle,
    random_at_rate,
    summarize,
)
from tests.conftest import FakeEmbed

POLICIES = {"always-small", "always-large", "random", "oracle", "calibrated cascade", "prompt-only kNN router",
            "self-verification"}


def number(text: str) -> int:
    return int(re.findall(r"item (\d+)\?", text)[-1])


class FakeQA:
    """Answers item i right iff right(i) (citing its passage), with token log-probs high when right.
    As a judge, says yes iff the answer's word appears in the passage. Counts its calls."""

    def __init__(self, right) -> None:
        self.right, self.calls = right, 0

    def generate(self, messages, item, schema=None, max_tokens=128) -> Generated:
        self.calls += 1
        i = number(item)
        answer = f"ans{i}" if self.right(i) else f"wrong{i}"
        text = json.dumps({"answer": answer, "citations": [{"passage": 1, "quote": f"Fact {i}"}]})
        lp = -0.05 if self.right(i) else -2.0
        return Generated(text=text, token_bytes=[1] * len(text), token_logprobs=[lp] * len(text),
                         tokens_in=len(item.split()), tokens_out=len(text) // 4)

    def score(self, messages, item, continuations) -> Scored:
        self.calls += 1
        passage, answer = item.split("Passage: ")[1].split("\n")[0], item.rsplit("Answer: ", 1)[1]
        yes = answer in passage
        return Scored(logprobs=[-0.1, -2.5] if yes else [-2.5, -0.1], tokens_in=len(item.split()), tokens_out=2,
                      prefix_reused=True)


def small_right(i):
    return i % 3 != 0


def large_right(i):
    return i % 2 == 0


def write_qa(path, n=40):
    rows = [{"knowledge": f"Fact {i}: the answer is ans{i}.", "question": f"What is item {i}?",
             "right_answer": f"ans{i}", "hallucinated_answer": f"wrong{i}"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def fake_tiers():
    small, large = FakeQA(small_right), FakeQA(large_right)
    return (TierSpec("small", "a" * 64, lambda: small), TierSpec("large", "b" * 64, lambda: large),
            TierSpec("verify", "a" * 64, lambda: small))


def run(tmp_path, data, embed=None, **kw):
    return run_eval("ask", str(data), n=12, fit_size=20, data_dir=tmp_path / "data", target_accuracy=0.8,
                    price_small=Price(0.0, 0.0, "test"), price_large=Price(1.0, 2.0, "test"), tiers=fake_tiers(),
                    embed=embed or FakeEmbed(), **kw)


def test_encoding_and_policies_on_a_hand_checked_case():
    t = encode([True, False, True, False], [True, True, False, False], small_cost=[0, 0, 0, 0],
               large_cost=[1, 1, 1, 1], small_ms=[10, 10, 10, 10], large_ms=[100, 100, 100, 100])
    assert t.gold.tolist() == [1, 1, 1, 1]
    assert t.small_correct.tolist() == [True, False, True, False]
    assert t.large_correct.tolist() == [True, True, False, False]
    rows = {r["policy"]: r for r in (summarize([p], t, accuracy, 1.0) for p in
                                     (always_small(t), always_large(t), oracle(t, accuracy)))}
    assert rows["always-small"]["quality"] == 0.5 and rows["always-large"]["quality"] == 0.5
    assert rows["oracle"]["quality"] == 0.75 and rows["oracle"]["escalation_rate"] == 0.25  # only item 1 is fixed
    assert rows["always-large"]["cost_per_item"] == 1 and rows["always-small"]["cost_per_item"] == 0
    assert rows["oracle"]["apgr"] is None  # both tiers equal: no gap to recover
    assert summarize(random_at_rate(t, 2, accuracy), t, accuracy, 1.0)["escalation_rate"] == 0.5


def test_fake_tiers_figures_replay_and_plots(tmp_path):
    data = write_qa(tmp_path / "qa.jsonl")
    _, _, test = qa_splits(str(data), 12, 20, 0)
    ids = [number(r["question"]) for r in test]
    first = run(tmp_path, data, plot_dir=tmp_path / "plots")
    assert first["model_calls"] == {"small": 32, "large": 32,
                                    "verify": len(ids)}  # every test answer is verified once
    rows = {r["policy"]: r for r in first["policies"]}
    assert set(rows) == POLICIES and first["task"] == "ask"
    assert rows["always-small"]["quality"] == pytest.approx(np.mean([small_right(i) for i in ids]))
    assert rows["always-large"]["quality"] == pytest.approx(np.mean([large_right(i) for i in ids]))
    assert rows["oracle"]["quality"] == pytest.approx(np.mean([small_right(i) or large_right(i) for i in ids]))
    assert rows["always-small"]["cost_per_item"] == 0 and rows["always-large"]["escalation_rate"] == 1
    # the signals separate right from wrong here: the calibrated confidence and P(yes) rank perfectly
    assert rows["calibrated cascade"]["auroc"] == 1.0 and rows["self-verification"]["auroc"] == 1.0
    assert first["calibration"]["test_auroc"] == 1.0
    m = first["calibration"]["escalated"] / first["sizes"]["test"]
    for name in ("random", "prompt-only kNN router", "self-verification", "calibrated cascade"):
        assert rows[name]["escalation_rate"] == pytest.approx(m)
    assert {p.rsplit("/", 1)[-1] for p in first["plots"]} == {
        "cost-quality.png", "reliability-cascade.png", "reliability-self-verification.png"}
    assert list((tmp_path / "data" / "eval" / "cache").glob("qa-small-*.json"))

    embed = FakeEmbed()
    second = run(tmp_path, data, embed=embed)
    assert second["model_calls"] == {"small": 0, "large": 0, "verify": 0} and embed.calls == 0
    assert second["policies"] == first["policies"]


def test_not_a_qa_data_set(tmp_path):
    with pytest.raises(InvalidInputError, match="'sms' is not a QA data set"):
        run(tmp_path, "sms")
    bad = tmp_path / "labels.jsonl"
    bad.write_text('{"text": "hi", "label": "ham"}\n')
    with pytest.raises(InvalidInputError, match="row 1: not a QA row, missing knowledge, question, right_answer"):
        run(tmp_path, bad)
    broken = tmp_path / "broken.jsonl"  # a line that is not JSON: named, never a raw decode error
    broken.write_text('{"knowledge": "k", "question": "q", "right_answer": "a"}\n{"knowledge": \n')
    with pytest.raises(InvalidInputError, match="broken.jsonl, row 2: not valid JSON"):
        run(tmp_path, broken)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(InvalidInputError, match="empty.jsonl is empty"):
        run(tmp_path, empty)
    result = CliRunner().invoke(app, ["eval", "--task", "ask", "--data", "sms", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "not a QA data set" in result.output


def test_real_run_on_six_halueval_items(models_dir, tmp_path):
    if not Path(os.environ.get("CASCADE_EVAL_DATA", "/work/shared/data"), "halueval_qa").is_dir():
        pytest.skip("HaluEval not found: set CASCADE_EVAL_DATA to the shared data directory")
    gemma = next((models_dir / "models").glob("*.gguf"))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / gemma.name).symlink_to(gemma.resolve())
    result = run_eval("ask", "halueval", n=3, fit_size=3, data_dir=tmp_path, threads=1,
                      root=os.environ.get("CASCADE_EVAL_DATA", "/work/shared/data"), plot_dir=tmp_path / "plots")
    assert result["sizes"] == {"test": 3, "fit": 3, "pool": 0, "skipped": 0}
    assert result["model_calls"]["smollm2-135m"] == 6 and result["model_calls"]["gemma3-270m"] == 6
    assert {r["policy"] for r in result["policies"]} == POLICIES
    assert all(0 <= r["quality"] <= 1 for r in result["policies"])
    assert sum(result["tiers"]["small"]["answers"].values()) == 3
    assert (tmp_path / "plots" / "cost-quality.png").stat().st_size > 0
