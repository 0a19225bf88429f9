"""Documents for question answering: text and markdown files, chunked, embedded with the bundled
all-MiniLM-L6-v2 and kept in Qdrant next to the example store (the same client: local mode on
disk in the data dir, or a server by URL), in a collection of their own.

A chunk keeps where it came from (file, index, character offsets: `text[start:end]` of the file
as read), so an answer's citation can point at the exact place. A file is stored once per
content: re-adding it is a no-op; adding a changed file replaces its old chunks.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel

from agents.errors import InvalidInputError
from agents.retrieval import EMBEDDING_DIM, ExampleStore

COLLECTION = "documents"
EXTENSIONS = (".txt", ".md", ".markdown")
CHUNK_MIN, CHUNK_MAX, OVERLAP = 500, 800, 80  # characters
MAX_FILE_BYTES = 8 << 20
_NAMESPACE = uuid.UUID("5b0c6a4e-6f4e-4d55-9a57-1f0c2d7e9a10")


class Passage(BaseModel):
    """One chunk of an ingested file."""

    path: str
    chunk: int
    start: int  # character offsets in the file's text
    end: int
    text: str
    doc_hash: str
    score: float | None = None  # similarity to the question, when retrieved


class Ingested(BaseModel):
    """What `add` did with one file."""

    path: str
    chunks: int  # chunks stored by this call (0 when the same content was already stored)
    already_stored: bool = False
    replaced: int = 0  # chunks of an earlier version of the file that were removed


def chunk_text(text: str) -> list[tuple[int, int]]:
    """(start, end) spans of about CHUNK_MIN..CHUNK_MAX characters: cut at a paragraph break if
    one falls in the window, else at a sentence end, else at a space; a chunk cut inside a
    paragraph overlaps the next by about OVERLAP characters."""
    spans, start, n = [], 0, len(text)
    while start < n:
        while start < n and text[start].isspace():
            start += 1
        if start >= n:
            break
        if n - start <= CHUNK_MAX:
            cut, overlap = n, False
        else:
            window = text[start:start + CHUNK_MAX]
            para = window.rfind("\n\n", CHUNK_MIN)
            sentence = max(window.rfind(". ", CHUNK_MIN), window.rfind(".\n", CHUNK_MIN))
            space = window.rfind(" ", CHUNK_MIN)
            if para > 0:
                cut, overlap = start + para, False
            elif sentence > 0:
                cut, overlap = start + sentence + 1, True
            else:
                cut, overlap = start + (space if space > 0 else CHUNK_MAX), True
        end = cut
        while end > start and text[end - 1].isspace():
            end -= 1
        spans.append((start, end))
        if cut >= n:
            break
        following = cut - OVERLAP if overlap else cut
        if overlap:  # start the overlap at a word boundary
            space = text.find(" ", following, cut)
            following = space + 1 if space >= 0 else cut
        start = max(following, start + 1)
    return spans


def read_document(path: Path) -> str:
    """The file's text, or an InvalidInputError saying what is wrong with it."""
    if not path.is_file():
        raise InvalidInputError(f"{path} does not exist or is not a file")
    if path.suffix.lower() not in EXTENSIONS:
        raise InvalidInputError(f"{path}: unsupported file type {path.suffix or '(none)'!r}; "
                                f"give text or markdown files ({', '.join(EXTENSIONS)})")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InvalidInputError(f"{path} is over {MAX_FILE_BYTES >> 20} MB; split it into smaller files")
    data = path.read_bytes()
    if b"\x00" in data:
        raise InvalidInputError(f"{path} looks binary (it holds NUL bytes); give a UTF-8 text or markdown file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path} is not UTF-8 text (byte {exc.start}); convert it to UTF-8 first") from None
    if not text.strip():
        raise InvalidInputError(f"{path} is empty; there is nothing to answer from")
    return text


