"""Request bodies (responses are the SDK's own types). Unknown fields are refused: a typo in a
field name is a 422 naming it, not a silently ignored option."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.contracts import ContractReview
from agents.fraud import FraudResult
from agents.qa import AnswerResult
from agents.results import CascadeResult


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClassifyRequest(_Body):
    text: str = Field(description="the text to classify")
    labels: list[str] = Field(description="the allowed labels (two or more)")
    confidential: bool = Field(default=False, description="never leaves the machine, never becomes an example")


class FraudRequest(_Body):
    text: str = Field(description="a message, or a transaction described in text")
    confidential: bool = False


class ContractRequest(_Body):
    text: str = Field(description="the contract's text (UTF-8, at most 1,000,000 characters)")
    categories: list[str] | None = Field(default=None, description="clause categories (default: the five defaults)")
    k: int = Field(default=3, ge=1, le=16, description="passages retrieved per category")


class AskRequest(_Body):
    question: str
    k: int = Field(default=4, ge=1, le=16, description="passages retrieved and shown to the model")


class Document(_Body):
    name: str = Field(description="file name, ending in .txt or .md; the same name again replaces its content",
                      min_length=1, max_length=200)
    text: str


class DocumentsRequest(_Body):
    documents: list[Document] = Field(min_length=1)


class ReviewResolution(_Body):
    answer: str = Field(description="the reviewer's answer (one of the run's labels)")
    reviewer: str | None = Field(default=None, description="who decided (default: the API key's name)")
    note: str = ""
    text: str | None = Field(default=None, description="the item's text: the answer then becomes a stored example")


class WorkflowRequest(_Body):
    text: str = Field(description="the workflow's input: a customer message, a contract's text")
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="the workflow's options (GET /v1/workflows lists each one's)")


class JobRequest(_Body):
    task: Literal["classify", "fraud", "workflow"]
    items: list[dict[str, Any]] = Field(min_length=1, description="one object per item, as a JSONL row of a batch file")
    labels: list[str] | None = Field(default=None, description="labels of every item that gives none")
    workflow: str | None = Field(default=None, description="for task workflow: the workflow each item runs")
    options: dict[str, Any] | None = Field(default=None, description="for task workflow: the workflow's options")
    max_escalation_share: float | None = Field(default=None, ge=0.0, le=1.0)
    max_spend: float | None = Field(default=None, ge=0.0)
    callback_url: str | None = Field(default=None, pattern=r"^https?://", max_length=2000,
                                     description="POSTed the job's status when it finishes, signed with the key's "
                                                 "webhook secret (X-Cascade-Signature: sha256=HMAC of the body)")


class JobAccepted(BaseModel):
    job_id: str
    status: str
    mode: str


RESPONSES = {"classify": CascadeResult, "fraud": FraudResult, "contract": ContractReview, "ask": AnswerResult}
