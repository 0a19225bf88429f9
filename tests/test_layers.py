"""Imports point downward only: workers -> orchestrator -> routers -> agents; evaluation (and the
CLI and the service) import the runtime, the runtime never imports them. No import circles; no module past 400 lines."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agents", "routers", "orchestrator", "workers", "evaluation", "cli", "service")
FORBIDDEN = {
    "agents": {"orchestrator", "routers", "workers", "cli", "evaluation", "service"},
    "routers": {"orchestrator", "workers", "cli", "evaluation", "service"},
    "orchestrator": {"workers", "cli", "evaluation", "service"},
    "workers": {"cli", "evaluation", "service"},
    "evaluation": {"workers", "cli"},
    "service": {"cli", "evaluation", "workers"},
}
MAX_LINES = 400


def imports_of(path: Path) -> list[str]:
    """Every project module `path` imports (absolute, at any depth of the file: lazy imports count)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                package = ".".join(module_name(path).split(".")[:-node.level])
                found.append(f"{package}.{node.module}")
            else:
                found.append(node.module)
                found += [f"{node.module}.{alias.name}" for alias in node.names]
    return [name for name in found if name.split(".")[0] in PACKAGES]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_files():
    return [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_downward(package):
    offenders = {
        str(path.relative_to(ROOT)): sorted({name.split(".")[0] for name in imports_of(path)} & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_routers_use_only_agents_result_types():
    for path in (ROOT / "routers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("agents"):
                assert node.module == "agents.results", f"{path.name} imports {node.module}"


def test_no_import_circles():
    """Module-level and lazy imports alike: a circle hidden in a function is still a circle."""
    modules = {module_name(path): path for path in project_files()}
    graph = {}
    for name, path in modules.items():
        # `from pkg import mod` names a module; `from pkg.mod import Class` names the module only
        graph[name] = {target for target in imports_of(path) if target in modules and target != name
                       and not name.startswith(target + ".")}  # a package's own __init__ runs first anyway
    circles, done, stack = [], set(), []

    def visit(node):
        if node in stack:
            circles.append(stack[stack.index(node):] + [node])
            return
        if node in done:
            return
        stack.append(node)
        for target in sorted(graph[node]):
            visit(target)
        stack.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)
    assert circles == []


def test_modules_stay_small():
    long = {str(path.relative_to(ROOT)): n for path in project_files()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_runtime_loads_no_evaluation_code():
    """What a production process imports (the SDK, the workers' tasks, the graph) pulls in nothing
    from `evaluation`: checked in a fresh interpreter, so no other test's imports count."""
    code = ("import sys, orchestrator, orchestrator.core.cascade, orchestrator.calibration.run, "
            "orchestrator.jobs.runner, workers.tasks, workers.sweeper\n"
            "print(sorted(m for m in sys.modules if m == 'evaluation' or m.startswith('evaluation.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
