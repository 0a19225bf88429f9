"""A GGUF model run in-process through llama-cpp-python, scored from its raw logits.

Two things make a tiny model usable per item here:
- the fixed part of the prompt (instructions, label list) is evaluated once and kept in the KV
  cache; each item evaluates only its own tokens after it;
- label probabilities come from the logits of the positions that predict each label token, read
  one position at a time (no `logits_all`, which would allocate n_ctx x vocabulary floats).
"""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agents.errors import InvalidInputError, ModelFileError

_SPLIT = "\ue000ITEM\ue000"  # a private-use marker where the item goes when the chat template is rendered
_PARALLEL = 64  # sequences per context: the prompt's plus up to 63 answer branches per decode


class LlamaCppOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_path: Path
    n_ctx: int = Field(default=2048, ge=128)
    n_threads: int | None = Field(default=None, ge=1)
    n_batch: int = Field(default=512, ge=8)


class Scored(BaseModel):
    """Log-probability of each continuation as a full sequence ending with end-of-turn."""

    logprobs: list[float]
    tokens_in: int  # prompt tokens the model saw for this item (prefix + item)
    tokens_out: int  # continuation tokens scored
    prefix_reused: bool


class Generated(BaseModel):
    """Generated text with each token's log-probability (from the last position's logits at each
    step, before the grammar's constraint: the model's own belief in the token it chose)."""

    text: str
    token_bytes: list[int]  # UTF-8 length of each generated token, in order (text is their concatenation)
    token_logprobs: list[float]
    tokens_in: int
    tokens_out: int


