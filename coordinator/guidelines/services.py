"""Write, publish, translate and render versioned guidelines."""

from __future__ import annotations

import difflib
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import markdown_it
import nh3
from flask_babel import gettext
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from coordinator.audit.services import Actor, apply_changes, record, snapshot
from coordinator.db import utcnow
from coordinator.errors import Conflict, InvalidInput, NotFound
from coordinator.guidelines.models import (
    GuidelineSegment,
    GuidelineVersion,
    SegmentTranslation,
)
from coordinator.projects.models import Project
from coordinator.projects.services import get_project
from i18n import po
from i18n.fallback import fallback_chain, text_direction
from i18n.locales import InvalidLocale, normalise_locale
from i18n.segments import TRANSLATABLE, Block, join_markdown, split_markdown

AUDITED_FIELDS = ("number", "status", "title", "source_markdown", "source_locale", "content_hash")
#: How alike an edited segment must be to its old self to keep its translation as fuzzy.
FUZZY_CUTOFF = 0.6

_markdown = markdown_it.MarkdownIt("commonmark", {"html": False, "linkify": False})


@dataclass(frozen=True)
class LocaleStatus:
    """How far one locale's translation of a version has got."""

    locale: str
    direction: str
    total: int
    translated: int
    fuzzy: int
    missing: int

    @property
    def ratio_complete(self) -> float:
        return self.translated / self.total if self.total else 1.0


@dataclass(frozen=True)
class RenderedGuideline:
    """A version as a worker in ``requested_locale`` sees it."""

    version: GuidelineVersion
    requested_locale: str
    served_locale: str
    fallback: bool
    chain: list[str]
    direction: str
    markdown: str
    html: str


def parse_locale_field(value: str, field: str = "locale") -> str:
    """Return a canonical locale, or raise InvalidInput naming ``field``."""
    try:
        return normalise_locale(value)
    except InvalidLocale:
        raise InvalidInput(errors={field: [gettext(
            "%(value)s is not a locale; use a code such as en, pt_BR or sr_Latn.",
            value=repr(value)[:80])]}) from None


def list_versions(session: Session, project_id: int) -> list[GuidelineVersion]:
    """Return every version of a project's guideline, newest first."""
    get_project(session, project_id)
    return list(session.scalars(
        select(GuidelineVersion).where(GuidelineVersion.project_id == project_id)
        .order_by(GuidelineVersion.number.desc())
    ))


def get_version(session: Session, project_id: int, number: int) -> GuidelineVersion:
    """Return version ``number`` of a project's guideline, or raise NotFound."""
    version = session.scalar(select(GuidelineVersion).where(
        GuidelineVersion.project_id == project_id, GuidelineVersion.number == number))
    if version is None:
        get_project(session, project_id)
        raise NotFound(gettext("The guideline has no version %(number)s.", number=number))
    return version


def latest_published(session: Session, project_id: int) -> GuidelineVersion | None:
    """Return the newest published version, the one new work is dispatched with."""
    return session.scalar(
        select(GuidelineVersion)
        .where(GuidelineVersion.project_id == project_id, GuidelineVersion.status == "published")
        .order_by(GuidelineVersion.number.desc()).limit(1)
    )


def _lock_project(session: Session, project_id: int) -> Project:
    project = get_project(session, project_id)
    session.execute(select(Project.id).where(Project.id == project_id).with_for_update())
    return project


def create_draft(session: Session, actor: Actor, project_id: int, *, title: str,
                 source_markdown: str) -> GuidelineVersion:
    """Start the next version as a draft; a project has at most one draft at a time."""
    project = _lock_project(session, project_id)
    versions = session.execute(
        select(GuidelineVersion.number, GuidelineVersion.status)
        .where(GuidelineVersion.project_id == project_id)
    ).all()
    if any(status == "draft" for _, status in versions):
        raise Conflict(gettext("This guideline already has a draft; edit or publish it first."))
    _check_has_text(source_markdown)
    version = GuidelineVersion(
        project_id=project.id, number=max((n for n, _ in versions), default=0) + 1,
        status="draft", title=title, source_markdown=source_markdown,
        source_locale=project.source_locale, created_by_id=actor.account_id,
    )
    session.add(version)
    session.flush()
    record(session, actor, "guideline.create", "guideline_version", version.id,
           after=snapshot(version, AUDITED_FIELDS))
    return version


def _check_has_text(source_markdown: str) -> None:
    if not any(block.translatable for block in split_markdown(source_markdown)):
        raise InvalidInput(errors={"source_markdown": [
            gettext("The guideline needs at least one heading, paragraph or list item.")]})


