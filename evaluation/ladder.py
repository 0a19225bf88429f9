"""The evaluated ladder and its prices, shared by every evaluation: SmolLM2 and Gemma-3-270M
in-process, SmolLM2 again as the self-verifier, MiniLM as the embedder, and `GenerationEval`, the
set-up the contract and QA evaluations share."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.errors import InvalidInputError
from evaluation.replay import TierSpec

__all__ = ["N_CTX", "GenerationEval", "Price", "bundled_tiers", "embedder", "price_of"]

N_CTX = 4096  # four long demonstrations and the item fit with room to spare


@dataclass(frozen=True)
class Price:
    """Per 1,000 tokens, input and output, and where the figures come from."""

    input_per_1k: float
    output_per_1k: float
    source: str

    def cost(self, tokens_in: np.ndarray, tokens_out: np.ndarray) -> np.ndarray:
        return (tokens_in * self.input_per_1k + tokens_out * self.output_per_1k) / 1000


def price_of(spec: str | float) -> Price:
    """A number (the same price per 1k input and output tokens) or a model name in litellm's price map."""
    try:
        value = float(spec)
    except ValueError:
        from orchestrator.jobs.budget import litellm_per_1k

        mapped = litellm_per_1k(str(spec))
        if mapped is None:
            raise InvalidInputError(f"{spec!r} is neither a price per 1k tokens nor a model in litellm's price map")
        return Price(*mapped, f"litellm's price map for {spec}")
    if value < 0 or not math.isfinite(value):
        raise InvalidInputError(f"a price per 1k tokens must be a finite number >= 0, got {spec}")
    return Price(value, value, "configured")


def _local_tier(name: str, spec: str, data_dir: Path, threads: int) -> TierSpec:
    from orchestrator.core.models import file_sha256, resolve_model_path

    path = resolve_model_path(spec, data_dir)

    def load():
        from agents.backends.llama_cpp import LlamaCppBackend, LlamaCppOptions

        return LlamaCppBackend(LlamaCppOptions(model_path=path, n_ctx=N_CTX, n_threads=threads))
    return TierSpec(name, file_sha256(path, data_dir), load)


def bundled_tiers(data_dir: Path, threads: int) -> tuple[TierSpec, TierSpec, TierSpec]:
    """The evaluated ladder: SmolLM2, Gemma-3-270M, and SmolLM2 again as the self-verifier (same backend)."""
    small = _local_tier("smollm2-135m", "bundled:smollm2", data_dir, threads)
    return (small, _local_tier("gemma3-270m", "bundled:gemma3-270m", data_dir, threads),
            TierSpec("smollm2-135m-verify", small.model_hash, small.backend))


@dataclass(frozen=True)
class GenerationEval:
    """What the contract and QA evaluations share: the two tiers' prices (the local one free, the
    large one at gpt-4o-mini's list price unless given), the ladder, the embedder, and the
    directory that caches the tiers' answer records."""

    price_small: Price
    price_large: Price
    tiers: tuple[TierSpec, TierSpec, TierSpec]
    embed: Any
    cache_dir: Path

    @classmethod
    def of(cls, data_dir: Path, threads: int, tiers=None, embed=None, price_small=None,
           price_large=None) -> "GenerationEval":
        cache_dir = data_dir / "eval" / "cache"
        cache_dir.mkdir(parents=True, exist_ok=True)
        return cls(price_small or Price(0.0, 0.0, "local tier"), price_large or price_of("gpt-4o-mini"),
                   tiers or bundled_tiers(data_dir, threads), embed or embedder(threads), cache_dir)

    def answers_file(self, name: str, tier: TierSpec, what: str) -> Path:
        return self.cache_dir / f"{name}-{tier.name}-{tier.model_hash[:12]}-{what}.json"


def embedder(threads: int):
    """MiniLM's embed function, loaded on first use (a fully cached run never loads it)."""
    loaded: list = []

    def embed(texts: list[str]) -> np.ndarray:
        if not loaded:
            import torch

            from agents.retrieval import Embedder

            torch.set_num_threads(threads)
            loaded.append(Embedder())
        return loaded[0].embed(texts)
    return embed
