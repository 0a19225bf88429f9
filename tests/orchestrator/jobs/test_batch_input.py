"""Bad batch input: clear errors for the file or per row, nothing accepted is lost, and a big file
is never read into memory whole. No model runs here (rows are checked when the job is loaded)."""

from __future__ import annotations

import json
import tracemalloc

import pytest
import typer
from typer.testing import CliRunner

from agents.errors import InvalidInputError, UnknownTaskError
from cli.batch import batch_app
from orchestrator import Jobs
from tests.conftest import SMOL, write_config

LABELS = ["spam", "ham"]


@pytest.fixture
def jobs(tmp_path):
    with Jobs.from_config(write_config(tmp_path / "c.yaml", [SMOL]), data_dir=str(tmp_path / "data")) as j:
        yield j


def job_count(jobs) -> int:
    from sqlalchemy import func, select

    from orchestrator.jobs.records import JobItemRecord, JobRecord

    with jobs.store._tx() as s:
        return s.scalar(select(func.count()).select_from(JobRecord)) + s.scalar(select(func.count()).select_from(JobItemRecord))


def test_empty_file_is_rejected(jobs, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InvalidInputError, match="is empty"):
        jobs.submit(empty, "classify", labels=LABELS)
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n  \n\n")
    with pytest.raises(InvalidInputError, match="has no rows, only blank lines"):
        jobs.submit(blank, "classify", labels=LABELS)
    assert job_count(jobs) == 0, "a rejected file leaves no job behind"


