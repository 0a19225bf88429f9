"""An extractive reader: an encoder with a span head points at the answer inside a passage, or at nothing.

The model (transformers `AutoModelForQuestionAnswering`, e.g. all-MiniLM-L6-v2 with a span head
trained by orchestrator.training.reader) reads (question, passage) windows and gives every token a
start and an end logit. The answer is the best span of any window; the SQuAD-2 null-score recipe
decides whether to answer at all: the [CLS] token's start+end logits are the "no answer" score, and a
window answers only when its best span scores above it (by `null_margin`). The answer is therefore a
verbatim piece of a passage by construction.

Confidence is a softmax over the window's candidate spans and its null score: the best span's share
when answering, the null's share (the least sure window's) when abstaining.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agents.errors import InvalidInputError, InvalidOutputError, ModelFileError

TOP_K = 20  # start and end candidates per window (the SQuAD recipe's n-best)


class ReaderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folder: Path = Field(description="a transformers save_pretrained folder with a question-answering head")
    model_id: str = Field(description="what the audit names: the trained artifact's id")
    file_hash: str | None = None
    max_length: int = Field(default=256, ge=32, le=512, description="tokens per (question, passage) window")
    stride: int = Field(default=64, ge=0, description="tokens shared by consecutive windows of a long passage")
    max_answer_tokens: int = Field(default=30, ge=1)
    null_margin: float = Field(default=0.0, description="a span must beat the no-answer score by this much")
    threads: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=16, ge=1)


@dataclass(frozen=True)
class Span:
    passage: int  # 0-based index of the passage it was read from
    start: int  # character offsets in that passage
    end: int
    text: str
    score: float  # start + end logit


@dataclass(frozen=True)
class Reading:
    """What the reader made of one question: a span, or None when the null score wins."""

    span: Span | None
    best: Span | None  # the best span even when abstaining (what a lower null margin would answer)
    span_prob: float  # the best span's softmax share against its window's candidates and null
    null_prob: float  # the null's share in the least sure window
    margin: float  # best span score minus its window's null score

    @property
    def confidence(self) -> float:
        return self.span_prob if self.span is not None else self.null_prob


def encode(tokenizer, questions: list[str], contexts: list[str], max_length: int, stride: int, padding=True):
    """(question, context) pairs as windows of at most `max_length` tokens: a long context becomes
    several windows sharing `stride` tokens; `overflow_to_sample_mapping` says which pair each is.
    A question longer than half a window is cut to that, and the stride shrinks so that the longest
    question still leaves room for the passage (the tokenizer refuses a stride that does not fit)."""
    limit = max_length // 2
    lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
    if max(lengths, default=0) > limit:
        questions = [q if n <= limit else tokenizer.decode(tokenizer(q, add_special_tokens=False)["input_ids"][:limit])
                     for q, n in zip(questions, lengths)]
    room = max_length - min(max(lengths, default=0), limit) - 3  # [CLS] question [SEP] passage [SEP]
    stride = max(0, min(stride, room - 8))
    return tokenizer(questions, contexts, truncation="only_second", max_length=max_length, stride=stride,
                     return_overflowing_tokens=True, return_offsets_mapping=True, padding=padding)


def best_in_window(start_logits: np.ndarray, end_logits: np.ndarray, context_mask: np.ndarray,
                   max_answer_tokens: int) -> tuple[tuple[int, int] | None, float, float, float, float]:
    """The best span of one window (token indices, inclusive), its score, the null score, and the
    softmax shares of the best span and of null among the window's candidates."""
    null = float(start_logits[0] + end_logits[0])
    positions = np.flatnonzero(context_mask)
    if positions.size == 0:
        return None, -np.inf, null, 0.0, 1.0
    starts = positions[np.argsort(-start_logits[positions])[:TOP_K]]
    ends = positions[np.argsort(-end_logits[positions])[:TOP_K]]
    scores = start_logits[starts][:, None] + end_logits[ends][None, :]
    length = ends[None, :] - starts[:, None]
    scores = np.where((length >= 0) & (length < max_answer_tokens), scores, -np.inf)
    if not np.isfinite(scores).any():
        return None, -np.inf, null, 0.0, 1.0
    i, j = np.unravel_index(np.argmax(scores), scores.shape)
    best = float(scores[i, j])
    pool = np.append(scores[np.isfinite(scores)], null)
    top = pool.max()
    total = np.exp(pool - top).sum()
    return (int(starts[i]), int(ends[j])), best, null, float(np.exp(best - top) / total), float(np.exp(null - top) / total)


