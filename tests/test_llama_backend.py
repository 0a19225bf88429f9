"""The in-process llama.cpp backend honours its thread count for every decode."""

from __future__ import annotations

from agents.backends.llama_cpp import LlamaCppBackend, LlamaCppOptions
from orchestrator.models import resolve_model_path


def test_n_threads_also_bounds_batch_decodes(tmp_path):
    # Prompt and label-branch decodes are batch decodes; llama-cpp-python would give them every
    # core by default, so two one-thread workers on two cores would run four spinning threads.
    path = resolve_model_path("bundled:smollm2", tmp_path, tier_name="smollm2-135m")
    backend = LlamaCppBackend(LlamaCppOptions(model_path=path, n_threads=1))
    assert (backend.llm.context_params.n_threads, backend.llm.context_params.n_threads_batch) == (1, 1)
