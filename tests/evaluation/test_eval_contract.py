"""`cascade eval --task contract` (contract review): the loader's errors, the quality rule on hand-made
answers, the split by contract, replay with fake tiers (a second run makes no model call), and one
real run on four CUAD (contract, category) pairs with the bundled models."""

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
from evaluation.contract import (
    NO_CLAUSE,
    contract_splits,
    right,
    run_eval_contract,
)
from evaluation.replay import TierSpec
from evaluation.ladder import Price
from evaluation.run import run_eval
from tests.conftest import FakeEmbed

POLICIES = {"always-small", "always-large", "random", "oracle", "calibrated cascade", "prompt-only kNN router",
            "self-verification"}
CATS = ("Governing Law", "Non-Compete")
DATA = os.environ.get("CASCADE_EVAL_DATA", "/work/shared/data")


def gold(i: int, category: str) -> bool:
    return (i + (category == "Non-Compete")) % 2 == 0


def small_right(i, category):
    return i % 3 != 0


def large_right(i, category):
    return category == "Governing Law" or i % 2 == 0


class FakeReviewer:
    """Says present iff gold when right(i, category), else the opposite; quotes the first allowed
    sentence; token log-probs high when right. As a judge, says yes iff the judged answer is right."""

    def __init__(self, right_fn) -> None:
        self.right, self.calls = right_fn, 0

    def generate(self, messages, item, schema=None, max_tokens=128) -> Generated:
        self.calls += 1
        i, category = int(re.findall(r"Contract (\d+)\.", item)[0]), item.rsplit("Clause category: ", 1)[1].split(" - ")[0]
        ok = self.right(i, category)
        present = gold(i, category) == ok
        clause = schema["anyOf"][0]["properties"]["clause"]["enum"][0] if present else None
        text = json.dumps({"present": present, "clause": clause})
        lp = -0.05 if ok else -2.0
        return Generated(text=text, token_bytes=[1] * len(text), token_logprobs=[lp] * len(text),
                         tokens_in=len(item.split()), tokens_out=len(text) // 4)

    def score(self, messages, item, continuations) -> Scored:
        self.calls += 1
        i = int(re.findall(r"Contract (\d+)\.", item)[0])
        category = item.split("Question: ")[1].split(" - ")[0]
        yes = (not item.endswith(NO_CLAUSE)) == gold(i, category)
        return Scored(logprobs=[-0.1, -2.5] if yes else [-2.5, -0.1], tokens_in=len(item.split()), tokens_out=2,
                      prefix_reused=True)


def write_contracts(path, n=24):
    """n short contracts (one chunk each) x both categories."""
    rows = [{"contract": f"Contract {i}. This Agreement is governed by the laws of the State of Delaware number {i}.",
             "category": c, "present": gold(i, c)} for i in range(n) for c in CATS]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def fake_tiers():
    small, large = FakeReviewer(small_right), FakeReviewer(large_right)
    return (TierSpec("small", "a" * 64, lambda: small), TierSpec("large", "b" * 64, lambda: large),
            TierSpec("verify", "a" * 64, lambda: small))


def run(tmp_path, data, embed=None, **kw):
    return run_eval("contract", str(data), n=12, fit_size=20, data_dir=tmp_path / "data", target_accuracy=0.8,
                    price_small=Price(0.0, 0.0, "test"), price_large=Price(1.0, 2.0, "test"), tiers=fake_tiers(),
                    embed=embed or FakeEmbed(), **kw)


def test_quality_rule_on_hand_made_answers():
    assert right({"status": "present", "span_ok": True}, True)
    assert not right({"status": "present", "span_ok": False}, True)  # a clause not in the passages: wrong
    assert right({"status": "absent", "span_ok": True}, False)
    assert not right({"status": "absent", "span_ok": True}, True)
    assert not right({"status": "present", "span_ok": True}, False)
    assert not right({"status": "invalid"}, False) and not right({"status": "skipped"}, True)


def test_split_by_contract(tmp_path):
    data = write_contracts(tmp_path / "c.jsonl")
    _, texts, fit, test = contract_splits(str(data), 7, 9, seed=3)
    assert len(fit) == 9 and len(test) == 7
    assert not {p.contract for p in fit} & {p.contract for p in test}  # no contract in both
    assert set(texts) == {p.contract for p in fit + test}
    with pytest.raises(InvalidInputError, match=r"has 48 \(contract, category\) pairs; --n 40 plus --fit-size 20 need more"):
        contract_splits(str(data), 40, 20)


def test_fake_tiers_figures_and_replay(tmp_path):
    data = write_contracts(tmp_path / "c.jsonl")
    _, texts, _, test = contract_splits(str(data), 12, 20, 0)
    ids = [(int(re.findall(r"Contract (\d+)\.", texts[p.contract])[0]), p.category) for p in test]
    first = run(tmp_path, data)
    assert first["model_calls"] == {"small": 32, "large": 32, "verify": 12}  # each pair once, each test answer judged
    rows = {r["policy"]: r for r in first["policies"]}
    assert set(rows) == POLICIES and first["task"] == "contract" and "presence accuracy" in first["quality_metric"]
    assert rows["always-small"]["quality"] == pytest.approx(np.mean([small_right(*x) for x in ids]))
    assert rows["always-large"]["quality"] == pytest.approx(np.mean([large_right(*x) for x in ids]))
    assert rows["oracle"]["quality"] == pytest.approx(np.mean([small_right(*x) or large_right(*x) for x in ids]))
    assert rows["calibrated cascade"]["auroc"] == 1.0 and rows["self-verification"]["auroc"] == 1.0
    assert first["sizes"]["gold_present"] == sum(gold(*x) for x in ids)

    embed = FakeEmbed()
    second = run(tmp_path, data, embed=embed)
    assert second["model_calls"] == {"small": 0, "large": 0, "verify": 0} and embed.calls == 0
    assert second["policies"] == first["policies"]


@pytest.mark.parametrize("row, message", [
    ({"contract": "Some text of a contract.", "category": "Governing Law"}, "row 1: not a contract row, missing present"),
    ({"text": "hi", "label": "ham"}, "row 1: not a contract row, missing contract, category, present"),
    ({"contract": "Text.", "category": "Governing Law", "present": "Yes"}, "row 1: field present must be true or false"),
    ({"contract": "Text.", "category": "Weather", "present": True}, "row 1: field category: unknown contract clause"),
    ({"contract": 7, "category": "Governing Law", "present": True}, "row 1: field contract must be the contract's text"),
])
def test_bad_rows_name_row_and_field(tmp_path, row, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(row) + "\n")
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        run(tmp_path, bad)


def test_not_a_contract_data_set(tmp_path):
    with pytest.raises(InvalidInputError, match="'sms' is not a contract data set"):
        run(tmp_path, "sms")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"contract": "t", "category": "Governing Law", "present": true}\n{"contract": \n')
    with pytest.raises(InvalidInputError, match="broken.jsonl, row 2: not valid JSON"):
        run(tmp_path, broken)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(InvalidInputError, match="empty.jsonl is empty"):
        run(tmp_path, empty)
    result = CliRunner().invoke(app, ["eval", "--task", "contract", "--data", "sms", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "not a contract data set" in result.output


def test_real_run_on_four_cuad_pairs(models_dir, tmp_path):
    if not Path(DATA, "cuad").is_dir():
        pytest.skip("CUAD not found: set CASCADE_EVAL_DATA to the shared data directory")
    gemma = next((models_dir / "models").glob("*.gguf"))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / gemma.name).symlink_to(gemma.resolve())
    # seed 10 draws two short contracts (8k and 27k characters: retrieval embeds every chunk), each split
    # holding a present and an absent pair; two contracts x two categories, one contract per split
    kw = {"n": 2, "fit_size": 2, "data_dir": tmp_path, "threads": 1, "root": DATA, "categories": CATS, "seed": 10}
    result = run_eval_contract("cuad", **kw)
    assert result["sizes"] == {"test": 2, "fit": 2, "pool": 0, "skipped": 0, "test_contracts": 1, "gold_present": 1}
    assert result["model_calls"]["smollm2-135m"] == 4 and result["model_calls"]["gemma3-270m"] == 4
    assert result["model_calls"]["smollm2-135m-verify"] == sum(
        result["tiers"]["small"]["answers"][s] for s in ("present", "absent"))  # every valid test answer judged
    assert {r["policy"] for r in result["policies"]} == POLICIES
    assert all(0 <= r["quality"] <= 1 for r in result["policies"])
    assert sum(result["tiers"]["small"]["answers"].values()) == 2
    replay = run_eval_contract("cuad", **kw)
    assert set(replay["model_calls"].values()) == {0} and replay["policies"] == result["policies"]
