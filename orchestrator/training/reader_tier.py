"""A reader tier in the ladder: which trained artifact answers each task, checked before it loads.

The tier's `artifacts` map names an artifact (id or folder) per task; a task it leaves out gets its
newest reader artifact in the data dir. No artifact for the task is an invalid output (the item
escalates, and the attempt says to train one); a corrupt or half-written artifact, or one trained
for another task, is a ModelFileError naming the folder.
"""

from __future__ import annotations

from functools import cache, partial
from pathlib import Path

from agents.errors import InvalidOutputError, ModelFileError
from agents.reader import ExtractiveReader, ReaderOptions, TaskReaders

from orchestrator.core.config import ReaderTier
from orchestrator.core.graph import TierHandle
from orchestrator.core.models import file_sha256
from orchestrator.training.artifacts import Manifest, artifact_root, load_manifest, newest

TRAIN_HINT = {"ask": "cascade train-reader --data halueval (or your own JSONL rows)",
              "contract": "cascade train-reader --data cuad"}


def reader_manifest(data_dir: Path, tier: ReaderTier, task: str) -> Manifest:
    """The checked manifest of the artifact the tier serves for `task`."""
    wanted = tier.artifacts.get(task)
    if wanted is None:
        manifest = newest(data_dir, "reader", task)
        if manifest is None:
            raise InvalidOutputError(f"no trained reader for the {task} task in {data_dir}; train one with "
                                     f"`{TRAIN_HINT.get(task, 'cascade train-reader')}`")
    else:
        folder = Path(wanted).expanduser()
        manifest = load_manifest(folder if folder.is_dir() else artifact_root(data_dir, "reader", task) / wanted)
    if manifest.kind != "reader" or manifest.task != task:
        raise ModelFileError(f"tier {tier.name!r}: artifact {manifest.path} is a {manifest.kind} for {manifest.task}, "
                             f"not a reader for {task}; fix the tier's artifacts or train a reader for {task}")
    return manifest


def load_reader(data_dir: Path, tier: ReaderTier, task: str) -> ExtractiveReader:
    manifest = reader_manifest(data_dir, tier, task)
    recipe = manifest.recipe
    weights = next((manifest.path / name for name in manifest.files if name.endswith((".safetensors", ".bin"))), None)
    if weights is None:
        raise ModelFileError(f"reader artifact {manifest.path} lists no weight file; delete it and train again")
    Path(data_dir).mkdir(parents=True, exist_ok=True)  # file_sha256 caches hashes there
    options = ReaderOptions(folder=manifest.path, model_id=manifest.id, file_hash=file_sha256(weights, data_dir),
                            max_length=recipe.get("max_length", 256), stride=recipe.get("stride", 64),
                            max_answer_tokens=recipe.get("max_answer_tokens", 30), null_margin=tier.null_margin,
                            threads=tier.threads)
    return ExtractiveReader(options)


def reader_handle(tier: ReaderTier, data_dir: Path) -> TierHandle:
    """The graph's view of a reader tier: loaded on first use; each answer names its artifact."""
    backend = cache(lambda: TaskReaders(partial(load_reader, data_dir, tier)))
    return TierHandle(name=tier.name, model_id=f"reader:{tier.name}", backend=backend, model_file_hash=lambda: None)
