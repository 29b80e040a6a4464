"""The service's own message catalogs: extract, update and compile them with Babel's frontend.

The source of truth is ``i18n/translations/<locale>/LC_MESSAGES/messages.po``; the compiled
``.mo`` files beside them are committed too, so a checkout serves translated messages
without a build step. The cycle after changing user-facing text is::

    coordinator i18n extract   # messages.pot from the code (babel.cfg)
    coordinator i18n update    # every shipped .po follows the template; new ones are created
    # ... translate the new, empty entries ...
    coordinator i18n compile   # .po -> .mo

Every step is idempotent: running the cycle twice without code changes changes no file.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from babel.messages.frontend import (
    CompileCatalog,
    ExtractMessages,
    InitCatalog,
    UpdateCatalog,
)
from babel.messages.pofile import read_po, write_po

from i18n.locales import TRANSLATIONS_DIR

#: The locales whose catalogs are shipped, complete, with the service (source first).
SHIPPED_LOCALES = ("en", "es", "fr", "de", "pt_BR", "zh_Hans", "ja", "ar", "hi", "sw")
#: The language the messages are written in; ``update`` fills its catalog by itself.
SOURCE_LOCALE = "en"

DOMAIN = "messages"
#: The folder the mapping file's patterns (``coordinator/**.py``, ...) are relative to.
SOURCE_ROOT = TRANSLATIONS_DIR.parent.parent
MAPPING_FILE = TRANSLATIONS_DIR / "babel.cfg"
TEMPLATE_FILE = TRANSLATIONS_DIR / f"{DOMAIN}.pot"
#: Marker functions, in addition to Babel's defaults (``_``, ``gettext``, ``ngettext``,
#: ``N_``, ``pgettext``, ...).
KEYWORDS = ("lazy_gettext", "lazy_ngettext:1,2", "lazy_pgettext:1c,2", "N_", "_")
#: Header fields of the template.
PROJECT = "annotation-coordinator"
COPYRIGHT_HOLDER = "The annotation coordinator authors"
MSGID_BUGS_ADDRESS = "i18n@coordinator.invalid"
WIDTH = 76

_CREATION_DATE = re.compile(r'^"POT-Creation-Date: .*\\n"$', re.MULTILINE)

log = logging.getLogger(__name__)


class CatalogError(RuntimeError):
    """Raised when Babel refuses an option or a catalog has errors (bad placeholders)."""


@dataclass(frozen=True)
class CatalogState:
    """What ``update`` did to one locale's catalog."""

    locale: str
    path: Path
    created: bool
    messages: int
    untranslated: tuple[str, ...]
    fuzzy: tuple[str, ...]


def po_path(locale: str, directory: Path = TRANSLATIONS_DIR) -> Path:
    """Return the ``.po`` file of ``locale`` under ``directory``."""
    return directory / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def catalog_locales(directory: Path = TRANSLATIONS_DIR) -> list[str]:
    """Return the shipped locales followed by any other locale that has a catalog."""
    found = sorted(p.parent.parent.name for p in directory.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
    return [*SHIPPED_LOCALES, *[name for name in found if name not in SHIPPED_LOCALES]]


def _run(command: ExtractMessages | InitCatalog | UpdateCatalog | CompileCatalog) -> int:
    try:
        command.ensure_finalized()
        return command.run() or 0
    except Exception as exc:  # Babel raises OptionError, BaseError, OSError, ...
        raise CatalogError(f"{type(command).__name__}: {exc}") from exc


def _same_template(old: Path, new: Path) -> bool:
    """Whether two templates differ at most in their POT-Creation-Date."""
    if not old.exists():
        return False
    strip = lambda path: _CREATION_DATE.sub("", path.read_text(encoding="utf-8"))  # noqa: E731
    return strip(old) == strip(new)


def extract(output: Path | None = None, *, source_root: Path = SOURCE_ROOT) -> Path:
    """Extract the messages of the code into a ``.pot`` template and return its path.

    The template is sorted and has no source locations, so diffs show only changed
    messages; an existing template whose messages did not change is left untouched.
    """
    output = Path(output or TEMPLATE_FILE)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch) / output.name
        command = ExtractMessages()
        command.input_paths = [str(source_root)]
        command.mapping_file = str(MAPPING_FILE)
        command.output_file = str(fresh)
        command.keywords = list(KEYWORDS)
        command.no_location = True
        command.sort_output = True
        command.width = WIDTH
        command.project = PROJECT
        command.copyright_holder = COPYRIGHT_HOLDER
        command.msgid_bugs_address = MSGID_BUGS_ADDRESS
        _run(command)
        if not _same_template(output, fresh):
            shutil.copyfile(fresh, output)
    return output


