"""The shipped message catalogs are complete, well-formed and compiled."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from i18n import catalogs

PLACEHOLDER = re.compile(r"%\((\w+)\)[#0 +-]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=locale)


def _key(message: Message) -> str:
    return message.id[0] if isinstance(message.id, tuple) else message.id


def _placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """A template freshly extracted from the code, not the committed messages.pot."""
    path = catalogs.extract(tmp_path_factory.mktemp("pot") / "messages.pot")
    return _read(path)


@pytest.fixture(scope="module", params=catalogs.SHIPPED_LOCALES)
def shipped(request: pytest.FixtureRequest) -> tuple[str, Catalog]:
    locale = request.param
    path = catalogs.po_path(locale)
    assert path.exists(), f"no catalog for {locale}: run `coordinator i18n update`"
    return locale, _read(path, locale)


def _entries(catalog: Catalog) -> list[Message]:
    return [message for message in catalog if message.id]


def test_the_template_has_the_messages_of_the_code(template: Catalog) -> None:
    ids = {_key(message) for message in _entries(template)}
    assert "The request has invalid fields" in ids  # lazy_gettext in errors.py
    assert "Missing data for required field." in ids  # N_ in i18n/validation.py
    assert "Send an API token as 'Authorization: Bearer <token>'." in ids  # gettext in auth.py


def test_every_message_of_the_code_is_in_each_catalog(template: Catalog, shipped) -> None:
    locale, catalog = shipped
    missing = sorted(_key(m) for m in _entries(template) if _key(m) not in catalog)
    assert not missing, (
        f"{locale} misses {len(missing)} messages; run `coordinator i18n extract`, "
        f"`coordinator i18n update`, translate, `coordinator i18n compile`:\n"
        + "\n".join(missing))


def test_plural_entries_of_the_template_are_plural_in_each_catalog(template: Catalog,
                                                                    shipped) -> None:
    locale, catalog = shipped
    wrong = [_key(m) for m in _entries(template)
             if m.pluralizable and _key(m) in catalog and not catalog[_key(m)].pluralizable]
    assert not wrong, f"{locale}: not plural: {wrong}"


def test_no_entry_is_fuzzy_or_empty(shipped) -> None:
    locale, catalog = shipped
    assert not catalog.fuzzy, f"the {locale} catalog header is marked fuzzy"
    fuzzy = [_key(m) for m in _entries(catalog) if m.fuzzy]
    empty = [_key(m) for m in _entries(catalog)
             if not (all(m.string) if isinstance(m.string, tuple) else m.string)]
    assert not fuzzy, f"{locale}: fuzzy entries: {fuzzy}"
    assert not empty, f"{locale}: untranslated entries: {empty}"


def test_babel_finds_no_errors(shipped) -> None:
    locale, catalog = shipped
    problems = [f"{_key(m)!r}: {'; '.join(map(str, errors))}" for m, errors in catalog.check()]
    assert not problems, f"{locale}:\n" + "\n".join(problems)


def test_placeholders_match(shipped) -> None:
    locale, catalog = shipped
    wrong = []
    for message in _entries(catalog):
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        expected = set().union(*map(_placeholders, ids))
        for index, string in enumerate(strings):
            if not string:
                continue  # reported by test_no_entry_is_fuzzy_or_empty
            found = _placeholders(string)
            # A plural form for exactly one item may leave out the count, nothing else.
            plural = message.pluralizable and len(strings) > 1
            allowed_missing = {"count", "n", "num"} if plural else set()
            if found - expected or (expected - found) - allowed_missing:
                wrong.append(f"{ids[0]!r} [{index}]: expected {sorted(expected)}, "
                             f"found {sorted(found)}")
    assert not wrong, f"{locale}:\n" + "\n".join(wrong)


def test_plural_entries_have_every_form_of_the_locale(shipped) -> None:
    locale, catalog = shipped
    wrong = [f"{_key(m)!r}: {len(m.string)} forms, {catalog.num_plurals} expected"
             for m in _entries(catalog)
             if m.pluralizable and len(m.string) != catalog.num_plurals]
    assert not wrong, f"{locale}:\n" + "\n".join(wrong)


def test_the_catalog_declares_its_locale_and_plural_rule(shipped) -> None:
    locale, catalog = shipped
    assert str(catalog.locale) == locale
    assert f"nplurals={catalog.num_plurals};" in catalog.plural_forms


def test_the_committed_mo_is_compiled_from_the_po(shipped) -> None:
    locale, catalog = shipped
    mo_path = catalogs.po_path(locale).with_suffix(".mo")
    assert mo_path.exists(), f"no {mo_path.name} for {locale}: run `coordinator i18n compile`"
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    with mo_path.open("rb") as handle:
        committed = read_mo(handle)

    def table(mo: Catalog) -> dict[object, object]:
        # A plural message reads back with a list of ids and strings; lists cannot be keys.
        def frozen(value: object) -> object:
            return tuple(value) if isinstance(value, list) else value

        return {frozen(message.id): frozen(message.string) for message in mo if message.id}

    assert table(committed) == table(read_mo(compiled)), (
        f"{mo_path} is stale: run `coordinator i18n compile`")


def test_extract_leaves_an_unchanged_template_alone(tmp_path: Path) -> None:
    path = catalogs.extract(tmp_path / "messages.pot")
    before = path.read_bytes()
    path.write_bytes(before.replace(b"POT-Creation-Date: ", b"POT-Creation-Date: 1999"))
    changed = path.read_bytes()
    catalogs.extract(path)
    assert path.read_bytes() == changed


def test_update_creates_missing_catalogs_and_keeps_translations(tmp_path: Path) -> None:
    template = tmp_path / "messages.pot"
    pot = Catalog(project=catalogs.PROJECT)
    pot.add("Not found")
    pot.add("Give at least %(n)d items.", flags=["python-format"])
    with template.open("wb") as handle:
        from babel.messages.pofile import write_po

        write_po(handle, pot)
    [created] = catalogs.update(["fr"], template=template, directory=tmp_path)
    assert created.created and set(created.untranslated) == {"Not found",
                                                            "Give at least %(n)d items."}
    fr = _read(catalogs.po_path("fr", tmp_path), "fr")
    fr["Not found"].string = "Introuvable"
    with catalogs.po_path("fr", tmp_path).open("wb") as handle:
        write_po(handle, fr, width=catalogs.WIDTH)
    text_before = catalogs.po_path("fr", tmp_path).read_bytes()
    [again] = catalogs.update(["fr"], template=template, directory=tmp_path)
    assert not again.created and again.untranslated == ("Give at least %(n)d items.",)
    assert catalogs.po_path("fr", tmp_path).read_bytes() == text_before
    [mo] = catalogs.compile(["fr"], directory=tmp_path)
    with mo.open("rb") as handle:
        assert read_mo(handle)["Not found"].string == "Introuvable"


def test_the_cli_wraps_the_catalog_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from coordinator.cli import main

    calls: list[tuple[str, object]] = []
    state = catalogs.CatalogState("sw", Path("sw.po"), False, 3, ("New message.",), ())
    monkeypatch.setattr(catalogs, "extract",
                        lambda: calls.append(("extract", None)) or Path("x.pot"))
    monkeypatch.setattr(catalogs, "update",
                        lambda locales: calls.append(("update", locales)) or [state])
    monkeypatch.setattr(catalogs, "compile",
                        lambda locales: calls.append(("compile", locales)) or [])
    runner = CliRunner()
    assert runner.invoke(main, ["i18n", "extract"]).exit_code == 0
    updated = runner.invoke(main, ["i18n", "update", "--locale", "sw"])
    assert updated.exit_code == 0 and "1 to translate" in updated.output
    assert runner.invoke(main, ["i18n", "compile"]).exit_code == 0
    assert calls == [("extract", None), ("update", ["sw"]), ("compile", None)]


def test_the_cli_reports_catalog_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from coordinator.cli import main

    def broken(locales: object) -> list[Path]:
        raise catalogs.CatalogError("the fr catalog has errors")

    monkeypatch.setattr(catalogs, "compile", broken)
    result = CliRunner().invoke(main, ["i18n", "compile"])
    assert result.exit_code == 1 and "the fr catalog has errors" in result.output


def test_compile_refuses_a_catalog_with_a_broken_placeholder(tmp_path: Path) -> None:
    from babel.messages.pofile import write_po

    fr = Catalog(locale="fr", project=catalogs.PROJECT, fuzzy=False)
    fr.add("Give at least %(n)d items.", "Indiquez au moins %(m)d éléments.",
           flags=["python-format"])
    path = catalogs.po_path("fr", tmp_path)
    path.parent.mkdir(parents=True)
    with path.open("wb") as handle:
        write_po(handle, fr)
    with pytest.raises(catalogs.CatalogError, match="fr catalog has errors"):
        catalogs.compile(["fr"], directory=tmp_path)


def test_compile_refuses_a_catalog_marked_fuzzy(tmp_path: Path) -> None:
    from babel.messages.pofile import write_po

    de = Catalog(locale="de", project=catalogs.PROJECT, fuzzy=True)
    de.add("Not found", "Nicht gefunden")
    path = catalogs.po_path("de", tmp_path)
    path.parent.mkdir(parents=True)
    with path.open("wb") as handle:
        write_po(handle, de)
    with pytest.raises(catalogs.CatalogError, match="marked fuzzy"):
        catalogs.compile(["de"], directory=tmp_path)


def test_update_fills_the_source_language_catalog_by_itself(tmp_path: Path) -> None:
    from babel.messages.pofile import write_po

    template = tmp_path / "messages.pot"
    pot = Catalog(project=catalogs.PROJECT)
    pot.add("Not found")
    pot.add(("%(count)d line", "%(count)d lines"), flags=["python-format"])
    with template.open("wb") as handle:
        write_po(handle, pot)
    [state] = catalogs.update([catalogs.SOURCE_LOCALE], template=template, directory=tmp_path)
    assert state.created and state.untranslated == ()
    en = _read(catalogs.po_path(catalogs.SOURCE_LOCALE, tmp_path), catalogs.SOURCE_LOCALE)
    assert en["Not found"].string == "Not found"
    assert en["%(count)d line"].string == ("%(count)d line", "%(count)d lines")
