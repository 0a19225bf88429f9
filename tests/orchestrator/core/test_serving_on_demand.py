"""A local tier whose server starts on demand: the first escalation starts the real Gemma server,
the Cascade that started it stops it on close, and a server already running is used, not stopped."""

from __future__ import annotations

import pytest

from agents.backends.fake import FakeScoringBackend
from orchestrator import Cascade
from orchestrator.core.models import server_is_up
from tests.conftest import fake_tiers, free_port, gemma_tier, write_config

pytestmark = [pytest.mark.slow, pytest.mark.server]

UNSURE = {"spam": -0.7, "ham": -0.7}  # tier 1 at 0.5: below the threshold, so the item escalates


def test_the_first_escalation_starts_the_server_and_close_stops_it(tmp_path, data_dir):
    tier = gemma_tier(free_port(), start="on_demand")
    api_base = f"http://127.0.0.1:{tier['serve']['port']}/v1"
    config = write_config(tmp_path / "c.yaml", [fake_tiers(1)[0], tier], threshold=0.9)
    fake = FakeScoringBackend([UNSURE, UNSURE])
    with Cascade.from_config(config, data_dir=str(data_dir), backends={"t0": fake}) as cascade:
        assert not server_is_up(api_base)  # building the Cascade starts nothing
        first = cascade.classify("WINNER! claim your prize now", ["spam", "ham"])
        assert server_is_up(api_base)
        second = cascade.classify("see you at lunch", ["spam", "ham"])
    assert [a.tier_name for a in first.attempts] == ["t0", "gemma3-270m"]
    assert first.tier_name == second.tier_name == "gemma3-270m" and first.answer in ("spam", "ham")
    assert not server_is_up(api_base)  # the Cascade that started it stopped it
    assert (data_dir / f"server-gemma3-270m-{tier['serve']['port']}.log").exists()


def test_a_server_already_running_is_used_and_left_running(tmp_path, data_dir, gemma_server):
    tier = {**gemma_server["tier"], "serve": {**gemma_server["tier"]["serve"], "start": "on_demand"}}
    config = write_config(tmp_path / "c.yaml", [fake_tiers(1)[0], tier], threshold=0.9)
    with Cascade.from_config(config, data_dir=str(data_dir), backends={"t0": FakeScoringBackend([UNSURE])}) as cascade:
        result = cascade.classify("hello", ["spam", "ham"])
    assert result.tier_name == "gemma3-270m"
    assert server_is_up(f"http://127.0.0.1:{gemma_server['port']}/v1")
