"""The report as CSV tables and as an HTML page, localised to the reader."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from babel.dates import format_date, format_datetime
from flask import render_template
from flask_babel import gettext

from coordinator.localisation import reader_locale
from coordinator.reports import charts
from i18n.formatting import format_money, format_number, format_ratio
from i18n.locales import parse_locale

_AGREEMENT = ["labels", "tasks", "workers", "krippendorff_alpha", "fleiss_kappa",
              "cohen_kappa", "accuracy_consensus", "accuracy_gold"]


def _agreement(by: str | None) -> Callable[[dict[str, Any]], tuple[list[str], list[dict]]]:
    def table(report: dict[str, Any]) -> tuple[list[str], list[dict]]:
        section = report["agreement"]
        if by is None:
            rows = [section["overall"]] if section["overall"] else []
            return _AGREEMENT, rows
        extra = ["name"] if by == "workforce" else []
        return [by, *extra, *_AGREEMENT], section[f"by_{by}"]
    return table


def _confusion(report: dict[str, Any]) -> tuple[list[str], list[dict]]:
    classes = report["confusion"]["classes"]
    rows = [{"workforce_id": item["workforce_id"], "name": item["name"], "true": true,
             "answered": answered, "probability": item["matrix"][i][j]}
            for item in report["confusion"]["by_workforce"] if item["matrix"] is not None
            for i, true in enumerate(classes) for j, answered in enumerate(classes)]
    return ["workforce_id", "name", "true", "answered", "probability"], rows


def _disagreement(report: dict[str, Any]) -> tuple[list[str], list[dict]]:
    classes = report["project"]["classes"]
    rows = [{**{k: v for k, v in row.items() if k != "counts"},
             **{f"count_{c}": row["counts"][c] for c in classes}}
            for row in report["disagreement"]["rows"]]
    return (["task_id", "external_id", "labels", "agreement", "entropy", "consensus",
             "confidence", *(f"count_{c}" for c in classes)], rows)


#: The report section each CSV download comes from, where its name does not say it.
SECTIONS = {"confusion_by_workforce": "confusion", "worker_skills": "confusion"}

#: Every CSV download: name -> (columns, rows) of a report.
TABLES: dict[str, Callable[[dict[str, Any]], tuple[list[str], list[dict]]]] = {
    "agreement": _agreement(None),
    **{f"agreement_by_{by}": _agreement(by) for by in ("workforce", "region", "locale",
                                                        "worker")},
    "gold_over_time": lambda r: (["day", "labels", "correct", "accuracy"],
                                 r["gold_over_time"]["rows"]),
    "confusion_by_workforce": _confusion,
    "worker_skills": lambda r: (["worker_id", "external_id", "workforce_id", "skill", "labels",
                                 "gold_answers", "gold_correct", "gold_accuracy"],
                                r["confusion"]["workers"]),
    "cost": lambda r: (["workforce_id", "name", "currency", "labels", "spend",
                        "consensus_labels", "cost_per_consensus_label"], r["cost"]["rows"]),
    "disagreement": _disagreement,
}


#: A cell starting with one of these is a formula to a spreadsheet: worker ids, task ids
#: and names come from vendors and importers, so such a cell gets a leading ``'``.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def to_csv(report: dict[str, Any], name: str) -> str:
    """Return table ``name`` as CSV; every row names the run and the labels it came from."""
    columns, rows = TABLES[name](report)
    source = report[SECTIONS.get(name, name.split("_by_")[0])]["source"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    # A run-scoped table has no labels fingerprint of its own: the run's input fingerprint.
    fingerprint = source["labels_fingerprint"] or source["run_fingerprint"]
    writer.writerow([*columns, "run_id", "labels_fingerprint"])
    for row in rows:
        writer.writerow([*(_cell(row.get(c)) for c in columns),
                         _cell(source["run_id"]), _cell(fingerprint)])
    return buffer.getvalue()


# --- HTML ------------------------------------------------------------------------------------


class _Format:
    """Number, money and date formatting in one locale, for the template."""

    def __init__(self, locale: str) -> None:
        self.locale = locale

    def ratio(self, value: float | None) -> str:
        return "–" if value is None else format_ratio(value, self.locale)

    def number(self, value: float | int | None, digits: int = 3) -> str:
        if value is None:
            return "–"
        if isinstance(value, float):
            value = round(Decimal(str(value)), digits)
        return format_number(value, self.locale)

    def money(self, amount: Decimal | None, currency: str) -> str:
        return "–" if amount is None else format_money(amount, currency, self.locale)

    def moment(self, value: datetime | None) -> str:
        return "–" if value is None else format_datetime(
            value, "medium", tzinfo=value.tzinfo, locale=parse_locale(self.locale))

    def day(self, value: str) -> str:
        return format_date(date.fromisoformat(value), "medium", locale=parse_locale(self.locale))


def _charts(report: dict[str, Any]) -> dict[str, str | None]:
    section = report["agreement"]
    metrics = [("krippendorff_alpha", gettext("Krippendorff's alpha")),
               ("fleiss_kappa", gettext("Fleiss' kappa")),
               ("accuracy_gold", gettext("Accuracy against gold"))]
    groups = [(gettext("Agreement by workforce"), section["by_workforce"], "name"),
              (gettext("Agreement by guideline locale"), section["by_locale"], "locale")]
    groups = [group for group in groups if group[1]]
    confusion = report["confusion"]
    panels = [(item["name"], item["matrix"]) for item in confusion["by_workforce"]
              if item["matrix"] is not None]
    gold = report["gold_over_time"]["rows"]
    return {
        "agreement": charts.agreement_bars(groups, metrics) if groups else None,
        "confusion": charts.confusion_heatmaps(
            panels, confusion["classes"], gettext("True class"), gettext("Answered"))
        if panels else None,
        "gold": charts.gold_line([row["day"] for row in gold], [row["accuracy"] for row in gold],
                                 gettext("Accuracy on gold tasks per day"),
                                 gettext("Accuracy")) if gold else None,
    }


def to_html(report: dict[str, Any], *, csv_urls: dict[str, str]) -> str:
    """Return the report page: tables, charts and the source of every figure."""
    locale = reader_locale()
    return render_template("reports/report.html", report=report, charts=_charts(report),
                           fmt=_Format(locale), lang=locale.replace("_", "-"),
                           csv_urls=csv_urls)
