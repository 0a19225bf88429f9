"""Agents act: model backends, task prompts and parsers. Imports nothing else of the project."""

from .errors import CascadeError
from .results import Attempt, CascadeResult, Check, TierOutput

__all__ = ["Attempt", "CascadeError", "CascadeResult", "Check", "TierOutput"]