def _editable(session: Session, project_id: int, number: int) -> GuidelineVersion:
    version = get_version(session, project_id, number)
    if version.status != "draft":
        raise Conflict(gettext(
            "Version %(number)s is published and can never change; start a new version.",
            number=number))
    return version


def update_draft(session: Session, actor: Actor, project_id: int, number: int,
                 changes: dict[str, Any]) -> GuidelineVersion:
    """Change the title or text of a draft."""
    version = _editable(session, project_id, number)
    if "source_markdown" in changes:
        _check_has_text(changes["source_markdown"])
    apply_changes(session, actor, version, changes, action="guideline.update",
                  subject_type="guideline_version", fields=AUDITED_FIELDS)
    return version


def delete_draft(session: Session, actor: Actor, project_id: int, number: int) -> None:
    """Throw a draft away."""
    version = _editable(session, project_id, number)
    before = snapshot(version, AUDITED_FIELDS)
    version_id = version.id
    # Delete first: the event must follow a write that succeeded. On SQLite the flush also
    # takes the database's write lock before the chain's tail is read, so two requests
    # cannot both read one tail and then collide on its seq.
    session.delete(version)
    session.flush()
    record(session, actor, "guideline.delete", "guideline_version", version_id, before=before)


def _new_context(block: Block, taken: set[str]) -> str:
    base = f"{block.kind}-{hashlib.sha256(block.text.encode()).hexdigest()[:10]}"
    context, suffix = base, 1
    while context in taken:
        suffix += 1
        context = f"{base}-{suffix}"
    return context


def _match_previous(blocks: list[Block], old: list[GuidelineSegment]
                    ) -> list[tuple[GuidelineSegment | None, bool]]:
    """Pair each new block with the old segment it continues: exactly, fuzzily, or not at all."""
    unused: dict[str, list[GuidelineSegment]] = defaultdict(list)
    for segment in old:
        unused[segment.source_text].append(segment)
    matches: list[tuple[GuidelineSegment | None, bool]] = []
    for block in blocks:
        candidates = unused.get(block.text) if block.translatable else None
        matches.append((candidates.pop(0), True) if candidates else (None, False))
    taken = {id(seg) for seg, _ in matches if seg is not None}
    leftovers = [seg for seg in old if id(seg) not in taken]
    for index, block in enumerate(blocks):
        if matches[index][0] is not None or not block.translatable or not leftovers:
            continue
        best, best_ratio = None, FUZZY_CUTOFF
        for segment in leftovers:
            if segment.kind != block.kind:
                continue
            matcher = difflib.SequenceMatcher(None, segment.source_text, block.text)
            if matcher.real_quick_ratio() < best_ratio or matcher.quick_ratio() < best_ratio:
                continue
            ratio = matcher.ratio()
            if ratio >= best_ratio:
                best, best_ratio = segment, ratio
        if best is not None:
            leftovers.remove(best)
            matches[index] = (best, False)
    return matches


def publish(session: Session, actor: Actor, project_id: int, number: int) -> GuidelineVersion:
    """Freeze a draft into segments, carrying translations over from the previous version."""
    _lock_project(session, project_id)
    version = _editable(session, project_id, number)
    previous = latest_published(session, project_id)
    old_segments = _segments(session, previous.id) if previous else []
    blocks = split_markdown(version.source_markdown)
    taken: set[str] = set()
    pairs: list[tuple[GuidelineSegment, GuidelineSegment | None, bool]] = []
    for position, (block, (old, exact)) in enumerate(zip(blocks, _match_previous(blocks, old_segments))):
        context = old.context if old is not None and old.context not in taken else _new_context(block, taken)
        taken.add(context)
        segment = GuidelineSegment(
            version_id=version.id, position=position, context=context, kind=block.kind,
            prefix=block.prefix, section=block.section[:300], source_text=block.text)
        session.add(segment)
        pairs.append((segment, old, exact))
    session.flush()
    _carry_translations(session, pairs)
    version.status = "published"
    version.published_at = utcnow()
    version.published_by_id = actor.account_id
    version.content_hash = hashlib.sha256(version.source_markdown.encode()).hexdigest()
    session.flush()
    record(session, actor, "guideline.publish", "guideline_version", version.id,
           after=snapshot(version, AUDITED_FIELDS))
    return version


