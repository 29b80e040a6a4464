"""The report's charts, drawn by matplotlib into inline SVG.

Figures are made with ``matplotlib.figure.Figure`` and never through pyplot, so no global
state or GUI backend is involved and requests may draw at the same time; text stays text
in the SVG (``svg.fonttype: none``) so the browser renders it in the page's font and the
chart prints sharply.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # never a GUI backend in a server, whatever the environment says
from matplotlib import rc_context  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

_STYLE = {"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
          "axes.spines.right": False}


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    with rc_context(_STYLE):
        figure.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prologue and doctype: inline in HTML


def agreement_bars(groups: Sequence[tuple[str, Sequence[dict[str, Any]], str]],
                   metrics: Sequence[tuple[str, str]]) -> str:
    """Bar charts of ``metrics`` (key, legend) per group, one panel per (title, rows, key)."""
    with rc_context(_STYLE):
        figure = Figure(figsize=(8, 2.8 * len(groups)))
        for position, (title, rows, key) in enumerate(groups, start=1):
            axes = figure.add_subplot(len(groups), 1, position)
            names = [str(row[key]) for row in rows]
            width = 0.8 / max(len(metrics), 1)
            for offset, (metric, legend) in enumerate(metrics):
                values = [row.get(metric) if row.get(metric) is not None else 0.0 for row in rows]
                axes.bar([i + offset * width for i in range(len(rows))], values, width,
                         label=legend)
            axes.set_xticks([i + width * (len(metrics) - 1) / 2 for i in range(len(rows))],
                            names)
            axes.set_ylim(min(0.0, *(row.get(m) or 0.0 for row in rows for m, _ in metrics)),
                          1.0)
            axes.axhline(0, color="#444", linewidth=0.6)
            axes.set_title(title)
            # Beside the axes, not on them: inside, the legend hid the bars it explains.
            axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                        frameon=False)
        figure.tight_layout()
        return _svg(figure)


def confusion_heatmaps(panels: Sequence[tuple[str, Sequence[Sequence[float]]]],
                       classes: Sequence[str], true_label: str, answered_label: str) -> str:
    """One heatmap per (title, matrix), cells annotated with their probability."""
    columns = min(len(panels), 3)
    rows = -(-len(panels) // columns)
    with rc_context(_STYLE):
        figure = Figure(figsize=(3.2 * columns, 3.0 * rows))
        for position, (title, matrix) in enumerate(panels, start=1):
            axes = figure.add_subplot(rows, columns, position)
            axes.imshow(matrix, cmap="Blues", vmin=0.0, vmax=1.0)
            axes.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
            axes.set_yticks(range(len(classes)), classes)
            axes.set_xlabel(answered_label)
            axes.set_ylabel(true_label)
            axes.set_title(title)
            for i, line in enumerate(matrix):
                for j, value in enumerate(line):
                    axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                              color="white" if value > 0.6 else "black")
        figure.tight_layout()
        return _svg(figure)


def gold_line(days: Sequence[str], accuracy: Sequence[float], title: str, y_label: str) -> str:
    """Gold accuracy per day."""
    with rc_context(_STYLE):
        figure = Figure(figsize=(8, 2.8))
        axes = figure.add_subplot(1, 1, 1)
        axes.plot(range(len(days)), accuracy, marker="o", markersize=3)
        step = max(1, len(days) // 10)
        axes.set_xticks(range(0, len(days), step), list(days)[::step], rotation=30, ha="right")
        axes.set_ylim(0.0, 1.0)
        axes.set_ylabel(y_label)
        axes.set_title(title)
        figure.tight_layout()
        return _svg(figure)
