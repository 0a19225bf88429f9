"""`cascade train-reader`: train an extractive reader (encoder + span head) for ask or contract on CPU.

Exposes `train_reader_cmd` (registered in cli/main.py). The rows come from evaluation.reader_data
(HaluEval, CUAD: their train splits only) or a JSONL file; the training is
orchestrator.training.reader.train_reader. Prints the held-out report and the artifact's id.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from agents.errors import CascadeError, InvalidInputError

from cli.common import ConfigOpt, JsonOpt, fail, out

__all__ = ["bench_reader_cmd", "train_reader_cmd", "read_jsonl_rows"]

HELDOUT_SHARE, HELDOUT_MAX = 0.1, 300
SPLIT_SEED = 0  # the held-out rows stay the same whatever --seed (which orders the batches)


def read_jsonl_rows(path: Path):
    """{"question", "context", "answer": str or null, "answer_start": optional} rows as reader examples."""
    from orchestrator.training.reader import ReaderExample

    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            question, context, answer = row["question"], row["context"], row.get("answer")
        except (ValueError, KeyError, TypeError):
            raise InvalidInputError(f"{path} line {number}: expected a JSON object with question, context and "
                                    "answer (null when the context does not answer)") from None
        start = row.get("answer_start")
        if answer is not None and start is None:
            start = context.find(answer)
        rows.append(ReaderExample(question, context, answer, start))
    return rows


def _rows(data: str, rows: Optional[int], per_category: int):
    """(task, train rows, held-out rows): held-out rows come from the train side of the split."""
    from evaluation import reader_data

    if data == "halueval":
        examples = reader_data.halueval_split(train_rows=rows).train
    elif data == "cuad":
        train, _ = reader_data.cuad_contract_split()
        cut = len(train) - max(1, len(train) // 10)  # held out by contract, too
        return ("contract", reader_data.cuad_reader_rows(train[:cut], per_category),
                reader_data.cuad_reader_rows(train[cut:], max(5, per_category // 6)))
    else:
        path = Path(data)
        if not path.is_file():
            raise InvalidInputError(f"--data {data}: not halueval, cuad or an existing JSONL file")
        examples = read_jsonl_rows(path)[:rows]
    examples = list(examples)
    random.Random(SPLIT_SEED).shuffle(examples)
    held = min(HELDOUT_MAX, max(1, round(len(examples) * HELDOUT_SHARE)))
    return "ask", examples[held:], examples[:held]


def _table(manifest) -> Table:
    report = manifest.heldout
    table = Table("held-out figure", "value", title=f"reader artifact {manifest.id}")
    for name, value in [("rows", report.get("rows")), ("F1 (abstaining right on unanswerable)", report.get("f1")),
                        ("answerable: exact match", report.get("answerable", {}).get("exact_match")),
                        ("answerable: token F1", report.get("answerable", {}).get("f1")),
                        ("unanswerable: abstained", report.get("unanswerable", {}).get("abstained")),
                        ("confidence AUROC (right vs wrong)", report.get("confidence_auroc")),
                        ("steps", f"{report.get('steps')} of {report.get('planned_steps')}"),
                        ("stopped", report.get("stopped")), ("train seconds", manifest.train_seconds)]:
        table.add_row(name, "-" if value is None else str(value))
    return table


def train_reader_cmd(
    data: Annotated[str, typer.Option(help="halueval (for ask), cuad (for contract), or a JSONL file of "
                                      "{\"question\", \"context\", \"answer\"} rows (answer null: unanswerable)")],
    task: Annotated[Optional[str], typer.Option(help="ask or contract (default: ask; contract for cuad)")] = None,
    rows: Annotated[Optional[int], typer.Option(min=2, help="use at most this many source rows")] = None,
    per_category: Annotated[int, typer.Option(min=1, help="cuad: positive and negative windows per category")] = 60,
    epochs: Annotated[float, typer.Option(min=0.01)] = 1.0,
    lr: Annotated[float, typer.Option(min=0.0)] = 1e-4,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    max_length: Annotated[int, typer.Option(min=32, max=512, help="tokens per (question, passage) window")] = 256,
    max_answer_tokens: Annotated[Optional[int], typer.Option(min=1, help="longest span (default: 30 for ask, "
                                 "160 for contract)")] = None,
    eval_every: Annotated[int, typer.Option(min=1, help="steps between held-out evaluations")] = 100,
    patience: Annotated[int, typer.Option(min=1, help="evaluations without a better held-out F1 before stopping")] = 3,
    max_minutes: Annotated[Optional[float], typer.Option(min=0.1, help="time budget of the training")] = None,
    threads: Annotated[int, typer.Option(min=1, help="torch threads")] = 2,
    base: Annotated[str, typer.Option(help="base encoder: bundled:all-MiniLM-L6-v2 or a transformers folder")] = (
        "bundled:all-MiniLM-L6-v2"),
    seed: Annotated[int, typer.Option(help="orders the training batches")] = 0,
    freeze_embeddings: Annotated[bool, typer.Option(help="keep the base's token embeddings (faster steps)")] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train an extractive reader on CPU and save it as a versioned artifact in the data directory."""
    from orchestrator.core.config import load_settings
    from orchestrator.training.reader import ReaderRecipe, train_reader

    try:
        settings = load_settings(config)
        default_task, train, heldout = _rows(data, rows, per_category)
        task = task or default_task
        if task not in ("ask", "contract"):
            raise InvalidInputError(f"--task must be ask or contract, not {task!r}")
        recipe = ReaderRecipe(base=base, epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length,
                              max_answer_tokens=max_answer_tokens or (160 if task == "contract" else 30),
                              eval_every=eval_every, patience=patience, max_minutes=max_minutes, threads=threads,
                              seed=seed, freeze_embeddings=freeze_embeddings)
        manifest = train_reader(train, heldout, data_dir=settings.data_dir, task=task, recipe=recipe,
                                progress=not as_json)
    except CascadeError as exc:
        fail(exc)
    if as_json:
        out.print_json(manifest.model_dump_json())
    else:
        out.print(_table(manifest))
        out.print(f"saved {manifest.path}")


