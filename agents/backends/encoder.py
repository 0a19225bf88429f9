"""An encoder tier: sentence embeddings plus a linear head fitted on labelled data (scikit-learn).

Milliseconds per item and probabilities from a multinomial logistic regression; a tier like any
other in the ladder, for tasks with labelled data.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agents.errors import InvalidInputError, InvalidOutputError
from agents.retrieval import Embedder, Example


class EncoderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    examples: list[Example]
    c: float = Field(default=4.0, gt=0, description="inverse L2 strength of the logistic regression")
    min_per_label: int = Field(default=2, ge=1)
    cache_dir: Path | None = None  # embeddings of the examples, keyed by their content hash


class EncoderBackend:
    """Classifies raw text (no prompt) with a head over all-MiniLM-L6-v2 embeddings."""

    def __init__(self, options: EncoderOptions, embedder: Embedder) -> None:
        from sklearn.linear_model import LogisticRegression

        examples = options.examples
        counts: dict[str, int] = {}
        for e in examples:
            counts[e.label] = counts.get(e.label, 0) + 1
        if len(counts) < 2:
            raise InvalidInputError(f"an encoder head needs examples of at least two labels; got {sorted(counts)}")
        self.embedder = embedder
        digest = hashlib.sha256("\n".join(f"{e.label}\t{e.text}" for e in examples).encode()).hexdigest()
        self.file_hash = digest  # identifies the fitted head for the audit log and calibration
        self.model_id = f"encoder:all-MiniLM-L6-v2+logreg({len(examples)} examples)"
        vectors = self._embeddings(examples, digest, options.cache_dir)
        self.head = LogisticRegression(C=options.c, max_iter=2000).fit(vectors, [e.label for e in examples])
        self.known = {label for label, n in counts.items() if n >= options.min_per_label}

    def predict_proba(self, text: str, labels: list[str]) -> dict[str, float]:
        """P(label | text) over the requested labels (renormalised over them)."""
        unknown = [label for label in labels if label not in self.known]
        if unknown:
            raise InvalidOutputError(f"the encoder head has too few examples of {unknown}; add labelled examples")
        probs = self.head.predict_proba(self.embedder.embed([text]))[0]
        by_label = dict(zip(self.head.classes_, probs))
        chosen = np.array([by_label[label] for label in labels])
        chosen = chosen / chosen.sum() if chosen.sum() > 0 else np.full(len(labels), 1 / len(labels))
        return {label: float(p) for label, p in zip(labels, chosen)}

    def _embeddings(self, examples: list[Example], digest: str, cache_dir: Path | None) -> np.ndarray:
        cache = cache_dir / f"encoder-{digest[:16]}.npy" if cache_dir else None
        if cache is not None and cache.is_file():
            return np.load(cache)
        vectors = self.embedder.embed([e.text for e in examples])
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, vectors)
        return vectors
