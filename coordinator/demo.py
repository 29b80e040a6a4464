"""A small multilingual project, vendors and accounts, so a newcomer sees real data at once."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from decimal import Decimal

from babel.messages.pofile import read_po, write_po
from sqlalchemy import select
from sqlalchemy.orm import Session

from coordinator.accounts import services as accounts
from coordinator.audit.services import Actor
from coordinator.guidelines import services as guidelines
from coordinator.projects import imports
from coordinator.projects import services as projects
from coordinator.projects.models import Project
from coordinator.workforces import services as workforces
from coordinator.workforces.models import Workforce

PROJECT_NAME = "Multilingual product reviews (demo)"

WORKFORCES = [
    dict(kind="vendor", name="Nordlicht Annotation GmbH", region="eu", countries=["DE", "AT", "CH"],
         languages=["de", "en", "fr"], daily_capacity=5000, price_per_label=Decimal("0.0600"),
         currency="EUR", timezone="Europe/Berlin"),
    dict(kind="vendor", name="Rótulo Certo Ltda.", region="latam", countries=["BR", "PT"],
         languages=["pt", "es"], daily_capacity=8000, price_per_label=Decimal("0.2200"),
         currency="BRL", timezone="America/Sao_Paulo"),
    dict(kind="vendor", name="Sauti Data Labs", region="africa", countries=["KE", "TZ", "UG"],
         languages=["sw", "en"], daily_capacity=3000, price_per_label=Decimal("4.5000"),
         currency="KES", timezone="Africa/Nairobi"),
    dict(kind="vendor", name="Dilli Language Services", region="in", countries=["IN"],
         languages=["hi", "en", "ur"], daily_capacity=12000, price_per_label=Decimal("2.5000"),
         currency="INR", timezone="Asia/Kolkata"),
    dict(kind="vendor", name="Al-Bayan Annotation", region="mena", countries=["EG", "AE", "JO"],
         languages=["ar", "en"], daily_capacity=4000, price_per_label=Decimal("0.1500"),
         currency="AED", timezone="Africa/Cairo"),
    dict(kind="mturk", name="Amazon Mechanical Turk", region="us", countries=["US", "CA", "GB"],
         languages=["en"], daily_capacity=50000, price_per_label=Decimal("0.0500"),
         currency="USD", timezone="America/Los_Angeles"),
]

REVIEWS = [
    ("en", "The battery lasts two full days. Very happy with it.", "positive"),
    ("en", "Stopped working after a week and support never answered.", None),
    ("en", "It does what the box says, nothing more.", None),
    ("de", "Die Verarbeitung ist hervorragend, klare Empfehlung.", "positive"),
    ("de", "Leider kam das Gerät beschädigt an.", None),
    ("de", "Ganz okay für den Preis.", None),
    ("fr", "Livraison rapide et produit conforme, parfait !", None),
    ("fr", "Très déçu, la couleur ne correspond pas à la photo.", "negative"),
    ("es", "Funciona bien, aunque el manual es confuso.", None),
    ("es", "No lo recomiendo: se rompió al segundo día.", None),
    ("pt_BR", "Chegou antes do prazo e funciona muito bem!", None),
    ("pt_BR", "Produto razoável, esperava mais pelo preço.", None),
    ("ar", "المنتج ممتاز والتوصيل كان سريعاً جداً.", "positive"),
    ("ar", "الجودة سيئة ولن أشتري مرة أخرى.", None),
    ("hi", "यह फ़ोन बहुत अच्छा है, कैमरा शानदार है।", None),
    ("hi", "बैटरी जल्दी खत्म हो जाती है, निराश हूँ।", None),
    ("sw", "Bidhaa hii ni nzuri sana, nimeridhika.", None),
    ("sw", "Haikufanya kazi kama ilivyoahidiwa.", None),
    ("ja", "とても使いやすくて気に入っています。", None),
    ("ja", "説明書が分かりにくく、設定に苦労しました。", None),
    ("zh_Hans", "质量很好，物流也很快。", None),
    ("zh_Hans", "用了三天就坏了，非常失望。", "negative"),
    ("ur", "یہ پروڈکٹ بہت اچھی ہے۔", None),
    ("en", "Average. Works, but the app keeps crashing.", None),
]


GUIDELINE = """# Sentiment of product reviews

Read the whole review before you choose a label.

## Labels