def _carry_translations(session: Session, pairs: list[tuple[GuidelineSegment, GuidelineSegment | None, bool]]) -> None:
    by_old = {old.id: (segment, old, exact) for segment, old, exact in pairs if old is not None}
    if not by_old:
        return
    for translation in session.scalars(
        select(SegmentTranslation).where(SegmentTranslation.segment_id.in_(list(by_old)))
    ):
        segment, old, exact = by_old[translation.segment_id]
        old_source = old.source_text
        session.add(SegmentTranslation(
            segment_id=segment.id, locale=translation.locale, text=translation.text,
            fuzzy=translation.fuzzy or not exact,
            previous_source=translation.previous_source if exact else old_source,
            updated_by_id=translation.updated_by_id,
        ))


def _segments(session: Session, version_id: int) -> list[GuidelineSegment]:
    return list(session.scalars(
        select(GuidelineSegment).where(GuidelineSegment.version_id == version_id)
        .order_by(GuidelineSegment.position)))


def segments_of(session: Session, version: GuidelineVersion) -> list[GuidelineSegment]:
    """Return a published version's segments in order (none for a draft)."""
    return _segments(session, version.id)


def _published(session: Session, project_id: int, number: int) -> GuidelineVersion:
    version = get_version(session, project_id, number)
    if version.status != "published":
        raise Conflict(gettext("Publish version %(number)s before translating it.", number=number))
    return version


def _translations(session: Session, version_id: int, locale: str | None = None
                  ) -> dict[tuple[int, str], SegmentTranslation]:
    query = (select(SegmentTranslation)
             .join(GuidelineSegment, GuidelineSegment.id == SegmentTranslation.segment_id)
             .where(GuidelineSegment.version_id == version_id))
    if locale is not None:
        query = query.where(SegmentTranslation.locale == locale)
    return {(t.segment_id, t.locale): t for t in session.scalars(query)}


def _target_locale(version: GuidelineVersion, locale: str) -> str:
    target = parse_locale_field(locale)
    if target == version.source_locale:
        raise InvalidInput(errors={"locale": [gettext(
            "%(locale)s is the source locale of this guideline; it needs no translation.",
            locale=target)]})
    return target


def export_po(session: Session, project_id: int, number: int, locale: str) -> bytes:
    """Return the PO file for translating a published version into ``locale``."""
    version = _published(session, project_id, number)
    target = _target_locale(version, locale)
    existing = _translations(session, version.id, target)
    entries = []
    for segment in segments_of(session, version):
        if segment.kind not in TRANSLATABLE:
            continue
        translation = existing.get((segment.id, target))
        entries.append(po.ExportEntry(
            context=segment.context, source=segment.source_text, section=segment.section,
            kind=segment.kind, translation=translation.text if translation else "",
            fuzzy=bool(translation and translation.fuzzy),
            previous_source=translation.previous_source if translation and translation.fuzzy else None,
        ))
    return po.write_catalog(project_id=project_id, version=number, locale=target,
                            title=version.title, entries=entries)


def import_po(session: Session, actor: Actor, project_id: int, number: int, locale: str,
              data: bytes) -> LocaleStatus:
    """Replace a locale's translation of a version with a PO file's; nothing changes on error."""
    version = _published(session, project_id, number)
    target = _target_locale(version, locale)
    try:
        catalog = po.read_catalog(data)
    except po.MalformedCatalog as exc:
        where = gettext("line %(n)d", n=exc.line) if exc.line else "file"
        raise InvalidInput(gettext("The PO file cannot be read: %(reason)s", reason=exc.reason),
                           errors={where: [exc.reason]}) from None
    _check_identity(catalog, project_id, number, target)
    segments = {(s.context, s.source_text): s for s in segments_of(session, version)
                if s.kind in TRANSLATABLE}
    errors: dict[str, dict[str, list[str]]] = {}
    accepted: list[tuple[GuidelineSegment, po.ImportedEntry]] = []
    for entry in catalog.entries:
        segment = segments.get((entry.context, entry.source))
        if segment is None:
            key = gettext("line %(n)d", n=entry.line) if entry.line else entry.context or "?"
            errors.setdefault(key, {}).setdefault("msgid", []).append(gettext(
                "This message is not in the source of version %(number)s.", number=number))
        elif entry.translation.strip():
            accepted.append((segment, entry))
    if errors:
        raise InvalidInput(gettext(
            "The PO file has messages that are not in this version; nothing was imported."),
            errors=errors)
    replaced = _translations_hash(session, version.id, target)
    session.execute(delete(SegmentTranslation).where(
        SegmentTranslation.locale == target,
        SegmentTranslation.segment_id.in_([s.id for s in segments.values()])))
    for segment, entry in accepted:
        session.add(SegmentTranslation(
            segment_id=segment.id, locale=target, text=entry.translation, fuzzy=entry.fuzzy,
            updated_by_id=actor.account_id))
    session.flush()
    status = _status(session, version, target)
    record(session, actor, "guideline.translation.import", "guideline_version", version.id, after={
        "locale": target, "translated": status.translated, "fuzzy": status.fuzzy,
        "missing": status.missing, "translations_sha256_before": replaced,
        "translations_sha256_after": _translations_hash(session, version.id, target)})
    return status


