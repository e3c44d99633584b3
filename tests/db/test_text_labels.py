"""Text labels: classes kept as text, returned by predict_label; predict refuses with a hint."""

from __future__ import annotations

import psycopg
import pytest

SETOSA = "ARRAY[5.1, 3.5, 1.4, 0.2]"


@pytest.fixture(scope="module")
def flowers(conn: psycopg.Connection) -> str:
    conn.execute(
        "CREATE TABLE flowers AS SELECT sepal_length, sepal_width, petal_length, petal_width,"
        " (ARRAY['virginica', 'setosa', 'versicolor'])[target + 1] AS species FROM pyml.iris"
    )
    conn.execute(
        "SELECT * FROM pyml.train('flowers', 'classification', 'flowers', 'species', 'lightgbm')"
    )
    return "flowers"


def test_classes_are_the_text_labels_in_proba_order(conn: psycopg.Connection, flowers: str) -> None:
    (classes,) = conn.execute(
        "SELECT m.classes FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
        " WHERE p.name = %s",
        (flowers,),
    ).fetchone()
    assert classes == ["setosa", "versicolor", "virginica"]
    label, proba = conn.execute(
        f"SELECT pyml.predict_label(%s, {SETOSA}), pyml.predict_proba(%s, {SETOSA})",
        (flowers, flowers),
    ).fetchone()
    assert label == "virginica"  # target 0 was relabelled 'virginica' above
    assert classes[max(range(3), key=proba.__getitem__)] == label


def test_predict_label_of_table_rows(conn: psycopg.Connection, flowers: str) -> None:
    (right,) = conn.execute(
        "SELECT avg((pyml.predict_label(%s, f) = f.species)::int) FROM flowers f", (flowers,)
    ).fetchone()
    assert right > 0.9


def test_predict_refuses_text_labels_with_a_hint(conn: psycopg.Connection, flowers: str) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue) as info:
        conn.execute(f"SELECT pyml.predict(%s, {SETOSA})", (flowers,))
    assert "predict_label" in (info.value.diag.message_hint or "")
