"""One `TierHandle` per configured tier: the backend each tier kind loads (lazily, on first use),
its model id and file hash for the audit record, and its prices. A backend injected by name (a
test's recording fake) stands in for the configured one."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from agents.backends.litellm_backend import LitellmBackend, LitellmOptions
from agents.errors import ConfigError
from agents.retrieval import Embedder, ExampleStore

from orchestrator.core.config import EncoderTier, LitellmTier, LlamaCppTier, ReaderTier, Settings
from orchestrator.core.graph import TierHandle
from orchestrator.core.models import file_sha256, resolve_model_path
from orchestrator.core.serving import OnDemandServers
from orchestrator.training.reader_tier import reader_handle
from orchestrator.training.serving import EncoderTiers

__all__ = ["tier_handle"]


def tier_handle(tier: LlamaCppTier | LitellmTier | EncoderTier | ReaderTier, settings: Settings,
                injected: dict[str, Any], servers: OnDemandServers, encoders: EncoderTiers,
                examples: Callable[[], ExampleStore], embedder: Callable[[], Embedder]) -> TierHandle:
    """`encoders` is bound to each run's task and labels (an encoder tier has one head per label set);
    `examples` and `embedder` give the Cascade's example store and embedding model when first needed."""
    if tier.name in injected:
        backend = injected[tier.name]
        return TierHandle(name=tier.name, model_id=getattr(backend, "model_id", tier.name),
                          model_file_hash=lambda: getattr(backend, "file_hash", None), backend=lambda: backend,
                          price_per_1k=_configured_prices(tier), external=tier.locality == "external")
    if isinstance(tier, LlamaCppTier):
        return _llama_handle(tier, settings)
    if isinstance(tier, EncoderTier):
        return _encoder_handle(tier, settings, encoders, examples, embedder)
    if isinstance(tier, ReaderTier):
        return reader_handle(tier, settings.data_dir)
    return _litellm_handle(tier, settings, servers)


def _encoder_handle(tier: EncoderTier, settings: Settings, encoders: EncoderTiers,
                    examples: Callable[[], ExampleStore], embedder: Callable[[], Embedder]) -> TierHandle:
    encoders.add(tier, settings.data_dir, examples, embedder)
    return TierHandle(name=tier.name, model_id=f"encoder:{tier.base}", backend=None,  # bound per run
                      model_file_hash=None)


def _llama_handle(tier: LlamaCppTier, settings: Settings) -> TierHandle:
    data_dir = settings.data_dir

    @cache
    def path() -> Path:
        return resolve_model_path(tier.model_path, data_dir, tier_name=tier.name)

    @cache
    def backend():
        from agents.backends.llama_cpp import LlamaCppBackend, LlamaCppOptions

        return LlamaCppBackend(LlamaCppOptions(model_path=path(), n_ctx=tier.n_ctx, n_threads=tier.n_threads))

    return TierHandle(name=tier.name, model_id=tier.model_path, backend=backend, price_per_1k=_local_prices(tier),
                      model_file_hash=cache(lambda: file_sha256(path(), data_dir)))


def _litellm_handle(tier: LitellmTier, settings: Settings, servers: OnDemandServers) -> TierHandle:
    data_dir = settings.data_dir
    key = os.environ.get(tier.api_key_env) if tier.api_key_env else None
    if tier.api_key_env and not key:
        raise ConfigError(f"tier {tier.name!r}: environment variable {tier.api_key_env} (its API key) is not set")
    if key is None and tier.api_base:
        key = "no-key-needed"  # OpenAI-compatible local servers accept any key
    hint = ("see its server log in the data dir" if tier.serve and tier.serve.start == "on_demand"
            else f"start it with `cascade models serve {tier.name}`" if tier.serve
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

    def ready_backend():
        servers.ensure(tier)  # a local server set to start on demand starts on first use
        return backend

    return TierHandle(name=tier.name, model_id=tier.model, model_file_hash=served_file_hash,
                      backend=ready_backend, external=tier.locality == "external")


def _configured_prices(tier: LlamaCppTier | LitellmTier | EncoderTier) -> tuple[float, float]:
    """An injected backend stands in for the tier: it costs what the tier's configured prices say
    (a litellm tier's backend would price by them too when both are set)."""
    prices = getattr(tier, "prices", None)
    if isinstance(tier, LitellmTier) and prices.input_per_1k is not None and prices.output_per_1k is not None:
        return (prices.input_per_1k, prices.output_per_1k)
    return _local_prices(tier) if prices is not None else (0.0, 0.0)


def _local_prices(tier: LlamaCppTier | LitellmTier) -> tuple[float, float]:
    """Configured prices of a local tier; remote tiers are priced by their backend per call."""
    if isinstance(tier, LlamaCppTier):
        return (tier.prices.input_per_1k or 0.0, tier.prices.output_per_1k or 0.0)
    return (0.0, 0.0)
