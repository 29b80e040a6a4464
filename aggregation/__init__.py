"""Label aggregation over (task, worker, label) tables: pure computation, no Flask, no database.

Importing this package loads NumPy and pandas only: crowd-kit is imported when a method
that needs it runs, torch only by the torch engine.

- :func:`aggregate` runs one method (Dawid-Skene by default) and returns an
  :class:`AggregationResult`: labels, posteriors, worker skills or confusions, iterations.
- :class:`DawidSkene` is the fast engine with crowd-kit's interface.
- :mod:`aggregation.agreement`: Krippendorff's alpha, Fleiss' and Cohen's kappa, accuracy
  against consensus or gold, overall or per group.
- :mod:`aggregation.table`: the input rules and their errors; :mod:`aggregation.io`: CSV.
"""

from .dawid_skene import DawidSkene
from .methods import DEFAULT_METHOD, METHODS, AggregationResult, aggregate, split_gold
from .table import (
    AggregationInputError,
    DuplicateLabelsError,
    GoldConflictError,
    LabelTable,
    MissingColumnsError,
    MissingValuesError,
    UnknownLabelsError,
    prepare_gold,
    prepare_labels,
)

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "AggregationInputError",
    "AggregationResult",
    "DawidSkene",
    "DuplicateLabelsError",
    "GoldConflictError",
    "LabelTable",
    "MissingColumnsError",
    "MissingValuesError",
    "UnknownLabelsError",
    "aggregate",
    "prepare_gold",
    "prepare_labels",
    "split_gold",
]