def decode(encoded, start_logits: np.ndarray, end_logits: np.ndarray, contexts: list[list[str]],
           max_answer_tokens: int, null_margin: float) -> list[Reading]:
    """One Reading per item from the logits of its windows. `contexts[item]` are the item's passages,
    in the order they were encoded (item-major); `encoded["pair"]` maps each window to (item, passage)."""
    per_item: dict[int, list[tuple[float, Span | None, float, float, float]]] = {}
    for w, (item, passage) in enumerate(encoded["pair"]):
        mask = np.array([s == 1 for s in encoded.sequence_ids(w)], dtype=bool)
        mask &= np.array(encoded["attention_mask"][w], dtype=bool)
        found, score, null, span_share, null_share = best_in_window(start_logits[w], end_logits[w], mask,
                                                                    max_answer_tokens)
        span = None
        if found is not None:
            offsets = encoded["offset_mapping"][w]
            a, b = offsets[found[0]][0], offsets[found[1]][1]
            text = contexts[item][passage]
            span = Span(passage=passage, start=a, end=b, text=text[a:b], score=score)
        per_item.setdefault(item, []).append((score - null, span, span_share, null_share, score))
    readings = []
    for item in range(len(contexts)):
        windows = per_item.get(item, [])
        usable = [w for w in windows if w[1] is not None and w[1].text.strip()]
        least_sure_null = min((w[3] for w in windows), default=1.0)
        if not usable:
            readings.append(Reading(span=None, best=None, span_prob=0.0, null_prob=least_sure_null, margin=-np.inf))
            continue
        margin, span, span_share, _, _ = max(usable, key=lambda w: w[0])
        answered = span if margin > null_margin else None
        readings.append(Reading(span=answered, best=span, span_prob=span_share, null_prob=least_sure_null,
                                margin=float(margin)))
    return readings


class ExtractiveReader:
    """A trained span reader loaded from a save_pretrained folder, run on CPU."""

    def __init__(self, options: ReaderOptions) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer
        from transformers.utils import logging

        logging.disable_progress_bar()  # a per-load progress bar of weight names says nothing to a user
        self.options = options
        self.model_id, self.file_hash = options.model_id, options.file_hash
        if options.threads:
            torch.set_num_threads(options.threads)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(options.folder))
            self.model = AutoModelForQuestionAnswering.from_pretrained(str(options.folder)).eval()
        except (OSError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelFileError(f"reader weights in {options.folder} do not load ({first}); delete the folder "
                                 "and train the reader again") from None
        self._torch = torch

    def read(self, question: str, passages: list[str]) -> Reading:
        return self.read_many([(question, passages)])[0]

    def read_many(self, items: list[tuple[str, list[str]]]) -> list[Reading]:
        """Read several questions (each with its passages) in batches of windows."""
        if not items or any(not passages for _, passages in items):
            raise InvalidInputError("the reader needs at least one passage per question")
        pairs = [(i, p) for i, (_, passages) in enumerate(items) for p in range(len(passages))]
        questions = [items[i][0] for i, _ in pairs]
        contexts = [items[i][1][p] for i, p in pairs]
        encoded = encode(self.tokenizer, questions, contexts, self.options.max_length, self.options.stride)
        encoded["pair"] = [pairs[k] for k in encoded["overflow_to_sample_mapping"]]
        starts, ends = self.logits(encoded)
        return decode(encoded, starts, ends, [passages for _, passages in items], self.options.max_answer_tokens,
                      self.options.null_margin)

    def logits(self, encoded) -> tuple[np.ndarray, np.ndarray]:
        """Start and end logits of every window, padded to the longest window."""
        torch, size = self._torch, self.options.batch_size
        names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
        width = len(encoded["input_ids"][0])
        starts, ends = [], []
        with torch.inference_mode():
            for at in range(0, len(encoded["input_ids"]), size):
                batch = {k: torch.tensor(encoded[k][at:at + size]) for k in names}
                out = self.model(**batch)
                starts.append(out.start_logits.float().numpy())
                ends.append(out.end_logits.float().numpy())
        start, end = np.concatenate(starts), np.concatenate(ends)
        assert start.shape[1] == width
        return start, end


class TaskReaders:
    """A reader tier's backend: one trained reader per task (ask, contract), loaded on first use by
    `load(task)`, which raises when the task has no trained reader."""

    def __init__(self, load: Callable[[str], ExtractiveReader]) -> None:
        self._load, self._readers = load, {}

    def reader(self, task: str) -> ExtractiveReader:
        if task not in self._readers:
            self._readers[task] = self._load(task)
        return self._readers[task]

    def complete(self, *args, **kwargs):
        """Classification tasks reach a backend through `complete`: a reader has no labels to choose."""
        raise InvalidOutputError("an extractive reader answers ask and contract only; it cannot classify")
