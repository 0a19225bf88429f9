"""The four task endpoints: the SDK's result (with its audit run id) for one item."""

from __future__ import annotations

from fastapi import APIRouter, Request

from agents.contracts import ContractReview
from agents.fraud import FraudResult
from agents.qa import AnswerResult
from agents.results import CascadeResult

from service.deps import StateDep, TasksKey
from service.idempotent import respond_once
from service.schemas import AskRequest, ClassifyRequest, ContractRequest, FraudRequest

router = APIRouter(prefix="/v1", tags=["tasks"])


def _serve(request: Request, state, principal, body, work):
    def run():
        result = state.call(principal.key_id, work)
        for one in getattr(result, "results", None) or [result]:  # a contract review: one run per category
            state.metrics.observe_result(one)
        return result

    return respond_once(request, state, principal, body, run)


@router.post("/classify", response_model=CascadeResult)
def classify(body: ClassifyRequest, request: Request, state: StateDep, principal: TasksKey):
    """Classify a text into one of the given labels."""
    return _serve(request, state, principal, body,
                  lambda c: c.classify(body.text, labels=body.labels, confidential=body.confidential))


@router.post("/fraud", response_model=FraudResult)
def fraud(body: FraudRequest, request: Request, state: StateDep, principal: TasksKey):
    """Flag a message or transaction as fraud or legit, with the risk indicators found in it."""
    return _serve(request, state, principal, body, lambda c: c.fraud(body.text, confidential=body.confidential))


@router.post("/contract", response_model=ContractReview)
def contract(body: ContractRequest, request: Request, state: StateDep, principal: TasksKey):
    """Review a contract for clause categories (one audit run per category)."""
    return _serve(request, state, principal, body, lambda c: c.contract(body.text, body.categories, k=body.k))


@router.post("/ask", response_model=AnswerResult)
def ask(body: AskRequest, request: Request, state: StateDep, principal: TasksKey):
    """Answer a question from the ingested documents, with citations, or say it cannot."""
    return _serve(request, state, principal, body, lambda c: c.ask(body.question, k=body.k))
