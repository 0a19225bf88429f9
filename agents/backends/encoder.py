"""An encoder tier: sentence embeddings plus a linear head over them.

The head is plain numpy (`LinearHead`: softmax(W x + b) over L2-normalised embeddings), saved as a
small `.npz` and loaded without pickles. It comes from a trained artifact (`cascade train`) or is
fitted here on frozen embeddings of labelled examples (`fit_linear_head`, a multinomial logistic
regression). Milliseconds per item; a tier like any other in the ladder, for tasks with labelled data.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agents.errors import InvalidInputError, InvalidOutputError, ModelFileError
from agents.retrieval import Embedder, Example

__all__ = ["EncoderBackend", "EncoderOptions", "HeadBackend", "LinearHead", "fit_linear_head"]


class LinearHead:
    """P(label | embedding) = softmax(coef @ x + intercept), labels in a fixed order."""

    def __init__(self, labels: Sequence[str], coef: np.ndarray, intercept: np.ndarray) -> None:
        coef, intercept = np.asarray(coef, dtype=np.float32), np.asarray(intercept, dtype=np.float32)
        if coef.ndim != 2 or coef.shape[0] != len(labels) or intercept.shape != (len(labels),):
            raise ModelFileError(f"a linear head for {len(labels)} labels needs coef (labels x dim) and intercept "
                                 f"(labels); got {coef.shape} and {intercept.shape}")
        self.labels = list(labels)
        self.coef, self.intercept = coef, intercept

    @property
    def dim(self) -> int:
        return self.coef.shape[1]

    def predict_proba(self, vectors: np.ndarray) -> np.ndarray:
        """One row of label probabilities (in `labels` order) per embedding row."""
        logits = np.asarray(vectors, dtype=np.float32) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> None:
        np.savez(path, labels=np.array(self.labels, dtype=str), coef=self.coef, intercept=self.intercept)

    @classmethod
    def load(cls, path: str | Path) -> "LinearHead":
        """Read a head saved by `save` (a packaged file works the same); a bad file is a ModelFileError."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls([str(x) for x in data["labels"]], data["coef"], data["intercept"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise ModelFileError(f"linear head {path} is unreadable ({type(exc).__name__}: {exc}); "
                                 "train it again (`cascade train`) or restore the file") from None


def fit_linear_head(vectors: np.ndarray, labels: Sequence[str], label_order: Sequence[str] | None = None,
                    c: float = 4.0, max_iter: int = 2000) -> LinearHead:
    """A multinomial logistic regression on frozen embeddings. `label_order` fixes the head's labels
    (default: sorted); every label must have an example."""
    from sklearn.linear_model import LogisticRegression

    order = list(label_order) if label_order is not None else sorted(set(labels))
    missing = sorted(set(order) - set(labels))
    if len(order) < 2 or missing:
        raise InvalidInputError(f"a linear head needs examples of at least two labels and of every label; "
                                f"labels without examples: {missing or order}")
    model = LogisticRegression(C=c, max_iter=max_iter).fit(vectors, list(labels))
    position = {label: i for i, label in enumerate(model.classes_)}
    rows = [position[label] for label in order]
    coef, intercept = model.coef_, model.intercept_
    if len(model.classes_) == 2:  # scikit-learn keeps one row for two classes: logit of classes_[1]
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    return LinearHead(order, coef[rows], intercept[rows])


class HeadBackend:
    """Classifies raw text (no prompt): embed it, apply the head, renormalise over the asked labels."""

    def __init__(self, head: LinearHead, embed: Callable[[list[str]], np.ndarray], model_id: str,
                 head_id: str, known: set[str] | None = None) -> None:
        self.head, self.embed = head, embed
        self.model_id, self.file_hash = model_id, head_id  # head_id names the head in the audit log
        self.known = set(head.labels) if known is None else known

    def predict_proba(self, text: str, labels: list[str]) -> dict[str, float]:
        """P(label | text) over the requested labels (renormalised over them)."""
        return self.predict_proba_batch([text], labels)[0]

    def predict_proba_batch(self, texts: list[str], labels: list[str]) -> list[dict[str, float]]:
        """The same for many texts, embedded in one batch (what batch jobs use)."""
        unknown = [label for label in labels if label not in self.known]
        if unknown:
            raise InvalidOutputError(f"the encoder head has too few examples of {unknown}; add labelled examples")
        probs = self.head.predict_proba(self.embed(texts))
        columns = [self.head.labels.index(label) for label in labels]
        out = []
        for row in probs[:, columns]:
            row = row / row.sum() if row.sum() > 0 else np.full(len(labels), 1 / len(labels))
            out.append({label: float(p) for label, p in zip(labels, row)})
        return out


class EncoderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    examples: list[Example]
    c: float = Field(default=4.0, gt=0, description="inverse L2 strength of the logistic regression")
    min_per_label: int = Field(default=2, ge=1)
    cache_dir: Path | None = None  # embeddings of the examples, keyed by their content hash


class EncoderBackend(HeadBackend):
    """A head fitted here on frozen embeddings of `options.examples`."""

    def __init__(self, options: EncoderOptions, embedder: Embedder, model_name: str = "all-MiniLM-L6-v2") -> None:
        examples = options.examples
        counts: dict[str, int] = {}
        for e in examples:
            counts[e.label] = counts.get(e.label, 0) + 1
        if len(counts) < 2:
            raise InvalidInputError(f"an encoder head needs examples of at least two labels; got {sorted(counts)}")
        digest = hashlib.sha256("\n".join(f"{e.label}\t{e.text}" for e in examples).encode()).hexdigest()
        vectors = self._embeddings(embedder, examples, digest, options.cache_dir)
        head = fit_linear_head(vectors, [e.label for e in examples], c=options.c)
        super().__init__(head, embedder.embed, f"encoder:{model_name}+logreg({len(examples)} examples)", digest,
                         known={label for label, n in counts.items() if n >= options.min_per_label})

    @staticmethod
    def _embeddings(embedder: Embedder, examples: list[Example], digest: str, cache_dir: Path | None) -> np.ndarray:
        cache = cache_dir / f"encoder-{digest[:16]}.npy" if cache_dir else None
        if cache is not None and cache.is_file():
            return np.load(cache)
        vectors = embedder.embed([e.text for e in examples])
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, vectors)
        return vectors
