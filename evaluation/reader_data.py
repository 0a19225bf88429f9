"""Reader training and test rows built from the shared data sets (HaluEval QA, CUAD), with fixed splits.

HaluEval QA (`halueval_qa/qa_data.jsonl`, 5,000 rows of knowledge, question, right answer): one
seeded permutation cuts the rows into train (the first 4,000) and test (the last 1,000). A row is
answerable where its right answer occurs in its knowledge (the answer's first occurrence, case
aside, is the gold span); rows whose answer does not occur are left out. Unanswerable pairs pair a
question with the knowledge of the next row of the same split (in permutation order), kept only
when that knowledge does not hold the answer either; `unanswerable` of them per split.

CUAD (`cuad/`): the contracts are split by contract (one seeded permutation; the last `test_share`
are test), so no contract gives rows to both sides. For each train contract and clause category,
the contract is cut into the chunks retrieval shows at run time (agents.documents.chunk_text): a
chunk holding a whole gold clause is a positive row (the category's question, the chunk, the
clause), and among the chunks that overlap no gold clause, the one sharing the most words with the
category's retrieval query is a hard negative (what retrieval would show when the clause is
absent). Training is bounded to fit 2 cores: at most `per_category` positives and as many negatives
per category, sampled with the seed.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from agents import contracts
from agents.contract_categories import CATEGORIES
from agents.documents import chunk_text
from agents.errors import InvalidInputError

from evaluation.cuad import CuadContract, load_cuad
from evaluation.datasets import data_root
from orchestrator.training.reader import ReaderExample

HALUEVAL_TEST_ROWS = 1000
SEED = 20


@dataclass(frozen=True)
class HaluEvalSplit:
    train: list[ReaderExample]  # answerable rows, then unanswerable pairs
    test: list[ReaderExample]
    test_rows: list[dict]  # the answerable test rows as HaluEval gives them (right_answer for halueval_right)


def halueval_rows(root: str | Path | None = None) -> list[dict]:
    path = data_root(root) / "halueval_qa" / "qa_data.jsonl"
    if not path.is_file():
        raise InvalidInputError(f"HaluEval QA not found at {path}; pass the data root or set CASCADE_EVAL_DATA")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def answerable(row: dict) -> ReaderExample | None:
    """The row as a reader example, with the right answer's first occurrence in the knowledge (case aside)."""
    knowledge, answer = row["knowledge"], row["right_answer"].strip()
    at = knowledge.casefold().find(answer.casefold()) if answer else -1
    if at < 0:
        return None
    return ReaderExample(row["question"], knowledge, knowledge[at:at + len(answer)], at)


def unanswerable_pairs(rows: list[dict], limit: int) -> list[ReaderExample]:
    """Each row's question with the next row's knowledge, where that knowledge lacks the answer."""
    pairs = []
    for row, other in zip(rows, rows[1:] + rows[:1]):
        if len(pairs) >= limit:
            break
        if row["right_answer"].strip().casefold() not in other["knowledge"].casefold():
            pairs.append(ReaderExample(row["question"], other["knowledge"]))
    return pairs


def halueval_split(root: str | Path | None = None, train_rows: int | None = None, unanswerable: int = 1000,
                   test_unanswerable: int = 500) -> HaluEvalSplit:
    """Fixed train/test rows of HaluEval: `train_rows` caps the train rows read (before filtering);
    the test rows are the same whatever the cap."""
    rows = halueval_rows(root)
    order = list(range(len(rows)))
    random.Random(SEED).shuffle(order)
    shuffled = [rows[i] for i in order]
    train, test = shuffled[:-HALUEVAL_TEST_ROWS], shuffled[-HALUEVAL_TEST_ROWS:]
    train = train[:train_rows] if train_rows is not None else train
    kept_train = [e for e in map(answerable, train) if e is not None]
    kept_test = [(row, e) for row, e in zip(test, map(answerable, test)) if e is not None]
    negatives = round(unanswerable * len(train) / (len(shuffled) - HALUEVAL_TEST_ROWS))
    return HaluEvalSplit(train=kept_train + unanswerable_pairs(train, negatives),
                         test=[e for _, e in kept_test] + unanswerable_pairs(test, test_unanswerable),
                         test_rows=[row for row, _ in kept_test])


def cuad_contract_split(root: str | Path | None = None, test_share: float = 0.2) -> tuple[list[CuadContract], list[CuadContract]]:
    """CUAD's contracts split by contract: (train, test), fixed by the seed."""
    contracts_ = load_cuad(root).contracts
    order = list(range(len(contracts_)))
    random.Random(SEED).shuffle(order)
    cut = len(order) - round(len(order) * test_share)
    return [contracts_[i] for i in order[:cut]], [contracts_[i] for i in order[cut:]]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]{3,}", text.casefold()))


def _gold_offsets(text: str, spans: tuple[str, ...]) -> list[tuple[int, int]]:
    found = []
    for span in spans:
        at = contracts.locate(span, text)
        if at is not None:
            found.append(at)
    return found


def contract_windows(contract: CuadContract, category: str) -> tuple[list[ReaderExample], ReaderExample | None]:
    """A contract's positive chunks for a category, and its hardest negative chunk (or None)."""
    text, question = contract.text(), contracts.question(category)
    gold = _gold_offsets(text, contract.gold[category].spans)
    query = _words(contracts.query(category))
    positives, negative, best = [], None, -1.0
    for start, end in chunk_text(text):
        chunk = text[start:end]
        inside = [(a, b) for a, b in gold if start <= a and b <= end]
        if inside:
            a, b = inside[0]
            positives.append(ReaderExample(question, chunk, chunk[a - start:b - start], a - start))
        elif not any(a < end and b > start for a, b in gold):
            overlap = len(query & _words(chunk)) / (len(_words(chunk)) ** 0.5 + 1)
            if overlap > best:
                best, negative = overlap, ReaderExample(question, chunk)
    return positives, negative


def cuad_reader_rows(contracts_: list[CuadContract], per_category: int = 60, categories: list[str] | None = None,
                     seed: int = SEED) -> list[ReaderExample]:
    """Bounded reader rows from `contracts_`: up to `per_category` positives and as many hard negatives
    per category (sampled with `seed`)."""
    rng, rows = random.Random(seed), []
    for category in categories or list(CATEGORIES):
        positives, negatives = [], []
        for contract in contracts_:
            found, negative = contract_windows(contract, category)
            positives += found
            negatives += [negative] if negative is not None else []
        rng.shuffle(positives)
        rng.shuffle(negatives)
        rows += positives[:per_category] + negatives[:per_category]
    rng.shuffle(rows)
    return rows
