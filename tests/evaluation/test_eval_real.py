"""`cascade eval` end to end with the real bundled models on a few SMS messages: every policy is
reported, and the second run replays the cached outputs without a single model call."""

import json
import os

import pytest

from typer.testing import CliRunner

from cli.main import app

pytestmark = pytest.mark.slow  # real models


def test_eval_on_ten_sms_messages_then_replay(models_dir, tmp_path):
    gemma = next((models_dir / "models").glob("*.gguf"))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / gemma.name).symlink_to(gemma.resolve())  # no second assembly in the temp dir
    args = ["eval", "--task", "fraud", "--data", "sms", "--n", "10", "--fit-size", "30", "--demos", "2",
            "--demo-pool", "20", "--data-dir", str(tmp_path), "--json"]
    env = {"CASCADE_EVAL_DATA": os.environ.get("CASCADE_EVAL_DATA", "/work/shared/data")}
    first = CliRunner().invoke(app, [*args, "--plot-dir", str(tmp_path / "plots")], env=env)
    assert first.exit_code == 0, first.output
    result = json.loads(first.stdout)
    assert result["sizes"] == {"test": 10, "fit": 30, "pool": 20, "skipped": 0}
    assert result["model_calls"] == {"smollm2-135m": 40, "gemma3-270m": 40, "smollm2-135m-verify": 10}
    assert len(result["policies"]) == 7
    assert all(0 <= row["quality"] <= 1 for row in result["policies"])
    assert (tmp_path / "plots" / "cost-quality.png").stat().st_size > 0

    second = CliRunner().invoke(app, args, env=env)
    assert second.exit_code == 0, second.output
    replayed = json.loads(second.stdout)
    assert set(replayed["model_calls"].values()) == {0}
    assert replayed["policies"] == result["policies"]