#: Version of the canonical form ``_translations_hash`` reads.
TRANSLATIONS_FORM = "coordinator.guidelines.translations/1"


def _translations_hash(session: Session, version_id: int, locale: str) -> str:
    """Return the SHA-256 of a locale's translations of a version: JSON ``[form, [segment id,
    text, fuzzy]...]`` in segment order, without spaces."""
    rows = session.execute(
        select(SegmentTranslation.segment_id, SegmentTranslation.text, SegmentTranslation.fuzzy)
        .join(GuidelineSegment, GuidelineSegment.id == SegmentTranslation.segment_id)
        .where(GuidelineSegment.version_id == version_id, SegmentTranslation.locale == locale)
        .order_by(SegmentTranslation.segment_id)).all()
    body = json.dumps([TRANSLATIONS_FORM, [list(row) for row in rows]], ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def _check_identity(catalog: po.ImportedCatalog, project_id: int, number: int, target: str) -> None:
    project_label, version_label = po.catalog_identity(project_id, number)
    if (catalog.project, catalog.version) != (project_label, version_label):
        raise InvalidInput(gettext(
            "This PO file was exported for %(found)s, not for version %(number)s of this guideline.",
            found=f"{catalog.project} {catalog.version}".strip(), number=number),
            errors={"Project-Id-Version": [f"{catalog.project} {catalog.version}".strip()]})
    if catalog.locale is None or normalise_locale(catalog.locale) != target:
        raise InvalidInput(gettext(
            "This PO file is for %(found)s, not %(locale)s.",
            found=catalog.locale or gettext("no language"), locale=target),
            errors={"Language": [catalog.locale or ""]})


def _status(session: Session, version: GuidelineVersion, locale: str) -> LocaleStatus:
    translatable = [s.id for s in segments_of(session, version)
                    if s.kind in TRANSLATABLE]
    rows = session.execute(
        select(SegmentTranslation.fuzzy, func.count())
        .where(SegmentTranslation.locale == locale, SegmentTranslation.segment_id.in_(translatable))
        .group_by(SegmentTranslation.fuzzy)).all()
    counts = {bool(fuzzy): count for fuzzy, count in rows}
    translated, fuzzy = counts.get(False, 0), counts.get(True, 0)
    return LocaleStatus(locale, text_direction(locale), len(translatable), translated, fuzzy,
                        len(translatable) - translated - fuzzy)


def translation_status(session: Session, project_id: int, number: int) -> list[LocaleStatus]:
    """Return, for every locale with any translation, how complete it is."""
    version = _published(session, project_id, number)
    locales = sorted({locale for _, locale in _translations(session, version.id)})
    return [_status(session, version, locale) for locale in locales]


def render(session: Session, project_id: int, number: int, requested: str) -> RenderedGuideline:
    """Return a version in the first complete locale of ``requested``'s fallback chain."""
    version = _published(session, project_id, number)
    requested = parse_locale_field(requested)
    chain = fallback_chain(requested, version.source_locale)
    segments = segments_of(session, version)
    translations = _translations(session, version.id)
    served, texts = version.source_locale, [s.source_text for s in segments]
    for locale in chain:
        if locale == version.source_locale:
            break
        candidate = [_shown(segment, translations.get((segment.id, locale))) for segment in segments]
        if all(text is not None for text in candidate):
            served, texts = locale, candidate
            break
    blocks = [Block(s.kind, s.prefix, s.source_text, s.section) for s in segments]
    markdown = join_markdown(blocks, texts)
    direction = text_direction(served)
    body = nh3.clean(_markdown.render(markdown), link_rel="noopener noreferrer nofollow")
    html = f'<article lang="{served.replace("_", "-")}" dir="{direction}">\n{body}</article>'
    return RenderedGuideline(version, requested, served, served != requested, chain, direction,
                             markdown, html)


def _shown(segment: GuidelineSegment, translation: SegmentTranslation | None) -> str | None:
    if segment.kind not in TRANSLATABLE:
        return segment.source_text
    if translation is None or translation.fuzzy:
        return None
    return translation.text
