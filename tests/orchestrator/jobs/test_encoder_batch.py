"""An embedded batch job over an encoder tier embeds its items in batches, not one by one."""

from __future__ import annotations

import json

import pytest

from orchestrator import Cascade, Jobs
from tests.conftest import write_config

pytestmark = pytest.mark.slow

ROWS = [("my card never arrived", "card arrival"), ("when does the new card come", "card arrival"),
        ("someone stole my card", "lost or stolen card"), ("I lost my debit card", "lost or stolen card")]
ITEMS = ["is my card in the post", "a thief took my wallet and card", "the card is still not here",
         "I cannot find my card", "how long for card delivery", "my card was taken from my bag"]


class CountingEmbedder:
    def __init__(self, embedder) -> None:
        self.inner, self.batches = embedder, []

    def embed(self, texts):
        self.batches.append(len(texts))
        return self.inner.embed(texts)


def test_an_embedded_job_embeds_its_items_in_one_batch(tmp_path, embedder):
    examples = tmp_path / "labelled.jsonl"
    examples.write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in ROWS))
    config = write_config(tmp_path / "c.yaml", [{"name": "enc", "kind": "encoder", "examples_file": str(examples)}],
                          threshold=0.0)
    items = tmp_path / "in.jsonl"
    items.write_text("".join(json.dumps({"text": t, "labels": ["card arrival", "lost or stolen card"]}) + "\n"
                             for t in ITEMS))
    with Cascade.from_config(config, data_dir=str(tmp_path / "d")) as cascade:
        counting = cascade._embedder_model = CountingEmbedder(embedder)
        jobs = Jobs(cascade.settings, cascade=cascade)
        job_id = jobs.submit(items, "classify", labels=None)
        summary = jobs.run(job_id)
        answers = [r["answer"] for r in jobs.results(job_id)]
        batches = list(counting.batches)
        head = cascade._encoders.runtimes["enc"].backend_for("classify", ["card arrival", "lost or stolen card"]).head
        one_by_one = [head.labels[int(head.predict_proba(embedder.embed([t])).argmax())] for t in ITEMS]
    assert summary["done"] == len(ITEMS) and answers == one_by_one
    assert answers[:3] == ["card arrival", "lost or stolen card", "card arrival"]
    # one call for the examples file, one for the job's window of items; none per item
    assert batches == [len(ROWS), len(ITEMS)]
