"""The clause categories contract review knows (CUAD's names and descriptions) and the risk table.

Each category has CUAD's description (what the model is asked, and with a typical wording, what
retrieval searches for) and one risk rule per answer: what it means that a clause of this kind
was found, and what it means that none was found in the retrieved passages. The rules are a fixed
table, applied to the kept answer only, so a flag is always explainable and never comes from the
contract's own text. Absence is reported as "not found in the retrieved passages", never as
"the contract has none": retrieval shows the model a few passages, not the whole contract.

Risk levels: "high" (act on it), "flag" (a person should read the clause), "none" (no rule fires),
"unknown" (no answer could be kept: the run needs review).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agents.errors import InvalidInputError

Risk = Literal["high", "flag", "none", "unknown"]


@dataclass(frozen=True)
class Category:
    description: str  # CUAD's, shown to the model
    wording: str  # a typical clause, added to the retrieval query (a query phrased like the clause finds it better)
    if_present: tuple[Risk, str]
    if_absent: tuple[Risk, str]


_NOTHING = ("none", "no risk rule fires")

CATEGORIES: dict[str, Category] = {
    "Governing Law": Category(
        "Which state/country's law governs the interpretation of the contract?",
        "This Agreement shall be governed by and construed in accordance with the laws of the State of",
        ("none", "the governing law is stated"),
        ("flag", "no governing-law clause found in the retrieved passages")),
    "Cap on Liability": Category(
        "Does the contract include a cap on liability upon the breach of a party's obligation? This includes time "
        "limitation for the counterparty to bring claims or maximum amount for recovery.",
        "In no event shall either party's total liability exceed the amounts paid under this Agreement",
        ("none", "liability is capped (read the amount and its exceptions)"),
        ("flag", "no cap on liability found in the retrieved passages")),
    "Uncapped Liability": Category(
        "Is a party's liability uncapped upon the breach of its obligation in the contract? This also includes "
        "uncapped liability for a particular type of breach such as IP infringement or breach of confidentiality "
        "obligation.",
        "The limitation of liability shall not apply to breach of confidentiality, indemnification obligations or "
        "infringement",
        ("high", "a party's liability is uncapped for some breaches or claims"),
        ("none", "no uncapped-liability clause found in the retrieved passages")),
    "Non-Compete": Category(
        "Is there a restriction on the ability of a party to compete with the counterparty or operate in a certain "
        "geography or business or technology sector?",
        "shall not, directly or indirectly, engage in any business that competes with",
        ("flag", "a party is restricted from competing or operating in a market"), _NOTHING),
    "Exclusivity": Category(
        "Is there an exclusive dealing commitment with the counterparty? This includes a commitment to procure all "
        "requirements from one party, or a prohibition on licensing or selling to third parties or on working "
        "with other parties.",
        "appoints Distributor as its exclusive distributor and shall not sell the Products to any other party in "
        "the Territory",
        ("flag", "an exclusive dealing commitment binds a party"), _NOTHING),
    "Change of Control": Category(
        "Does one party have the right to terminate or is consent or notice required of the counterparty if such "
        "party undergoes a change of control, such as a merger, stock sale, transfer of all or substantially all "
        "of its assets or business, or assignment by operation of law?",
        "may terminate this Agreement upon a change of control, merger or sale of all or substantially all of its "
        "assets",
        ("flag", "a change of control gives the counterparty a right (termination, consent or notice)"), _NOTHING),
    "Termination for Convenience": Category(
        "Can a party terminate this contract without cause (solely by giving a notice and allowing a waiting "
        "period to expire)?",
        "Either party may terminate this Agreement for any reason or no reason upon thirty (30) days prior written "
        "notice",
        ("flag", "a party may terminate without cause, on notice"), _NOTHING),
    "Audit Rights": Category(
        "Does a party have the right to audit the books, records, or physical locations of the counterparty to "
        "ensure compliance with the contract?",
        "shall have the right to inspect and audit the books and records of",
        ("flag", "a party may audit the other's books, records or premises"), _NOTHING),
    "Anti-Assignment": Category(
        "Is consent or notice required of a party if the contract is assigned to a third party?",
        "Neither party may assign this Agreement without the prior written consent of the other party",
        ("flag", "assigning the contract needs the counterparty's consent or notice"), _NOTHING),
    "Liquidated Damages": Category(
        "Does the contract contain a clause that would award either party liquidated damages for breach or a fee "
        "upon the termination of a contract (termination fee)?",
        "shall pay as liquidated damages and not as a penalty a termination fee of",
        ("flag", "liquidated damages or a termination fee are owed on breach or termination"), _NOTHING),
    "Most Favored Nation": Category(
        "Is there a clause that if a third party gets better terms on the licensing or sale of technology, goods "
        "or services described in the contract, the buyer shall be entitled to those better terms?",
        "prices no less favorable than those offered to any other customer",
        ("flag", "a most-favored-nation commitment ties prices or terms to other customers'"), _NOTHING),
    "Minimum Commitment": Category(
        "Is there a minimum order size or minimum amount or units per-time period that one party must buy from "
        "the counterparty under the contract?",
        "shall purchase a minimum quantity of Products in each calendar year",
        ("flag", "a party must buy a minimum amount"), _NOTHING),
}

# The default review: the questions a first read of a commercial contract asks (each costs one
# cascade run per contract, so the default stays small; ask for any of CATEGORIES by name).
DEFAULT_CATEGORIES = ("Governing Law", "Cap on Liability", "Uncapped Liability", "Termination for Convenience",
                      "Change of Control")


def validate_categories(categories: list[str] | tuple[str, ...] | None) -> list[str]:
    """The requested categories in order, each once (default: DEFAULT_CATEGORIES); an unknown name is
    an InvalidInputError listing the known ones."""
    if categories is None:
        return list(DEFAULT_CATEGORIES)
    if isinstance(categories, str) or not all(isinstance(c, str) for c in categories):
        raise InvalidInputError("categories must be a list of category names, e.g. ['Governing Law']")
    if not categories:
        raise InvalidInputError(f"give at least one category; known categories: {', '.join(CATEGORIES)}")
    by_key = {name.casefold(): name for name in CATEGORIES}
    unknown = [c for c in categories if c.strip().casefold() not in by_key]
    if unknown:
        raise InvalidInputError(f"unknown contract clause categor{'y' if len(unknown) == 1 else 'ies'} "
                                f"{', '.join(map(repr, unknown))}; known categories: {', '.join(CATEGORIES)}")
    return list(dict.fromkeys(by_key[c.strip().casefold()] for c in categories))


def risk_for(category: str, present: bool | None) -> tuple[Risk, str]:
    """The table's risk and reason for a kept answer; present None (no answer kept) is "unknown"."""
    if present is None:
        return "unknown", f"no answer could be kept for {category}: a person should review it"
    risk, reason = CATEGORIES[category].if_present if present else CATEGORIES[category].if_absent
    if present and reason == _NOTHING[1]:
        return risk, f"a {category} clause was found; {reason}"
    if not present and reason == _NOTHING[1]:
        return risk, f"no {category} clause found in the retrieved passages; {reason}"
    return risk, reason
