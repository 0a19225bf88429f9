"""`cascade train`: train a local classifier for a task on the CPU and save it as a versioned artifact.

Registered in cli/main.py with `app.command("train")(train)`. The work is done by
`orchestrator.training.classifier.train_classifier`; this module reads the data and prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from agents.errors import CascadeError, InvalidInputError, UserError

__all__ = ["train"]

out = Console()
err = Console(stderr=True)


def _training_data(settings, task: str, data: str | None, from_store: bool, labels: list[str] | None, data_root):
    """The rows to train on: a named set or file, the task's example store, or both."""
    from evaluation.datasets import load_named
    from orchestrator.core.labelled import Dataset, Example, relabel
    from orchestrator.core.tasks import TASKS

    fixed = TASKS[task].labels if task in TASKS else None
    if data is None and not from_store:
        raise InvalidInputError("give --data (banking77, sms, smishing or a JSONL file), --from-store, or both")
    dataset = None
    if data is not None:
        dataset = load_named(data, "train", data_root, labels)
        if fixed is not None:
            dataset = relabel(dataset, fixed)
    if from_store:
        from agents.retrieval import ExampleStore

        store = ExampleStore(path=settings.data_dir / "qdrant", url=settings.qdrant_url)
        try:
            stored = [Example(e.text, e.label) for e, _ in store.all(task)]
        finally:
            store.close()
        if dataset is not None:
            outside = sorted({e.label for e in stored} - set(dataset.labels))
            if outside:
                raise InvalidInputError(f"the {task} example store holds labels {outside} that {data} does not have")
            dataset = Dataset(dataset.name + "+store", dataset.examples + stored, dataset.labels, dataset.source_labels)
        else:
            if not stored:
                raise InvalidInputError(f"the {task} example store is empty; give --data too")
            names = list(fixed) if fixed else sorted({e.label for e in stored})
            dataset = Dataset(f"{task}-store", stored, names, {l: l for l in names})
    return dataset


def _test_data(test: str | None, task: str, labels, data_root):
    if test is None:
        return None
    from evaluation.datasets import load_named
    from orchestrator.core.labelled import relabel
    from orchestrator.core.tasks import TASKS

    dataset = load_named(test, "test", data_root, labels)
    fixed = TASKS[task].labels if task in TASKS else None
    return relabel(dataset, fixed) if fixed is not None else dataset


def train(
    task: Annotated[str, typer.Option(help="the task the classifier is for: classify, or fraud (spam/ham data is "
                                      "read as fraud/legit)")],
    data: Annotated[Optional[str], typer.Option(help="banking77 (its train split), sms, smishing, or a JSONL file "
                                                "of {\"text\", \"label\"} rows")] = None,
    from_store: Annotated[bool, typer.Option(help="also train on the task's example store (escalations the larger "
                                             "tier resolved, reviewer labels)")] = False,
    base: Annotated[str, typer.Option(help="base encoder: all-MiniLM-L6-v2, all-mpnet-base-v2, or a "
                                      "sentence-transformers model directory")] = "all-MiniLM-L6-v2",
    method: Annotated[str, typer.Option(help="frozen (a head on frozen embeddings, seconds), finetune (the encoder "
                                        "too), or auto (both in the budget, the better kept)")] = "auto",
    max_minutes: Annotated[float, typer.Option(help="time budget of the whole training")] = 20.0,
    threads: Annotated[int, typer.Option(min=1, help="torch threads")] = 2,
    epochs: Annotated[int, typer.Option(min=1, help="fine-tune: most epochs (early stopping may end it sooner)")] = 4,
    heldout: Annotated[float, typer.Option(min=0.01, max=0.5, help="share of the rows held out for the report, "
                                           "early stopping and the confidence temperature")] = 0.1,
    seed: Annotated[int, typer.Option(help="seed of the held-out split and of training")] = 0,
    test: Annotated[Optional[str], typer.Option(help="also report on this set (banking77: its official test "
                                                "split; sms, smishing or a JSONL file)")] = None,
    labels: Annotated[Optional[str], typer.Option(help="JSONL data only: comma-separated label set, in order")] = None,
    data_root: Annotated[Optional[Path], typer.Option(help="data root of the named sets (else $CASCADE_EVAL_DATA, "
                                                      "else ../shared/data)")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="data directory (else config / $CASCADE_DATA_DIR)")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for pipelines")] = False,
) -> None:
    """Train a local classifier on the CPU, report on a held-out split, and save it as the task's
    newest artifact (the encoder tier serves it for the same label set)."""
    from orchestrator.core.config import load_settings
    from orchestrator.core.tasks import TASKS
    from orchestrator.training.classifier import train_classifier

    try:
        if task not in TASKS or task in ("ask", "contract"):
            raise InvalidInputError(f"cascade train makes classifiers for classify or fraud, not {task!r}")
        settings = load_settings(config, data_dir=str(data_dir) if data_dir else None)
        label_list = [l.strip() for l in labels.split(",")] if labels else None
        dataset = _training_data(settings, task, data, from_store, label_list, data_root)
        test_set = _test_data(test, task, label_list or dataset.labels if test not in ("banking77",) else None,
                              data_root)
        log = (lambda message: None) if as_json else (lambda message: err.print(message, highlight=False))
        result = train_classifier(settings.data_dir, task, dataset, method=method, base=base,
                                  max_minutes=max_minutes, threads=threads, heldout_share=heldout, seed=seed,
                                  test=test_set, epochs=epochs, progress=not as_json, log=log)
    except CascadeError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2 if isinstance(exc, UserError) else 1)
    manifest = result.manifest
    if as_json:
        out.print_json(json.dumps({"artifact": manifest.id, "path": str(manifest.path), "recipe": manifest.recipe,
                                   "train_seconds": manifest.train_seconds, "heldout": result.heldout,
                                   "test": result.test, "tried": result.tried}))
        return
    table = Table("figure", "held-out split", "test", title=f"{manifest.id} ({manifest.recipe['method']}, "
                                                              f"{manifest.base_model.name})")
    for key in ("n", "accuracy", "auroc", "ece", "ms_per_item_batched"):
        table.add_row(key, str(result.heldout.get(key, "")), str((result.test or {}).get(key, "")))
    out.print(table)
    out.print(f"trained in {manifest.train_seconds / 60:.1f} min; artifact: {manifest.path}", highlight=False)