- positive: the writer is pleased with the product
- neutral: the writer states facts or is undecided
- negative: the writer is disappointed or warns others
"""

GUIDELINE_TRANSLATIONS = {
    "de": [
        "Stimmung von Produktbewertungen",
        "Lesen Sie die ganze Bewertung, bevor Sie ein Label wählen.",
        "Labels",
        "positive: die Person ist mit dem Produkt zufrieden",
        "neutral: die Person nennt Fakten oder ist unentschieden",
        "negative: die Person ist enttäuscht oder warnt andere",
    ],
    "pt_BR": [
        "Sentimento de avaliações de produtos",
        "Leia a avaliação inteira antes de escolher um rótulo.",
        "Rótulos",
        "positive: quem escreve está satisfeito com o produto",
        "neutral: quem escreve relata fatos ou está indeciso",
        "negative: quem escreve está decepcionado ou alerta os outros",
    ],
    "ar": [
        "المشاعر في مراجعات المنتجات",
        "اقرأ المراجعة كاملة قبل أن تختار التصنيف.",
        "التصنيفات",
        "positive: الكاتب راضٍ عن المنتج",
        "neutral: الكاتب يذكر حقائق أو متردد",
        "negative: الكاتب خائب الأمل أو يحذّر الآخرين",
    ],
}


@dataclass
class DemoResult:
    """What the demo created and the tokens to try it with."""

    project: Project
    created: bool
    manager_token: str
    vendor_token: str
    vendor_name: str


def _task_lines() -> bytes:
    lines = []
    for number, (language, text, gold) in enumerate(REVIEWS, start=1):
        item = {"external_id": f"review-{number:03d}", "payload": {"text": text},
                "languages": [language]}
        if gold:
            item["gold"] = gold
        lines.append(json.dumps(item, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode("utf-8")


def _ensure_workforces(session: Session, actor: Actor) -> dict[str, Workforce]:
    existing = {w.name: w for w in session.scalars(select(Workforce))}
    for values in WORKFORCES:
        if values["name"] not in existing:
            existing[values["name"]] = workforces.create_workforce(session, actor, **values)
    return existing


def _ensure_account(session: Session, actor: Actor, name: str, role: str,
                    workforce_id: int | None = None, locale: str | None = None) -> int:
    from coordinator.accounts.models import Account

    account = session.scalar(select(Account).where(Account.name == name))
    if account is None:
        account = accounts.create_account(session, actor, name=name, role=role,
                                          workforce_id=workforce_id, locale=locale)
    return account.id


def _publish_guideline(session: Session, actor: Actor, project_id: int) -> None:
    version = guidelines.create_draft(session, actor, project_id, title="Review sentiment",
                                      source_markdown=GUIDELINE)
    guidelines.publish(session, actor, project_id, version.number)
    for locale, texts in GUIDELINE_TRANSLATIONS.items():
        catalog = read_po(io.BytesIO(guidelines.export_po(session, project_id, version.number, locale)))
        for message, text in zip([m for m in catalog if m.id], texts, strict=True):
            message.string = text
        filled = io.BytesIO()
        write_po(filled, catalog)
        guidelines.import_po(session, actor, project_id, version.number, locale, filled.getvalue())


def seed_demo(session: Session) -> DemoResult:
    """Create the demo data once; later calls only issue fresh tokens."""
    actor = Actor.system()
    forces = _ensure_workforces(session, actor)
    project = session.scalar(select(Project).where(Project.name == PROJECT_NAME))
    created = project is None
    if project is None:
        project = projects.create_project(
            session, actor, name=PROJECT_NAME,
            description="Sentiment of short product reviews in eleven languages.",
            label_classes=["positive", "neutral", "negative"], source_locale="en",
            redundancy=3, residency_region="global",
        )
        rows = imports.read_jsonl(io.BytesIO(_task_lines()), project, max_tasks=len(REVIEWS))
        imports.store_tasks(session, actor, project.id, rows, source_format="jsonl")
        _publish_guideline(session, actor, project.id)
    manager_id = _ensure_account(session, actor, "demo-manager", "manager", locale="en")
    vendor = forces["Nordlicht Annotation GmbH"]
    vendor_id = _ensure_account(session, actor, "demo-vendor-nordlicht", "vendor",
                                workforce_id=vendor.id, locale="de")
    manager_token = accounts.issue_token(session, actor, manager_id, name="demo").secret
    vendor_token = accounts.issue_token(session, actor, vendor_id, name="demo").secret
    return DemoResult(project, created, manager_token, vendor_token, vendor.name)
