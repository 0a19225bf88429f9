"""`cascade calibrate`: fit a calibration artifact for the tier-1 model on labelled data.

Registered in cli/main.py with `app.command("calibrate")(calibrate)`. The work is done by
`run_calibration` (usable from Python); this module only parses options and prints.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from agents.errors import CascadeError, ConfigError, InvalidInputError, UserError

__all__ = ["calibrate", "run_calibration"]

out = Console()
err = Console(stderr=True)


def _tier1(settings):
    """The first tier as a scoring backend, with its model file hash."""
    from orchestrator.config import LlamaCppTier
    from orchestrator.models import file_sha256, resolve_model_path

    tier = settings.tiers[0]
    if not isinstance(tier, LlamaCppTier):
        raise ConfigError(f"calibration scores labels with the first tier's logits; tier {tier.name!r} is "
                          f"{tier.kind}, not llama_cpp: put a local GGUF tier first")
    from agents.backends.llama_cpp import LlamaCppBackend, LlamaCppOptions

    path = resolve_model_path(tier.model_path, settings.data_dir, tier_name=tier.name)
    backend = LlamaCppBackend(LlamaCppOptions(model_path=path, n_ctx=tier.n_ctx, n_threads=tier.n_threads))
    return tier, backend, file_sha256(path, settings.data_dir)


def _splits(data: str, fit_size: int, test_size: int, pool_size: int, seed: int, root, labels, task_labels=None):
    """(fit, test, demonstration pool, label list), each part a (dataset, examples) pair, all three
    disjoint. banking77 fits on train (the pool is another part of train) and tests on test; any
    other set is split into disjoint, stratified parts. A task with fixed labels (`task_labels`)
    reads the set's labels under its names (SMS spam/ham as fraud/legit)."""
    from orchestrator.datasets import load_named, relabel, split

    if task_labels is not None and data == "banking77":
        raise InvalidInputError(f"banking77 has no labels for a task with the labels {list(task_labels)}; "
                                "use sms, smishing or a JSONL file")

    pool_sizes = [pool_size] if pool_size else []
    if data == "banking77":
        train, test = load_named("banking77", "train", root), load_named("banking77", "test", root)
        fit, *pool = split(train.examples, [fit_size, *pool_sizes], seed=seed)
        seen = {e.text for e in fit + (pool[0] if pool else [])}  # a test text also in train stays out
        [held_out] = split([e for e in test.examples if e.text not in seen], [test_size], seed=seed)
        return (train, fit), (test, held_out), (train, pool[0] if pool else []), train.labels
    dataset = load_named(data, root=root, labels=labels)
    if task_labels is not None:
        dataset = relabel(dataset, task_labels)
    fit, held_out, *pool = split(dataset.examples, [fit_size, test_size, *pool_sizes], seed=seed)
    return (dataset, fit), (dataset, held_out), (dataset, pool[0] if pool else []), dataset.labels


@contextmanager
def _retriever(pool, labels: list[str], k: int, order: str):
    """text -> the k nearest pool examples as (text, label) demonstrations, as `Cascade.run` picks
    them from the example store (same embeddings, label filter and order). The store lives in a
    temporary directory and holds the pool only, so no fit or test item can retrieve itself. It is
    built on the first call: a run whose log-probs are all cached embeds nothing."""
    if k == 0:
        yield None
        return
    from agents.retrieval import Example, ExampleStore

    with tempfile.TemporaryDirectory(prefix="cascade-calibrate-") as tmp:
        stores: list[ExampleStore] = []

        def nearest(text: str) -> list[tuple[str, str]]:
            if not stores:
                stores.append(ExampleStore(path=Path(tmp) / "qdrant"))
                stores[0].add("calibration", [Example(text=e.text, label=e.label, source="calibration:pool")
                                              for e in pool])
            return [(d.text, d.label) for d in stores[0].nearest("calibration", text, k, labels, order=order)]

        try:
            yield nearest
        finally:
            for store in stores:
                store.close()


