"""Workflows by name: each is a function building an uncompiled LangGraph StateGraph, plus the
way its input is read. The runner compiles it with the checkpointer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph

from agents.errors import InvalidInputError, UnknownTaskError


@dataclass(frozen=True)
class WorkflowSpec:
    """`build()` returns the graph; `make_input(text, options)` the graph's input state, with
    bad input raising InvalidInputError before the workflow run is recorded. `check_options(options)`
    refuses bad options without any input text (a batch job checks them once, at submit);
    `make_input` calls it too."""

    name: str
    description: str
    build: Callable[[], StateGraph]
    make_input: Callable[[str, dict[str, Any]], dict[str, Any]]
    options: str = ""  # the options `make_input` reads, for `cascade workflow list`
    check_options: Callable[[dict[str, Any]], None] = lambda options: None
    output_key: str | None = None  # the final state's key holding the output (None: the whole final state)
    # (answer, reason) for the workflow's audit run, from the output
    summarize: Callable[[dict[str, Any]], tuple[str | None, str]] = lambda output: (None, "completed")


_REGISTRY: dict[str, WorkflowSpec] = {}


def register(spec: WorkflowSpec, *, replace: bool = False) -> WorkflowSpec:
    if spec.name in _REGISTRY and not replace:
        raise InvalidInputError(f"a workflow named {spec.name!r} is already registered (pass replace=True)")
    _REGISTRY[spec.name] = spec
    return spec


def register_graph(name: str, graph: StateGraph | CompiledStateGraph, *, description: str = "",
                   input_key: str = "text", replace: bool = False) -> WorkflowSpec:
    """Register any LangGraph graph (compiled or not) as a workflow: it is recompiled with the
    workflow checkpointer, and its input state is {input_key: text, **options}. Its nodes may be
    plain functions or routed task calls (`routed_task`)."""
    builder = graph.builder if isinstance(graph, CompiledStateGraph) else graph
    if not isinstance(builder, StateGraph):
        raise InvalidInputError(f"workflow {name!r}: expected a LangGraph StateGraph, got {type(graph).__name__}")
    return register(WorkflowSpec(name=name, description=description, build=lambda: builder,
                                 make_input=lambda text, options: {input_key: text, **options}), replace=replace)


def check_options(workflow: str, options: dict[str, Any], allowed: dict[str, str]) -> None:
    """Refuse options a workflow does not take, naming the ones it does (`allowed`: name -> what)."""
    unknown = set(options) - set(allowed)
    if unknown:
        takes = ", ".join(f"{k} ({v})" for k, v in allowed.items())
        raise InvalidInputError(f"unknown option(s) {sorted(unknown)} for {workflow}; it takes {takes}")


def text_list(value: Any) -> Any:
    """An option given as "a,b,c" (the CLI's form) as a list; anything else as it is."""
    return [part.strip() for part in value.split(",")] if isinstance(value, str) else value


def get(name: str) -> WorkflowSpec:
    if name not in _REGISTRY:
        raise UnknownTaskError(f"unknown workflow {name!r}; registered workflows: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def names() -> list[str]:
    return sorted(_REGISTRY)
