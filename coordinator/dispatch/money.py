"""Reference exchange rates, used only to compare prices in different currencies when routing."""

from __future__ import annotations

from decimal import Decimal

#: US dollars per unit, rounded, as of 2026-11-01. They rank vendors; they never price a
#: payment. Override with COORDINATOR_EXCHANGE_RATES, e.g. ``EUR=1.16,INR=0.0113``.
REFERENCE_RATES_USD: dict[str, Decimal] = {
    code: Decimal(rate) for code, rate in {
        "USD": "1", "EUR": "1.16", "GBP": "1.32", "CHF": "1.25", "CAD": "0.72", "AUD": "0.66",
        "NZD": "0.58", "JPY": "0.0066", "CNY": "0.14", "HKD": "0.129", "SGD": "0.77",
        "KRW": "0.00070", "INR": "0.0113", "PKR": "0.0036", "BDT": "0.0082", "LKR": "0.0033",
        "NPR": "0.0071", "IDR": "0.000060", "PHP": "0.017", "VND": "0.000038", "THB": "0.031",
        "MYR": "0.24", "BRL": "0.18", "MXN": "0.054", "ARS": "0.00070", "COP": "0.00026",
        "CLP": "0.00106", "PEN": "0.29", "ZAR": "0.057", "NGN": "0.00068", "KES": "0.0077",
        "TZS": "0.00041", "UGX": "0.00029", "GHS": "0.091", "EGP": "0.021", "MAD": "0.11",
        "AED": "0.2723", "SAR": "0.2667", "JOD": "1.41", "TRY": "0.024", "ILS": "0.30",
        "PLN": "0.27", "CZK": "0.048", "HUF": "0.0030", "RON": "0.23", "SEK": "0.105",
        "NOK": "0.099", "DKK": "0.155", "UAH": "0.024", "RUB": "0.0124",
    }.items()
}


class MissingRate(LookupError):
    """Raised when a workforce is paid in a currency with no reference rate."""


def parse_rates(text: str) -> dict[str, Decimal]:
    """Parse ``EUR=1.16,INR=0.0113`` into rates; raise ValueError naming a bad pair."""
    rates: dict[str, Decimal] = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        code, _, value = pair.partition("=")
        try:
            rate = Decimal(value.strip())
        except ArithmeticError:
            raise ValueError(f"{pair!r} is not CODE=rate") from None
        if len(code.strip()) != 3 or rate <= 0:
            raise ValueError(f"{pair!r} is not CODE=rate with a positive rate")
        rates[code.strip().upper()] = rate
    return rates


def to_usd(amount: Decimal, currency: str, rates: dict[str, Decimal]) -> float:
    """Return ``amount`` in US dollars at the reference rate."""
    try:
        return float(amount * rates[currency])
    except KeyError:
        raise MissingRate(currency) from None