def _state(locale: str, path: Path, created: bool) -> CatalogState:
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=locale, domain=DOMAIN)
    messages = [m for m in catalog if m.id]
    empty = tuple(
        str(m.id[0] if isinstance(m.id, tuple) else m.id)
        for m in messages
        if not (all(m.string) if isinstance(m.string, tuple) else m.string)
    )
    fuzzy = tuple(str(m.id[0] if isinstance(m.id, tuple) else m.id) for m in messages if m.fuzzy)
    return CatalogState(locale, path, created, len(messages), empty, fuzzy)


def _fill_source(locale: str, path: Path) -> None:
    """Give every empty entry of the source-language catalog its msgid as translation."""
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=locale, domain=DOMAIN)
    empty = [m for m in catalog if m.id and not (all(m.string) if m.pluralizable else m.string)]
    if not empty:
        return
    for message in empty:
        if message.pluralizable:
            singular, plural = message.id[0], message.id[1]
            message.string = tuple([singular] + [plural] * (catalog.num_plurals - 1))
        else:
            message.string = message.id
    with path.open("wb") as handle:
        write_po(handle, catalog, width=WIDTH)


def update(
    locales: list[str] | tuple[str, ...] | None = None,
    *,
    template: Path | None = None,
    directory: Path = TRANSLATIONS_DIR,
) -> list[CatalogState]:
    """Make every catalog follow the template: create missing ones, update existing ones.

    New messages arrive with an empty translation (no fuzzy guesses from similar
    messages, which would be easy to ship unnoticed), except in the source language's
    catalog, where the message is its own translation; messages gone from the code are
    dropped. Returns, per locale, what is left to translate.
    """
    template = Path(template or TEMPLATE_FILE)
    if not template.exists():
        raise CatalogError(f"no template at {template}: run extract first")
    states = []
    for locale in locales or catalog_locales(directory):
        path = po_path(locale, directory)
        created = not path.exists()
        if created:
            path.parent.mkdir(parents=True, exist_ok=True)
            init = InitCatalog()
            init.input_file = str(template)
            init.output_dir = str(directory)
            init.locale = locale
            init.domain = DOMAIN
            init.width = WIDTH
            _run(init)
        command = UpdateCatalog()
        command.input_file = str(template)
        command.output_dir = str(directory)
        command.locale = locale
        command.domain = DOMAIN
        command.width = WIDTH
        command.no_fuzzy_matching = True
        command.ignore_obsolete = True
        _run(command)
        if locale == SOURCE_LOCALE:
            _fill_source(locale, path)
        states.append(_state(locale, path, created))
    return states


def compile(  # noqa: A001 - the pybabel verb
    locales: list[str] | tuple[str, ...] | None = None,
    *,
    directory: Path = TRANSLATIONS_DIR,
) -> list[Path]:
    """Compile each catalog's ``.po`` into the ``.mo`` beside it and return the ``.mo`` paths.

    Raises CatalogError when a catalog has errors such as mismatched placeholders (its
    ``.mo`` is written all the same, as pybabel does) or is marked fuzzy as a whole.
    """
    written = []
    for locale in locales or catalog_locales(directory):
        path = po_path(locale, directory)
        if not path.exists():
            raise CatalogError(f"no catalog for {locale} at {path}: run update first")
        with path.open("rb") as handle:
            if read_po(handle, locale=locale, domain=DOMAIN).fuzzy:
                # Babel would skip it silently and leave a stale .mo behind.
                raise CatalogError(f"the {locale} catalog is marked fuzzy in its header")
        command = CompileCatalog()
        command.directory = str(directory)
        command.locale = locale
        command.domain = DOMAIN
        if _run(command):
            raise CatalogError(f"the {locale} catalog has errors; see the log above")
        written.append(path.with_suffix(".mo"))
    return written
