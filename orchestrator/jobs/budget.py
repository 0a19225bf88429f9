"""A batch job's escalation budget: which paused items go to phase 2, least confident first.

Two caps, both must hold for an item to be admitted:
  share  at most `max_escalation_share` of the job's valid items go past tier 1;
  spend  the estimated cost of the admitted escalations stays within `max_spend` (None: no cap).

An item's escalation cost is estimated from the prices of the tier phase 2 starts on (the second
tier of the ladder) before any call is made: the item's tier-1 prompt tokens as the prompt, the
tier's `max_tokens` as the output (a scoring tier, which generates nothing, as many output tokens
as tier 1 scored). A litellm tier is priced by its configured `prices`, else by litellm's price
map for its model; a llama.cpp or encoder tier by its configured prices (zero by default); a local
litellm tier the price map does not know costs 0, as its calls are recorded. An external tier
with no known price cannot be estimated: under a spend cap nothing is admitted to it.

Admission walks the paused items in order and stops at the first one that does not fit, so a more
confident item never goes ahead of a less confident one; the rest end `over_budget`, with a
reason naming the cap that stopped it. Pure logic here; the job store applies the plan.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from agents.errors import InvalidInputError

from orchestrator.core.config import EncoderTier, LitellmTier, LlamaCppTier, Settings

_EPS = 1e-12


@dataclass(frozen=True)
class EscalationPrice:
    """What one escalation to `tier` is estimated to cost. Unknown when `input_per_1k` is None."""

    tier: str | None
    input_per_1k: float | None
    output_per_1k: float | None
    output_tokens: int | None  # None: as many as tier 1 scored (a scoring tier generates nothing)
    source: str  # where the price came from, for notes and reasons

    @property
    def known(self) -> bool:
        return self.input_per_1k is not None and self.output_per_1k is not None

    def estimate(self, tokens_in: int | None, tokens_out: int | None) -> float | None:
        if not self.known:
            return None
        out = self.output_tokens if self.output_tokens is not None else (tokens_out or 0)
        return ((tokens_in or 0) * self.input_per_1k + out * self.output_per_1k) / 1000


FREE = EscalationPrice(tier=None, input_per_1k=0.0, output_per_1k=0.0, output_tokens=0, source="no tier to escalate to")


def escalation_price(settings: Settings) -> EscalationPrice:
    """The price of the tier phase 2 starts on (the ladder's second tier)."""
    return price_of(settings.tiers[1]) if len(settings.tiers) > 1 else FREE


def job_caps(settings: Settings, share: float | None, max_spend: float | None) -> tuple[float, float | None]:
    """A new job's caps: the ones given, else the settings' defaults. InvalidInputError when one is
    out of range, or when a spend cap cannot be priced (the tier escalations go to has no price)."""
    share = settings.batch_max_escalation_share if share is None else share
    if not 0.0 <= share <= 1.0:
        raise InvalidInputError(f"max escalation share must be between 0 and 1; got {share}")
    max_spend = settings.batch_max_spend if max_spend is None else max_spend
    if max_spend is not None:
        if not max_spend >= 0.0:
            raise InvalidInputError(f"max spend must be 0 or more; got {max_spend}")
        price = escalation_price(settings)
        if not price.known:
            raise InvalidInputError(f"a spend cap needs the price of tier {price.tier}, where escalations go: "
                                    f"{price.source}; set its prices.input_per_1k and prices.output_per_1k")
    return share, max_spend


def price_of(tier: LlamaCppTier | LitellmTier | EncoderTier) -> EscalationPrice:
    if isinstance(tier, EncoderTier):
        return EscalationPrice(tier.name, 0.0, 0.0, 0, "encoder tier: no per-token price")
    if isinstance(tier, LlamaCppTier):
        p = tier.prices
        return EscalationPrice(tier.name, p.input_per_1k or 0.0, p.output_per_1k or 0.0, None,
                               "configured prices" if (p.input_per_1k or p.output_per_1k) else "local tier, price 0")
    p = tier.prices
    if p.input_per_1k is not None and p.output_per_1k is not None:
        return EscalationPrice(tier.name, p.input_per_1k, p.output_per_1k, tier.max_tokens, "configured prices")
    mapped = litellm_per_1k(tier.model)
    if mapped is not None:
        return EscalationPrice(tier.name, *mapped, tier.max_tokens, f"litellm's price map for {tier.model}")
    if tier.locality == "local":
        return EscalationPrice(tier.name, 0.0, 0.0, tier.max_tokens, "local tier without prices, price 0")
    return EscalationPrice(tier.name, None, None, tier.max_tokens,
                           f"no price for {tier.model}: not in litellm's price map and no prices configured")


def litellm_per_1k(model: str) -> tuple[float, float] | None:
    """litellm's (input, output) price per 1,000 tokens for `model`, or None if it has none."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network: the bundled map
    import litellm

    try:
        prompt, completion = litellm.cost_per_token(model=model, prompt_tokens=1000, completion_tokens=1000)
    except Exception:  # litellm raises plain Exception subclasses for models missing from its map
        return None
    return float(prompt), float(completion)


@dataclass(frozen=True)
class Candidate:
    """A paused item waiting for admission, in admission order (least confident first)."""

    id: int
    run_id: str | None
    reason: str | None
    tokens_in: int | None  # tier 1's prompt tokens for the item
    tokens_out: int | None


@dataclass
class Admission:
    admitted: list[Candidate] = field(default_factory=list)
    over: list[Candidate] = field(default_factory=list)
    estimates: dict[int, float | None] = field(default_factory=dict)  # item id -> estimated escalation cost
    stopped_by: str | None = None  # "share" | "spend" | None (everything fitted)
    estimated: float | None = 0.0  # of the admitted items; None if any could not be priced

    def over_reason(self, c: Candidate, share_budget: str, max_spend: float | None, spent: float,
                    price: EscalationPrice) -> str:
        """Why `c` ended over budget (its item's reason, before tier 1's)."""
        if self.stopped_by != "spend":
            return f"needs escalation, over budget: {share_budget}"
        est = self.estimates.get(c.id)
        admitted = spent + (self.estimated or 0.0)
        if est is None:
            return (f"needs escalation, over the spend cap: the job may spend {max_spend:g} on escalation and the "
                    f"price of tier {price.tier} is unknown ({price.source})")
        return (f"needs escalation, over the spend cap: the job may spend {max_spend:g} on escalation; "
                f"{admitted:.6g} is estimated for the items admitted before it, and this item would add {est:.6g} "
                f"(tier {price.tier}, {price.source})")


def plan_admission(candidates: list[Candidate], room: int, price: EscalationPrice,
                   max_spend: float | None = None, spent: float = 0.0) -> Admission:
    """Admit `candidates` in order while at most `room` are admitted and, with a spend cap, the
    estimates of the admitted ones plus `spent` (earlier admissions) stay within `max_spend`."""
    plan = Admission()
    total: float | None = 0.0
    for n, c in enumerate(candidates):
        est = price.estimate(c.tokens_in, c.tokens_out)
        plan.estimates[c.id] = est
        if len(plan.admitted) >= room:
            plan.stopped_by = "share"
        elif max_spend is not None and (est is None or spent + (total or 0.0) + est > max_spend + _EPS):
            plan.stopped_by = "spend"
        if plan.stopped_by:
            plan.over = candidates[n:]
            for rest in plan.over[1:]:
                plan.estimates[rest.id] = price.estimate(rest.tokens_in, rest.tokens_out)
            break
        plan.admitted.append(c)
        total = None if total is None or est is None else total + est
    plan.estimated = total
    return plan


def spend_note(plan: Admission, price: EscalationPrice, max_spend: float | None, spent: float) -> str:
    """The spend part of a job's budget note."""
    estimated = "unknown" if plan.estimated is None else f"{plan.estimated:.6g}"
    cap = "no spend cap" if max_spend is None else f"max spend {max_spend:g}"
    earlier = f", {spent:.6g} before" if spent else ""
    where = f"tier {price.tier}, {price.source}" if price.tier else price.source
    return f"estimated escalation spend {estimated} ({where}); {cap}{earlier}"

