"""The store's rows, built from result rows as PL/Python gives them: jsonb columns (selected
as text) parsed, and a column missing or one too many refused at once (TypeError), so that a
query and its row type cannot drift apart unnoticed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from sklearn.linear_model import LinearRegression

from pyml.core import artifacts
from pyml.core.registry import FileRow
from pyml.errors import DataCorrupted
from pyml.server.store import _rows

MODEL = {
    "id": 1,
    "project_id": 2,
    "project": "p",
    "task": "classification",
    "algorithm": "linear",
    "status": "successful",
    "metrics": '{"f1": 0.5}',
    "num_features": 2,
    "feature_names": ["a", "b"],
    "classes": '["no", "yes"]',
    "snapshot_id": None,
    "preprocess": '{"a": {"impute": "mean"}}',
}
SNAPSHOT = {
    "id": 3,
    "relation_name": "public.t",
    "y_column_name": ["y"],
    "test_size": 0.25,
    "test_sampling": "last",
    "preprocess": "{}",
}
SETTINGS = {
    "id": 1,
    "project_id": 2,
    "algorithm": "linear",
    "hyperparams": "{}",
    "preprocess": "{}",
    "baseline": None,
    "columns": None,
    "relation_name": None,
    "y_column_name": None,
    "test_size": None,
    "test_sampling": None,
}
LOGGED = {"features": "[1.5, 2]", "prediction": '"yes"'}


def test_jsonb_columns_arrive_parsed() -> None:
    model = _rows.parse_model(MODEL)
    assert (model.metrics, model.classes, model.preprocess) == (
        {"f1": 0.5},
        ["no", "yes"],
        {"a": {"impute": "mean"}},
    )
    assert _rows.parse_model({**MODEL, "metrics": None, "classes": None}).metrics == {}
    assert _rows.parse_snapshot(SNAPSHOT).preprocess == {}
    assert _rows.parse_settings(SETTINGS).hyperparams == {}
    assert _rows.parse_logged_call(LOGGED) == ([1.5, 2], "yes")


@pytest.mark.parametrize(
    ("parse", "row"),
    [
        (_rows.parse_model, MODEL),
        (_rows.parse_snapshot, SNAPSHOT),
        (_rows.parse_settings, SETTINGS),
        (_rows.parse_logged_call, LOGGED),
        (_rows.ProjectRow, {"id": 1, "name": "p", "task": "regression", "owner": "alice"}),
    ],
    ids=["model", "snapshot", "settings", "logged call", "project"],
)
def test_a_missing_or_extra_column_is_refused(
    parse: Callable[..., Any], row: dict[str, Any]
) -> None:
    build = (lambda r: parse(**r)) if isinstance(parse, type) else parse
    build(row)
    with pytest.raises(TypeError):
        build({**row, "extra": "0"})
    with pytest.raises(TypeError):
        build(dict(list(row.items())[1:]))


def test_artifacts_load_file_rows_and_mappings_alike() -> None:
    X, y = [[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0]
    (part,) = artifacts.dump("sklearn", LinearRegression().fit(X, y))
    row = FileRow(part.part, part.format, part.sha256, part.data)
    assert artifacts.load([row]).parts[0].predict([[3.0]]) == pytest.approx([3.0])
    assert artifacts.load([row._asdict()]).parts[0].predict([[3.0]]) == pytest.approx([3.0])
    bad = row._replace(sha256=hashlib.sha256(b"other").hexdigest())
    with pytest.raises(DataCorrupted, match="part 0 fails its checksum"):
        artifacts.load([bad])
