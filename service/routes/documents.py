"""Documents for `ask`: add (stored under the data directory's documents/ by name), list."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request

from agents.documents import Ingested, read_document
from agents.errors import InvalidInputError

from service.deps import AdminKey, StateDep, TasksKey
from service.idempotent import respond_once
from service.schemas import DocumentsRequest

router = APIRouter(prefix="/v1/documents", tags=["documents"])
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]*\.(txt|md)$")


@router.post("", response_model=list[Ingested])
def add_documents(body: DocumentsRequest, request: Request, state: StateDep, principal: AdminKey):
    """Chunk, embed and store documents; a name already stored with the same text is skipped."""
    names = [d.name for d in body.documents]
    if bad := [n for n in names if not _NAME.match(n)]:
        raise InvalidInputError(f"document name(s) {bad} must be plain file names ending in .txt or .md")
    if len(set(names)) < len(names):
        raise InvalidInputError("each document name may appear once per request")

    def add(cascade):
        folder = state.settings.data_dir / "documents"
        staged = folder / ".incoming"
        staged.mkdir(parents=True, exist_ok=True)
        paths = [staged / d.name for d in body.documents]
        try:
            for d, path in zip(body.documents, paths):
                path.write_text(d.text, encoding="utf-8")
                read_document(path)  # every document checked before any is stored
            final = [path.replace(folder / path.name) for path in paths]
        finally:
            for path in paths:
                path.unlink(missing_ok=True)
        return cascade.add_documents(final)

    return respond_once(request, state, principal, body, lambda: state.call(principal.key_id, add))


@router.get("", response_model=list[dict])
def list_documents(state: StateDep, principal: TasksKey):
    """One row per stored document: path, chunks, characters, content hash, when it was added."""
    return state.call(principal.key_id, lambda c: c.documents.documents())
