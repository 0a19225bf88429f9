"""Local OpenAI-compatible servers for tiers that have a `serve:` section."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from agents.errors import ConfigError, TierUnreachableError

from orchestrator.core.config import LitellmTier, Settings
from orchestrator.core.models import resolve_model_path, server_command, server_is_up, start_server, stop_server


def servable_tiers(settings: Settings, names: list[str] | None = None) -> list[LitellmTier]:
    tiers = [t for t in settings.tiers if isinstance(t, LitellmTier) and t.serve is not None]
    if names:
        known = {t.name for t in tiers}
        missing = [n for n in names if n not in known]
        if missing:
            raise ConfigError(f"no servable tier named {missing}; tiers with a serve: section: {sorted(known) or 'none'}")
        tiers = [t for t in tiers if t.name in names]
    return tiers


def server_log(settings: Settings, tier: LitellmTier) -> Path:
    return settings.data_dir / f"server-{tier.name}-{tier.serve.port}.log"


def start_tier_server(settings: Settings, tier: LitellmTier) -> subprocess.Popen:
    serve = tier.serve
    path = resolve_model_path(serve.model_path, settings.data_dir, tier_name=tier.name)
    alias = tier.model.split("/", 1)[-1]
    command = server_command(path, serve.host, serve.port, serve.n_ctx, alias, serve.chat_format)
    return start_server(command, tier.api_base, server_log(settings, tier))


class OnDemandServers:
    """Starts a servable tier's server the first time a call needs it (`serve.start: on_demand`) and
    nothing answers on its port yet, and stops what it started on `stop_all`. A server another
    process started first (the port is taken and answering) is used, never stopped."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._ready: set[str] = set()
        self._started: list[subprocess.Popen] = []

    def ensure(self, tier: LitellmTier) -> None:
        if tier.serve is None or tier.serve.start != "on_demand" or tier.name in self._ready:
            return
        with self._lock:
            if tier.name in self._ready:
                return
            if not server_is_up(tier.api_base):
                try:
                    self._started.append(start_tier_server(self.settings, tier))
                except TierUnreachableError:
                    if not server_is_up(tier.api_base):  # not a race lost to another process starting it
                        raise
            self._ready.add(tier.name)

    def stop_all(self) -> None:
        with self._lock:
            for process in self._started:
                stop_server(process)
            self._started.clear()
            self._ready.clear()
