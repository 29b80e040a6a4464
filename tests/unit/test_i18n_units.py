"""Locales, fallback chains, Markdown segments, PO files and CLDR formatting, without a server."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from i18n import po
from i18n.fallback import fallback_chain, text_direction
from i18n.formatting import (
    format_deadline,
    format_money,
    format_number,
    format_ratio,
    plural_categories,
    plural_category,
)
from i18n.locales import InvalidLocale, is_country, is_currency, normalise_locale
from i18n.segments import join_markdown, split_markdown


@pytest.mark.parametrize(("raw", "canonical"), [
    ("pt_BR", "pt_BR"), ("pt-br", "pt_BR"), ("zh_Hant_TW", "zh_Hant_TW"), ("sr_Latn", "sr_Latn"),
    ("EN", "en"),
])
def test_locales_are_normalised(raw, canonical):
    assert normalise_locale(raw) == canonical


@pytest.mark.parametrize("junk", ["xx_YY", "en_US;drop", "", "e", "en__US", "../etc", "en US"])
def test_junk_locales_are_refused(junk):
    with pytest.raises(InvalidLocale):
        normalise_locale(junk)


def test_countries_and_currencies_come_from_cldr():
    assert is_country("BR") and not is_country("XX") and not is_country("EU1")
    assert is_currency("KES") and not is_currency("FRF"), "francs are history"


@pytest.mark.parametrize(("requested", "chain"), [
    ("pt_BR", ["pt_BR", "pt", "en"]),
    ("zh_Hant_TW", ["zh_Hant_TW", "zh_Hant", "en"]),
    ("sr_Latn", ["sr_Latn", "en"]),
    ("es_MX", ["es_MX", "es_419", "es", "en"]),
    ("en_GB", ["en_GB", "en_001", "en"]),
])
def test_fallback_chains_keep_the_script(requested, chain):
    assert fallback_chain(requested, "en") == chain


@pytest.mark.parametrize(("locale", "direction"), [
    ("ar", "rtl"), ("he", "rtl"), ("fa", "rtl"), ("ur", "rtl"), ("en", "ltr"), ("hi", "ltr"),
])
def test_text_direction(locale, direction):
    assert text_direction(locale) == direction


MARKDOWN = """# Title

First paragraph
on two lines.

- item one
  continued
- item two

> quoted

```
code
```
"""


def test_segments_round_trip_and_keep_code_aside():
    blocks = split_markdown(MARKDOWN)
    assert [(b.kind, b.text) for b in blocks] == [
        ("heading", "Title"), ("paragraph", "First paragraph\non two lines."),
        ("item", "item one\ncontinued"), ("item", "item two"), ("quote", "quoted"),
        ("code", "```\ncode\n```"),
    ]
    assert all(b.section == "Title" for b in blocks)
    assert split_markdown(join_markdown(blocks, [b.text for b in blocks])) == blocks


def test_po_round_trip_keeps_context_translation_and_fuzzy_flag():
    data = po.write_catalog(project_id=7, version=3, locale="ja", title="T", entries=[
        po.ExportEntry("p-1", "Hello\nworld", "Intro", "paragraph", "こんにちは", fuzzy=True,
                       previous_source="Hello"),
        po.ExportEntry("h-1", "Intro", "Intro", "heading"),
    ])
    catalog = po.read_catalog(data)
    assert (catalog.project, catalog.version, catalog.locale) == ("guideline-7", "3", "ja")
    assert [(e.context, e.source, e.translation, e.fuzzy) for e in catalog.entries] == [
        ("p-1", "Hello\nworld", "こんにちは", True), ("h-1", "Intro", "", False)]


@pytest.mark.parametrize("data", [b"", b"\xff", b'msgid "a"\nmsgstr "b"\nmsgid x\n'])
def test_malformed_po_raises(data):
    with pytest.raises(po.MalformedCatalog):
        po.read_catalog(data)


MOMENT = datetime(2026, 11, 23, 16, 30, tzinfo=timezone.utc)


def test_deadlines_are_shown_in_the_workforce_zone_and_locale():
    assert format_deadline(MOMENT, "Europe/Berlin", "de").startswith("23.11.2026, 17:30:00")
    assert format_deadline(MOMENT, "Asia/Tokyo", "ja").startswith("2026/11/24 1:30:00")
    with pytest.raises(ValueError):
        format_deadline(datetime(2026, 1, 1), "Europe/Berlin", "de")


@pytest.mark.parametrize(("amount", "currency", "locale", "text"), [
    (Decimal("1234.5"), "EUR", "de", "1.234,50\xa0€"),
    (Decimal("1234.5"), "EUR", "en", "€1,234.50"),
    (Decimal("123456.7"), "INR", "hi", "₹1,23,456.70"),
    (Decimal("0.06"), "USD", "fr", "0,06\xa0$US"),
    (Decimal("1500"), "JPY", "ja", "￥1,500"),
])
def test_money_uses_the_locale_and_currency_rules(amount, currency, locale, text):
    assert format_money(amount, currency, locale) == text


def test_numbers_percentages_and_plurals():
    assert format_number(1234567.5, "de") == "1.234.567,5"
    assert format_number(1234567.5, "hi") == "12,34,567.5"
    assert format_ratio(0.875, "fr") == "87,5\xa0%"
    assert format_ratio(0.875, "en") == "87.5%"
    assert plural_categories("ar") == ["zero", "one", "two", "few", "many", "other"]
    assert plural_categories("ja") == ["other"]
    assert plural_category(3, "ar") == "few" and plural_category(1, "en") == "one"
