"""Classification: the prompt, and the two ways to read a label out of a model.

A local model is scored: every allowed label is a continuation whose full-sequence probability
(all of its tokens, then end-of-turn) comes from the model's logits. A remote model answers in
text, which is matched to a label; its confidence comes from the returned token log-probabilities.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from agents.errors import InvalidInputError, InvalidOutputError
from agents.results import TierOutput

PROMPT_VERSION = "classify-v2"
ITEM = "{item}"  # where the item's text goes in the messages; backends splice it in at token level

SYSTEM = "You are a text classifier. Answer with exactly one of the allowed labels and nothing else."


def validate_labels(labels) -> list[str]:
    if isinstance(labels, str) or not isinstance(labels, (list, tuple)):
        raise InvalidInputError("labels must be a list of strings, e.g. labels=['spam', 'ham']")
    cleaned = []
    for label in labels:
        if not isinstance(label, str) or not label.strip():
            raise InvalidInputError(f"every label must be a non-empty string; got {label!r}")
        cleaned.append(label.strip())
    if len(cleaned) < 2:
        raise InvalidInputError(f"give at least two labels to choose from; got {len(cleaned)}")
    seen: dict[str, str] = {}
    for label in cleaned:
        key = label.casefold()
        if key in seen:
            raise InvalidInputError(f"duplicate label {label!r} (same as {seen[key]!r} ignoring case); labels must be distinct")
        seen[key] = label
    return cleaned


def validate_text(text) -> str:
    if not isinstance(text, str):
        raise InvalidInputError(f"text must be a string, not {type(text).__name__}")
    if not text.strip():
        raise InvalidInputError("text is empty; give the text to classify")
    return text


def messages(labels: list[str], item: str = ITEM, instruction: str = SYSTEM) -> list[dict[str, str]]:
    """The chat messages of the prompt. The label list comes before the item so it is part of the
    fixed prefix that a local backend evaluates once and reuses; `item` is the `item_block`.
    A task family built on classification (fraud flagging) gives its own `instruction` line."""
    allowed = "\n".join(f"- {label}" for label in labels)
    user = f"Allowed labels:\n{allowed}\n\n{item}\n\nAnswer with one allowed label."
    return [{"role": "system", "content": instruction}, {"role": "user", "content": user}]


def item_block(text: str, demonstrations: list[tuple[str, str]] = ()) -> str:
    """The per-item part of the prompt: labelled demonstrations (if any), then the text. Both are
    data: a backend never parses them for special tokens."""
    shown = "".join(f"Text:\n{demo}\nLabel: {label}\n\n" for demo, label in demonstrations)
    intro = "Labelled examples:\n\n" + shown + "Now the text to classify.\n" if demonstrations else ""
    return f"{intro}Text:\n{text}"


def prompt_version(demonstrations: list[tuple[str, str]] = (), base: str = PROMPT_VERSION,
                   vote_weight: float = 0.0) -> str:
    """What a calibration artifact matches on: the prompt, how many demonstrations it shows, and the
    weight of their (label-balanced) vote in the label probabilities."""
    if not demonstrations:
        return base
    return f"{base}+demos{len(demonstrations)}" + (f"+balvote{vote_weight:g}" if vote_weight else "")


def classify_by_scoring(backend, item: str, labels: list[str], instruction: str = SYSTEM) -> TierOutput:
    scored = backend.score(messages(labels, instruction=instruction), item, labels)
    logprobs = np.asarray(scored.logprobs, dtype=float)
    probs = np.exp(logprobs - logprobs.max())
    probs /= probs.sum()
    best = int(probs.argmax())
    return TierOutput(
        answer=labels[best], label_probs={l: float(p) for l, p in zip(labels, probs)},
        confidence=float(probs[best]), raw_output=labels[best],
        tokens_in=scored.tokens_in, tokens_out=scored.tokens_out,
    )


def neighbour_vote(neighbours: list[tuple[str, float | None]], labels: list[str],
                   store_counts: dict[str, int] | None = None, prior: float = 1.0) -> dict[str, float]:
    """The retrieved examples' vote on an item's label, from (label, cosine similarity) pairs: each
    neighbour adds its similarity (a negative one counts as 0) to its label, and `prior` pseudo-votes
    spread evenly over the labels keep a few distant neighbours from sounding sure. Near neighbours
    that agree give a confident vote; a sparse store gives an even one.

    `store_counts` (examples per label in the store searched) balances the vote: a neighbour counts
    in inverse proportion to its label's share of the store, relative to an even share. A store
    that learns mostly one label (the one the larger tier answers confidently) then does not
    drown the others' neighbours, and the vote means the same as the store grows, which the
    calibration fitted on another store relies on."""
    weights = {label: prior / len(labels) for label in labels}
    total_stored = sum(store_counts.get(label, 0) for label in labels) if store_counts else 0
    for label, similarity in neighbours:
        if label in weights:
            balance = total_stored / (len(labels) * max(store_counts.get(label, 0), 1)) if total_stored else 1.0
            weights[label] += max(similarity or 0.0, 0.0) * balance
    total = sum(weights.values())
    return {label: weight / total for label, weight in weights.items()}


def blend_vote(label_probs: dict[str, float], vote: dict[str, float], weight: float) -> dict[str, float]:
    """(1 - weight) x the model's label probabilities + weight x the neighbours' vote: the
    interpolation of kNN-LM (Khandelwal et al., 2020), here over the task's labels. The store of
    labelled examples, which grows with every resolved escalation, then speaks in the confidence
    as well as in the prompt."""
    if set(vote) != set(label_probs):
        raise ValueError(f"the vote is over {sorted(vote)}, the model's probabilities over {sorted(label_probs)}")
    return {label: (1 - weight) * p + weight * vote[label] for label, p in label_probs.items()}


def answer_schema(labels: list[str]) -> dict:
    """The JSON schema a remote model's answer must follow: one allowed label."""
    return {"type": "object", "properties": {"label": {"type": "string", "enum": labels}},
            "required": ["label"], "additionalProperties": False}


