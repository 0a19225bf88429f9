"""Recall benchmark of ``agents.redaction`` on synthetic texts labelled with their personal data.

Source: synthetic, generated here; no real person's data. Faker (40.54 when written; the version used is in
the result) in six locales (en_US, en_GB, de_DE, fr_FR, nl_NL, es_ES) fills eight English templates: e-mails,
chat messages, support tickets, bank-transfer requests, a KYC form, an HR note, a complaint and a records update.
Item ``i`` of seed ``s`` uses ``random.Random(s)`` for the template, locale and formats and
``Faker.seed_instance(s * 1_000_003 + i)`` for the values, so a (n, seed) pair always gives the same texts.
Values are formatted the ways people write them: IBANs compact or in groups of four, card numbers compact or
grouped with spaces or dashes, dates of birth in five formats, phone numbers as each locale's Faker provider writes
them. Templates also hold data that is not personal (amounts, order numbers, ordinary dates, company names), so
that over-redaction shows up.

Recalled: every letter and digit of the labelled span lies inside a replaced span, and the value appears nowhere
in the redacted text. Partial: some but not all of it was replaced. False positives: replaced spans that overlap
no labelled entity, per 100 texts (company names replaced as PERSON count here).
"""

from __future__ import annotations

import random
import statistics
import string
import time
from dataclasses import dataclass

from agents.redaction import ENTITY_TYPES, Redactor

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES")
TEMPLATES = (
    "Subject: contract renewal\n\nDear {name},\n\nthank you for your call on {date}. Please send the signed copy to "
    "{email} or reach me on {phone}.\n\nBest regards,\n{name2}\n{company}",
    "hey it's {first}! my new number is {phone} and I moved to {street}, {postcode} {city}. see you on {date}",
    "Ticket #{ticket} | Customer: {name} | DOB: {dob}\nThe customer reports that card {card} was charged {amount} "
    "twice on {date}. Callback number {phone}, email {email}.",
    "Please transfer {amount} from my account {iban} to {name2}, IBAN {iban2}, reference INV-{ticket}.\nThank you,\n{name}",
    "Name: {name}\nDate of birth: {dob}\nAddress: {street}\n{postcode} {city}\nPhone: {phone}\nE-mail: {email}\nIBAN: {iban}",
    "{name} (born {dob} in {city}) joined {company} on {date}. Salary is paid to {iban}; emergency contact {name2}, {phone}.",
    "I am writing about order {ticket}. I paid {amount} with my credit card {card} but nothing arrived at {street}, "
    "{city}. You can email me at {email}.\n{name}",
    "Could you update the records for {name}? The new email is {email} and the phone number {phone}. "
    "Delivery address: {street}, {postcode} {city}. Birthday: {dob}.",
)
LABELS = {"name": "PERSON", "name2": "PERSON", "first": "PERSON", "email": "EMAIL_ADDRESS", "phone": "PHONE_NUMBER",
          "iban": "IBAN_CODE", "iban2": "IBAN_CODE", "card": "CREDIT_CARD", "city": "LOCATION", "street": "ADDRESS",
          "dob": "DATE_OF_BIRTH"}  # other fields (date, amount, ticket, company, postcode) are not labelled
DOB_FORMATS = ("%d/%m/%Y", "%Y-%m-%d", "%B %d, %Y", "%d %B %Y", "%d.%m.%Y")


@dataclass(frozen=True)
class LabelledText:
    text: str
    locale: str
    entities: tuple[tuple[int, int, str], ...]  # start, end, entity type


def _group(value: str, sizes: list[int], sep: str) -> str:
    parts, pos = [], 0
    for size in sizes:
        parts.append(value[pos:pos + size])
        pos += size
    return sep.join(p for p in parts + [value[pos:]] if p)


