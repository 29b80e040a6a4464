"""Marshmallow's and webargs' own validation messages, in the caller's language.

Marshmallow formats its messages in English (``"Length must be between 1 and 200."``)
before our error handler sees them. This module lists those messages as catalog entries
(``%(name)s`` placeholders, like the rest of the catalog), recognises an already
formatted message by matching it against each template, and formats the translated
template with the values it found. Messages that match no template (our own, already
translated ones) pass through unchanged.

The list is written out, not computed, so that ``pybabel extract`` sees it; a unit test
compares it with the messages the installed marshmallow can produce.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

Gettext = Callable[[str], str]


def N_(message: str) -> str:  # noqa: N802 - the conventional marker name
    """Mark ``message`` for extraction without translating it now."""
    return message


#: Every default message of marshmallow's fields, schemas and validators (marshmallow 4),
#: and webargs' own, with ``{name}`` placeholders written as ``%(name)s`` and the
#: composed ones (``Range``'s operators, temporal fields' ``obj_type``) spelt out.
TEMPLATES: tuple[str, ...] = (
    # marshmallow.fields.Field
    N_("Missing data for required field."),
    N_("Field may not be null."),
    N_("Invalid value."),
    # Nested, Pluck, List, Tuple, Dict, Mapping
    N_("Invalid type."),
    N_("Not a valid list."),
    N_("Not a valid tuple."),
    N_("Not a valid mapping type."),
    # String, UUID
    N_("Not a valid string."),
    N_("Not a valid utf-8 string."),
    N_("Not a valid UUID."),
    # Number, Integer, Float, Decimal, Boolean
    N_("Not a valid number."),
    N_("Number too large."),
    N_("Not a valid integer."),
    N_("Special numeric values (nan or infinity) are not permitted."),
    N_("Not a valid boolean."),
    # DateTime, NaiveDateTime, AwareDateTime, Time, Date, TimeDelta
    N_("Not a valid datetime."),
    N_("Not a valid time."),
    N_("Not a valid date."),
    N_("Not a valid naive datetime."),
    N_("Not a valid aware datetime."),
    N_('"%(input)s" cannot be formatted as a datetime.'),
    N_('"%(input)s" cannot be formatted as a time.'),
    N_('"%(input)s" cannot be formatted as a date.'),
    N_("Not a valid period of time."),
    N_("%(input)s cannot be formatted as a timedelta."),
    # Url, Email, IP, IPv4, IPv6, IPInterface, IPv4Interface, IPv6Interface, Enum
    N_("Not a valid URL."),
    N_("Not a valid email address."),
    N_("Not a valid IP address."),
    N_("Not a valid IPv4 address."),
    N_("Not a valid IPv6 address."),
    N_("Not a valid IP interface."),
    N_("Not a valid IPv4 interface."),
    N_("Not a valid IPv6 interface."),
    N_("Must be one of: %(choices)s."),
    # marshmallow.Schema
    N_("Invalid input type."),
    N_("Unknown field."),
    # marshmallow.validate.Range
    N_("Must be greater than or equal to %(min)s and less than or equal to %(max)s."),
    N_("Must be greater than or equal to %(min)s and less than %(max)s."),
    N_("Must be greater than %(min)s and less than or equal to %(max)s."),
    N_("Must be greater than %(min)s and less than %(max)s."),
    N_("Must be greater than or equal to %(min)s."),
    N_("Must be greater than %(min)s."),
    N_("Must be less than or equal to %(max)s."),
    N_("Must be less than %(max)s."),
    # marshmallow.validate.Length
    N_("Length must be between %(min)s and %(max)s."),
    N_("Length must be %(equal)s."),
    N_("Longer than maximum length %(max)s."),
    N_("Shorter than minimum length %(min)s."),
    # marshmallow.validate: Equal, Regexp, NoneOf, Predicate, ContainsOnly, ContainsNoneOf
    N_("Must be equal to %(other)s."),
    N_("String does not match expected pattern."),
    N_("Invalid input."),
    N_("One or more of the choices you made was not in: %(choices)s."),
    N_("One or more of the choices you made was in: %(values)s."),
    # webargs
    N_("Invalid JSON body."),
)

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _pattern(template: str) -> re.Pattern[str]:
    parts, last = [], 0
    for found in _PLACEHOLDER.finditer(template):
        parts.append(re.escape(template[last:found.start()]))
        parts.append(f"(?P<{found.group(1)}>.+?)")
        last = found.end()
    parts.append(re.escape(template[last:]))
    return re.compile("".join(parts), re.DOTALL)


@lru_cache(maxsize=1)
def _patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    # Most literal text first, so "Must be greater than or equal to 1." is not read as
    # "Must be greater than %(min)s." with min "or equal to 1".
    def literal_length(template: str) -> int:
        return len(_PLACEHOLDER.sub("", template))

    ordered = sorted(TEMPLATES, key=literal_length, reverse=True)
    return tuple((template, _pattern(template)) for template in ordered)


def match(message: str) -> tuple[str, dict[str, str]] | None:
    """Return the template ``message`` was formatted from and its values, or None."""
    for template, pattern in _patterns():
        found = pattern.fullmatch(message)
        if found:
            return template, found.groupdict()
    return None


def translate_message(message: str, gettext: Gettext) -> str:
    """Translate one formatted marshmallow message; return any other message unchanged."""
    found = match(message)
    if found is None:
        return message
    template, values = found
    translated = gettext(template)
    if not values:
        return translated
    try:
        return translated % values
    except (KeyError, ValueError, TypeError):  # a broken translation must not cost the error
        return template % values


def translate_messages(messages: Any, gettext: Gettext) -> Any:
    """Translate every message in a nested marshmallow ``messages`` structure.

    Dicts keep their keys (field names, list indexes), lists and strings are translated.
    """
    if isinstance(messages, str):
        return translate_message(messages, gettext)
    if isinstance(messages, dict):
        return {key: translate_messages(value, gettext) for key, value in messages.items()}
    if isinstance(messages, (list, tuple)):
        return [translate_messages(value, gettext) for value in messages]
    return messages
