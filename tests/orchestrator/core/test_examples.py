"""Retrieved demonstrations and learning from escalations, with the real embedding model and Qdrant."""

from __future__ import annotations

import math

import pytest

from agents.backends import FakeScoringBackend
from agents.retrieval import Example, ExampleStore
from orchestrator import Cascade
from tests.conftest import write_config

LABELS = ["lost or stolen card", "card arrival"]


@pytest.fixture
def store(tmp_path, embedder):
    s = ExampleStore(path=tmp_path / "qdrant", embedder=embedder)
    yield s
    s.close()


def seed(store):
    return store.add("classify", [
        Example(text="Someone stole my wallet with my bank card", label="lost or stolen card", source="seed"),
        Example(text="When will the card you posted reach me?", label="card arrival", source="seed"),
        Example(text="What is the euro to dollar rate today", label="exchange rate", source="seed"),
    ])


def test_nearest_examples_come_first_and_respect_the_label_set(store):
    seed(store)
    hits = store.nearest("classify", "my card was stolen on the train", k=2, labels=LABELS)
    assert [h.label for h in hits] == ["lost or stolen card", "card arrival"]
    assert hits[0].score > hits[1].score
    assert all(h.label in LABELS for h in store.nearest("classify", "euro rate", k=3, labels=LABELS))


def test_near_duplicates_are_stored_once(store):
    seed(store)
    again = store.add("classify", [Example(text="Someone stole my wallet with my bank card", label="lost or stolen card", source="x")])
    assert again == [] and store.count("classify") == 3
    assert store.label_counts("classify", [*LABELS, "exchange rate", "refund"]) == {
        "lost or stolen card": 1, "card arrival": 1, "exchange rate": 1, "refund": 0}


def test_removing_an_example_removes_it_from_retrieval(store):
    added = seed(store)
    stolen = next(e for e in added if e.label == "lost or stolen card")
    assert store.remove("classify", [stolen.id]) == 1
    hits = store.nearest("classify", "my card was stolen", k=3)
    assert stolen.id not in {h.id for h in hits} and store.count("classify") == 2


def test_bad_example_is_rejected(store):
    from agents.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="needs a text and a label"):
        store.add("classify", [Example(text="  ", label="x", source="t")])


def scores(p_first: float) -> dict[str, float]:
    return {LABELS[0]: math.log(p_first), LABELS[1]: math.log(1 - p_first)}


def cascade_with(tmp_path, t0, t1, embedder, k=2, vote_weight=0.0):
    tiers = [{"name": "t0", "kind": "llama_cpp", "model_path": "x.gguf"},
             {"name": "t1", "kind": "llama_cpp", "model_path": "y.gguf"}]
    config = write_config(tmp_path / "c.yaml", tiers, threshold=0.8)
    config.write_text(config.read_text().replace(
        "threshold: 0.8", f"threshold: 0.8\n    examples: {{k: {k}, vote_weight: {vote_weight}}}"))
    cascade = Cascade.from_config(config, data_dir=str(tmp_path / "data"), backends={"t0": t0, "t1": t1})
    cascade._examples = ExampleStore(path=tmp_path / "data" / "qdrant", embedder=embedder)
    return cascade


def test_a_learned_example_changes_the_next_similar_items_prompt(tmp_path, embedder):
    t0 = FakeScoringBackend([scores(0.6), scores(0.6)])
    t1 = FakeScoringBackend([scores(0.97), scores(0.97)])
    with cascade_with(tmp_path, t0, t1, embedder) as cascade:
        first = cascade.classify("My debit card was stolen from my bag", LABELS)
        second = cascade.classify("My credit card got stolen from my car", LABELS)
        run = cascade.audit.get_run(first.run_id)
        second_run = cascade.audit.get_run(second.run_id)
    assert first.tier_name == "t1" and "Labelled examples" not in t0.calls[0]["item"]
    learned = run["params"]["learned_example"]
    assert learned and "My debit card was stolen from my bag\nLabel: lost or stolen card" in t0.calls[1]["item"]
    assert second_run["params"]["demonstrations"] == [learned]
    assert second.attempts[0].prompt_version.endswith("+demos1")


