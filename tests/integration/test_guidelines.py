"""Guidelines: versions, PO round trips, fuzzy carry-over, fallback and safe rendering."""

from __future__ import annotations

import io
from html.parser import HTMLParser

import pytest
from babel.messages.pofile import read_po, write_po

GUIDE = """# Sentiment

Label each review by the feeling it **expresses**.

## Classes

- positive: the writer is pleased
- negative: the writer is unhappy

```
code is never translated
```
"""

PT = {
    "Sentiment": "Sentimento",
    "Label each review by the feeling it **expresses**.": "Rotule cada avaliação pelo sentimento que ela **expressa**.",
    "Classes": "Classes",
    "positive: the writer is pleased": "positive: quem escreve está satisfeito",
    "negative: the writer is unhappy": "negative: quem escreve está insatisfeito",
}
AR = {
    "Sentiment": "المشاعر",
    "Label each review by the feeling it **expresses**.": "صنّف كل مراجعة حسب الشعور الذي **تعبّر** عنه.",
    "Classes": "الفئات",
    "positive: the writer is pleased": "positive: الكاتب راضٍ",
    "negative: the writer is unhappy": "negative: الكاتب غير راضٍ",
}


def base(project_id):
    return f"/api/v1/projects/{project_id}/guidelines"


def publish_version(world, project_id, text=GUIDE, title="Sentiment guideline"):
    created = world.post("manager", base(project_id), json={"title": title, "source_markdown": text})
    assert created.status_code == 201, created.get_json()
    number = created.get_json()["number"]
    published = world.post("manager", f"{base(project_id)}/{number}/publish")
    assert published.status_code == 200, published.get_json()
    return number


def export(world, project_id, number, locale):
    response = world.get("manager", f"{base(project_id)}/{number}/translations/{locale}.po")
    assert response.status_code == 200, response.get_json()
    return response.data


def fill(po_bytes, translations, *, only=None, locale=None):
    """Return the PO file with msgstr filled from ``translations`` (all, or the first ``only``)."""
    catalog = read_po(io.BytesIO(po_bytes))
    if locale:
        catalog.locale = locale
    filled = 0
    for message in catalog:
        if message.id and message.id in translations and (only is None or filled < only):
            message.string = translations[message.id]
            message.flags.discard("fuzzy")
            filled += 1
    out = io.BytesIO()
    write_po(out, catalog)
    return out.getvalue()


def put_po(world, project_id, number, locale, data, who="manager"):
    return world.client.put(
        f"{base(project_id)}/{number}/translations/{locale}", data=data,
        headers={**world.headers(who), "Content-Type": "text/x-gettext-translation"})


def status_of(world, project_id, number, who="auditor"):
    rows = world.get(who, f"{base(project_id)}/{number}/translations").get_json()
    return {row["locale"]: row for row in rows}


def rendered(world, project_id, number, locale, who="auditor"):
    response = world.get(who, f"{base(project_id)}/{number}/rendered?locale={locale}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_draft_edit_publish_then_frozen(world, project_id):
    created = world.post("manager", base(project_id), json={"title": "v1", "source_markdown": GUIDE})
    assert created.get_json()["status"] == "draft" and created.get_json()["number"] == 1
    second = world.post("manager", base(project_id), json={"title": "v2", "source_markdown": GUIDE})
    assert second.status_code == 409
    edited = world.patch("manager", f"{base(project_id)}/1", json={"title": "First"})
    assert edited.get_json()["title"] == "First"
    assert world.post("manager", f"{base(project_id)}/1/publish").status_code == 200
    detail = world.get("auditor", f"{base(project_id)}/1").get_json()
    assert detail["status"] == "published" and len(detail["content_hash"]) == 64
    assert [s["kind"] for s in detail["segments"]] == [
        "heading", "paragraph", "heading", "item", "item", "code"]
    assert world.patch("manager", f"{base(project_id)}/1", json={"title": "x"}).status_code == 409
    assert world.delete("manager", f"{base(project_id)}/1").status_code == 409
    assert world.post("manager", f"{base(project_id)}/1/publish").status_code == 409


def test_a_guideline_needs_text(world, project_id):
    response = world.post("manager", base(project_id), json={"title": "t", "source_markdown": "```\nx\n```"})
    assert response.status_code == 422
    assert "source_markdown" in response.get_json()["errors"]


def test_export_has_one_message_per_segment_with_context_and_section(world, project_id):
    number = publish_version(world, project_id)
    catalog = read_po(io.BytesIO(export(world, project_id, number, "pt_BR")))
    messages = [m for m in catalog if m.id]
    assert [m.id for m in messages] == list(PT)
    assert str(catalog.locale) == "pt_BR"
    assert len({m.context for m in messages}) == len(messages)
    item = next(m for m in messages if m.id.startswith("positive"))
    assert "Section: Classes" in item.auto_comments


def test_full_round_trip_serves_the_translation(world, project_id):
    number = publish_version(world, project_id)
    response = put_po(world, project_id, number, "pt_BR", fill(export(world, project_id, number, "pt_BR"), PT))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["percent_complete"] == 100.0
    seen = rendered(world, project_id, number, "pt-BR")
    assert (seen["served_locale"], seen["fallback"]) == ("pt_BR", False)
    assert "<strong>expressa</strong>" in seen["html"]
    assert "code is never translated" in seen["html"]
    assert seen["html"].startswith('<article lang="pt-BR" dir="ltr">')


def test_fallback_chain_goes_through_the_parent_to_the_source(world, project_id):
    number = publish_version(world, project_id)
    put_po(world, project_id, number, "pt", fill(export(world, project_id, number, "pt"), PT))
    seen = rendered(world, project_id, number, "pt_BR")
    assert seen["chain"] == ["pt_BR", "pt", "en"]
    assert (seen["served_locale"], seen["fallback"]) == ("pt", True)
    other = rendered(world, project_id, number, "sw")
    assert (other["served_locale"], other["fallback"]) == ("en", True)


def test_half_translated_catalog_is_accepted_and_status_shows_what_is_missing(world, project_id):
    number = publish_version(world, project_id)
    data = fill(export(world, project_id, number, "de"), PT, only=2, locale="de")
    response = put_po(world, project_id, number, "de", data)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["translated"], body["fuzzy"], body["missing"], body["total"]) == (2, 0, 3, 5)
    assert body["percent_complete"] == 40.0
    seen = rendered(world, project_id, number, "de")
    assert seen["served_locale"] == "en" and seen["fallback"] is True


