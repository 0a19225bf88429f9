"""Trained local models (encoder classifiers, readers): training loops and their versioned artifacts."""

from orchestrator.training.artifacts import Manifest, artifact_id, data_hash, load_manifest, newest, save_artifact, versions

__all__ = ["Manifest", "artifact_id", "data_hash", "load_manifest", "newest", "save_artifact", "versions"]
