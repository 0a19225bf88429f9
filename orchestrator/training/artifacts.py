"""Trained-model artifacts on disk: versioned directories keyed by task, label set, base model and data.

    DATA_DIR/trained/<kind>/<task>/<artifact_id>/
        manifest.json     what the weights were fitted on and how well they did (see `Manifest`)
        ...weights        transformers `save_pretrained` files, or a small `.npz` head

`artifact_id` = f"{task}-{kind}-{data_hash[:8]}-v{N}", N counting up per (kind, task). A directory is
written under a hidden temporary name and renamed into place once complete, so a crash never leaves
a half-written artifact under a real name. Loading checks the manifest: an artifact whose label set or
base model differs from what the caller serves is never returned, and a corrupt one raises
`ModelFileError` naming the path and what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from agents.errors import InvalidInputError, ModelFileError, StorageError

__all__ = ["Kind", "BaseModelRef", "Manifest", "artifact_id", "data_hash", "save_artifact", "load_manifest",
           "versions", "newest", "artifact_root"]

Kind = Literal["classifier", "reader"]
MANIFEST = "manifest.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class BaseModelRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    sha256: str = Field(description="hash of the base encoder's weight file")


class Manifest(BaseModel):
    """What an artifact directory holds. Extra keys are kept (a newer writer may add some)."""

    model_config = ConfigDict(extra="allow")

    id: str
    kind: Kind
    task: str
    labels: list[str] | None = Field(description="classifier: the ordered label list; reader: null")
    base_model: BaseModelRef
    data_hash: str
    created_at: str
    recipe: dict[str, Any] = Field(default_factory=dict)
    train_seconds: float = 0.0
    heldout: dict[str, Any] = Field(default_factory=dict)
    version: int = Field(ge=1)
    files: dict[str, int] = Field(default_factory=dict, description="weight file -> size in bytes, checked on load")

    _path: Path | None = PrivateAttr(default=None)

    @property
    def path(self) -> Path | None:
        """The artifact's directory, once saved or loaded."""
        return self._path


def artifact_id(task: str, kind: str, data_hash_hex: str, version: int) -> str:
    return f"{task}-{kind}-{data_hash_hex[:8]}-v{version}"


def data_hash(rows: Iterable[tuple[str, str | None]]) -> str:
    """sha256 of the training rows (text, label) in order: the same data gives the same hash."""
    digest = hashlib.sha256()
    for text, label in rows:
        digest.update(json.dumps([text, label], ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def artifact_root(data_dir: Path, kind: str, task: str) -> Path:
    if not _NAME.match(task):
        raise InvalidInputError(f"task name {task!r} may hold only letters, digits, '.', '_' and '-'")
    if kind not in ("classifier", "reader"):
        raise InvalidInputError(f"artifact kind must be classifier or reader, not {kind!r}")
    return Path(data_dir) / "trained" / kind / task


def save_artifact(data_dir: Path, *, kind: Kind, task: str, labels: Sequence[str] | None, base_model: dict[str, str],
                  data_hash_hex: str, write: Callable[[Path], None], recipe: dict[str, Any] | None = None,
                  train_seconds: float = 0.0, heldout: dict[str, Any] | None = None) -> Manifest:
    """Write a new artifact version: `write(folder)` puts the weights into a temporary folder, then
    the manifest is written and the folder renamed into place. Returns the manifest (with `.path`)."""
    root = artifact_root(data_dir, kind, task)
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=root))
    except OSError as exc:
        raise StorageError(f"cannot create a trained-model artifact under {root}: {exc}") from None
    try:
        write(tmp)
        files = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
        if not files:
            raise ModelFileError(f"training wrote no weight files into {tmp}")
        version = max((m.version for m in _manifests(root)), default=0) + 1
        while True:
            manifest = Manifest(
                id=artifact_id(task, kind, data_hash_hex, version), kind=kind, task=task,
                labels=list(labels) if labels is not None else None, base_model=BaseModelRef(**base_model),
                data_hash=data_hash_hex, created_at=datetime.now(timezone.utc).isoformat(), recipe=recipe or {},
                train_seconds=round(train_seconds, 2), heldout=heldout or {}, version=version, files=files)
            (tmp / MANIFEST).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
            final = root / manifest.id
            try:
                os.rename(tmp, final)  # atomic; fails if another process took this version
                break
            except OSError:
                if not final.exists():
                    raise
                version += 1
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest._path = final
    return manifest


def load_manifest(folder: str | Path) -> Manifest:
    """The manifest of an artifact directory, checked: it parses, and every weight file it lists is
    there with its recorded size. Anything else is a `ModelFileError` saying what to do."""
    folder = Path(folder)
    fix = f"delete {folder} and run `cascade train` again"
    file = folder / MANIFEST
    try:
        manifest = Manifest.model_validate_json(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"trained-model artifact {folder} has no {MANIFEST} (half-written?); {fix}") from None
    except (OSError, ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(f"trained-model artifact {folder}: unreadable {MANIFEST} ({first}); {fix}") from None
    for name, size in manifest.files.items():
        path = folder / name
        if not path.is_file():
            raise ModelFileError(f"trained-model artifact {folder}: weight file {name} is missing; {fix}")
        if path.stat().st_size != size:
            raise ModelFileError(f"trained-model artifact {folder}: weight file {name} has {path.stat().st_size} "
                                 f"bytes, the manifest says {size} (truncated or replaced); {fix}")
    manifest._path = folder
    return manifest


def versions(data_dir: Path, kind: Kind, task: str) -> list[Manifest]:
    """Every readable artifact of (kind, task), oldest first; a corrupt one raises."""
    return _manifests(artifact_root(data_dir, kind, task), strict=True)


def newest(data_dir: Path, kind: Kind, task: str, labels: Sequence[str] | None = None,
           base_sha256: str | None = None, base_name: str | None = None) -> Manifest | None:
    """The newest artifact trained for exactly `labels` (same order) and, when given, this base model;
    None if there is none. Older artifacts of another label set are never returned. The newest matching
    directory being corrupt is an error, not a silent fall-back to an older one."""
    root = artifact_root(data_dir, kind, task)
    for folder in sorted(_folders(root), key=lambda f: _version_of(f.name), reverse=True):
        manifest = load_manifest(folder)
        if labels is not None and manifest.labels != list(labels):
            continue
        if base_sha256 is not None and manifest.base_model.sha256 != base_sha256:
            continue
        if base_name is not None and manifest.base_model.name != base_name:
            continue
        return manifest
    return None


def _folders(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and _version_of(p.name) > 0]


def _version_of(name: str) -> int:
    match = re.search(r"-v(\d+)$", name)
    return int(match.group(1)) if match else 0


def _manifests(root: Path, strict: bool = False) -> list[Manifest]:
    found = []
    for folder in _folders(root):
        try:
            found.append(load_manifest(folder))
        except ModelFileError:
            if strict:
                raise
            found.append(Manifest.model_construct(version=_version_of(folder.name)))  # its number stays taken
    return sorted(found, key=lambda m: m.version)
