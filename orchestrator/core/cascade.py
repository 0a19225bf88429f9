"""The public SDK: `Cascade.from_config(...).classify(text, labels=[...])`, `.fraud(text)`, `.ask(question)`,
`.contract(text)`."""

from __future__ import annotations

import hashlib
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

from agents import classify as classification
from agents import qa
from agents.contracts import ContractReview
from agents.documents import DocumentStore, Ingested
from agents.errors import CascadeError, ConfigError, InvalidInputError, UnknownTaskError
from agents.fraud import FraudResult, find_indicators
from agents.redaction import Redactor
from agents.results import Attempt, CascadeResult
from agents.retrieval import Embedder, Example, ExampleStore

from orchestrator.audit.store import AuditStore, text_hash
from orchestrator.calibration.store import ArtifactStore
from orchestrator.calibration.fitting import CalibrationArtifact
from orchestrator.core.config import (
    KNOWN_TASKS, ExampleSettings, PrivacySettings, Settings, load_settings, protect_secrets,
)
from orchestrator.core.contract_review import PASSAGES, review_contract
from orchestrator.core.hooks import REVIEW_LISTENERS
from orchestrator.core.graph import CascadeContext, ItemPrivacy, TierHandle, build_graph, ms_since
from orchestrator.core.serving import OnDemandServers
from orchestrator.core.tiers import tier_handle
from orchestrator.core.tasks import TASKS
from orchestrator.training.serving import ENCODER_PROMPT, EncoderTiers


