"""Any model litellm can reach: cloud providers, or llama-cpp-python's local OpenAI-compatible server."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from agents.errors import InvalidOutputError, ModelError, ModelTimeoutError, TierUnreachableError

# litellm fetches a remote price map at import unless told not to; there is no network here.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


class LitellmOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    api_base: str | None = None
    api_key: SecretStr | None = None
    timeout_s: float = Field(default=60.0, gt=0)
    max_tokens: int = Field(default=16, ge=1)
    input_per_1k: float | None = None
    output_per_1k: float | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    # How to ask for output that follows a JSON schema: OpenAI's structured outputs, the
    # {"type": "json_object", "schema": ...} form of llama-cpp-python's server, or not at all.
    schema_mode: Literal["json_schema", "json_object_schema", "none"] = "json_schema"
    logprobs: bool = True  # token log-probabilities give the answer a confidence
    unreachable_hint: str = "check the provider, its api_base and the network"


class Completion(BaseModel):
    text: str
    tokens: list[tuple[str, float]] | None  # (token text, log-probability), when the provider returns them
    tokens_in: int
    tokens_out: int
    cost: float


class LitellmBackend:
    """Calls a chat model through litellm and returns its text, token log-probabilities and cost."""

    def __init__(self, options: LitellmOptions) -> None:
        self.options = options
        self.model_id = options.model

    def complete(self, messages: list[dict[str, str]], schema: dict[str, Any] | None = None) -> Completion:
        """One chat completion; with `schema`, the output is constrained to that JSON schema where
        the provider allows it (see `schema_mode`)."""
        import litellm
        import openai

        litellm.suppress_debug_info = True
        o = self.options
        kwargs: dict[str, Any] = dict(
            model=o.model, messages=messages, max_tokens=o.max_tokens, temperature=0.0,
            timeout=o.timeout_s, num_retries=0, drop_params=True, **o.extra,
        )
        if o.logprobs:
            kwargs.update(logprobs=True, top_logprobs=1)
        if schema is not None and o.schema_mode == "json_schema":
            kwargs["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "answer", "schema": schema, "strict": True}}
        elif schema is not None and o.schema_mode == "json_object_schema":
            kwargs["response_format"] = {"type": "json_object", "schema": schema}
        if o.api_base:
            kwargs["api_base"] = o.api_base
        if o.api_key:
            kwargs["api_key"] = o.api_key.get_secret_value()
        try:
            response = litellm.completion(**kwargs)
        except litellm.Timeout:
            raise ModelTimeoutError(f"{o.model} did not answer within {o.timeout_s:g} s") from None
        except litellm.AuthenticationError:
            raise ModelError(f"{o.model} rejected the credentials; check the API key variable configured for it") from None
        except openai.APIError as exc:  # litellm's exceptions derive from openai's
            if _is_connection_failure(exc):
                where = f" at {o.api_base}" if o.api_base else ""
                raise TierUnreachableError(f"{o.model}{where} is unreachable; {o.unreachable_hint}") from None
            raise ModelError(f"{o.model} failed: {type(exc).__name__}: {str(getattr(exc, 'message', ''))[:300]}") from None

        choice = response.choices[0]
        text = choice.message.content
        if text is None:
            raise InvalidOutputError(f"{o.model} returned no text")
        usage = getattr(response, "usage", None)
        tokens_in = getattr(usage, "prompt_tokens", 0) or 0
        tokens_out = getattr(usage, "completion_tokens", 0) or 0
        return Completion(text=text, tokens=_token_logprobs(choice), tokens_in=tokens_in,
                          tokens_out=tokens_out, cost=self._cost(response, tokens_in, tokens_out))

    def _cost(self, response, tokens_in: int, tokens_out: int) -> float:
        o = self.options
        if o.input_per_1k is not None and o.output_per_1k is not None:
            return (tokens_in * o.input_per_1k + tokens_out * o.output_per_1k) / 1000
        import litellm

        try:
            return float(litellm.completion_cost(completion_response=response))
        except Exception:  # litellm raises plain Exception for models missing from its price map
            return 0.0


def _is_connection_failure(exc: Exception) -> bool:
    """litellm reports a refused connection as APIConnectionError or, for OpenAI-compatible
    servers, as InternalServerError('Connection error.')."""
    import litellm

    if isinstance(exc, (litellm.APIConnectionError, litellm.ServiceUnavailableError)):
        return True
    return isinstance(exc, litellm.InternalServerError) and "connection error" in str(exc).lower()


def _token_logprobs(choice) -> list[tuple[str, float]] | None:
    """(token, log-probability) pairs of the generated text, when the provider returns them."""
    logprobs = getattr(choice, "logprobs", None)
    if logprobs is None:
        return None
    content = logprobs.get("content") if isinstance(logprobs, dict) else getattr(logprobs, "content", None)
    if not content:
        return None
    pairs = [(t["token"], t["logprob"]) if isinstance(t, dict) else (t.token, t.logprob) for t in content]
    return [(str(token), float(lp)) for token, lp in pairs]