def classify_by_completion(backend, item: str, labels: list[str], instruction: str = SYSTEM) -> TierOutput:
    completion = backend.complete(messages(labels, item, instruction), schema=answer_schema(labels))
    answer, span = _parse_answer(completion.text, labels)
    if answer is None:
        raise InvalidOutputError(f"answer {completion.text[:80]!r} is none of the allowed labels")
    confidence = span_probability(completion.tokens, span) if completion.tokens else None
    return TierOutput(answer=answer, confidence=confidence, raw_output=completion.text,
                      tokens_in=completion.tokens_in, tokens_out=completion.tokens_out, cost=completion.cost)


def _parse_answer(output: str, labels: list[str]) -> tuple[str | None, tuple[int, int]]:
    """The label a remote answer gives, and where its text sits in the output (for its tokens'
    probability). JSON {"label": ...} when the provider followed the schema, else free text."""
    try:
        value = json.loads(output).get("label")
    except (ValueError, AttributeError):
        value = None
    if isinstance(value, str) and value in labels:
        start = output.find(json.dumps(value)[1:-1])
        return value, (start, start + len(json.dumps(value)) - 2)
    label = match_label(output, labels)
    return label, (0, len(output))


def span_probability(tokens: list[tuple[str, float]], span: tuple[int, int]) -> float:
    """Probability of the tokens that overlap the answer's characters: the JSON around a label
    says nothing about the model's certainty, so it is left out."""
    position, total = 0, 0.0
    for token, logprob in tokens:
        end = position + len(token)
        if end > span[0] and position < span[1]:
            total += logprob
        position = end
    return math.exp(total)


def classify_by_encoder(backend, text: str, labels: list[str]) -> TierOutput:
    probs = backend.predict_proba(text, labels)
    best = max(probs, key=probs.get)
    return TierOutput(answer=best, label_probs=probs, confidence=probs[best], raw_output=best)


def classify(backend, payload: dict, instruction: str = SYSTEM) -> TierOutput:
    """Run one tier on a classification payload {text, labels, demonstrations?}, whichever kind of
    backend it is: an encoder reads the raw text, a language model the prompt."""
    if hasattr(backend, "predict_proba"):
        return classify_by_encoder(backend, payload["text"], payload["labels"])
    item = item_block(payload["text"], payload.get("demonstrations", ()))
    if hasattr(backend, "score"):
        return classify_by_scoring(backend, item, payload["labels"], instruction)
    return classify_by_completion(backend, item, payload["labels"], instruction)


def match_label(output: str, labels: list[str]) -> str | None:
    """The allowed label a free-text answer names: exact, then leading, then whole-word mention."""
    first_line = output.strip().splitlines()[0] if output.strip() else ""
    norm = _normalise(first_line)
    by_norm = {_normalise(l): l for l in labels}
    if norm in by_norm:
        return by_norm[norm]
    for key in sorted(by_norm, key=len, reverse=True):
        if key and (norm.startswith(key + " ") or re.search(rf"(?<!\w){re.escape(key)}(?!\w)", norm)):
            return by_norm[key]
    return None


def _normalise(text: str) -> str:
    text = text.casefold().strip()
    text = re.sub(r"^(label|answer|category)\s*:\s*", "", text)
    return re.sub(r"\s+", " ", text.strip(" \t\"'`*.:;,!-[]()"))