def test_new_version_keeps_unchanged_and_fuzzes_changed_segments(world, project_id):
    number = publish_version(world, project_id)
    put_po(world, project_id, number, "pt_BR", fill(export(world, project_id, number, "pt_BR"), PT))
    changed = GUIDE.replace("the writer is unhappy", "the writer is clearly unhappy")
    changed = changed.replace("## Classes", "## Classes\n\nA brand new paragraph about sarcasm.")
    second = publish_version(world, project_id, changed)
    status = status_of(world, project_id, second)["pt_BR"]
    assert (status["translated"], status["fuzzy"], status["missing"]) == (4, 1, 1)
    exported = export(world, project_id, second, "pt_BR")
    catalog = read_po(io.BytesIO(exported))
    fuzzy = [m for m in catalog if m.id and m.fuzzy]
    assert [m.id for m in fuzzy] == ["negative: the writer is clearly unhappy"]
    assert b'#| msgid "negative: the writer is unhappy"' in exported, "translators see what changed"
    assert fuzzy[0].string == PT["negative: the writer is unhappy"]
    old_contexts = {m.id: m.context for m in read_po(io.BytesIO(export(world, project_id, number, "pt_BR")))}
    assert {m.context for m in catalog if m.id == "Classes"} == {old_contexts["Classes"]}
    assert rendered(world, project_id, second, "pt_BR")["served_locale"] == "en", \
        "a fuzzy segment is not shown as translated"
    assert rendered(world, project_id, number, "pt_BR")["served_locale"] == "pt_BR", \
        "the old version keeps its complete translation"


def test_arabic_is_served_right_to_left(world, project_id):
    number = publish_version(world, project_id)
    put_po(world, project_id, number, "ar", fill(export(world, project_id, number, "ar"), AR))
    seen = rendered(world, project_id, number, "ar_EG")
    assert seen["served_locale"] == "ar" and seen["direction"] == "rtl"
    assert seen["html"].startswith('<article lang="ar" dir="rtl">')
    assert status_of(world, project_id, number)["ar"]["direction"] == "rtl"


def test_script_injected_through_a_translation_is_neutralised(world, project_id):
    number = publish_version(world, project_id)
    evil = dict(PT)
    evil["Sentiment"] = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    evil["Classes"] = "[click](javascript:alert(3)) <a href=\"javascript:alert(4)\">x</a>"
    put_po(world, project_id, number, "fr", fill(export(world, project_id, number, "fr"), evil, locale="fr"))
    html = rendered(world, project_id, number, "fr")["html"]
    tags = _tags(html)
    assert {name for name, _ in tags} <= {"article", "h1", "h2", "p", "ul", "li", "strong", "pre", "code"}
    assert not [attrs for _, attrs in tags if any(k.startswith("on") or "javascript" in (v or "")
                                                   for k, v in attrs)]
    assert "&lt;script&gt;" in html, "the text stays visible, escaped"


def _tags(html):
    """Return the (tag, attributes) of every element in ``html``."""
    found = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Collector().feed(html)
    return found


