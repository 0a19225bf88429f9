"""`--help` speaks to users: no issue numbers or maintainer notes, and paragraphs wrap cleanly."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.testing import CliRunner

from cli.main import app


def commands(group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield prefix + (name,)
        if hasattr(command, "commands"):  # a group (typer ships its own click)
            yield from commands(command, prefix + (name,))


ALL = list(commands(typer.main.get_command(app)))


@pytest.mark.parametrize("path", ALL, ids=[" ".join(p) for p in ALL])
def test_help_is_for_users_and_wraps(path):
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "100", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert not re.search(r"\bissue \d+", text, re.I), text
    assert "docs/" not in text and "benchmarks.md" not in text, text
    description = text.split("╭─")[0].splitlines()
    # a paragraph's lines run to the wrap width; a short line mid-paragraph is a kept docstring break
    for line, after in zip(description, description[1:] + [""]):
        if line.strip() and after.strip() and not line.lstrip().startswith("Usage:"):
            assert len(line.rstrip()) > 60, f"short line inside a paragraph: {line!r}\n{text}"
