"""Personal-data redaction with the real Presidio + spaCy pipeline (no mocks)."""

from __future__ import annotations

import pytest

from agents.errors import ConfigError
from agents.redaction import DEFAULT_ENTITIES, ENTITY_TYPES, Redacted, Redactor, validate_entities


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


@pytest.mark.parametrize(("etype", "text", "value"), [
    ("PERSON", "Our account manager Sarah Johnson will call you tomorrow.", "Sarah Johnson"),
    ("EMAIL_ADDRESS", "Write to j.doe@example.org for the details.", "j.doe@example.org"),
    ("PHONE_NUMBER", "You can reach me on +44 20 7946 0958 after lunch.", "+44 20 7946 0958"),
    ("PHONE_NUMBER", "Office: (212) 555-0147 ext. 12, ask for the desk.", "(212) 555-0147 ext. 12"),
    ("IBAN_CODE", "Please wire it to DE89 3704 0044 0532 0130 00 today.", "DE89 3704 0044 0532 0130 00"),
    ("IBAN_CODE", "IBAN:GB82WEST12345698765432 BIC WESTGB2L", "GB82WEST12345698765432"),
    ("CREDIT_CARD", "My card 4111-1111-1111-1111 was declined.", "4111-1111-1111-1111"),
    ("LOCATION", "She moved to Amsterdam last year.", "Amsterdam"),
    ("ADDRESS", "Send the parcel to 221B Baker Street, London NW1 6XE please.", "221B Baker Street"),
    ("ADDRESS", "Neue Anschrift: Lindenstraße 12a, 10115 Berlin.", "Lindenstraße 12a"),
    ("DATE_OF_BIRTH", "Patient file. Date of birth: 14/07/1983. Allergies: none.", "14/07/1983"),
    ("DATE_OF_BIRTH", "He was born on March 3rd, 1990 in a small town.", "March 3rd, 1990"),
])
def test_each_entity_type_is_found(redactor, etype, text, value):
    result = redactor.redact([text])
    assert value not in result.texts[0]
    placeholders = [p for p, original in result.mapping.items() if value in original]
    assert placeholders and placeholders[0].startswith(f"<{etype}_"), (result.texts[0], result.mapping)
    assert placeholders[0] in result.texts[0]


def test_every_type_has_a_test_sentence():
    assert set(ENTITY_TYPES) == {"PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "IBAN_CODE", "CREDIT_CARD", "LOCATION",
                                 "ADDRESS", "DATE_OF_BIRTH"} == set(DEFAULT_ENTITIES)


def test_numbers_that_are_not_personal_data_stay(redactor):
    text = "Order 12345678 of EUR 1.250.000 ships on 2024-05-03; invoice INV-2024-0042."
    assert redactor.redact([text]).texts == [text]


def test_same_value_same_placeholder_across_texts(redactor):
    result = redactor.redact(["Mail anna.berg@example.com today.", "Cc anna.berg@example.com and anna.berg@example.com."])
    assert result.mapping == {"<EMAIL_ADDRESS_1>": "anna.berg@example.com"}
    assert result.texts == ["Mail <EMAIL_ADDRESS_1> today.", "Cc <EMAIL_ADDRESS_1> and <EMAIL_ADDRESS_1>."]


def test_different_names_different_placeholders_and_counts(redactor):
    texts = ["Dear Peter Smith,\nMaria Lopez asked me to write to you at p.smith@example.com.",
             "Peter Smith never answered.\nBest regards,\nMaria Lopez"]
    result = redactor.redact(texts)
    person = {v: p for p, v in result.mapping.items() if p.startswith("<PERSON_")}
    assert set(person) == {"Peter Smith", "Maria Lopez"}
    assert person["Peter Smith"] != person["Maria Lopez"]
    assert result.texts[1] == f"{person['Peter Smith']} never answered.\nBest regards,\n{person['Maria Lopez']}"
    assert result.counts == {"PERSON": 2, "EMAIL_ADDRESS": 1}


def test_restore_round_trips_and_leaves_other_text_alone(redactor):
    texts = ["Call +33 6 12 34 56 78 or write to Jean Dupont, 12 rue de la Paix, 75002 Paris. IBAN FR14 2004 1010 0505 0001 3M02 606."]
    result = redactor.redact(texts)
    assert "Jean Dupont" not in result.texts[0] and "FR14" not in result.texts[0]
    assert Redactor.restore(result.texts[0], result.mapping) == texts[0]
    plain = "No placeholders <here>, nor <person_1> or <UNKNOWN_7>."
    assert Redactor.restore(plain, result.mapping) == plain


def test_only_requested_types_are_replaced():
    result = Redactor(["EMAIL_ADDRESS"]).redact(["Peter Smith, peter@example.com, +44 20 7946 0958"])
    assert result.texts == ["Peter Smith, <EMAIL_ADDRESS_1>, +44 20 7946 0958"]


def test_placeholders_are_not_redetected(redactor):
    first = redactor.redact(["Dear Peter Smith, your card 4111 1111 1111 1111 is blocked."])
    again = redactor.redact(first.texts + ["Maria Lopez will call."])
    assert again.texts[0] == first.texts[0]
    assert "<PERSON_1>" not in again.mapping  # already in the input: the new name gets another number
    assert Redactor.restore(again.texts[1], again.mapping) == "Maria Lopez will call."


def test_mapping_stays_out_of_repr_and_dumps(redactor):
    result = redactor.redact(["Write to j.doe@example.org."])
    assert isinstance(result, Redacted)
    assert "j.doe" not in repr(result) and "j.doe" not in str(result.model_dump())


def test_validate_entities_names_the_unknown_type():
    assert validate_entities(["PERSON", "IBAN_CODE", "PERSON"]) == ["PERSON", "IBAN_CODE"]
    with pytest.raises(ConfigError) as info:
        validate_entities(["PERSON", "PASSPORT_NUMBERX"])
    assert "PASSPORT_NUMBERX" in str(info.value) and "EMAIL_ADDRESS" in str(info.value)
    with pytest.raises(ConfigError):
        Redactor(["PASSPORT_NUMBERX"])


def test_small_bench_reports_every_type(redactor):
    from evaluation.benchmarks.redaction import run_redaction_bench

    result = run_redaction_bench(n=40, seed=3, redactor=redactor)
    assert set(result["entities"]) == set(ENTITY_TYPES)
    for row in result["entities"].values():
        assert {"n", "recalled", "partial", "recall"} <= set(row)
        assert row["recalled"] + row["partial"] <= row["n"]
    assert result["n_texts"] == 40 and result["median_ms_per_text"] > 0