def _good_import(world, project_id, number):
    response = put_po(world, project_id, number, "pt_BR", fill(export(world, project_id, number, "pt_BR"), PT))
    assert response.status_code == 200
    return status_of(world, project_id, number)["pt_BR"]


def test_po_for_another_version_is_refused_and_changes_nothing(world, project_id):
    first = publish_version(world, project_id)
    before = _good_import(world, project_id, first)
    second = publish_version(world, project_id, GUIDE + "\nOne more line.\n")
    response = put_po(world, project_id, first, "pt_BR", fill(export(world, project_id, second, "pt_BR"), PT))
    assert response.status_code == 422
    assert "version" in response.get_json()["detail"]
    assert status_of(world, project_id, first)["pt_BR"] == before


def test_po_for_another_locale_is_refused(world, project_id):
    number = publish_version(world, project_id)
    before = _good_import(world, project_id, number)
    response = put_po(world, project_id, number, "pt_BR", fill(export(world, project_id, number, "fr"), PT))
    assert response.status_code == 422
    assert "Language" in response.get_json()["errors"]
    assert status_of(world, project_id, number)["pt_BR"] == before


def test_msgid_not_in_the_source_is_named_by_line(world, project_id):
    number = publish_version(world, project_id)
    before = _good_import(world, project_id, number)
    data = fill(export(world, project_id, number, "pt_BR"), PT).replace(
        b'msgid "Classes"', b'msgid "Categories"')
    response = put_po(world, project_id, number, "pt_BR", data)
    assert response.status_code == 422
    (where, fields), = response.get_json()["errors"].items()
    assert where.startswith("line ") and "msgid" in fields
    assert status_of(world, project_id, number)["pt_BR"] == before


@pytest.mark.parametrize("data", [
    b'msgid "x"\nmsgstr "y"\nmsgid garbage\n',
    b"\xff\xfe not utf-8",
    b"",
    b'msgid ""\nmsgstr ""\n"Project-Id-Version: something-else 1\\n"\n',
])
def test_malformed_po_is_refused_and_changes_nothing(world, project_id, data):
    number = publish_version(world, project_id)
    before = _good_import(world, project_id, number)
    response = put_po(world, project_id, number, "pt_BR", data)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert status_of(world, project_id, number)["pt_BR"] == before


@pytest.mark.parametrize("locale", ["xx_YY", "en_US;drop", "en"])
def test_bad_or_source_locale_is_refused(world, project_id, locale):
    number = publish_version(world, project_id)
    response = put_po(world, project_id, number, locale, b"")
    assert response.status_code == 422
    assert "locale" in response.get_json()["errors"]


def test_drafts_cannot_be_translated(world, project_id):
    world.post("manager", base(project_id), json={"title": "t", "source_markdown": GUIDE})
    assert world.get("manager", f"{base(project_id)}/1/translations/de.po").status_code == 409


def test_roles(world, project_id):
    number = publish_version(world, project_id)
    data = fill(export(world, project_id, number, "pt_BR"), PT)
    assert put_po(world, project_id, number, "pt_BR", data, who="auditor").status_code == 403
    assert put_po(world, project_id, number, "pt_BR", data, who="vendor_eu").status_code == 403
    assert world.get("vendor_eu", f"{base(project_id)}/{number}/rendered?locale=de").status_code == 403
    assert world.post("auditor", base(project_id), json={"title": "t", "source_markdown": GUIDE}).status_code == 403


def test_raw_html_in_the_source_is_escaped(world, project_id):
    number = publish_version(world, project_id, "# Title\n\n<b onclick=\"x()\">bold?</b>\n")
    html = rendered(world, project_id, number, "en")["html"]
    assert "<b" not in html and "&lt;b onclick" in html


@pytest.mark.parametrize(("code", "expected"), [
    ("zh_Hant_TW", {"locale": "zh_Hant_TW", "fallback_chain": ["zh_Hant_TW", "zh_Hant"], "direction": "ltr"}),
    ("sr-Latn", {"locale": "sr_Latn", "fallback_chain": ["sr_Latn"]}),
    ("ur", {"direction": "rtl"}),
    ("pt_BR", {"fallback_chain": ["pt_BR", "pt"], "plural_categories": ["one", "many", "other"]}),
])
def test_locales_endpoint_describes_cldr_locales(world, code, expected):
    body = world.get("vendor_eu", f"/api/v1/locales/{code}").get_json()
    assert expected.items() <= body.items()


@pytest.mark.parametrize("code", ["xx_YY", "en_US;drop", "123"])
def test_locales_endpoint_refuses_junk(world, code):
    response = world.get("auditor", f"/api/v1/locales/{code}")
    assert response.status_code == 422
    assert "locale" in response.get_json()["errors"]