class Cascade:
    """Runs tasks through the model ladder and records every decision in the audit store."""

    def __init__(self, settings: Settings, backends: dict[str, Any] | None = None) -> None:
        """`backends` maps tier names to ready backend objects, replacing the configured ones
        (tests use it to put a recording fake in place of a tier)."""
        self.settings = settings
        protect_secrets(settings)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.audit = AuditStore(settings.audit_url)
        self._injected = dict(backends or {})
        self._servers = OnDemandServers(settings)
        self._encoders = EncoderTiers()  # bound to each run's task and labels; refit as examples arrive
        unknown = set(self._injected) - {t.name for t in settings.tiers}
        if unknown:
            raise ConfigError(f"backends given for unknown tier(s) {sorted(unknown)}")
        self._tiers = [tier_handle(t, settings, self._injected, self._servers, self._encoders, lambda: self.examples,
                                   self._embedder) for t in settings.tiers]
        self._artifacts = ArtifactStore(settings.data_dir)
        self._calibrations: dict[tuple, tuple[CalibrationArtifact | None, str]] = {}
        self._examples: ExampleStore | None = None
        self._documents: DocumentStore | None = None
        self._embedder_model: Embedder | None = None
        self._redactors: dict[str, Redactor] = {}
        self._graph = build_graph()
        self._config_hash = hashlib.sha256(
            json.dumps(settings.model_dump(mode="json", include={"tiers", "tasks"}), sort_keys=True).encode()
        ).hexdigest()

    @classmethod
    def from_config(cls, config_file: str | Path | None = None, *, backends: dict[str, Any] | None = None,
                    **overrides: Any) -> "Cascade":
        return cls(load_settings(config_file, **overrides), backends=backends)

    def close(self) -> None:
        self._servers.stop_all()
        self._encoders.close()
        self.audit.close()
        if self._examples is not None:
            self._examples.close()

    def load_tier(self, index: int = 0) -> None:
        """Load tier `index`'s model now (a readiness check); raises its ModelError if it cannot."""
        self._tiers[index].backend()

    def __enter__(self) -> "Cascade":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def classify(self, text: str, labels: list[str], *, confidential: bool = False) -> CascadeResult:
        """Classify `text` into one of `labels` (any label set; labels may be several tokens long).
        A confidential text never leaves the machine and never becomes a stored example."""
        return self.run("classify", text=text, labels=labels, confidential=confidential)

    def fraud(self, text: str, *, confidential: bool = False) -> FraudResult:
        """Flag `text` (a message, or a transaction described in text) as fraud or legit, with the
        risk indicators found in it. The verdict and its confidence come from the models' label
        scores only; the indicators are evidence next to them (also in the audit run's params).
        By default a "legit" verdict needs confidence 0.9 and is never kept below it: it escalates,
        and on the last tier the run goes to review (`tasks.fraud.class_thresholds` and
        `review_below_threshold` in the config)."""
        result = self.run("fraud", text=text, confidential=confidential)
        # pure rules: the same indicators run() recorded in the audit
        return FraudResult(**dict(result), indicators=find_indicators(text))

    def add_documents(self, paths: list[str | Path]) -> list[Ingested]:
        """Ingest text/markdown files for `ask` (chunked, embedded, stored in Qdrant). A bad file
        (missing, empty, binary, not UTF-8, not .txt/.md) is an InvalidInputError and nothing of the
        call is stored; a file already stored with the same content is not stored again."""
        return self.documents.add(list(paths))

    def ask(self, question: str, k: int = 4, *, run_id: str | None = None) -> qa.AnswerResult:
        """Answer `question` from the k passages of the ingested documents closest to it, with
        citations, or say it cannot be answered from them (`answer` None, outcome accepted). An
        answer that fails a check (schema, span, support) or is unsure escalates; when no tier's
        answer passes, the outcome is needs_review and the reason names the failed check.
        With no document ingested, it raises InvalidInputError (there is nothing to answer from)."""
        question = classification.validate_text(question)
        if not isinstance(k, int) or not 1 <= k <= 16:
            raise InvalidInputError(f"k must be an integer from 1 to 16 (passages shown to the model); got {k!r}")
        local_store_missing = self.settings.qdrant_url is None and not (self.settings.data_dir / "qdrant").exists()
        passages = [] if self._examples is None and local_store_missing else self.documents.search(question, k)
        if not passages:
            raise InvalidInputError("cannot answer: no documents ingested; add text or markdown files first "
                                    "(`cascade docs add PATH...`, or Cascade.add_documents)")
        sources = [p.model_dump(include={"path", "chunk", "start", "end", "doc_hash", "score"}) for p in passages]
        result = self.run("ask", text=question, passages=[p.text for p in passages], sources=sources, run_id=run_id)
        return qa.answer_result(result, passages)

    def contract(self, text: str, categories: list[str] | None = None, k: int = PASSAGES) -> ContractReview:
        """Review a contract's text for each clause category (default: agents.contract_categories.
        DEFAULT_CATEGORIES): whether a clause of it is in the k passages retrieved for it, the clause
        word for word, and a risk flag from a fixed table. Each category is one audited run of the
        "contract" task (checks: schema, span; a failed check or low confidence escalates). Empty,
        binary or over-long text (agents.contracts.MAX_CONTRACT_CHARS) and unknown categories raise
        InvalidInputError before any model runs."""
        return review_contract(self.run, self.embed, text, categories, k)

    def embed(self, texts: list[str]):
        """Unit-length MiniLM embeddings of `texts` (the model the example and document stores use)."""
        return self._embedder().embed(texts)

    def run(self, task: str, *, stop_after_tier: int | None = None, resume_run_id: str | None = None,
            run_id: str | None = None, learn: bool | None = None, confidential: bool = False,
            **payload: Any) -> CascadeResult:
        """Run one task through the ladder and record it. `learn=False` keeps this item out of the
        example store whatever the task's settings say. `confidential=True` applies the strictest
        data policy to this item: no external tier (it ends in needs_review instead), no example.

        Two-phase batches use the keywords: `stop_after_tier=0` pauses an item that would escalate
        past tier 0 (outcome "pending"); `resume_run_id=` continues that same run on the next tier.
        `run_id=` chooses the audit run's id (default: a new uuid4); a run of that id left `running`
        by a process that died is restarted, any other existing run is a RunConflictError (see
        AuditStore.start_run). The batch job layer uses it so a re-delivered item reuses its run.
        """
        if run_id is not None and resume_run_id is not None:
            raise InvalidInputError("give run_id= to start a run or resume_run_id= to resume one, not both")
        if task not in TASKS:
            raise UnknownTaskError(f"unknown task {task!r}; known tasks: {', '.join(KNOWN_TASKS)}")
        spec = TASKS[task]
        text = classification.validate_text(payload.get("text"))
        labels = spec.labels_for(payload.get("labels"))
        task_settings = self.settings.task(task)
        policy = _data_policy(task_settings.privacy, confidential)
        shown = self._demonstrations(task, text, labels, task_settings.examples)
        demos = [(e.text, e.label) for e in shown]
        fields, item_params = spec.item_fields(payload)
        payload = {"text": text, "labels": labels, "demonstrations": demos, **fields}
        vote_weight = task_settings.examples.vote_weight if shown else 0.0
        prompt_version = spec.prompt_version(demos, vote_weight)
        params = {"labels": labels, **spec.evidence(text), **item_params, "demonstrations": [e.id for e in shown],
                  "data_policy": policy}
        if vote_weight:
            # The store's label counts balance the vote; the audit keeps them to explain it.
            params["store_label_counts"] = self.examples.label_counts(task, labels)
            payload["neighbour_vote"] = params["neighbour_vote"] = classification.neighbour_vote(
                [(e.label, e.score) for e in shown], labels, params["store_label_counts"])
            params["vote_weight"] = vote_weight

        if resume_run_id is None:
            run_id, attempts = self.audit.start_run(task, text, params, self._config_hash, run_id=run_id), []
        else:
            run_id, attempts = resume_run_id, self._pending_attempts(resume_run_id, task, text)
        started = time.perf_counter()
        privacy = ItemPrivacy(external=policy["external"], redact=partial(self._redact, task))
        run_task = spec.runner(lambda texts: self._embedder().embed(texts), task_settings)
        context = CascadeContext(tiers=self._encoders.bind(self._tiers, task, labels), run_task=run_task,
                                 prompt_version=prompt_version, threshold=task_settings.threshold, vote_weight=vote_weight,
                                 calibration=partial(self._calibration, task, prompt_version), privacy=privacy,
                                 class_thresholds=task_settings.class_thresholds,
                                 review_below_threshold=frozenset(task_settings.review_below_threshold))
        start_tier = context.next_allowed(attempts[-1].tier_index if attempts else -1)
        if start_tier is None:  # a ladder of external tiers only, and a policy that forbids them
            result = CascadeResult(
                run_id=run_id, task=task, outcome="needs_review", answer=None, confidence=None, tier_name=None,
                reason=f"needs review: the data policy ({policy['external']}) forbids every tier of the ladder",
                attempts=attempts, latency_ms=ms_since(started), cost=0.0)
            self.audit.finish_run(result)
            return result
        initial = {"payload": payload, "tier_index": start_tier, "attempts": attempts,
                   "stop_after_tier": stop_after_tier}
        try:
            state = self._graph.invoke(initial, context=context)
        except BaseException as exc:  # record, then let the caller see the real error
            self.audit.fail_run(run_id, exc, attempts, ms_since(started))
            raise
        attempts = state["attempts"]
        if state.get("error") is not None:
            error: CascadeError = state["error"]
            self.audit.fail_run(run_id, error, attempts, ms_since(started))
            error.run_id = run_id
            raise error
        result = CascadeResult(run_id=run_id, task=task, attempts=attempts, latency_ms=ms_since(started),
                               **state["final"])
        self.audit.finish_run(result)
        if learn is not False and task_settings.examples.learn and policy["keep_examples"]:
            self._learn(task, text, result, task_settings.examples)
        return result

    @property
    def examples(self) -> ExampleStore:
        """The store of labelled examples (Qdrant: local in the data dir, or the configured server)."""
        if self._examples is None:
            self._examples = ExampleStore(path=self.settings.data_dir / "qdrant", url=self.settings.qdrant_url,
                                          embedder=self._embedder_model)
        return self._examples

    @property
    def documents(self) -> DocumentStore:
        """Ingested documents for `ask`: a collection of its own, on the example store's Qdrant client."""
        if self._documents is None:
            self._documents = DocumentStore(self.examples)
        return self._documents

    def add_reviewed_example(self, task: str, text: str, label: str, reviewer: str, run_id: str | None = None) -> Example | None:
        """A reviewer's label for an item becomes an example (None if a near-duplicate is stored);
        the reviewed run's audit record names it."""
        added = self.examples.add(task, [Example(text=text, label=label, source=f"reviewer:{reviewer}",
                                                 reviewer=reviewer, audit_id=run_id)])
        if added and run_id:
            self.audit.note_params(run_id, learned_example=added[0].id, reviewed_by=reviewer)
        if added:  # the encoder tiers refit on it in the background
            self._encoders.examples_added(task)
        return added[0] if added else None

    def review_queue(self, task: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Runs waiting for a person (outcome needs_review, not yet resolved), oldest first."""
        return self.audit.review_queue(task=task, limit=limit)

    def resolve_review(self, run_id: str, answer: str, reviewer: str, note: str = "",
                       text: str | None = None) -> dict[str, Any]:
        """Record a reviewer's answer for a needs_review run (audited). Given the item's `text`
        (the audit log keeps only its hash), the answer also becomes a stored example, unless the
        run's data policy forbids keeping it."""
        run = self.audit.get_run(run_id)
        if run is not None and text is not None and text_hash(text) != run["input_hash"]:
            raise InvalidInputError(f"the text given does not match the input of run {run_id}")
        review = self.audit.resolve_review(run_id, answer, reviewer, note)  # checks the run, answer and reviewer
        if text is not None and run["params"].get("data_policy", {}).get("keep_examples", True):
            self.add_reviewed_example(run["task"], text, answer, reviewer, run_id=run_id)
        for listener in REVIEW_LISTENERS:  # a workflow paused on this run resumes with the answer
            review.update(listener(self, run, review) or {})
        return review

    def _redact(self, task: str, texts: list[str]):
        """Personal data of `texts` replaced by placeholders (one Redactor per task, loaded on first use)."""
        if task not in self._redactors:
            self._redactors[task] = Redactor(self.settings.task(task).privacy.entities)
        return self._redactors[task].redact(texts)

    def _embedder(self) -> Embedder:
        """One embedding model per Cascade, shared by the example store and encoder tiers."""
        if self._embedder_model is None:
            self._embedder_model = self._examples.embedder if self._examples else Embedder()
        return self._embedder_model

    def _demonstrations(self, task: str, text: str, labels: list[str], settings: ExampleSettings) -> list[Example]:
        local_store_missing = self.settings.qdrant_url is None and not (self.settings.data_dir / "qdrant").exists()
        if settings.k == 0 or (self._examples is None and local_store_missing):
            return []  # nothing stored yet: no need to load the embedding model
        return self.examples.nearest(task, text, settings.k, labels=labels, order=settings.order)

    def _learn(self, task: str, text: str, result: CascadeResult, settings: ExampleSettings) -> None:
        """Keep a higher tier's confident answer as a demonstration for the small model next time."""
        final = result.attempts[-1]
        if (result.outcome != "accepted" or final.tier_index == 0 or final.confidence is None
                or final.confidence < settings.learn_min_confidence
                or (settings.learn_only_kept and final.threshold is not None and final.confidence < final.threshold)):
            return
        added = self.examples.add(task, [Example(text=text, label=result.answer, source=f"tier:{final.tier_name}",
                                                 tier=final.tier_name, audit_id=result.run_id)])
        if added:
            self.audit.note_params(result.run_id, learned_example=added[0].id)
            self._encoders.examples_added(task)

    def _calibration(self, task: str, prompt_version: str, tier: TierHandle,
                     labels: list[str]) -> tuple[CalibrationArtifact | None, str]:
        """The newest calibration artifact for this task, tier model, prompt and label set (cached:
        artifacts are fitted offline; a new one is picked up by a new Cascade)."""
        if tier.name in self._encoders:  # an encoder reads no prompt; its head changes as it learns
            prompt_version = ENCODER_PROMPT
        model_hash = tier.model_file_hash()
        key = (task, prompt_version, tier.name, tuple(labels), model_hash)
        if key not in self._calibrations:
            artifact = model_hash and self._artifacts.latest(task, model_hash, prompt_version, labels)
            why = "" if artifact else (
                self._artifacts.why_none(task, model_hash, prompt_version, labels) if model_hash
                else "tier has no model file hash to match a calibration artifact; using the configured threshold")
            self._calibrations[key] = (artifact or None, why)
        return self._calibrations[key]

    def wait_for_refits(self, timeout: float | None = None) -> None:  # tests, benchmarks, shutdown
        self._encoders.wait(timeout)

    def prefetch(self, task: str, texts: list[str], labels: list[str] | None = None) -> None:
        """Embed a batch of items for the encoder tiers in one call (batch jobs call it per chunk)."""
        self._encoders.prefetch(task, lambda: TASKS[task].labels_for(labels), texts)

    def _pending_attempts(self, run_id: str, task: str, text: str) -> list[Attempt]:
        run = self.audit.get_run(run_id)
        if run is None:
            raise InvalidInputError(f"no run {run_id} to resume")
        if run["status"] != "pending" or run["task"] != task:
            raise InvalidInputError(f"run {run_id} is a {run['status']} {run['task']} run; only a pending "
                                    f"{task} run can be resumed")
        if run["input_hash"] != text_hash(text):
            raise InvalidInputError(f"the text given does not match the input of run {run_id}")
        if not run["attempts"] or run["attempts"][-1]["tier_index"] + 1 >= len(self._tiers):
            raise InvalidInputError(f"run {run_id} has no tier left to resume on")
        return [Attempt.model_validate(a) for a in run["attempts"]]


def _data_policy(privacy: PrivacySettings, confidential: bool) -> dict[str, Any]:
    """The policy that applies to one item, as the audit log records it."""
    if confidential:
        return {"source": "confidential call", "external": "forbid", "keep_examples": False}
    return {"source": "task", "external": privacy.external, "keep_examples": privacy.keep_examples}
