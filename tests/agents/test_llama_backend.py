"""The in-process llama.cpp backend: thread counts, and how a base model without a chat template is prompted and scored."""

from __future__ import annotations

import pytest

from agents.backends.llama_cpp import LlamaCppBackend, LlamaCppOptions, _plain_transcript
from orchestrator.core.models import resolve_model_path

pytestmark = pytest.mark.slow  # real models


def test_n_threads_also_bounds_batch_decodes(tmp_path):
    # Prompt and label-branch decodes are batch decodes; llama-cpp-python would give them every
    # core by default, so two one-thread workers on two cores would run four spinning threads.
    path = resolve_model_path("bundled:smollm2", tmp_path, tier_name="smollm2-135m")
    backend = LlamaCppBackend(LlamaCppOptions(model_path=path, n_threads=1))
    assert (backend.llm.context_params.n_threads, backend.llm.context_params.n_threads_batch) == (1, 1)


def test_a_base_model_without_a_chat_template_reads_a_plain_few_shot_transcript():
    messages = [{"role": "system", "content": "Label the message."},
                {"role": "user", "content": "Win a prize now"}, {"role": "assistant", "content": "spam"},
                {"role": "user", "content": "{item}"}]
    assert _plain_transcript(messages) == "Label the message.\n\nWin a prize now\nAnswer: spam\n\n{item}\nAnswer:"


def test_base_model_labels_are_scored_as_written_in_the_transcript(models_dir):
    # Gemma-3-270M (base, no chat template) ends an answer with the blank line, not its EOS token:
    # scored with EOS, every label cost about 20 nats more and the ranking of the labels degraded.
    path = resolve_model_path("bundled:gemma3-270m", models_dir)
    backend = LlamaCppBackend(LlamaCppOptions(model_path=path, n_ctx=512, n_threads=1))
    assert backend._template is None
    messages = [{"role": "system", "content": "Say which language the text is in."},
                {"role": "user", "content": "Bonjour, comment allez-vous ?"}, {"role": "assistant", "content": "French"},
                {"role": "user", "content": "Guten Morgen, wie geht es Ihnen?"}, {"role": "assistant", "content": "German"},
                {"role": "user", "content": "{item}"}]
    scored = backend.score(messages, "Good morning, how are you?", ["French", "German", "English"])
    english = scored.logprobs[2]
    assert english == max(scored.logprobs) and english > -2.0, scored.logprobs