def bench_reader_cmd(
    task: Annotated[str, typer.Option(help="ask (HaluEval test rows) or contract (CUAD test contracts)")] = "ask",
    artifact: Annotated[Optional[str], typer.Option(help="reader artifact id or folder (default: the task's newest)")] = None,
    contracts: Annotated[Optional[int], typer.Option(min=1, help="contract: the first N test contracts (default: all)")] = None,
    threads: Annotated[int, typer.Option(min=1, help="torch threads (1: the per-core figures)")] = 1,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure a trained reader on the test split of its task's data set (never used in training)."""
    from evaluation import reader_data
    from evaluation.benchmarks.reader import bench_cuad, bench_halueval
    from orchestrator.core.config import ReaderTier, load_settings
    from orchestrator.training.reader_tier import load_reader

    try:
        if task not in ("ask", "contract"):
            raise InvalidInputError(f"--task must be ask or contract, not {task!r}")
        settings = load_settings(config)
        tier = ReaderTier(kind="reader", name="bench", artifacts={task: artifact} if artifact else {}, threads=threads)
        reader = load_reader(settings.data_dir, tier, task)
        if task == "ask":
            report = bench_halueval(reader, reader_data.halueval_split())
        else:
            from agents.retrieval import Embedder

            _, test = reader_data.cuad_contract_split()
            report = bench_cuad(reader, test[:contracts], Embedder().embed)
    except CascadeError as exc:
        fail(exc)
    report = {"artifact": reader.model_id, "threads": threads, **report}
    if as_json:
        out.print_json(json.dumps(report))
        return
    table = Table("figure", "value", title=f"reader {reader.model_id} on the {task} test split")
    for key, value in report.items():
        if not isinstance(value, dict):
            table.add_row(key, str(value))
    for key, value in (report.get("pooled") or {}).items():
        table.add_row(f"pooled {key}", str(value))
    out.print(table)
    for name, figures in (report.get("per_category") or {}).items():
        out.print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
