"""The cascade core: settings (`config`), the task table (`tasks`), the LangGraph graph (`graph`)
and `Cascade`, the SDK object that runs it and records each result (`cascade`); local model files
and their servers (`models`, `serving`); contract chunking, example files and the QA support model.

Imports `audit`, `calibration`, `routers` and `agents`; `jobs` and the workers import it.
"""

from .cascade import Cascade
from .config import Settings, load_settings

__all__ = ["Cascade", "Settings", "load_settings"]
