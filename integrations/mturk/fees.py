"""What MTurk charges: reward validation and the commission on rewards and bonuses."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation

#: The most assignments one HIT gets: from 10 on, MTurk's commission doubles, and a HIT
#: created below 10 can never be raised to 10 or more.
MAX_ASSIGNMENTS_PER_HIT = 9
#: Commission on rewards of HITs with fewer than 10 assignments, and on bonuses.
BASE_FEE_RATE = Decimal("0.20")
#: The extra commission on HITs with 10 or more assignments.
LARGE_HIT_EXTRA_RATE = Decimal("0.20")
#: MTurk charges at least this much commission per assignment.
MIN_FEE_PER_ASSIGNMENT = Decimal("0.01")
CENT = Decimal("0.01")
#: Rewards and bonuses are US dollars with cents; more than this is surely a typo.
MAX_AMOUNT = Decimal("1000.00")


class InvalidAmount(ValueError):
    """Raised for a reward or bonus MTurk would refuse or misread (boto3 sends "abc" as is)."""


def parse_amount(value: object, *, minimum: Decimal = CENT) -> Decimal:
    """Return ``value`` as dollars with exactly two decimals, or raise InvalidAmount."""
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise InvalidAmount(f"{value!r} is not an amount in dollars such as 0.05") from None
    if not amount.is_finite() or amount != amount.quantize(CENT):
        raise InvalidAmount(f"{value!r} must be dollars with at most two decimals")
    if not minimum <= amount <= MAX_AMOUNT:
        raise InvalidAmount(f"{value!r} must be between {minimum} and {MAX_AMOUNT}")
    return amount.quantize(CENT)


def wire_amount(amount: Decimal) -> str:
    """Return an amount as the string MTurk expects: ``"0.05"``."""
    return str(amount.quantize(CENT))


def fee_rate(assignments: int) -> Decimal:
    """Return the commission rate of a HIT with ``assignments`` assignments."""
    return BASE_FEE_RATE + (LARGE_HIT_EXTRA_RATE if assignments >= 10 else Decimal(0))


def hit_cost(reward: Decimal, assignments: int) -> tuple[Decimal, Decimal]:
    """Return (rewards, fees) of one HIT: commission per assignment, at least a cent, rounded up."""
    if assignments < 1:
        raise ValueError("a HIT needs at least one assignment")
    per_assignment = max((reward * fee_rate(assignments)).quantize(CENT, ROUND_CEILING),
                         MIN_FEE_PER_ASSIGNMENT)
    return reward * assignments, per_assignment * assignments


def bonus_cost(amount: Decimal) -> Decimal:
    """Return what a bonus costs with its commission."""
    return amount + (amount * BASE_FEE_RATE).quantize(CENT, ROUND_HALF_UP)


def split_assignments(count: int) -> list[int]:
    """Return HIT sizes for ``count`` assignments, none above MAX_ASSIGNMENTS_PER_HIT."""
    sizes = [MAX_ASSIGNMENTS_PER_HIT] * (count // MAX_ASSIGNMENTS_PER_HIT)
    if count % MAX_ASSIGNMENTS_PER_HIT:
        sizes.append(count % MAX_ASSIGNMENTS_PER_HIT)
    return sizes
