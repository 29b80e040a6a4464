"""Marshmallow's own messages are recognised and translated (i18n/validation.py)."""

from __future__ import annotations

import inspect
import string
from typing import Any

import pytest
from marshmallow import Schema, ValidationError, fields, validate

from i18n import validation


def _error(check: validate.Validator, value: Any) -> str:
    try:
        check(value)
    except ValidationError as error:
        return str(error.messages[0])
    raise AssertionError(f"{check!r} accepted {value!r}")


def _marshmallow_messages() -> list[tuple[str, str]]:
    """Every default message the installed marshmallow can produce, formatted with samples."""
    found: list[tuple[str, str]] = []
    for name, cls in vars(fields).items():
        if not (inspect.isclass(cls) and issubclass(cls, fields.Field)):
            continue
        for key, template in getattr(cls, "default_error_messages", {}).items():
            names = {f for _, f, _, _ in string.Formatter().parse(template) if f}
            if "awareness" in names and not hasattr(cls, "AWARENESS"):
                continue  # only the naive and aware datetime fields raise it
            if "obj_type" in names and not hasattr(cls, "OBJ_TYPE"):
                continue  # the abstract base of the temporal fields
            values: dict[str, Any] = {n: "SAMPLE" for n in names}
            if "obj_type" in names:
                values["obj_type"] = cls.OBJ_TYPE
            if "awareness" in names:
                values["awareness"] = cls.AWARENESS
            found.append((f"fields.{name}.{key}", template.format(**values)))
    for key, template in Schema._default_error_messages.items():
        found.append((f"Schema.{key}", template))
    for min_inclusive in (True, False):
        for max_inclusive in (True, False):
            for low, high in ((1, 5), (1, None), (None, 5)):
                check = validate.Range(low, high, min_inclusive=min_inclusive,
                                       max_inclusive=max_inclusive)
                found.append(("Range", _error(check, 0 if low is not None else 10)))
    for check, value in (
        (validate.Length(1, 5), ""), (validate.Length(1), ""), (validate.Length(max=1), "ab"),
        (validate.Length(equal=2), "a"), (validate.OneOf(["a", "b"]), "c"),
        (validate.Equal(3), 4), (validate.Regexp("a"), "b"), (validate.NoneOf([1]), 1),
        (validate.Predicate("isdigit"), "x"), (validate.ContainsOnly(["a"]), ["b"]),
        (validate.ContainsNoneOf(["a"]), ["a"]), (validate.URL(), "nope"),
        (validate.Email(), "nope"),
    ):
        found.append((type(check).__name__, _error(check, value)))
    return found


@pytest.mark.parametrize(("where", "message"), _marshmallow_messages())
def test_every_marshmallow_message_has_a_template(where: str, message: str) -> None:
    assert validation.match(message) is not None, f"{where}: {message!r} has no template"


@pytest.mark.parametrize(("message", "template", "values"), [
    ("Must be greater than or equal to 1.", "Must be greater than or equal to %(min)s.",
     {"min": "1"}),
    ("Must be greater than 1 and less than 5.",
     "Must be greater than %(min)s and less than %(max)s.", {"min": "1", "max": "5"}),
    ("Length must be between 1 and 200.", "Length must be between %(min)s and %(max)s.",
     {"min": "1", "max": "200"}),
    ("Length must be 3.", "Length must be %(equal)s.", {"equal": "3"}),
    ("Must be one of: admin, manager.", "Must be one of: %(choices)s.",
     {"choices": "admin, manager"}),
    ("'1 day' cannot be formatted as a timedelta.",
     "%(input)s cannot be formatted as a timedelta.", {"input": "'1 day'"}),
])
def test_match_finds_the_most_specific_template(message: str, template: str,
                                                 values: dict[str, str]) -> None:
    assert validation.match(message) == (template, values)


FRENCH = {
    "Missing data for required field.": "Donnée manquante pour un champ obligatoire.",
    "Length must be between %(min)s and %(max)s.":
        "La longueur doit être comprise entre %(min)s et %(max)s.",
    "Must be one of: %(choices)s.": "%(max)s",  # broken: an unknown placeholder
}


def test_translate_messages_walks_nested_messages_and_keeps_others() -> None:
    messages = {
        "name": ["Missing data for required field.", "Length must be between 1 and 200."],
        "items": {0: {"label": ["Missing data for required field."]}},
        "role": ["Must be one of: admin, vendor."],
        "mine": ["Déjà traduit."],
    }
    translated = validation.translate_messages(messages, lambda s: FRENCH.get(s, s))
    assert translated == {
        "name": ["Donnée manquante pour un champ obligatoire.",
                 "La longueur doit être comprise entre 1 et 200."],
        "items": {0: {"label": ["Donnée manquante pour un champ obligatoire."]}},
        "role": ["Must be one of: admin, vendor."],  # a broken translation falls back
        "mine": ["Déjà traduit."],
    }