def test_a_learned_example_raises_the_next_similar_items_confidence_through_its_vote(tmp_path, embedder):
    # Tier 1 says 0.6 both times. The second item's stored neighbour (the first, learned from tier 2)
    # votes for the same label, so with vote weight 0.5 its confidence is the blend, above 0.6.
    t0 = FakeScoringBackend([scores(0.6), scores(0.6)])
    t1 = FakeScoringBackend([scores(0.97), scores(0.97)])
    with cascade_with(tmp_path, t0, t1, embedder, vote_weight=0.5) as cascade:
        first = cascade.classify("My debit card was stolen from my bag", LABELS)
        second = cascade.classify("My credit card got stolen from my car", LABELS)
        params = cascade.audit.get_run(second.run_id)["params"]
    assert first.attempts[0].prompt_version == "classify-v2" and first.attempts[0].confidence == pytest.approx(0.6)
    vote = params["neighbour_vote"]
    assert params["vote_weight"] == 0.5 and vote[LABELS[0]] > 0.6
    assert params["store_label_counts"] == {LABELS[0]: 1, LABELS[1]: 0}  # the first item, learned
    tier1 = second.attempts[0]
    assert tier1.prompt_version == "classify-v2+demos1+balvote0.5"
    assert tier1.raw_confidence == pytest.approx(0.6)
    assert tier1.answer == LABELS[0] and tier1.confidence == pytest.approx(0.5 * 0.6 + 0.5 * vote[LABELS[0]])


def test_neighbour_vote_is_sure_only_when_near_neighbours_agree():
    from agents.classify import blend_vote, neighbour_vote

    near = neighbour_vote([("spam", 0.9), ("spam", 0.85), ("spam", 0.8)], ["spam", "ham"])
    far = neighbour_vote([("spam", 0.1), ("spam", -0.2)], ["spam", "ham"])
    split = neighbour_vote([("spam", 0.8), ("ham", 0.8)], ["spam", "ham"])
    assert near["spam"] == pytest.approx((0.5 + 2.55) / 3.55) and near["spam"] > 0.85
    assert far["spam"] == pytest.approx(0.6 / 1.1)  # a negative similarity counts as 0
    assert split == {"spam": pytest.approx(0.5), "ham": pytest.approx(0.5)}
    assert neighbour_vote([("other", 0.9)], ["spam", "ham"]) == {"spam": 0.5, "ham": 0.5}
    assert blend_vote({"spam": 0.2, "ham": 0.8}, near, 0.5)["spam"] == pytest.approx(0.1 + near["spam"] / 2)
    with pytest.raises(ValueError, match="vote is over"):
        blend_vote({"a": 0.5, "b": 0.5}, near, 0.5)


def test_neighbour_vote_is_balanced_by_the_stores_label_shares():
    from agents.classify import neighbour_vote

    # A store of 10 spam and 90 ham: a spam neighbour counts 100 / (2 x 10) = 5, a ham one 100 / 180.
    shown = [("spam", 0.8), ("ham", 0.8), ("ham", 0.8), ("ham", 0.8)]
    balanced = neighbour_vote(shown, ["spam", "ham"], {"spam": 10, "ham": 90})
    spam, ham = 0.5 + 0.8 * 5, 0.5 + 3 * 0.8 * 100 / 180
    assert balanced["spam"] == pytest.approx(spam / (spam + ham)) and balanced["spam"] > 0.7
    assert neighbour_vote(shown, ["spam", "ham"])["spam"] == pytest.approx(1.3 / 4.2)  # unbalanced: outvoted
    # An even store leaves the vote as it is; an empty one (no counts) too.
    assert neighbour_vote(shown, ["spam", "ham"], {"spam": 50, "ham": 50}) == neighbour_vote(shown, ["spam", "ham"])
    assert neighbour_vote(shown, ["spam", "ham"], {"spam": 0, "ham": 0}) == neighbour_vote(shown, ["spam", "ham"])


def test_learn_false_keeps_an_item_out_of_the_store(tmp_path, embedder):
    t0, t1 = FakeScoringBackend([scores(0.6)]), FakeScoringBackend([scores(0.97)])
    with cascade_with(tmp_path, t0, t1, embedder) as cascade:
        result = cascade.run("classify", text="confidential: card stolen", labels=LABELS, learn=False)
        assert result.tier_name == "t1" and cascade.examples.count("classify") == 0


