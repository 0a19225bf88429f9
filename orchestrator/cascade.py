"""The public SDK: `Cascade.from_config(...).classify(text, labels=[...])`."""

from __future__ import annotations

import hashlib
import json
import os
import time
from functools import cache
from pathlib import Path
from typing import Any

from agents import classify as classification
from agents.backends.litellm_backend import LitellmBackend, LitellmOptions
from agents.errors import CascadeError, ConfigError, UnknownTaskError
from agents.results import CascadeResult

from .audit import AuditStore
from .config import KNOWN_TASKS, LitellmTier, LlamaCppTier, Settings, load_settings
from .graph import CascadeContext, TierHandle, build_graph
from .models import file_sha256, resolve_model_path

_TASKS = {
    "classify": (classification.classify, classification.PROMPT_VERSION),
}


class Cascade:
    """Runs tasks through the model ladder and records every decision in the audit store."""

    def __init__(self, settings: Settings, backends: dict[str, Any] | None = None) -> None:
        """`backends` maps tier names to ready backend objects, replacing the configured ones
        (tests use it to put a recording fake in place of a tier)."""
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.audit = AuditStore(settings.audit_url)
        self._injected = dict(backends or {})
        unknown = set(self._injected) - {t.name for t in settings.tiers}
        if unknown:
            raise ConfigError(f"backends given for unknown tier(s) {sorted(unknown)}")
        self._tiers = [self._handle(t) for t in settings.tiers]
        self._graph = build_graph()
        self._config_hash = hashlib.sha256(
            json.dumps(settings.model_dump(mode="json", include={"tiers", "tasks"}), sort_keys=True).encode()
        ).hexdigest()

    @classmethod
    def from_config(cls, config_file: str | Path | None = None, *, backends: dict[str, Any] | None = None,
                    **overrides: Any) -> "Cascade":
        return cls(load_settings(config_file, **overrides), backends=backends)

    def close(self) -> None:
        self.audit.close()

    def __enter__(self) -> "Cascade":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def classify(self, text: str, labels: list[str]) -> CascadeResult:
        """Classify `text` into one of `labels` (any label set; labels may be several tokens long)."""
        return self.run("classify", text=text, labels=labels)

    def run(self, task: str, **payload: Any) -> CascadeResult:
        if task not in _TASKS:
            raise UnknownTaskError(f"unknown task {task!r}; known tasks: {', '.join(KNOWN_TASKS)}")
        text = classification.validate_text(payload.get("text"))
        labels = classification.validate_labels(payload.get("labels"))
        payload = {"text": text, "labels": labels}
        run_task, prompt_version = _TASKS[task]
        threshold = self.settings.task(task).threshold

        run_id = self.audit.start_run(task, text, {"labels": labels}, self._config_hash)
        started = time.perf_counter()
        context = CascadeContext(tiers=self._tiers, run_task=run_task, prompt_version=prompt_version,
                                 threshold=threshold)
        try:
            state = self._graph.invoke({"payload": payload, "tier_index": 0, "attempts": []}, context=context)
        except BaseException as exc:  # record, then let the caller see the real error
            self.audit.fail_run(run_id, exc, [], _ms_since(started))
            raise
        attempts = state["attempts"]
        if state.get("error") is not None:
            error: CascadeError = state["error"]
            self.audit.fail_run(run_id, error, attempts, _ms_since(started))
            error.run_id = run_id
            raise error
        result = CascadeResult(run_id=run_id, task=task, attempts=attempts, latency_ms=_ms_since(started),
                               **state["final"])
        self.audit.finish_run(result)
        return result

    def _handle(self, tier: LlamaCppTier | LitellmTier) -> TierHandle:
        if tier.name in self._injected:
            backend = self._injected[tier.name]
            return TierHandle(name=tier.name, model_id=getattr(backend, "model_id", tier.name),
                              model_file_hash=lambda: getattr(backend, "file_hash", None), backend=lambda: backend)
        if isinstance(tier, LlamaCppTier):
            return self._llama_handle(tier)
        return self._litellm_handle(tier)

    def _llama_handle(self, tier: LlamaCppTier) -> TierHandle:
        data_dir = self.settings.data_dir

        @cache
        def path() -> Path:
            return resolve_model_path(tier.model_path, data_dir, tier_name=tier.name)

        @cache
        def backend():
            from agents.backends.llama_cpp import LlamaCppBackend, LlamaCppOptions

            return LlamaCppBackend(LlamaCppOptions(model_path=path(), n_ctx=tier.n_ctx, n_threads=tier.n_threads))

        return TierHandle(name=tier.name, model_id=tier.model_path, backend=backend,
                          model_file_hash=cache(lambda: file_sha256(path(), data_dir)))

    def _litellm_handle(self, tier: LitellmTier) -> TierHandle:
        data_dir = self.settings.data_dir
        key = os.environ.get(tier.api_key_env) if tier.api_key_env else None
        if tier.api_key_env and not key:
            raise ConfigError(f"tier {tier.name!r}: environment variable {tier.api_key_env} (its API key) is not set")
        if key is None and tier.api_base:
            key = "no-key-needed"  # OpenAI-compatible local servers accept any key
        hint = (f"start it with `cascade models serve {tier.name}`" if tier.serve
                else "check the provider, its api_base and the network")
        options = LitellmOptions(
            model=tier.model, api_base=tier.api_base, api_key=key, timeout_s=tier.timeout_s,
            max_tokens=tier.max_tokens, input_per_1k=tier.prices.input_per_1k,
            output_per_1k=tier.prices.output_per_1k, extra=tier.options, schema_mode=tier.schema_mode,
            logprobs=tier.logprobs,
            unreachable_hint=hint,
        )
        backend = LitellmBackend(options)

        @cache
        def served_file_hash() -> str | None:
            if tier.serve is None:
                return None
            return file_sha256(resolve_model_path(tier.serve.model_path, data_dir, tier_name=tier.name), data_dir)

        return TierHandle(name=tier.name, model_id=tier.model, model_file_hash=served_file_hash,
                          backend=lambda: backend)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
