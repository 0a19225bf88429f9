"""Workflows: multi-step LangGraph graphs whose nodes are routed cascade task calls (each a full,
audited cascade run, a child of the workflow run), plain functions, or human steps.

Owns the step kinds (`steps`), the registry by name (`registry`), the checkpointer choice
(`checkpoints`: SQLite in the data dir, PostgreSQL with a PostgreSQL audit store), the runner and
SDK object `Workflows` (`runner`) and the shipped workflows (`support_triage`, `contract_review`).
Importing it registers the review-queue listener that resumes a workflow paused on a resolved run.

Imports `core`, `audit`, `agents` and LangGraph; never `evaluation`. Only the front doors (the
CLI, the orchestrator package's exports) and the jobs layer import it.
"""

from orchestrator.core.hooks import REVIEW_LISTENERS
from orchestrator.workflows import contract_review, support_triage  # noqa: F401  # registers the two workflows
from orchestrator.workflows.registry import WorkflowSpec, register, register_graph
from orchestrator.workflows.runner import WorkflowRun, Workflows, resume_after_review
from orchestrator.workflows.steps import WorkflowContext, function_step, human_step, routed_task, run_task_step

if resume_after_review not in REVIEW_LISTENERS:
    REVIEW_LISTENERS.append(resume_after_review)

__all__ = ["WorkflowContext", "WorkflowRun", "WorkflowSpec", "Workflows", "function_step", "human_step", "register",
           "register_graph", "routed_task", "run_task_step"]