def test_wrong_task_and_unknown_format(jobs, tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text('{"text": "hi"}\n')
    with pytest.raises(UnknownTaskError, match="unknown task 'summarize'.*known tasks: classify"):
        jobs.submit(f, "summarize")
    txt = tmp_path / "in.txt"
    txt.write_text("hello\n")
    with pytest.raises(InvalidInputError, match="name it .jsonl or .csv"):
        jobs.submit(txt, "classify", labels=LABELS)
    with pytest.raises(InvalidInputError, match="does not exist"):
        jobs.submit(tmp_path / "missing.jsonl", "classify", labels=LABELS)


def test_mixed_valid_and_malformed_jsonl_rows(jobs, tmp_path):
    lines = [
        json.dumps({"id": "a", "text": "win a prize now"}),
        "{not json",
        json.dumps({"id": "c", "text": ""}),
        json.dumps({"id": "d", "text": "lunch?", "labels": ["only-one"]}),
        json.dumps(["a", "list"]),
        "",
        json.dumps({"id": "f", "text": "see you", "labels": ["x", "y"], "colour": "red"}),
        json.dumps({"id": 7, "text": "call me", "labels": ["x", "y"]}),
        b"\xff\xfe bad bytes".decode("latin-1"),
    ]
    f = tmp_path / "mixed.jsonl"
    f.write_text("\n".join(lines) + "\n")
    job_id = jobs.submit(f, "classify", labels=LABELS)
    rows = list(jobs.results(job_id))
    assert [r["row"] for r in rows] == list(range(1, 9)), "every non-blank line is one row, none lost"
    by_row = {r["row"]: r for r in rows}
    assert by_row[1]["status"] == "queued" and by_row[7]["status"] == "queued" and by_row[7]["id"] == "7"
    assert by_row[2]["error"].startswith("line 2: not valid JSON")
    assert by_row[3]["error"] == "line 3: text is empty; give the text to classify" and by_row[3]["id"] == "c"
    assert "at least two labels" in by_row[4]["error"]
    assert "must be a JSON object" in by_row[5]["error"]
    assert by_row[6]["error"].startswith("line 7: unknown key(s) ['colour']")
    assert by_row[8]["error"].startswith("line 9:")
    status = jobs.status(job_id)
    assert status["total"] == 8 and status["invalid"] == 6 and status["queued"] == 2


def test_csv_rows_labels_per_row_or_per_job(jobs, tmp_path):
    f = tmp_path / "in.csv"
    f.write_text('id,text,labels\n1,"Free entry, win now",spam|ham\n2,see you at 5,\n3,"quoted, text","[""a"", ""b""]"\n'
                 '4,too,many,cells\n5,,spam|ham\n')
    job_id = jobs.submit(f, "classify")  # no job labels: row 2 has none
    rows = list(jobs.results(job_id))
    assert [r["status"] for r in rows] == ["queued", "invalid", "queued", "invalid", "invalid"]
    assert "no labels" in rows[1]["error"] and "4 cells for 3 columns" in rows[3]["error"]
    items = list(jobs.store.iter_items(job_id))
    assert items[0]["payload"] == {"text": "Free entry, win now", "labels": ["spam", "ham"]}
    assert items[2]["payload"]["labels"] == ["a", "b"]

    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("id,body\n1,hello\n")
    with pytest.raises(InvalidInputError, match="must name a 'text' column"):
        jobs.submit(bad_header, "classify", labels=LABELS)


def test_confidential_flag_per_row(jobs, tmp_path):
    """A row marked confidential carries the flag to Cascade.run; a bad flag fails that row only."""
    f = tmp_path / "in.jsonl"
    f.write_text('{"text": "my IBAN is DE89 3704 0044 0532 0130 00", "confidential": true}\n'
                 '{"text": "hello", "confidential": "maybe"}\n{"text": "plain"}\n')
    job_id = jobs.submit(f, "classify", labels=LABELS)
    rows = list(jobs.results(job_id))
    assert [r["status"] for r in rows] == ["queued", "invalid", "queued"]
    assert '"confidential" must be true or false' in rows[1]["error"]
    assert [i["payload"] and i["payload"].get("confidential") for i in jobs.store.iter_items(job_id)] == [True, None, None]
    c = tmp_path / "in.csv"
    c.write_text("text,confidential\nsecret salary list,yes\nnews,\nodd,perhaps\n")
    job_id = jobs.submit(c, "classify", labels=LABELS)
    payloads = [i["payload"] for i in jobs.store.iter_items(job_id)]
    assert payloads[0]["confidential"] is True and "confidential" not in payloads[1] and payloads[2] is None


def test_100_mb_file_rejected_before_reading(jobs, tmp_path):
    big = tmp_path / "big.jsonl"
    row = (json.dumps({"text": "x" * 1000, "labels": LABELS}) + "\n").encode()
    with big.open("wb") as f:
        for _ in range(100 * 2**20 // len(row) + 1):
            f.write(row)
    assert big.stat().st_size >= 100 * 2**20
    tracemalloc.start()
    with pytest.raises(InvalidInputError, match=r"is 100.0 MB, over the limit of 64.0 MB.*CASCADE_BATCH_MAX_FILE_MB"):
        jobs.submit(big, "classify")
    assert tracemalloc.get_traced_memory()[1] < 5 * 2**20
    tracemalloc.stop()
    assert job_count(jobs) == 0


def test_100_mb_row_is_streamed_past_with_a_row_error(tmp_path):
    """With the file limit raised, a 100 MB single line is skipped in chunks, never held whole."""
    big = tmp_path / "oneline.jsonl"
    with big.open("wb") as f:
        f.write(b'{"text": "ok", "labels": ["a", "b"]}\n{"text": "')
        chunk = b"y" * 2**20
        for _ in range(100):
            f.write(chunk)
        f.write(b'", "labels": ["a", "b"]}\n{"text": "also ok", "labels": ["a", "b"]}\n')
    config = write_config(tmp_path / "c.yaml", [SMOL])
    with Jobs.from_config(config, data_dir=str(tmp_path / "data"), batch_max_file_mb=200) as jobs:
        tracemalloc.start()
        job_id = jobs.submit(big, "classify")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows = list(jobs.results(job_id))
    assert peak < 10 * 2**20, f"peak {peak / 2**20:.1f} MB while reading a 100 MB row"
    assert [r["status"] for r in rows] == ["queued", "invalid", "queued"]
    assert rows[1]["error"] == "line 2: row longer than 256 KB (CASCADE_BATCH_MAX_ROW_KB)"


def test_cli_errors_exit_2_with_message(tmp_path, data_dir):
    app = typer.Typer()
    app.add_typer(batch_app, name="batch")
    env = {"CASCADE_DATA_DIR": str(data_dir), "CASCADE_CONFIG": str(write_config(tmp_path / "c.yaml", [SMOL]))}
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    result = CliRunner().invoke(app, ["batch", "submit", str(empty), "--task", "classify", "-l", "a", "-l", "b"], env=env)
    assert result.exit_code == 2 and "is empty" in result.output
    result = CliRunner().invoke(app, ["batch", "submit", str(empty), "--task", "translate"], env=env)
    assert result.exit_code == 2 and "unknown task 'translate'" in result.output
    result = CliRunner().invoke(app, ["batch", "status", "no-such-job"], env=env)
    assert result.exit_code == 2 and "no batch job with id no-such-job" in result.output
