"""Calibration artifacts on disk: versioned JSON files per task, found again by task, model file
hash, prompt version and exact label list."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from agents.errors import InvalidInputError, StorageError

from orchestrator.calibration.fitting import CalibrationArtifact, labels_id

__all__ = ["ArtifactStore"]

_TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_FILE_NAME = re.compile(r"^v(\d+)-([0-9a-f]{12})\.json$")


class ArtifactStore:
    """Versioned artifacts as JSON files: `<data_dir>/calibration/<task>/v<NNNN>-<labels id>.json`.

    Versions count up per task across label sets; saving never overwrites (exclusive create)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.root = Path(data_dir) / "calibration"

    def _task_dir(self, task: str) -> Path:
        if not _TASK_NAME.match(task):
            raise InvalidInputError(f"task name {task!r} may hold only letters, digits, '.', '_' and '-'")
        return self.root / task

    def _files(self, task: str) -> list[tuple[int, str, Path]]:
        folder = self._task_dir(task)
        found = []
        for path in folder.glob("v*.json") if folder.is_dir() else []:
            if m := _FILE_NAME.match(path.name):
                found.append((int(m.group(1)), m.group(2), path))
        return sorted(found)

    def save(self, artifact: CalibrationArtifact) -> CalibrationArtifact:
        """Write `artifact` under the next free version; returns the saved copy (with its version)."""
        folder = self._task_dir(artifact.task)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            version = max((v for v, _, _ in self._files(artifact.task)), default=0) + 1
            while True:
                saved = artifact.model_copy(update={"version": version})
                path = folder / f"v{version:04d}-{saved.labels_id}.json"
                try:
                    with path.open("x", encoding="utf-8") as f:
                        f.write(saved.model_dump_json(indent=2))
                    return saved
                except FileExistsError:  # another process took this version
                    version += 1
        except OSError as exc:
            raise StorageError(f"cannot write calibration artifact under {folder}: {exc}") from None

    def load(self, path: str | Path) -> CalibrationArtifact:
        try:
            return CalibrationArtifact.model_validate_json(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StorageError(f"cannot read calibration artifact {path}: {exc}") from None

    def versions(self, task: str) -> list[CalibrationArtifact]:
        return [self.load(path) for _, _, path in self._files(task)]

    def latest(self, task: str, model_file_hash: str, prompt_version: str,
               labels: Sequence[str]) -> CalibrationArtifact | None:
        """The newest artifact for exactly this task, model file, prompt version and label list."""
        wanted = labels_id(list(labels))
        for _, lid, path in reversed(self._files(task)):
            if lid != wanted:
                continue
            artifact = self.load(path)
            if (artifact.model_file_hash == model_file_hash and artifact.prompt_version == prompt_version
                    and artifact.labels == list(labels)):
                return artifact
        return None

    def why_none(self, task: str, model_file_hash: str, prompt_version: str, labels: Sequence[str]) -> str:
        """One sentence for the audit log when `latest` found nothing."""
        found = self.versions(task)
        if not found:
            return f"no calibration artifact for task {task!r} in {self.root}; using the configured threshold"
        same_labels = [a for a in found if a.labels == list(labels)]
        if not same_labels:
            return (f"{len(found)} calibration artifact(s) for task {task!r}, none for this label set; "
                    "using the configured threshold")
        return (f"calibration artifacts for task {task!r} and these labels exist, but for another model file "
                "or prompt version; recalibrate (cascade calibrate); using the configured threshold")