def test_unconfident_higher_tier_answers_are_not_learned(tmp_path, embedder):
    t0, t1 = FakeScoringBackend([scores(0.6)]), FakeScoringBackend([scores(0.85)])
    with cascade_with(tmp_path, t0, t1, embedder) as cascade:
        cascade.classify("my card is gone", LABELS)
        assert cascade.examples.count("classify") == 0


def test_encoder_tier_answers_from_its_fitted_head(tmp_path, embedder):
    examples = tmp_path / "labelled.jsonl"
    rows = [("my card was stolen", "lost or stolen card"), ("someone took my card", "lost or stolen card"),
            ("I lost my bank card", "lost or stolen card"), ("when will my card arrive", "card arrival"),
            ("my new card has not come yet", "card arrival"), ("how long is card delivery", "card arrival")]
    examples.write_text("".join(f'{{"text": "{t}", "label": "{l}"}}\n' for t, l in rows))
    tiers = [{"name": "encoder", "kind": "encoder", "examples_file": str(examples)}]
    with Cascade.from_config(write_config(tmp_path / "c.yaml", tiers, threshold=0.0), data_dir=str(tmp_path / "d")) as cascade:
        cascade._embedder_model = embedder
        result = cascade.classify("a thief stole my debit card", LABELS)
        unknown = cascade.classify("what is the exchange rate", ["exchange rate", "card arrival"])
    attempt = result.attempts[0]
    assert result.answer == "lost or stolen card" and attempt.model_id == "encoder:all-MiniLM-L6-v2"
    assert sum(attempt.label_probs.values()) == pytest.approx(1) and attempt.model_file_hash.startswith("frozen:")
    assert unknown.outcome == "needs_review" and "too few examples" in unknown.reason


def test_reviewed_example_is_stored_with_provenance_and_linked(tmp_path, embedder):
    t0, t1 = FakeScoringBackend([scores(0.6)]), FakeScoringBackend([scores(0.7)])
    with cascade_with(tmp_path, t0, t1, embedder) as cascade:
        result = cascade.classify("card never showed up", LABELS)
        example = cascade.add_reviewed_example("classify", "card never showed up", "card arrival", "alice", result.run_id)
        run = cascade.audit.get_run(result.run_id)
    assert example.reviewer == "alice" and example.audit_id == result.run_id and example.source == "reviewer:alice"
    assert run["params"]["learned_example"] == example.id and run["params"]["reviewed_by"] == "alice"


def test_learn_only_kept_learns_what_the_tier_would_have_kept_for_that_label(tmp_path, embedder):
    """Tier 2 is the last tier, so it answers below its threshold too; with learn_only_kept such an
    answer is not learned, whatever learn_min_confidence says. Fraud has fixed labels, so each label
    can have its own threshold here (a per-class artifact sets them the same way)."""
    import yaml

    from tests.conftest import fake_tiers

    def fraud_scores(p_fraud: float) -> dict[str, float]:
        return {"fraud": math.log(p_fraud), "legit": math.log(1 - p_fraud)}

    def learned_labels(only_kept: bool, name: str) -> list[str]:
        config = tmp_path / f"{name}.yaml"
        config.write_text(yaml.safe_dump({"tiers": fake_tiers(2), "tasks": {"fraud": {
            "class_thresholds": {"fraud": 0.95, "legit": 0.8}, "review_below_threshold": [],
            "examples": {"k": 0, "learn_min_confidence": 0.5, "learn_only_kept": only_kept}}}}))
        # tier 1 is unsure twice; tier 2 says fraud at 0.9 (its fraud bar: 0.95), then legit at 0.85 (bar 0.8)
        backends = {"t0": FakeScoringBackend([fraud_scores(0.5)] * 2),
                    "t1": FakeScoringBackend([fraud_scores(0.9), fraud_scores(0.15)])}
        with Cascade.from_config(config, data_dir=str(tmp_path / name), backends=backends) as cascade:
            cascade._examples = ExampleStore(path=tmp_path / name / "qdrant", embedder=embedder)
            answers = [cascade.fraud("Pay the redelivery fee at bit.ly/x7 now"),
                       cascade.fraud("See you at the station at six")]
            assert [(a.tier_name, a.verdict) for a in answers] == [("t1", "fraud"), ("t1", "legit")]
            return sorted(e.label for e in cascade.examples.list("fraud"))

    assert learned_labels(only_kept=False, name="all") == ["fraud", "legit"]
    assert learned_labels(only_kept=True, name="kept") == ["legit"]
