"""The fast reading of label submissions agrees with the schema it stands in for."""

from __future__ import annotations

import pytest

from coordinator.errors import InvalidInput
from coordinator.labels.parsing import parse_submission
from coordinator.labels.schemas import SubmitIn
from coordinator.labels.services import Submission

ITEM = {"assignment_id": 7, "worker_id": "w1", "label": "positive"}


def test_plain_items_read_as_the_schema_reads_them():
    body = {"labels": [ITEM, {**ITEM, "worker_identity": "h" * 32, "locale": "de",
                              "supersedes": 3}]}
    expected = [Submission(**item) for item in SubmitIn().load(body)["labels"]]
    assert parse_submission(body) == expected


def test_values_the_schema_converts_still_convert():
    assert parse_submission({"labels": [{**ITEM, "assignment_id": "7"}]}) == [Submission(**ITEM)]


@pytest.mark.parametrize(("body", "where"), [
    ({"labels": [{**ITEM, "colour": "red"}]}, "labels"),
    ({"labels": [{**ITEM, "worker_id": ""}]}, "labels"),
    ({"labels": [{"worker_id": "w", "label": "x"}]}, "labels"),
    ({"labels": [ITEM] * 5001}, "labels"),
    ({"labels": []}, "labels"),
    ({"label": [ITEM]}, "label"),
    ([ITEM], "_"),
])
def test_bad_bodies_get_the_schemas_field_errors(body, where):
    with pytest.raises(InvalidInput) as raised:
        parse_submission(body)
    assert where in raised.value.errors
