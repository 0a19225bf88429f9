"""The fitted weights of the ask task's support check (agents.qa_checks.SupportModel), as a small
YAML artifact shipped next to this module. `cascade bench qa-checks --save-weights` writes it; the
ask runner loads it (once per process)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

from agents.errors import ConfigError
from agents.qa_checks import SupportModel

ARTIFACT = Path(__file__).with_name("qa_support.yaml")


@cache
def load_support_model(path: Path = ARTIFACT) -> SupportModel:
    try:
        return SupportModel.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the support check's weights at {path} ({exc}); "
                          "re-create them with `cascade bench qa-checks --save-weights`") from None


def save_support_model(model: SupportModel, path: Path = ARTIFACT) -> Path:
    path.write_text(yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    load_support_model.cache_clear()
    return path
