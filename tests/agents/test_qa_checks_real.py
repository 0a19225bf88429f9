"""The support judge with the real bundled SmolLM2 (one llama.cpp thread) on real HaluEval rows.

The tiny judge is weak (see `cascade bench qa-checks`); what is asserted is only what holds on these
rows: it ranks the row's right answer above a clearly wrong one, and the full
support check (with MiniLM and the shipped weights) records every signal."""

from __future__ import annotations

import pytest

from agents import qa, qa_checks
from agents.backends.llama_cpp import LlamaCppBackend, LlamaCppOptions
from agents.retrieval import Embedder
from orchestrator.core.models import resolve_model_path
from orchestrator.core.qa_support import load_support_model
from tests.orchestrator.core.test_qa_real import halueval_rows, needs_halueval

pytestmark = pytest.mark.slow  # real models

# (row of qa_data.jsonl, a clearly wrong answer; None: the row's hallucinated answer). Not every row
# holds: on row 0 the judge prefers "First for Women" (0.315) to the right "Arthur's Magazine" (0.274).
CASES = [(1, "Mumbai"), (2, None), (3, None)]


@pytest.fixture(scope="module")
def smol(models_dir):
    return LlamaCppBackend(LlamaCppOptions(model_path=resolve_model_path("bundled:smollm2", models_dir), n_threads=1))


@needs_halueval
@pytest.mark.parametrize("row, wrong", CASES)
def test_the_judge_scores_the_right_answer_above_a_clearly_wrong_one(smol, row, wrong):
    r = halueval_rows(row + 1)[row]
    right_p = qa_checks.judge(smol, r["question"], r["right_answer"], [r["knowledge"]])
    wrong_p = qa_checks.judge(smol, r["question"], wrong or r["hallucinated_answer"], [r["knowledge"]])
    assert 0 < wrong_p < right_p < 1


@needs_halueval
def test_the_support_check_with_the_real_models_records_every_signal(smol):
    """The shipped weights decide whether the judge runs (it costs a forward pass); the reason says which."""
    r = halueval_rows(2)[1]
    cite = [qa.Citation(passage=1, quote="head office in Delhi")]
    model = load_support_model()
    check = qa.support_check(r["question"], qa.QAOutput(answer=r["right_answer"], citations=cite), [r["knowledge"]],
                             Embedder().embed, qa.SUPPORT_THRESHOLD, model, smol)
    assert check.name == "support" and 0 < check.score < 1
    assert "similarity" in check.reason and "grounding 1.000" in check.reason
    assert ("judge P(yes)" if model.uses_judge else "judge not run: it has no weight") in check.reason