def _values(fake, rng: random.Random) -> dict[str, str]:
    first = fake.first_name()
    iban = [fake.iban() for _ in range(2)]
    card = fake.credit_card_number()
    card_sizes = [4, 6, 5] if len(card) == 15 else [4] * 4
    return {
        "first": first, "name": f"{first} {fake.last_name()}", "name2": f"{fake.first_name()} {fake.last_name()}",
        "email": fake.email(), "phone": fake.phone_number(), "city": fake.city(), "postcode": fake.postcode(),
        "street": fake.street_address().replace("\n", ", ").strip(), "company": fake.company(),
        "iban": rng.choice([iban[0], _group(iban[0], [4] * 8, " ")]),
        "iban2": rng.choice([iban[1], _group(iban[1], [4] * 8, " ")]),
        "card": rng.choice([card, _group(card, card_sizes, " "), _group(card, card_sizes, "-")]),
        "dob": fake.date_of_birth(minimum_age=18, maximum_age=90).strftime(rng.choice(DOB_FORMATS)),
        "date": fake.date_this_year().strftime(rng.choice(("%Y-%m-%d", "%d %B", "%B %d"))),
        "amount": f"{rng.choice(['EUR', 'GBP', 'USD', '€'])} {rng.randint(5, 25000)}.{rng.randint(0, 99):02d}",
        "ticket": str(rng.randint(10000, 99999999)),
    }


def labelled_texts(n: int = 500, seed: int = 0) -> list[LabelledText]:
    """The benchmark's texts, each with the exact span and type of every personal value it holds."""
    from faker import Faker

    rng = random.Random(seed)
    fakers = {loc: Faker(loc) for loc in LOCALES}
    items = []
    for i in range(n):
        locale, template = rng.choice(LOCALES), rng.choice(TEMPLATES)
        fake = fakers[locale]
        fake.seed_instance(seed * 1_000_003 + i)
        values = _values(fake, rng)
        text, entities = "", []
        for literal, field, _, _ in string.Formatter().parse(template):
            text += literal
            if field:
                if field in LABELS:
                    entities.append((len(text), len(text) + len(values[field]), LABELS[field]))
                text += values[field]
        items.append(LabelledText(text, locale, tuple(entities)))
    return items


def run_redaction_bench(n: int = 500, seed: int = 0, redactor: Redactor | None = None) -> dict:
    """Per entity type: labelled values, recalled, partially replaced, recall; false positives; median ms per text."""
    import faker

    redactor = redactor or Redactor()
    redactor.redact(["warm-up: load the models before timing, Anna Smith"])
    stats = {t: {"n": 0, "recalled": 0, "partial": 0} for t in ENTITY_TYPES}
    false_positives: dict[str, int] = {}
    times = []
    for item in labelled_texts(n, seed):
        start = time.perf_counter()
        result = redactor.redact([item.text])
        times.append(time.perf_counter() - start)
        spans, redacted = result.spans[0], result.texts[0]
        replaced = {p for s, e, _ in spans for p in range(s, e)}
        for s, e, etype in item.entities:
            chars = [p for p in range(s, e) if item.text[p].isalnum()]
            covered = sum(p in replaced for p in chars)
            stats[etype]["n"] += 1
            if covered == len(chars) and item.text[s:e] not in redacted:
                stats[etype]["recalled"] += 1
            elif covered:
                stats[etype]["partial"] += 1
        for s, e, etype in spans:
            if not any(s < le and ls < e for ls, le, _ in item.entities):
                false_positives[etype] = false_positives.get(etype, 0) + 1
    for row in stats.values():
        row["recall"] = round(row["recalled"] / row["n"], 4) if row["n"] else None
    return {
        "source": "synthetic (Faker), see orchestrator/redaction_bench.py", "faker_version": faker.VERSION,
        "seed": seed, "n_texts": n, "entities": stats,
        "false_positives_per_100_texts": round(100 * sum(false_positives.values()) / max(n, 1), 2),
        "false_positives_by_type": dict(sorted(false_positives.items())),
        "median_ms_per_text": round(1000 * statistics.median(times), 2) if times else None,
    }