class LlamaCppBackend:
    """Scores continuations of a chat prompt with a local GGUF model."""

    def __init__(self, options: LlamaCppOptions) -> None:
        from llama_cpp import Llama
        from llama_cpp._internals import LlamaBatch

        path = options.model_path
        if not path.is_file():
            raise ModelFileError(f"model file {path} does not exist")
        # Both thread counts: llama-cpp-python defaults n_threads_batch (prompt and label-branch
        # decodes, most of our work) to every core, so worker processes sharing a machine would
        # each spin that many threads and slow one another several-fold.
        threads = options.n_threads or os.cpu_count()
        try:
            self.llm = Llama(model_path=str(path), n_ctx=options.n_ctx, n_batch=options.n_batch,
                             n_threads=threads, n_threads_batch=threads, logits_all=False, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"cannot load {path} as a GGUF model ({exc}); the file is corrupt or not a GGUF "
                                 "model: reinstall it or point model_path at a valid file") from None
        self._allow_parallel_sequences()
        self.options = options
        self.model_id = path.name
        self._n_vocab = self.llm.n_vocab()
        self._batch = LlamaBatch(n_tokens=options.n_batch, embd=0, n_seq_max=1, verbose=False)
        self._template = self._chat_template()
        # How a scored answer is written and ended: after the chat template's assistant header up to
        # end-of-turn (the model's EOS), or in a plain transcript after "Answer:" and a space, up to the
        # blank line that ends every worked answer (a base model writes no EOS there: scoring one cost
        # about 20 nats for every label and blurred their ranking).
        self._answer_lead = "" if self._template is not None else " "
        self._answer_end = ([self.llm.token_eos()] if self._template is not None
                            else self._tokenize("\n\n", special=False))
        self._cached_prefix: list[int] = []  # tokens whose KV entries sit at positions [0, len)
        # True while the KV cache is what llama-cpp-python's own generate() last left (its token
        # record matches): the next generate() then re-evaluates only past the shared prefix
        self._generation_cache = False

    # -- the one public method ------------------------------------------------------------------

    def score(self, messages: list[dict[str, str]], item: str, continuations: list[str]) -> Scored:
        """Log P(continuation, end of answer | prompt) for each continuation, the item spliced into
        `messages` where the placeholder `{item}` stands."""
        self._generation_cache = False
        prefix, suffix = self._render(messages)
        prefix_tokens = self._with_bos(self._tokenize(prefix, special=True))
        # The item is data: its text is never parsed for special tokens, so it cannot end a turn.
        item_tokens = self._tokenize(item, special=False) + self._tokenize(suffix, special=True)
        n_prompt = len(prefix_tokens) + len(item_tokens)
        sequences = [self._tokenize(self._answer_lead + text, special=False) + self._answer_end for text in continuations]
        if n_prompt + max(map(len, sequences)) > self.options.n_ctx:
            raise InvalidInputError(f"the prompt is {n_prompt} tokens; with the answer it exceeds this model's "
                                    f"context of {self.options.n_ctx} tokens: shorten the text or raise n_ctx")
        reused = prefix_tokens == self._cached_prefix
        if not reused:
            self._decode(prefix_tokens, start=0, outputs=False, keep_from=0)
            self._cached_prefix = prefix_tokens
        first = self._decode(item_tokens, start=len(prefix_tokens), outputs=False, keep_from=len(prefix_tokens))
        first_logprobs = _log_softmax(first[-1])
        scores = [float(first_logprobs[tokens[0]]) for tokens in sequences]
        # Every continuation's remaining tokens go in one batch, each on its own sequence that
        # shares the prompt's cache entries, so a 77-label set costs one or two decodes, not 77.
        for group in _groups([i for i, t in enumerate(sequences) if len(t) > 1], _PARALLEL - 1):
            rows = self._decode_parallel([sequences[i][:-1] for i in group], start=n_prompt)
            for i, seq_rows in zip(group, rows):
                scores[i] += sum(float(_log_softmax(row)[tok]) for row, tok in zip(seq_rows, sequences[i][1:]))
        scored_tokens = sum(len(t) for t in sequences)
        return Scored(logprobs=scores, tokens_in=n_prompt, tokens_out=scored_tokens, prefix_reused=reused)

    def generate(self, messages: list[dict[str, str]], item: str, schema: dict | None = None,
                 max_tokens: int = 128) -> Generated:
        """Greedy generation after the chat prompt, the item spliced in as data (never parsed for
        special tokens); with `schema`, constrained to that JSON schema by a llama.cpp grammar.
        Log-probabilities are read per step from the last position only (no `logits_all`)."""
        import llama_cpp
        from llama_cpp import LlamaGrammar, LogitsProcessorList

        prefix, suffix = self._render(messages)
        tokens = (self._with_bos(self._tokenize(prefix, special=True)) + self._tokenize(item, special=False)
                  + self._tokenize(suffix, special=True))
        if len(tokens) + max_tokens > self.options.n_ctx:
            raise InvalidInputError(f"the prompt is {len(tokens)} tokens; with {max_tokens} to generate it exceeds "
                                    f"this model's context of {self.options.n_ctx}: use fewer passages or raise n_ctx")
        grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False) if schema else None
        steps: list[np.ndarray] = []

        def record(_ids, scores):
            steps.append(_log_softmax(np.asarray(scores, dtype=np.float64)))
            return scores

        # generate() keeps the longest prefix it evaluated before (the instructions and demonstrations)
        # and re-evaluates the rest; after score() the cache is not its own, so it starts afresh
        if not self._generation_cache:
            self.llm.reset()
        self._cached_prefix = []
        self._generation_cache = True
        out, logprobs = [], []
        for token in self.llm.generate(tokens, temp=0.0, grammar=grammar, reset=True,
                                       logits_processor=LogitsProcessorList([record])):
            if token == self.llm.token_eos() or llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token):
                break
            out.append(token)
            logprobs.append(float(steps[-1][token]))
            if len(out) >= max_tokens:
                break
        pieces = [self.llm.detokenize([t]) for t in out]
        return Generated(text=b"".join(pieces).decode("utf-8", errors="replace"), token_bytes=[len(p) for p in pieces],
                         token_logprobs=logprobs, tokens_in=len(tokens), tokens_out=len(out))

    def forget_prefix(self) -> None:
        """Drop the cached prefix, so the next call evaluates its whole prompt (for benchmarks)."""
        self.llm._ctx.kv_cache_seq_rm(0, 0, -1)
        self._cached_prefix = []
        self._generation_cache = False

    def prefix_length(self, messages: list[dict[str, str]]) -> int:
        """Tokens of the fixed part of a prompt (everything before the item)."""
        return len(self._with_bos(self._tokenize(self._render(messages)[0], special=True)))

    # -- helpers --------------------------------------------------------------------------------

    def _decode(self, tokens: list[int], start: int, outputs: bool, keep_from: int) -> list[np.ndarray]:
        """Evaluate `tokens` at positions start.. after dropping cached entries from `keep_from` on.
        Returns the logits of every position if `outputs`, else of the last position only."""
        ctx = self.llm._ctx
        ctx.kv_cache_seq_rm(0, keep_from, -1)
        rows: list[np.ndarray] = []
        step = self.options.n_batch
        for offset in range(0, len(tokens), step):
            chunk = tokens[offset:offset + step]
            last_chunk = offset + step >= len(tokens)
            b = self._batch.batch
            b.n_tokens = len(chunk)
            for i, token in enumerate(chunk):
                b.token[i] = token
                b.pos[i] = start + offset + i
                b.seq_id[i][0] = 0
                b.n_seq_id[i] = 1
                b.logits[i] = outputs or (last_chunk and i == len(chunk) - 1)
            ctx.decode(self._batch)
            wanted = range(len(chunk)) if outputs else ([len(chunk) - 1] if last_chunk else [])
            rows.extend(self._logits(i) for i in wanted)
        if start == 0 or keep_from < len(self._cached_prefix):
            self._cached_prefix = self._cached_prefix[:keep_from]
        return rows

    def _decode_parallel(self, branches: list[list[int]], start: int) -> list[list[np.ndarray]]:
        """Evaluate each branch after the prompt (sequence 0, positions < start) on a sequence of
        its own, and return the logits of every branch position. The branches are dropped after."""
        ctx = self.llm._ctx
        total = sum(len(b) for b in branches)
        if total > self.options.n_batch:
            raise InvalidInputError(f"the answer options need {total} tokens in one batch; the limit is "
                                    f"n_batch={self.options.n_batch}: use fewer or shorter labels")
        b = self._batch.batch
        b.n_tokens = total
        j = 0
        for seq, branch in enumerate(branches, start=1):
            ctx.kv_cache_seq_cp(0, seq, 0, start)
            for k, token in enumerate(branch):
                b.token[j], b.pos[j], b.n_seq_id[j], b.logits[j] = token, start + k, 1, True
                b.seq_id[j][0] = seq
                j += 1
        try:
            ctx.decode(self._batch)
            rows, j = [], 0
            for branch in branches:
                rows.append([self._logits(j + k) for k in range(len(branch))])
                j += len(branch)
            return rows
        finally:
            for seq in range(1, len(branches) + 1):
                ctx.kv_cache_seq_rm(seq, 0, -1)

    def _allow_parallel_sequences(self) -> None:
        """Recreate the context so label branches can run as parallel sequences over one shared
        (unified) KV cache; Llama() does not expose these two context parameters."""
        from llama_cpp._internals import LlamaContext

        params = self.llm.context_params
        params.n_seq_max = _PARALLEL
        params.kv_unified = True
        self.llm._ctx.close()
        self.llm._ctx = LlamaContext(model=self.llm._model, params=params, verbose=False)

    def _logits(self, batch_index: int) -> np.ndarray:
        pointer = self.llm._ctx.get_logits_ith(batch_index)
        return np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(self._n_vocab,)).copy()

    def _tokenize(self, text: str, special: bool) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def _with_bos(self, tokens: list[int]) -> list[int]:
        bos = self.llm.token_bos()
        wants_bos = self.llm.metadata.get("tokenizer.ggml.add_bos_token", "true") == "true"
        return [bos, *tokens] if wants_bos and bos >= 0 and tokens[:1] != [bos] else tokens

    def _chat_template(self):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        eos = self.llm._model.token_get_text(self.llm.token_eos())
        bos = self.llm._model.token_get_text(self.llm.token_bos()) if self.llm.token_bos() >= 0 else ""
        return Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)

    def _render(self, messages: list[dict[str, str]]) -> tuple[str, str]:
        """The prompt text before and after the item."""
        filled = [{**m, "content": m["content"].replace("{item}", _SPLIT)} for m in messages]
        if self._template is not None:
            text = self._template(messages=filled).prompt
        else:
            text = _plain_transcript(filled)
        prefix, _, suffix = text.partition(_SPLIT)
        return prefix, suffix


def _plain_transcript(messages: list[dict[str, str]]) -> str:
    """What a base model without a chat template reads: the instruction, then every turn as its text
    and an `Answer:` line, worked answers filled in, the item's left open. A scored answer follows
    after a space and ends with the blank line that separates the turns (`_answer_lead`, `_answer_end`)."""
    parts: list[str] = []
    for m in messages:
        if m["role"] == "assistant" and parts:
            parts[-1] += f" {m['content']}"
        elif m["role"] == "user":
            parts.append(f"{m['content']}\nAnswer:")
        else:
            parts.append(m["content"])
    return "\n\n".join(parts)


def _groups(items: list[int], size: int) -> list[list[int]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())
