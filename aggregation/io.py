"""Label, gold and result tables on disk, as CSV.

Label tables have the columns ``task,worker,label`` (crowd-kit's names), gold tables
``task,label``. Every cell is read as text, so identifiers such as ``007`` keep their
leading zeros and a label ``1`` is the class ``"1"``: give the project's classes as text
too. Only an empty cell is missing; ``NA`` or ``null`` are ordinary values.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import pandas as pd

from .methods import AggregationResult
from .table import COLUMNS, GOLD_COLUMNS, MissingColumnsError, prepare_gold

PathOrFile = str | Path | IO[str]


def _read(source: PathOrFile, needed: tuple[str, ...], what: str) -> pd.DataFrame:
    frame = pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise MissingColumnsError(missing, frame.columns, what)
    return frame


def read_labels(source: PathOrFile) -> pd.DataFrame:
    """Read a label table (task, worker, label, and any extra columns) as text."""
    return _read(source, COLUMNS, "label table")


def read_gold(source: PathOrFile, classes: Any = None) -> pd.Series:
    """Read a gold table into a Series of labels by task (validated like any gold)."""
    frame = _read(source, GOLD_COLUMNS, "gold table")
    if classes is None:
        classes = tuple(pd.unique(frame["label"].dropna()))
    return prepare_gold(frame, classes)


def write_labels(frame: pd.DataFrame, target: PathOrFile) -> None:
    """Write a label table with its three columns first."""
    columns = [*COLUMNS, *[c for c in frame.columns if c not in COLUMNS]]
    frame.loc[:, columns].to_csv(target, index=False)


def write_result(result: AggregationResult, target: PathOrFile) -> None:
    """Write ``task,label,confidence`` and one ``p_<class>`` posterior column per class."""
    table = pd.DataFrame({"label": result.labels, "confidence": result.confidence()})
    posteriors = result.posteriors.add_prefix("p_")
    pd.concat([table, posteriors], axis=1).rename_axis("task").reset_index().to_csv(
        target, index=False)