class DocumentStore:
    """Chunks of ingested files in one Qdrant collection, sharing the example store's client
    (Qdrant local mode allows one client per directory) and embedding model."""

    def __init__(self, store: ExampleStore) -> None:
        self._store = store
        self.client = store.client

    def add(self, paths: list[str | Path]) -> list[Ingested]:
        """Ingest files. Every file is read and checked first: a bad one (missing, empty, binary,
        not UTF-8, not .txt/.md) raises InvalidInputError and nothing of the call is stored."""
        if not paths:
            raise InvalidInputError("give at least one file to add")
        read = [(Path(p).expanduser().resolve(), read_document(Path(p).expanduser())) for p in paths]
        self._ensure()
        return [self._add_one(path, text) for path, text in read]

    def search(self, question: str, k: int = 4) -> list[Passage]:
        """The k chunks closest to the question, most similar first ([] when nothing is stored)."""
        if k <= 0 or self.count() == 0:
            return []
        vector = self._store.embedder.embed([question])[0]
        hits = self.client.query_points(COLLECTION, query=vector.tolist(), limit=k).points
        return [Passage(**hit.payload, score=hit.score) for hit in hits]

    def count(self) -> int:
        return self.client.count(COLLECTION).count if self.client.collection_exists(COLLECTION) else 0

    def documents(self) -> list[dict]:
        """One row per stored file: path, content hash, chunks and when it was added."""
        rows: dict[str, dict] = {}
        for p in self._points():
            row = rows.setdefault(p["path"], {"path": p["path"], "doc_hash": p["doc_hash"], "chunks": 0,
                                              "chars": 0, "added_at": p.get("added_at")})
            row["chunks"] += 1
            row["chars"] = max(row["chars"], p["end"])
        return sorted(rows.values(), key=lambda r: r["path"])

    def _add_one(self, path: Path, text: str) -> Ingested:
        from qdrant_client import models

        doc_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
        stored = [p for p in self._points() if p["path"] == str(path)]
        if any(p["doc_hash"] == doc_hash for p in stored):
            return Ingested(path=str(path), chunks=0, already_stored=True)
        if stored:  # an earlier version of the file: its chunks would contradict this one
            self.client.delete(COLLECTION, points_selector=models.FilterSelector(filter=models.Filter(
                must=[models.FieldCondition(key="path", match=models.MatchValue(value=str(path)))])))
        spans = chunk_text(text)
        added_at = datetime.now(timezone.utc).isoformat()
        passages = [Passage(path=str(path), chunk=i, start=s, end=e, text=text[s:e], doc_hash=doc_hash)
                    for i, (s, e) in enumerate(spans)]
        vectors = self._store.embedder.embed([p.text for p in passages])
        points = [models.PointStruct(id=str(uuid.uuid5(_NAMESPACE, f"{doc_hash}:{p.path}:{p.chunk}")),
                                     vector=v.tolist(), payload={**p.model_dump(exclude={"score"}), "added_at": added_at})
                  for p, v in zip(passages, vectors)]
        self.client.upsert(COLLECTION, points=points)
        return Ingested(path=str(path), chunks=len(points), replaced=len(stored))

    def _points(self) -> list[dict]:
        if not self.client.collection_exists(COLLECTION):
            return []
        found, offset = [], None
        while True:
            points, offset = self.client.scroll(COLLECTION, limit=512, offset=offset, with_vectors=False)
            found.extend(p.payload for p in points)
            if offset is None:
                return found

    def _ensure(self) -> None:
        from qdrant_client import models

        if not self.client.collection_exists(COLLECTION):
            self.client.create_collection(COLLECTION, vectors_config=models.VectorParams(
                size=EMBEDDING_DIM, distance=models.Distance.COSINE))
            if self._store.url:  # a server filters by path through an index; local mode warns if asked for one
                self.client.create_payload_index(COLLECTION, "path", models.PayloadSchemaType.KEYWORD)