def run_calibration(settings, task: str, data: str, *, fit_size: int, test_size: int, seed: int = 0,
                    method: str = "auto", target_accuracy: float | None = None, delta: float = 0.1,
                    target_escalation_rate: float | None = None, max_escalation_share: float | None = None,
                    per_class: bool = False, labels: list[str] | None = None, data_root: Path | None = None,
                    demos: int = 0, demo_pool: int = 1000, report_dir: Path | None = None,
                    progress: bool = True) -> dict[str, Any]:
    """Collect tier-1 log-probs on a fit split and a disjoint test split (cached in the data dir),
    fit, evaluate, save. Returns {"artifact", "report", "path", "report_dir", "skipped"}.

    With `demos` = k > 0 every item's prompt carries its k nearest examples from a third disjoint
    part (`demo_pool` items), as the cascade's prompts do once the task's example store holds at
    least k examples: the artifact is for that prompt version (`classify-v2+demos{k}`). A task with
    its own prompt (fraud) is calibrated on that prompt and its fixed labels (`fraud-v1`)."""
    from orchestrator.calibration import ArtifactStore, evaluate_artifact, fit_artifact, labels_id
    from orchestrator.label_scoring import LogprobCache, collect_label_logprobs
    from orchestrator.tasks import TASKS

    if task not in TASKS:
        raise InvalidInputError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    spec = TASKS[task]
    if not spec.label_scored:
        raise InvalidInputError(f"the {task} task generates its answers: it has no label scores to calibrate; "
                                f"its confidence threshold is tasks.{task}.threshold in the config")
    if demos < 0 or (demos and demo_pool < demos):
        raise InvalidInputError(f"--demos must be >= 0 and the demonstration pool at least that large; "
                                f"got demos={demos}, demo pool={demo_pool}")
    PROMPT_VERSION = spec.prompt_version([("", "")] * demos)  # the prompt the cascade builds with k demonstrations
    (fit_set, fit), (test_set, test), (_, pool), label_list = _splits(
        data, fit_size, test_size, demo_pool if demos else 0, seed, data_root, labels, spec.labels)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    tier, backend, model_hash = _tier1(settings)
    cache_dir = settings.data_dir / "calibration" / "cache"
    pool_id = f"-pool{len(pool)}s{seed}" if demos else ""  # retrieved demonstrations depend on the pool
    order = settings.tasks[task].examples.order if task in settings.tasks else "nearest_last"

    def scores(dataset, examples, what, retrieve):
        name = f"{dataset.name}-{model_hash[:12]}-{PROMPT_VERSION}{pool_id}-{labels_id(label_list)}.npz"
        z = collect_label_logprobs(backend, examples, label_list, progress=progress,
                                   cache=LogprobCache(cache_dir / name, len(label_list)),
                                   description=f"{what} ({dataset.name})", demonstrations=retrieve,
                                   instruction=spec.instruction)
        ok = np.isfinite(z).all(axis=1)
        return z[ok], dataset.gold_index([e for e, keep in zip(examples, ok) if keep]), int((~ok).sum())

    with _retriever(pool, label_list, demos, order) as retrieve:
        z_fit, gold_fit, skipped_fit = scores(fit_set, fit, "fit split", retrieve)
        z_test, gold_test, skipped_test = scores(test_set, test, "test split", retrieve)
    source = {"data": data, "fit_set": fit_set.name, "test_set": test_set.name, "fit_size": len(gold_fit),
              "test_size": len(gold_test), "seed": seed, "tier": tier.name, "model_path": tier.model_path,
              "demonstrations": {"k": demos, "pool_size": len(pool), "order": order} if demos else None}
    if method == "auto":  # chosen on the fit split alone; the test split only measures the choice
        from orchestrator.calibration_select import choose_method

        method, cv_brier = choose_method(z_fit, gold_fit, label_list, seed=seed)
        source["method_selection"] = {"chosen": method, "cv_brier": cv_brier, "folds": 5}
    artifact = fit_artifact(task, z_fit, gold_fit, label_list, model_hash, PROMPT_VERSION, method=method,
                            target_accuracy=target_accuracy, delta=delta,
                            target_escalation_rate=target_escalation_rate,
                            max_escalation_share=max_escalation_share, per_class=per_class, source=source)
    report = evaluate_artifact(artifact, z_test, gold_test)
    store = ArtifactStore(settings.data_dir)
    saved = store.save(artifact.model_copy(update={"test_metrics": report.model_dump()}))
    folder = report_dir or store.root / task / f"v{saved.version:04d}-report"
    report = evaluate_artifact(saved, z_test, gold_test, report_dir=folder, title=f"{data} ({len(label_list)} labels)")
    (Path(folder) / "report.json").write_text(json.dumps(
        {"artifact": saved.id, "fit": saved.fit_metrics, "test": report.model_dump(), "source": source}, indent=2))
    path = store.root / task / f"v{saved.version:04d}-{saved.labels_id}.json"
    return {"artifact": saved, "report": report, "path": path, "report_dir": Path(folder),
            "skipped": skipped_fit + skipped_test}


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "NO"
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def _table(result: dict[str, Any]) -> Table:
    artifact, report = result["artifact"], result["report"]
    fit = artifact.fit_metrics
    table = Table("figure", "fit split", "test split", title=f"calibration artifact {artifact.id} ({artifact.method})")
    table.add_row("items", _fmt(fit["n"]), _fmt(report.n))
    for key, name in [("accuracy_raw", "accuracy, raw argmax"), ("accuracy", "accuracy, calibrated (debiased or vector-scaled)"),
                      ("ece_raw", "ECE before (raw top prob)"), ("ece", "ECE after"),
                      ("brier_raw", "Brier before"), ("brier", "Brier after"),
                      ("auroc_raw", "AUROC before"), ("auroc", "AUROC after (confidence vs correct)")]:
        table.add_row(name, _fmt(fit[key]), _fmt(getattr(report, key)))
    table.add_row("coverage (kept share)", "", _fmt(report.coverage))
    table.add_row("accuracy of kept answers", "", _fmt(report.kept_accuracy))
    if report.target_accuracy is not None:
        table.add_row(f"target accuracy {report.target_accuracy:g} held", "", _fmt(report.guarantee_held))
    return table


