"""Listeners the rooms above core register, so core can call them without importing them.

REVIEW_LISTENERS are called by `Cascade.resolve_review` after a review is recorded, with
(cascade, run, review); a dict one returns is added to the review's result. The workflows room
registers the one that resumes a workflow paused on that run: the review queue's one resolve
path serves plain runs and workflow steps alike.
"""

from __future__ import annotations

from typing import Any, Callable

REVIEW_LISTENERS: list[Callable[[Any, dict, dict], dict | None]] = []
