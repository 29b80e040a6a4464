"""Guideline translations as gettext PO files, written and read with Babel."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timezone

from babel.messages.catalog import Catalog
from babel.messages.pofile import PoFileError, read_po, write_po


@dataclass(frozen=True)
class ExportEntry:
    """One segment as a translator receives it."""

    context: str
    source: str
    section: str
    kind: str
    translation: str = ""
    fuzzy: bool = False
    previous_source: str | None = None


@dataclass(frozen=True)
class ImportedEntry:
    """One message read back from a translator's PO file."""

    context: str | None
    source: str
    translation: str
    fuzzy: bool
    line: int | None


@dataclass(frozen=True)
class ImportedCatalog:
    """A PO file's header identity and its messages."""

    project: str
    version: str
    locale: str | None
    entries: list[ImportedEntry]


class MalformedCatalog(ValueError):
    """Raised when bytes are not a readable PO file; ``line`` says where, when known."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


def catalog_identity(project_id: int, version: int) -> tuple[str, str]:
    """Return the (project, version) pair written into Project-Id-Version."""
    return f"guideline-{project_id}", str(version)


def write_catalog(
    *, project_id: int, version: int, locale: str, title: str, entries: list[ExportEntry]
) -> bytes:
    """Return a PO file for translating one guideline version into ``locale``."""
    project, version_label = catalog_identity(project_id, version)
    catalog = Catalog(
        locale=locale,
        project=project,
        version=version_label,
        header_comment=f"# {title} (guideline version {version}) for translation into {locale}.\n"
        "# Translate each msgstr; keep Markdown marks such as ** and [links](...) as they are.\n#",
        creation_date=datetime.now(timezone.utc),
        fuzzy=False,
    )
    for entry in entries:
        comments = [f"Section: {entry.section}" if entry.section else "Section: (top)",
                    f"Kind: {entry.kind}"]
        catalog.add(
            entry.source,
            entry.translation,
            context=entry.context,
            auto_comments=comments,
            flags=("fuzzy",) if entry.fuzzy else (),
            previous_id=entry.previous_source or (),
        )
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=0, include_previous=True, no_location=True)
    return buffer.getvalue()


def read_catalog(data: bytes) -> ImportedCatalog:
    """Parse a translator's PO file, or raise MalformedCatalog saying what is wrong."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedCatalog("the file is not UTF-8") from None
    if not text.strip():
        raise MalformedCatalog("the file is empty")
    try:
        catalog = read_po(io.StringIO(text), ignore_obsolete=True, abort_invalid=True)
    except PoFileError as exc:
        raise MalformedCatalog(str(exc), _line_of(str(exc))) from None
    except (ValueError, KeyError, IndexError) as exc:
        raise MalformedCatalog(f"unreadable PO file: {exc}") from None
    if not (catalog.project or "").startswith("guideline-"):
        raise MalformedCatalog("the header has no Project-Id-Version exported by this service")
    entries = [
        ImportedEntry(
            context=message.context,
            source=message.id if isinstance(message.id, str) else message.id[0],
            translation=message.string if isinstance(message.string, str) else message.string[0],
            fuzzy=message.fuzzy,
            line=message.lineno,
        )
        for message in catalog
        if message.id
    ]
    return ImportedCatalog(
        project=catalog.project,
        version=catalog.version or "",
        locale=str(catalog.locale) if catalog.locale else None,
        entries=entries,
    )


def _line_of(message: str) -> int | None:
    for word in message.replace(":", " ").split():
        if word.isdigit():
            return int(word)
    return None

