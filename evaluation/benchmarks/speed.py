"""SLM speed benchmark in the style of the SlimLM paper: per local tier and context length, input
tokens/s (prefill), output tokens/s (decode), time to first token and total time.

The prompt is real text (SMS messages) cut to exactly the context length in the model's own tokens;
every repeat starts from an empty KV cache, and figures are medians over the repeats. Timings on a
shared machine are noisy: compare tiers and lengths as ratios within one run.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from evaluation.benchmarks.overhead import sample_texts
from orchestrator.core.models import resolve_model_path

__all__ = ["CONTEXT_LENGTHS", "speed_bench"]

CONTEXT_LENGTHS = (200, 400, 600, 800, 1000)
TIERS = (("smollm2-135m", "bundled:smollm2"), ("gemma3-270m", "bundled:gemma3-270m"))


def _prompt_tokens(llm, length: int) -> list[int]:
    text = "\n".join(sample_texts(400))
    tokens = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
    if len(tokens) < length:
        raise ValueError(f"the sample text has only {len(tokens)} tokens; {length} were asked for")
    return tokens[:length]


def _one(llm, tokens: list[int], output_tokens: int) -> dict[str, float]:
    llm.reset()  # empty cache: the whole prompt is evaluated every time
    started = time.perf_counter()
    first = None
    produced = 0
    # generate() never stops by itself; end-of-sequence is just another token here, so every run
    # decodes exactly `output_tokens` tokens.
    for _ in llm.generate(tokens, temp=0.0, reset=True):
        produced += 1
        if first is None:
            first = time.perf_counter() - started
        if produced >= output_tokens:
            break
    total = time.perf_counter() - started
    return {"ttft_s": first, "total_s": total, "input_tps": len(tokens) / first,
            "output_tps": (produced - 1) / (total - first) if total > first else float("nan")}


def speed_bench(data_dir: Path, lengths: tuple[int, ...] = CONTEXT_LENGTHS, output_tokens: int = 32,
                repeats: int = 3, threads: int = 1, tiers: tuple[tuple[str, str], ...] = TIERS) -> dict[str, Any]:
    """Rows of {tier, context, input_tps, output_tps, ttft_s, total_s} (medians over `repeats`)."""
    from llama_cpp import Llama

    rows = []
    for name, spec in tiers:
        path = resolve_model_path(spec, data_dir)
        llm = Llama(model_path=str(path), n_ctx=max(lengths) + output_tokens + 8, n_batch=512, n_threads=threads,
                    n_threads_batch=threads, verbose=False)
        _one(llm, _prompt_tokens(llm, min(lengths)), 4)  # warm up outside the timings
        for length in lengths:
            tokens = _prompt_tokens(llm, length)
            runs = [_one(llm, tokens, output_tokens) for _ in range(repeats)]
            rows.append({"tier": name, "model": path.name, "context": length, "output_tokens": output_tokens,
                         **{key: statistics.median(r[key] for r in runs) for key in runs[0]}})
        llm.close()
    return {"threads": threads, "repeats": repeats, "rows": rows}