def calibrate(
    data: Annotated[str, typer.Option(help="banking77, sms, smishing, or a JSONL file of {\"text\", \"label\"} rows")],
    task: Annotated[str, typer.Option(help="the task the artifact is for: classify, or fraud (sms/smishing "
                                      "spam/ham read as fraud/legit)")] = "classify",
    target_accuracy: Annotated[Optional[float], typer.Option(help="keep answers only while their accuracy is "
                               "guaranteed >= this (learn-then-test, Clopper-Pearson)")] = None,
    delta: Annotated[float, typer.Option(help="failure probability of the accuracy guarantee")] = 0.1,
    target_escalation_rate: Annotated[Optional[float], typer.Option(help="escalate about this share (no guarantee)")] = None,
    max_escalation_share: Annotated[Optional[float], typer.Option(help="escalate at most this share")] = None,
    per_class: Annotated[bool, typer.Option(help="one accuracy threshold per predicted label")] = False,
    method: Annotated[str, typer.Option(help="calibrator: auto (the lowest 5-fold Brier score on the fit split), vector "
                                             "(label-aware scale and bias per label), temperature, platt or isotonic")] = "auto",
    fit_size: Annotated[int, typer.Option(min=1, help="items to fit on")] = 600,
    test_size: Annotated[int, typer.Option(min=1, help="items to check on (disjoint from the fit items)")] = 600,
    seed: Annotated[int, typer.Option(help="seed of the stratified split")] = 0,
    labels: Annotated[Optional[str], typer.Option(help="JSONL data only: comma-separated label set in prompt order")] = None,
    demos: Annotated[int, typer.Option(min=0, help="retrieved demonstrations per prompt, as the cascade shows once "
                                       "the task's example store holds them (0: the zero-shot prompt)")] = 0,
    demo_pool: Annotated[int, typer.Option(min=1, help="labelled items, disjoint from fit and test, to retrieve "
                                           "demonstrations from")] = 1000,
    data_root: Annotated[Optional[Path], typer.Option(help="evaluation data root (else $CASCADE_EVAL_DATA, else ../shared/data)")] = None,
    report_dir: Annotated[Optional[Path], typer.Option(help="where to write the PNG plots and report.json")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="data directory (else config / $CASCADE_DATA_DIR)")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for pipelines")] = False,
) -> None:
    """Fit a calibrated confidence and threshold for the tier-1 model on one split, check it on
    another, and save it as the next versioned artifact."""
    from orchestrator.config import load_settings

    try:
        if sum(p is not None for p in (target_accuracy, target_escalation_rate, max_escalation_share)) != 1:
            raise InvalidInputError("give exactly one of --target-accuracy, --target-escalation-rate, "
                                    "--max-escalation-share")
        settings = load_settings(config, data_dir=str(data_dir) if data_dir else None)
        label_list = [l.strip() for l in labels.split(",")] if labels else None
        result = run_calibration(
            settings, task, data, fit_size=fit_size, test_size=test_size, seed=seed, method=method,
            target_accuracy=target_accuracy, delta=delta, target_escalation_rate=target_escalation_rate,
            max_escalation_share=max_escalation_share, per_class=per_class, labels=label_list,
            data_root=data_root, demos=demos, demo_pool=demo_pool, report_dir=report_dir, progress=not as_json)
    except CascadeError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2 if isinstance(exc, UserError) else 1)
    artifact = result["artifact"]
    if as_json:
        out.print_json(json.dumps({"artifact": artifact.id, "version": artifact.version, "path": str(result["path"]),
                                   "report_dir": str(result["report_dir"]), "skipped": result["skipped"],
                                   "policy": artifact.policy, "threshold": artifact.threshold,
                                   "fit": artifact.fit_metrics, "test": result["report"].model_dump()}))
        return
    out.print(_table(result))
    out.print(f"policy: {artifact.policy}", highlight=False)
    out.print(f"artifact: {result['path']}\nplots: {result['report_dir']}", highlight=False)
    if result["skipped"]:
        out.print(f"{result['skipped']} item(s) skipped: longer than the model's context")
