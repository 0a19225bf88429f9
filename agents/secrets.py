"""Secrets (API keys, tokens, passwords) never reach a log line, an error message or the audit log.

Every value registered here, and every environment variable whose name says it holds a secret,
is replaced by `***` in error messages (`CascadeError` scrubs its own message) and in every log
record (a record factory, so records of any library's logger are covered, tracebacks included).
"""

from __future__ import annotations

import logging
import os
import re

MASK = "***"
MIN_LENGTH = 6  # shorter values would mask ordinary words
SECRET_NAME = re.compile(r"API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)

_secrets: set[str] = set()
_factory_installed = False


def register(value: str | None) -> None:
    if value and len(value) >= MIN_LENGTH:
        _secrets.add(value)


def register_environment() -> None:
    """Every environment variable named like a secret (OPENAI_API_KEY, HF_TOKEN, ...)."""
    for name, value in os.environ.items():
        if SECRET_NAME.search(name):
            register(value)


def scrub(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):  # longest first: one may contain another
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def install_log_scrubber() -> None:
    """Scrub every log record as it is created (idempotent)."""
    global _factory_installed
    if _factory_installed:
        return
    make_record = logging.getLogRecordFactory()

    def scrubbed_record(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        if _secrets:
            record.msg, record.args = scrub(record.getMessage()), None
            if record.exc_info:
                record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return record

    logging.setLogRecordFactory(scrubbed_record)
    _factory_installed = True
