"""Benchmarks of the cascade's own cost (not timed tests): medians over many items, as ratios."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from agents import classify as classification

from orchestrator.core.cascade import Cascade
from orchestrator.core.config import LlamaCppTier, Settings, load_settings

SMS_FILE = Path(__file__).resolve().parents[3] / "shared" / "data" / "sms_spam_collection" / "SMSSpamCollection"
FALLBACK_TEXTS = [
    "Are we still meeting for lunch tomorrow?",
    "WINNER!! You have won a free prize, call now to claim",
    "Sorry, I'll call later",
    "URGENT: your account is locked, verify at http://bit.ly/x",
]


def sample_texts(n: int, path: Path = SMS_FILE) -> list[str]:
    """Real SMS texts when the shared data is there, else a few fixed ones repeated."""
    if path.is_file():
        texts = [line.split("\t", 1)[1].strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if "\t" in line]
    else:
        texts = FALLBACK_TEXTS
    return [texts[i % len(texts)] for i in range(n)]


def _tier1_only(settings: Settings, data_dir: Path) -> Settings:
    tier = next(t for t in settings.tiers if isinstance(t, LlamaCppTier))
    # Threshold 0 keeps every answer on tier 1, so both sides do the same model work.
    return settings.model_copy(update={"tiers": [tier], "data_dir": data_dir, "database_url": None,
                                       "tasks": {"classify": settings.tasks["classify"].model_copy(update={"threshold": 0.0})}})


def overhead(n_items: int = 200, labels: list[str] | None = None, config: Path | None = None) -> dict:
    """Per-item time of Cascade.classify (graph, validation, audit write to SQLite) against the bare
    llama-cpp-python scoring call it wraps, on the same prompts, interleaved to share the noise."""
    labels = labels or ["spam", "ham"]
    texts = sample_texts(n_items)
    with tempfile.TemporaryDirectory() as tmp:
        settings = _tier1_only(load_settings(config), Path(tmp))
        with Cascade(settings) as cascade:
            backend = cascade._tiers[0].backend()
            cascade.classify(texts[0], labels)  # load, hash and warm up outside the timings
            bare, full = [], []
            for i, text in enumerate(texts):
                order = (0, 1) if i % 2 == 0 else (1, 0)
                for which in order:
                    started = time.perf_counter()
                    if which == 0:
                        backend.score(classification.messages(labels), classification.item_block(text), labels)
                        bare.append(time.perf_counter() - started)
                    else:
                        cascade.classify(text, labels)
                        full.append(time.perf_counter() - started)
    med_bare, med_full = statistics.median(bare), statistics.median(full)
    # The paired difference (same item, back to back) is robust to the machine's drift; the ratio
    # of the two medians is not, on a shared machine.
    paired = statistics.median(f - b for f, b in zip(full, bare))
    return {"items": n_items, "labels": labels, "bare_ms_median": med_bare * 1000,
            "cascade_ms_median": med_full * 1000, "overhead_ratio_of_medians": med_full / med_bare - 1,
            "overhead_ms_median_paired": paired * 1000, "overhead_ratio_paired": paired / med_bare}


def prefix_reuse(n_items: int = 100, labels: list[str] | None = None, config: Path | None = None) -> dict:
    """Tier-1 per-item time with the evaluated instruction prefix reused, and re-evaluated per item,
    for short and long items: with reuse an item costs its own tokens, not the instructions'."""
    from agents.backends.llama_cpp import LlamaCppBackend, LlamaCppOptions

    from orchestrator.core.models import resolve_model_path

    labels = labels or ["card arrival", "lost or stolen card", "exchange rate", "top up failed",
                        "card payment fee charged", "pending transfer", "verify my identity", "refund not showing up"]
    settings = load_settings(config)
    tier = next(t for t in settings.tiers if isinstance(t, LlamaCppTier))
    backend = LlamaCppBackend(LlamaCppOptions(model_path=resolve_model_path(tier.model_path, settings.data_dir),
                                              n_ctx=tier.n_ctx, n_threads=tier.n_threads))
    prompt = classification.messages(labels)
    short = [t for t in sample_texts(3000) if len(t.split()) <= 6][:n_items]
    long = [t for t in sample_texts(3000) if len(t.split()) >= 25][:n_items]
    backend.score(prompt, "warm up", labels)
    results: dict = {"items": n_items, "labels": len(labels)}
    for name, texts in (("short", short), ("long", long)):
        # Interleaved per item (no reuse first, so the reuse call finds the prefix cached): both
        # conditions see the same load, which drifts a lot on a shared machine.
        times: dict[bool, list[float]] = {True: [], False: []}
        tokens = []
        for text in texts:
            for reuse in (False, True):
                if not reuse:
                    backend.forget_prefix()
                started = time.perf_counter()
                scored = backend.score(prompt, classification.item_block(text), labels)
                times[reuse].append(time.perf_counter() - started)
            tokens.append(scored.tokens_in)
        for reuse, key in ((True, "reuse"), (False, "no_reuse")):
            results[f"{name}_{key}_ms_median"] = statistics.median(times[reuse]) * 1000
        results[f"{name}_prompt_tokens_median"] = statistics.median(tokens)
    results["prefix_tokens"] = backend.prefix_length(prompt)
    return results
