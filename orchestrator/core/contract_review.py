"""Contract review through the cascade: chunk the contract, retrieve passages per clause category,
and run each (contract, category) as one audited "contract" task.

Retrieval is in memory: the contract's chunks (agents.documents.chunk_text) and each category's
query are embedded with all-MiniLM-L6-v2 and ranked by cosine similarity; only the k best chunks
reach the model, never the whole contract. Contracts are not stored (in Qdrant or elsewhere); the
audit keeps the contract's hash and the shown passages' offsets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from agents import contracts
from agents.contract_categories import validate_categories
from agents.documents import chunk_text
from agents.errors import InvalidInputError, ModelError
from agents.results import CascadeResult

PASSAGES = 3  # chunks shown per category: three 500-800 character chunks fit SmolLM2's 2,048-token context


class ContractPlan(NamedTuple):
    """A contract chunked and, per category, the passages retrieved for it (most similar first)."""

    sha256: str
    chars: int
    chunks: int
    shown: dict[str, list[contracts.ShownPassage]]


def check_k(k: Any) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 8:
        raise InvalidInputError(f"k must be an integer from 1 to 8 (passages shown per category); got {k!r}")


def plan_review(embed: Callable[[list[str]], np.ndarray], text: str, categories: list[str] | None = None,
                k: int = PASSAGES) -> ContractPlan:
    """Validate the contract, categories and k (InvalidInputError before any model runs), chunk the
    contract and pick each category's k closest chunks."""
    text = contracts.validate_contract(text)
    names = validate_categories(categories)
    check_k(k)
    spans = chunk_text(text)
    vectors = embed([text[s:e] for s, e in spans] + [contracts.query(c) for c in names])
    chunks, queries = vectors[:len(spans)], vectors[len(spans):]
    shown = {}
    for category, q in zip(names, queries):
        scores = chunks @ q
        best = np.argsort(-scores, kind="stable")[:k].tolist()  # most similar first, as ask shows them
        shown[category] = [contracts.ShownPassage(number=n, chunk=i, start=spans[i][0], end=spans[i][1],
                                                  score=float(scores[i])) for n, i in enumerate(best, start=1)]
    return ContractPlan(hashlib.sha256(text.encode("utf-8")).hexdigest(), len(text), len(spans), shown)


def review_category(run: Callable[..., CascadeResult], text: str, plan: ContractPlan, category: str,
                    **run_options) -> contracts.ContractClauseResult:
    """One category's audited "contract" run on its planned passages (a ModelError propagates)."""
    shown = plan.shown[category]
    result = run("contract", text=contracts.question(category), category=category,
                 passages=[text[p.start:p.end] for p in shown], sources=[p.model_dump(exclude={"number"}) for p in shown],
                 contract={"sha256": plan.sha256, "chars": plan.chars}, **run_options)
    return contracts.clause_result(result, category, shown, text)


def review_contract(run: Callable[..., CascadeResult], embed: Callable[[list[str]], np.ndarray], text: str,
                    categories: list[str] | None = None, k: int = PASSAGES) -> contracts.ContractReview:
    """Review `text` for each category with `run` (Cascade.run, or a variant of it). A tier failing
    outright (ModelError) fails that category's run (audited) and the review goes on with the next."""
    plan = plan_review(embed, text, categories, k)
    results = []
    for category, shown in plan.shown.items():
        try:
            results.append(review_category(run, text, plan, category))
        except ModelError as exc:  # run() recorded the failed run; keep reviewing the other categories
            failed = CascadeResult(run_id=exc.run_id or "", task="contract", outcome="failed", answer=None,
                                   confidence=None, tier_name=None, reason=exc.message, attempts=[], latency_ms=0.0,
                                   cost=0.0)
            results.append(contracts.clause_result(failed, category, shown, text))
    return contracts.ContractReview(contract_sha256=plan.sha256, chars=plan.chars, chunks=plan.chunks, results=results)
