"""pyml.predict and friends: every overload, by project and by model id, errors, consistency."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql

FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
ARRAY_TYPES = ("real", "double precision", "smallint", "integer", "bigint", "numeric")
REL = 1e-6  # predictions are real: compare with a relative tolerance


@dataclass(frozen=True)
class Trained:
    project: str
    model_id: int  # the live model
    other_id: int | None = None  # a model of the same project that is not deployed


def one(conn: psycopg.Connection, query: Any, params: Any = None) -> Any:
    """The single value of a one-row, one-column query."""
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def train(
    conn: psycopg.Connection,
    project: str,
    relation: str,
    label: str,
    task: str | None = None,
    algorithm: str = "linear",
    hyperparams: dict[str, Any] | None = None,
    automatic_deploy: bool = True,
) -> int:
    """Train one model; return its id."""
    conn.execute(
        "SELECT * FROM pyml.train(%s, task => %s, relation_name => %s, y_column_name => %s,"
        " algorithm => %s, hyperparams => %s::jsonb, automatic_deploy => %s)",
        (
            project,
            task,
            relation,
            label,
            algorithm,
            json.dumps(hyperparams or {}),
            automatic_deploy,
        ),
    )
    return int(
        one(
            conn,
            "SELECT max(m.id) FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
            " WHERE p.name = %s",
            (project,),
        )
    )


def live(conn: psycopg.Connection, project: str) -> int:
    return int(
        one(conn, "SELECT model_id FROM pyml.deployed_models WHERE project = %s", (project,))
    )


def diabetes_rows(conn: psycopg.Connection, n: int) -> list[list[float]]:
    """The first ``n`` rows of pyml.diabetes as feature lists (exact real values)."""
    cur = conn.execute(
        "SELECT ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6]::float8[]"
        " FROM pyml.diabetes ORDER BY ctid LIMIT %s",
        (n,),
    )
    return [list(r[0]) for r in cur.fetchall()]


# ---------------------------------------------------------------------------
# Models shared by the tests of this module (trained once)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def diabetes(conn: psycopg.Connection) -> Trained:
    """Linear regression (live) and a LightGBM model that is not deployed."""
    live_id = train(conn, "predict_diabetes", "pyml.diabetes", "target", "regression")
    other = train(
        conn,
        "predict_diabetes",
        "pyml.diabetes",
        "target",
        algorithm="lightgbm",
        hyperparams={"n_estimators": 10},
        automatic_deploy=False,
    )
    assert live(conn, "predict_diabetes") == live_id
    return Trained("predict_diabetes", live_id, other)


@pytest.fixture(scope="module")
def breast_cancer(conn: psycopg.Connection) -> Trained:
    """Binary classification with a boolean label (malignant)."""
    model = train(
        conn,
        "predict_breast_cancer",
        "pyml.breast_cancer",
        "malignant",
        "classification",
        "lightgbm",
        {"n_estimators": 10},
    )
    return Trained("predict_breast_cancer", model)


@pytest.fixture(scope="module")
def iris(conn: psycopg.Connection) -> Trained:
    model = train(
        conn,
        "predict_iris",
        "pyml.iris",
        "target",
        "classification",
        hyperparams={"max_iter": 1000},
    )
    return Trained("predict_iris", model)


@pytest.fixture(scope="module")
def iris_codes(conn: psycopg.Connection) -> Trained:
    """Numeric class labels that are not 0..n-1 and not first seen in sorted order."""
    conn.execute(
        "CREATE TABLE public.iris_codes AS SELECT sepal_length, sepal_width, petal_length,"
        " petal_width, (ARRAY[30, 10, 20])[target + 1] AS code FROM pyml.iris"
    )
    model = train(
        conn,
        "predict_iris_codes",
        "public.iris_codes",
        "code",
        "classification",
        hyperparams={"max_iter": 1000},
    )
    return Trained("predict_iris_codes", model)


@pytest.fixture(scope="module")
def iris_names(conn: psycopg.Connection) -> Trained:
    """Text class labels, first seen in an order that is not the sorted one."""
    conn.execute(
        "CREATE TABLE public.iris_names AS SELECT sepal_length, sepal_width, petal_length,"
        " petal_width, (ARRAY['zeta', 'alpha', 'mu'])[target + 1] AS species FROM pyml.iris"
    )
    model = train(
        conn,
        "predict_iris_names",
        "public.iris_names",
        "species",
        "classification",
        hyperparams={"max_iter": 1000},
    )
    return Trained("predict_iris_names", model)


@pytest.fixture(scope="module")
def digits(conn: psycopg.Connection) -> Trained:
    """8x8 smallint[][] images: 64 features."""
    model = train(
        conn,
        "predict_digits",
        "pyml.digits",
        "target",
        "classification",
        "lightgbm",
        {"n_estimators": 5},
    )
    return Trained("predict_digits", model)


@pytest.fixture(scope="module")
def flags(conn: psycopg.Connection) -> Trained:
    """Regression on boolean features."""
    conn.execute(
        "CREATE TABLE public.iris_flags AS SELECT sepal_length > 5.8 AS long_sepal,"
        " petal_length > 4.0 AS long_petal, petal_width > 1.6 AS wide_petal,"
        " target::real AS target FROM pyml.iris"
    )
    model = train(conn, "predict_flags", "public.iris_flags", "target", "regression")
    return Trained("predict_flags", model)


@pytest.fixture(scope="module")
def linnerud(conn: psycopg.Connection) -> Trained:
    conn.execute(
        "SELECT * FROM pyml.train_joint('predict_linnerud', 'regression', 'pyml.linnerud',"
        " ARRAY['weight', 'waist', 'pulse'])"
    )
    return Trained("predict_linnerud", live(conn, "predict_linnerud"))


# ---------------------------------------------------------------------------
# Array overloads
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("sqltype", ARRAY_TYPES)
def test_every_number_array_type_gives_the_same_prediction(
    conn: psycopg.Connection, diabetes: Trained, sqltype: str
) -> None:
    values = [1, 0, 2, 1, 0, 3, 1, 2, 0, 1]  # exact in every number type
    expected = one(conn, "SELECT pyml.predict(%s::text, %s::float8[])", (diabetes.project, values))
    zeros = one(conn, "SELECT pyml.predict(%s::text, %s::float8[])", (diabetes.project, [0] * 10))
    assert expected != pytest.approx(zeros, rel=REL)  # the features are used
    query = sql.SQL("SELECT pyml.predict(%s::text, %s::{}[])").format(sql.SQL(sqltype))
    assert one(conn, query, (diabetes.project, values)) == pytest.approx(expected, rel=REL)


def test_real_array_of_a_table_row(conn: psycopg.Connection, diabetes: Trained) -> None:
    (row,) = diabetes_rows(conn, 1)
    as_real = one(
        conn, "SELECT pyml.predict(%s::text, %s::float8[]::real[])", (diabetes.project, row)
    )
    from_table = one(
        conn,
        "SELECT pyml.predict(%s::text, ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6])"
        " FROM pyml.diabetes ORDER BY ctid LIMIT 1",
        (diabetes.project,),
    )
    assert as_real == pytest.approx(from_table, rel=REL)


def test_numeric_array_literal(conn: psycopg.Connection, diabetes: Trained) -> None:
    assert one(conn, "SELECT pg_typeof(ARRAY[1.5, 2.0])::text") == "numeric[]"
    numeric = one(
        conn,
        "SELECT pyml.predict(%s::text, ARRAY[1.5, 2.0, 0.25, -1.5, 0.5, 0, 1, -2.0, 0.75, 3])",
        (diabetes.project,),
    )
    float8 = one(
        conn,
        "SELECT pyml.predict(%s::text, %s::float8[])",
        (diabetes.project, [1.5, 2.0, 0.25, -1.5, 0.5, 0.0, 1.0, -2.0, 0.75, 3.0]),
    )
    assert numeric == pytest.approx(float8, rel=REL)


def test_boolean_array_true_is_one(conn: psycopg.Connection, flags: Trained) -> None:
    by_bool = one(conn, "SELECT pyml.predict(%s::text, ARRAY[true, false, true])", (flags.project,))
    by_int = one(conn, "SELECT pyml.predict(%s::text, ARRAY[1, 0, 1])", (flags.project,))
    all_false = one(
        conn, "SELECT pyml.predict(%s::text, ARRAY[false, false, false])", (flags.project,)
    )
    all_zero = one(conn, "SELECT pyml.predict(%s::text, ARRAY[0, 0, 0])", (flags.project,))
    assert by_bool == pytest.approx(by_int, rel=REL)
    assert all_false == pytest.approx(all_zero, rel=REL)
    assert by_bool != pytest.approx(all_false, rel=REL)


def test_boolean_row(conn: psycopg.Connection, flags: Trained) -> None:
    rows = conn.execute(
        "SELECT pyml.predict(%s::text, f),"
        " pyml.predict(%s::text, ARRAY[long_sepal::int, long_petal::int, wide_petal::int])"
        " FROM public.iris_flags f",
        (flags.project, flags.project),
    ).fetchall()
    assert len(rows) == 150
    for by_row, by_array in rows:
        assert by_row == pytest.approx(by_array, rel=REL)
    assert len({round(r[0], 4) for r in rows}) > 1


def test_multidimensional_array_is_flattened(conn: psycopg.Connection, digits: Trained) -> None:
    rows = conn.execute(
        "SELECT target, pyml.predict(%s::text, image),"
        " pyml.predict(%s::text, ARRAY(SELECT unnest(image))::int4[]),"
        " pyml.predict(%s::text, d)"
        " FROM pyml.digits d ORDER BY ctid LIMIT 40",
        (digits.project, digits.project, digits.project),
    ).fetchall()
    for _, image, flat, row in rows:
        assert image == flat == row
    assert sum(target == image for target, image, _, _ in rows) >= 30
    assert one(conn, "SELECT pg_typeof(image)::text FROM pyml.digits LIMIT 1") == "smallint[]"
    assert one(conn, "SELECT array_ndims(image) FROM pyml.digits LIMIT 1") == 2


def test_two_dimensional_float_array(conn: psycopg.Connection, diabetes: Trained) -> None:
    values = [1.5, 2.0, 0.25, -1.5, 0.5, 0.0, 1.0, -2.0, 0.75, 3.0]
    flat = one(conn, "SELECT pyml.predict(%s::text, %s::float8[])", (diabetes.project, values))
    square = one(
        conn,
        "SELECT pyml.predict(%s::text, %s::float8[])",
        (diabetes.project, [values[:5], values[5:]]),
    )
    assert square == pytest.approx(flat, rel=REL)


# ---------------------------------------------------------------------------
# The ROW overload
# ---------------------------------------------------------------------------


def test_row_constructor_matches_by_position(conn: psycopg.Connection, diabetes: Trained) -> None:
    values = [1.5, 2.0, 0.25, -1.5, 0.5, 0.0, 1.0, -2.0, 0.75, 3.0]
    by_array = one(conn, "SELECT pyml.predict(%s::text, %s::float8[])", (diabetes.project, values))
    by_row = one(
        conn,
        "SELECT pyml.predict(%s::text, ROW(1.5, 2.0, 0.25, -1.5, 0.5, 0.0, 1.0, -2.0, 0.75, 3.0))",
        (diabetes.project,),
    )
    assert by_row == pytest.approx(by_array, rel=REL)


def test_training_table_row_with_label(conn: psycopg.Connection, diabetes: Trained) -> None:
    rows = conn.execute(
        "SELECT pyml.predict(%s::text, d),"
        " pyml.predict(%s::text, ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6])"
        " FROM pyml.diabetes d ORDER BY ctid LIMIT 25",
        (diabetes.project, diabetes.project),
    ).fetchall()
    assert len(rows) == 25
    for by_row, by_array in rows:
        assert by_row == pytest.approx(by_array, rel=REL)


def test_row_with_columns_in_another_order_is_matched_by_name(
    conn: psycopg.Connection, diabetes: Trained
) -> None:
    conn.execute(
        "CREATE TABLE public.diabetes_reordered AS"
        " SELECT target, s6, s5, s4, s3, s2, s1, bp, bmi, sex, age FROM pyml.diabetes"
    )
    rows = conn.execute(
        "SELECT pyml.predict(%s::text, r),"
        " pyml.predict(%s::text, ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6])"
        " FROM public.diabetes_reordered r ORDER BY ctid LIMIT 10",
        (diabetes.project, diabetes.project),
    ).fetchall()
    for by_row, by_array in rows:
        assert by_row == pytest.approx(by_array, rel=REL)


# ---------------------------------------------------------------------------
# By model id
# ---------------------------------------------------------------------------


def test_predict_by_model_id(conn: psycopg.Connection, diabetes: Trained) -> None:
    assert diabetes.other_id is not None
    (row,) = diabetes_rows(conn, 1)
    by_project = one(conn, "SELECT pyml.predict(%s::text, %s::float8[])", (diabetes.project, row))
    by_live_id = one(
        conn, "SELECT pyml.predict(%s::bigint, %s::float8[])", (diabetes.model_id, row)
    )
    by_other_id = one(
        conn, "SELECT pyml.predict(%s::bigint, %s::float8[])", (diabetes.other_id, row)
    )
    assert by_live_id == pytest.approx(by_project, rel=REL)
    assert by_other_id != pytest.approx(by_project, rel=1e-3)  # another model, not the live one


@pytest.mark.parametrize("sqltype", ARRAY_TYPES)
def test_predict_by_model_id_every_array_type(
    conn: psycopg.Connection, diabetes: Trained, sqltype: str
) -> None:
    values = [1, 0, 2, 1, 0, 3, 1, 2, 0, 1]
    expected = one(
        conn, "SELECT pyml.predict(%s::bigint, %s::float8[])", (diabetes.other_id, values)
    )
    query = sql.SQL("SELECT pyml.predict(%s::bigint, %s::{}[])").format(sql.SQL(sqltype))
    assert one(conn, query, (diabetes.other_id, values)) == pytest.approx(expected, rel=REL)


def test_predict_by_model_id_row(conn: psycopg.Connection, diabetes: Trained) -> None:
    rows = conn.execute(
        "SELECT pyml.predict(%s::bigint, d),"
        " pyml.predict(%s::bigint, ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6])"
        " FROM pyml.diabetes d ORDER BY ctid LIMIT 10",
        (diabetes.other_id, diabetes.other_id),
    ).fetchall()
    for by_row, by_array in rows:
        assert by_row == pytest.approx(by_array, rel=REL)


def test_predict_by_model_id_bool_array(conn: psycopg.Connection, flags: Trained) -> None:
    by_bool = one(
        conn, "SELECT pyml.predict(%s::bigint, ARRAY[true, true, false])", (flags.model_id,)
    )
    by_int = one(conn, "SELECT pyml.predict(%s::bigint, ARRAY[1, 1, 0])", (flags.model_id,))
    assert by_bool == pytest.approx(by_int, rel=REL)


def test_unknown_model_id(conn: psycopg.Connection, diabetes: Trained) -> None:
    with pytest.raises(psycopg.errors.UndefinedObject):
        conn.execute("SELECT pyml.predict(%s::bigint, %s::float8[])", (10**12, [0.0] * 10))


def test_unknown_project(conn: psycopg.Connection, project: str) -> None:
    with pytest.raises(psycopg.errors.UndefinedObject):
        conn.execute("SELECT pyml.predict(%s::text, %s::float8[])", (project, [0.0] * 10))


def test_project_with_nothing_deployed(conn: psycopg.Connection, project: str) -> None:
    train(conn, project, "pyml.diabetes", "target", "regression", automatic_deploy=False)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        conn.execute("SELECT pyml.predict(%s::text, %s::float8[])", (project, [0.0] * 10))


# ---------------------------------------------------------------------------
# Classification: labels, predict_label, predict_proba
# ---------------------------------------------------------------------------


def test_boolean_label_predicts_zero_or_one(
    conn: psycopg.Connection, breast_cancer: Trained
) -> None:
    rows = conn.execute(
        "SELECT malignant, pyml.predict(%s::text, b), pyml.predict_label(%s::text, b)"
        " FROM pyml.breast_cancer b",
        (breast_cancer.project, breast_cancer.project),
    ).fetchall()
    assert {p for _, p, _ in rows} == {0.0, 1.0}
    assert {label for _, _, label in rows} == {"true", "false"}
    for _, predicted, label in rows:
        assert label == ("true" if predicted == 1.0 else "false")
    correct = sum(int(malignant) == predicted for malignant, predicted, _ in rows)
    assert correct / len(rows) > 0.9


def test_integer_label_is_returned_as_is(conn: psycopg.Connection, iris: Trained) -> None:
    rows = conn.execute(
        "SELECT target, pyml.predict(%s::text, i) FROM pyml.iris i", (iris.project,)
    ).fetchall()
    assert {p for _, p in rows} == {0.0, 1.0, 2.0}
    assert sum(t == p for t, p in rows) / len(rows) > 0.9


def test_label_is_the_class_not_its_index(conn: psycopg.Connection, iris_codes: Trained) -> None:
    rows = conn.execute(
        "SELECT code, pyml.predict(%s::text, c), pyml.predict_label(%s::text, c)"
        " FROM public.iris_codes c",
        (iris_codes.project, iris_codes.project),
    ).fetchall()
    assert {p for _, p, _ in rows} == {10.0, 20.0, 30.0}
    assert {label for _, _, label in rows} == {"10", "20", "30"}
    assert sum(code == p for code, p, _ in rows) / len(rows) > 0.9
    for _, predicted, label in rows:
        assert label == str(int(predicted))


def test_text_labels_need_predict_label(conn: psycopg.Connection, iris_names: Trained) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue) as info:
        conn.execute(
            "SELECT pyml.predict(%s::text, ARRAY[5.1, 3.5, 1.4, 0.2])", (iris_names.project,)
        )
    assert "predict_label" in (info.value.diag.message_hint or "")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute(
            "SELECT pyml.predict(%s::bigint, ARRAY[5.1, 3.5, 1.4, 0.2])", (iris_names.model_id,)
        )


def test_predict_label_returns_text(conn: psycopg.Connection, iris_names: Trained) -> None:
    row = conn.execute(
        "SELECT pyml.predict_label(%s::text, ARRAY[5.1, 3.5, 1.4, 0.2]),"
        " pg_typeof(pyml.predict_label(%s::text, ARRAY[5.1, 3.5, 1.4, 0.2]))::text",
        (iris_names.project, iris_names.project),
    ).fetchone()
    assert row == ("zeta", "text")  # the first iris row is a setosa
    rows = conn.execute(
        "SELECT species, pyml.predict_label(%s::text, n) FROM public.iris_names n",
        (iris_names.project,),
    ).fetchall()
    assert {label for _, label in rows} == {"zeta", "alpha", "mu"}
    assert sum(s == label for s, label in rows) / len(rows) > 0.9


def _classes(conn: psycopg.Connection, model_id: int) -> list[Any]:
    return list(one(conn, "SELECT classes FROM pyml.models WHERE id = %s", (model_id,)))


@pytest.mark.parametrize("fixture", ["iris_names", "iris_codes"])
def test_predict_proba_follows_classes_order(
    conn: psycopg.Connection, request: pytest.FixtureRequest, fixture: str
) -> None:
    trained: Trained = request.getfixturevalue(fixture)
    classes = _classes(conn, trained.model_id)
    assert len(classes) == 3
    table = "public.iris_names" if fixture == "iris_names" else "public.iris_codes"
    query = sql.SQL(
        "SELECT pyml.predict_proba(%s::text, t), pyml.predict_label(%s::text, t) FROM {} t"
    ).format(sql.SQL(table))
    rows = conn.execute(query, (trained.project, trained.project)).fetchall()
    for proba, label in rows:
        assert len(proba) == 3
        assert sum(proba) == pytest.approx(1.0, abs=1e-5)
        assert all(0.0 <= p <= 1.0 for p in proba)
        best = max(range(3), key=lambda i: proba[i])
        assert str(classes[best]) == label


def test_predict_proba_binary(conn: psycopg.Connection, breast_cancer: Trained) -> None:
    assert _classes(conn, breast_cancer.model_id) == [False, True]
    rows = conn.execute(
        "SELECT pyml.predict_proba(%s::text, b), pyml.predict(%s::text, b),"
        " pyml.predict_proba(%s::bigint, b) FROM pyml.breast_cancer b ORDER BY ctid LIMIT 50",
        (breast_cancer.project, breast_cancer.project, breast_cancer.model_id),
    ).fetchall()
    for proba, predicted, by_id in rows:
        assert len(proba) == 2
        assert sum(proba) == pytest.approx(1.0, abs=1e-5)
        assert predicted == (1.0 if proba[1] > proba[0] else 0.0)
        assert by_id == pytest.approx(proba, rel=REL)


def test_predict_proba_array(conn: psycopg.Connection, iris: Trained) -> None:
    proba = one(
        conn,
        "SELECT pyml.predict_proba(%s::text, ARRAY[5.1, 3.5, 1.4, 0.2]::real[])",
        (iris.project,),
    )
    by_id = one(
        conn, "SELECT pyml.predict_proba(%s::bigint, ARRAY[5.1, 3.5, 1.4, 0.2])", (iris.model_id,)
    )
    assert sum(proba) == pytest.approx(1.0, abs=1e-5)
    assert proba[0] > 0.5  # a setosa, class 0 first in pyml.models.classes
    assert by_id == pytest.approx(proba, rel=REL)


# ---------------------------------------------------------------------------
# predict_joint and predict_batch
# ---------------------------------------------------------------------------


def test_predict_joint(conn: psycopg.Connection, linnerud: Trained) -> None:
    first = one(conn, "SELECT pyml.predict_joint(%s::text, ARRAY[5, 162, 60])", (linnerud.project,))
    by_id = one(
        conn,
        "SELECT pyml.predict_joint(%s::bigint, ARRAY[5, 162, 60]::real[])",
        (linnerud.model_id,),
    )
    other = one(
        conn, "SELECT pyml.predict_joint(%s::text, ARRAY[15.0, 200.0, 100.0])", (linnerud.project,)
    )
    assert len(first) == 3
    assert by_id == pytest.approx(first, rel=REL)
    assert other != pytest.approx(first, rel=1e-3)
    weight, waist, pulse = first  # in y_column_name order
    assert 100 < weight < 260
    assert 20 < waist < 60
    assert 30 < pulse < 90


def test_predict_batch_one_prediction_per_row(conn: psycopg.Connection, diabetes: Trained) -> None:
    rows = diabetes_rows(conn, 7)
    online = [
        one(conn, "SELECT pyml.predict(%s::text, %s::float8[])", (diabetes.project, r))
        for r in rows
    ]
    flat = [v for r in rows for v in r]
    batch = [
        r[0]
        for r in conn.execute(
            "SELECT pyml.predict_batch(%s::text, %s::float8[])", (diabetes.project, flat)
        ).fetchall()
    ]
    assert batch == pytest.approx(online, rel=REL)
    by_id = [
        r[0]
        for r in conn.execute(
            "SELECT pyml.predict_batch(%s::bigint, %s::real[])", (diabetes.model_id, flat)
        ).fetchall()
    ]
    assert by_id == pytest.approx(online, rel=REL)


def test_predict_batch_of_array_agg(conn: psycopg.Connection, diabetes: Trained) -> None:
    batch = [
        r[0]
        for r in conn.execute(
            "SELECT pyml.predict_batch(%s::text,"
            " (SELECT array_agg(ARRAY[age, sex, bmi, bp, s1, s2,"
            " s3, s4, s5, s6] ORDER BY ctid) FROM pyml.diabetes))",
            (diabetes.project,),
        ).fetchall()
    ]
    per_row = [
        r[0]
        for r in conn.execute(
            "SELECT pyml.predict(%s::text, d) FROM pyml.diabetes d ORDER BY ctid",
            (diabetes.project,),
        ).fetchall()
    ]
    assert len(batch) == 442
    assert batch == pytest.approx(per_row, rel=REL)


def test_predict_batch_wrong_size(conn: psycopg.Connection, diabetes: Trained) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute(
            "SELECT pyml.predict_batch(%s::text, %s::float8[])", (diabetes.project, [0.5] * 25)
        )


# ---------------------------------------------------------------------------
# predict_into
# ---------------------------------------------------------------------------


def _columns(conn: psycopg.Connection, table: str) -> list[tuple[str, str]]:
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (table,),
        ).fetchall()
    ]


def test_predict_into_creates_the_table(
    conn: psycopg.Connection, diabetes: Trained, project: str
) -> None:
    source = f"public.{project}_src"
    target = f"public.{project}_out"
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} AS SELECT (1000 + row_number() OVER ())::int AS patient, d.*"
            " FROM pyml.diabetes d"
        ).format(sql.Identifier("public", f"{project}_src"))
    )
    assert one(conn, "SELECT to_regclass(%s)", (target,)) is None
    count = one(
        conn,
        "SELECT pyml.predict_into(%s, %s, %s, key_column => 'patient')",
        (diabetes.project, source, target),
    )
    assert count == 442
    columns = _columns(conn, target)
    assert [name for name, _ in columns] == ["patient", "prediction", "model_id", "scored_at"]
    assert columns[0][1] == "integer"  # the type of the source key column
    assert columns[3][1] == "timestamp with time zone"
    row = conn.execute(
        sql.SQL(
            "SELECT count(*), count(DISTINCT patient), min(patient), max(patient),"
            " count(*) FILTER (WHERE model_id = %s), count(scored_at), count(prediction) FROM {}"
        ).format(sql.Identifier("public", f"{project}_out")),
        (diabetes.model_id,),
    ).fetchone()
    assert row == (442, 442, 1001, 1442, 442, 442, 442)


def test_predict_into_says_where_its_time_went(
    connect: Any, diabetes: Trained, project: str
) -> None:
    """At client_min_messages = debug2, one message gives the rows written and the seconds of
    each phase (read, convert, predict, write...): what bench/phases.py reads."""
    source = sql.Identifier("public", f"{project}_timed_src")
    with connect() as timed:
        timed.execute(
            sql.SQL(
                "CREATE TABLE {} AS SELECT row_number() OVER () AS id, d.* FROM pyml.diabetes d"
            ).format(source)
        )
        said: list[str] = []
        timed.add_notice_handler(lambda d: said.append(d.message_primary or ""))
        timed.execute("SET client_min_messages = debug2")
        timed.execute(
            "SELECT pyml.predict_into(%s, %s, %s, 'id')",
            (diabetes.project, f"public.{project}_timed_src", f"public.{project}_timed_out"),
        )
    lines = [m for m in said if m.startswith("pyml: predict_into wrote")]
    assert len(lines) == 1, said
    assert lines[0].startswith("pyml: predict_into wrote 442 rows: resolve ")
    phases = dict(re.findall(r"([a-z][a-z ()]*?) (\d+\.\d{3}) s", lines[0].split(": ", 2)[2]))
    assert {"read", "convert", "predict (worker)", "write", "total"} <= set(phases)
    assert float(phases["total"]) >= float(phases["read"])


def test_predict_into_replaces_the_rows_of_its_keys(
    conn: psycopg.Connection, diabetes: Trained, project: str
) -> None:
    """A second run into an existing table replaces the row of each key it scores (upsert
    on the table's unique key); rows of other keys are left alone."""
    src = sql.Identifier("public", f"{project}_src")
    out = sql.Identifier("public", f"{project}_out")
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} AS SELECT row_number() OVER () AS id, d.*"
            " FROM pyml.diabetes d LIMIT 30"
        ).format(src)
    )
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} (id bigint PRIMARY KEY, prediction real, model_id bigint,"
            " scored_at timestamptz)"
        ).format(out)
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO {} VALUES (-1, 0, NULL, '2001-01-01'), (3, 0, NULL, '2001-01-01')"
        ).format(out)
    )
    for _ in range(2):
        assert (
            one(
                conn,
                "SELECT pyml.predict_into(%s, %s, %s)",
                (diabetes.project, f"public.{project}_src", f"public.{project}_out"),
            )
            == 30
        )
    row = conn.execute(
        sql.SQL(
            "SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE id = -1 AND prediction = 0"
            " AND model_id IS NULL AND scored_at = '2001-01-01'),"
            " count(*) FILTER (WHERE id > 0 AND model_id = %s AND scored_at > '2001-01-01'"
            " AND prediction <> 0) FROM {}"
        ).format(out),
        (diabetes.model_id,),
    ).fetchone()
    assert row == (31, 31, 1, 30)


def test_predict_into_quoted_target_name(
    conn: psycopg.Connection, diabetes: Trained, project: str
) -> None:
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} AS SELECT row_number() OVER () AS id, d.* FROM pyml.diabetes d LIMIT 5"
        ).format(sql.Identifier("public", f"{project}_src"))
    )
    target = f'public."{project} Scores"'
    assert (
        one(
            conn,
            "SELECT pyml.predict_into(%s, %s, %s)",
            (diabetes.project, f"public.{project}_src", target),
        )
        == 5
    )
    assert one(conn, "SELECT to_regclass(%s) IS NOT NULL", (target,))
    assert (
        one(
            conn,
            sql.SQL("SELECT count(*) FROM {}").format(
                sql.Identifier("public", f"{project} Scores")
            ),
        )
        == 5
    )


def test_predict_into_target_name_is_not_sql(
    conn: psycopg.Connection, diabetes: Trained, project: str
) -> None:
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} AS SELECT row_number() OVER () AS id, d.* FROM pyml.diabetes d LIMIT 5"
        ).format(sql.Identifier("public", f"{project}_src"))
    )
    with pytest.raises(psycopg.Error):
        conn.execute(
            "SELECT pyml.predict_into(%s, %s, %s)",
            (
                diabetes.project,
                f"public.{project}_src",
                "public.x (id int); DROP TABLE pyml.iris; CREATE TABLE public.y",
            ),
        )
    assert one(conn, "SELECT count(*) FROM pyml.iris") == 150


def test_predict_into_missing_source(
    conn: psycopg.Connection, diabetes: Trained, project: str
) -> None:
    with pytest.raises(psycopg.errors.UndefinedTable):
        conn.execute(
            "SELECT pyml.predict_into(%s, %s, %s)",
            (diabetes.project, f"public.{project}_missing", f"public.{project}_out"),
        )
    assert one(conn, "SELECT to_regclass(%s)", (f"public.{project}_out",)) is None


def test_predict_into_missing_key_column(
    conn: psycopg.Connection, diabetes: Trained, project: str
) -> None:
    with pytest.raises(psycopg.errors.UndefinedColumn):
        conn.execute(
            "SELECT pyml.predict_into(%s, 'pyml.diabetes', %s)",
            (diabetes.project, f"public.{project}_out"),
        )
    with pytest.raises(psycopg.errors.UndefinedColumn):
        conn.execute(
            "SELECT pyml.predict_into(%s, 'pyml.diabetes', %s, key_column => 'nope')",
            (diabetes.project, f"public.{project}_out"),
        )


# ---------------------------------------------------------------------------
# Online, set query, predict_batch and predict_into agree
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "hyperparams"),
    [("linear", {}), ("lightgbm", {"n_estimators": 20})],
    ids=["linear", "lightgbm"],
)
def test_every_path_gives_the_same_numbers(
    conn: psycopg.Connection, project: str, algorithm: str, hyperparams: dict[str, Any]
) -> None:
    name = project
    table = f"same_{algorithm}"
    model_id = train(conn, name, "pyml.diabetes", "target", "regression", algorithm, hyperparams)
    src = sql.Identifier("public", f"{table}_src")
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} AS SELECT row_number() OVER (ORDER BY ctid) AS id, d.*"
            " FROM pyml.diabetes d"
        ).format(src)
    )
    ids = list(range(1, 443, 11))  # 41 rows spread over the table
    features = {
        r[0]: list(r[1])
        for r in conn.execute(
            sql.SQL(
                "SELECT id, ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6]::float8[] FROM {}"
                " WHERE id = ANY(%s) ORDER BY id"
            ).format(src),
            (ids,),
        ).fetchall()
    }
    online = {
        i: one(conn, "SELECT pyml.predict(%s::text, %s::float8[]::real[])", (name, features[i]))
        for i in ids
    }
    by_row: dict[int, float] = dict(
        conn.execute(
            sql.SQL("SELECT id, pyml.predict(%s::text, s) FROM {} s WHERE id = ANY(%s)").format(
                src
            ),
            (name, ids),
        ).fetchall()
    )
    by_array: dict[int, float] = dict(
        conn.execute(
            sql.SQL(
                "SELECT id,"
                " pyml.predict(%s::text, ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6])"
                " FROM {} WHERE id = ANY(%s)"
            ).format(src),
            (name, ids),
        ).fetchall()
    )
    batch_values = [
        r[0]
        for r in conn.execute(
            sql.SQL(
                "SELECT pyml.predict_batch(%s::text,"
                " (SELECT array_agg(ARRAY[age, sex, bmi, bp, s1, s2,"
                " s3, s4, s5, s6] ORDER BY id) FROM {} WHERE id = ANY(%s)))"
            ).format(src),
            (name, ids),
        ).fetchall()
    ]
    batch = dict(zip(ids, batch_values, strict=True))
    assert (
        one(
            conn,
            "SELECT pyml.predict_into(%s, %s, %s)",
            (name, f"public.{table}_src", f"public.{table}_out"),
        )
        == 442
    )
    into: dict[int, float] = dict(
        conn.execute(
            sql.SQL("SELECT id, prediction FROM {} WHERE id = ANY(%s) AND model_id = %s").format(
                sql.Identifier("public", f"{table}_out")
            ),
            (ids, model_id),
        ).fetchall()
    )
    assert len(set(online.values())) > 10
    for i in ids:
        expected = online[i]
        assert by_row[i] == pytest.approx(expected, rel=REL), i
        assert by_array[i] == pytest.approx(expected, rel=REL), i
        assert batch[i] == pytest.approx(expected, rel=REL), i
        assert into[i] == pytest.approx(expected, rel=REL), i


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_wrong_feature_count(conn: psycopg.Connection, diabetes: Trained) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue) as info:
        conn.execute("SELECT pyml.predict(%s::text, ARRAY[1.0, 2.0, 3.0])", (diabetes.project,))
    message = info.value.diag.message_primary or ""
    assert re.search(r"\b10\b", message), message  # expected
    assert re.search(r"\b3\b", message), message  # given


def test_wrong_feature_count_multidimensional(conn: psycopg.Connection, digits: Trained) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue) as info:
        conn.execute("SELECT pyml.predict(%s::text, ARRAY[[1, 2], [3, 4]])", (digits.project,))
    message = info.value.diag.message_primary or ""
    assert re.search(r"\b64\b", message), message
    assert re.search(r"\b4\b", message), message


def test_wrong_feature_count_row(conn: psycopg.Connection, diabetes: Trained) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("SELECT pyml.predict(%s::text, ROW(1.0, 2.0))", (diabetes.project,))


def test_wrong_feature_count_by_model_id(conn: psycopg.Connection, diabetes: Trained) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute(
            "SELECT pyml.predict(%s::bigint, ARRAY[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])",
            (diabetes.other_id,),
        )


@pytest.mark.parametrize(
    "query",
    [
        "SELECT pyml.predict(%(project)s::text, ARRAY[0.1, 0.2, NULL, 0, 0, 0, 0, 0, 0, 0])",
        "SELECT pyml.predict(%(project)s::text, ARRAY[1, 2, 3, 4, 5, 6, 7, 8, 9, NULL]::int4[])",
        "SELECT pyml.predict(%(project)s::text, ROW(0.1, 0.2, NULL, 0, 0, 0, 0, 0, 0, 0))",
        "SELECT pyml.predict(%(other)s::bigint, ARRAY[0.1, 0.2, NULL, 0, 0, 0, 0, 0, 0, 0])",
        "SELECT pyml.predict(%(other)s::bigint, ROW(0.1, 0.2, NULL, 0, 0, 0, 0, 0, 0, 0))",
    ],
    ids=["array", "int-array", "row", "lightgbm-array", "lightgbm-row"],
)
def test_null_feature(conn: psycopg.Connection, diabetes: Trained, query: str) -> None:
    with pytest.raises(psycopg.errors.NullValueNotAllowed):
        conn.execute(query, {"project": diabetes.project, "other": diabetes.other_id})


def test_null_feature_in_a_table_row(
    conn: psycopg.Connection, diabetes: Trained, project: str
) -> None:
    table = sql.Identifier("public", project)
    conn.execute(sql.SQL("CREATE TABLE {} AS SELECT * FROM pyml.diabetes LIMIT 3").format(table))
    conn.execute(sql.SQL("UPDATE {} SET bmi = NULL").format(table))
    with pytest.raises(psycopg.errors.NullValueNotAllowed):
        conn.execute(
            sql.SQL("SELECT pyml.predict(%s::text, t) FROM {} t").format(table), (diabetes.project,)
        )


# ---------------------------------------------------------------------------
# Declaration and set queries
# ---------------------------------------------------------------------------


def test_predict_is_strict(conn: psycopg.Connection, diabetes: Trained) -> None:
    row = conn.execute(
        "SELECT pyml.predict(NULL::text, ARRAY[1, 2, 3]::real[]),"
        " pyml.predict(%s::text, NULL::real[]),"
        " pyml.predict(%s::text, NULL::int4[]),"
        " pyml.predict(NULL::bigint, ARRAY[1, 2, 3]::float8[]),"
        " pyml.predict(%s::text, NULL::pyml.diabetes),"
        " pyml.predict_label(%s::text, NULL::real[]),"
        " pyml.predict_proba(%s::text, NULL::real[])",
        (diabetes.project,) * 5,
    ).fetchone()
    assert row == (None,) * 7


def test_predict_declaration(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        "SELECT pg_get_function_identity_arguments(p.oid), p.provolatile::text,"
        " p.proparallel::text, p.proisstrict"
        " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'pyml' AND p.proname = 'predict'"
    ).fetchall()
    # PARALLEL UNSAFE, not the contract's SAFE: PL/Python runs every query in a
    # subtransaction, which parallel mode forbids (leader included), so a predict that
    # looks up its model cannot run under a Gather. test_parallel_plans_are_not_used
    # checks what matters: a query that would go parallel still works.
    assert {(vol, par, strict) for _, vol, par, strict in rows} == {("s", "u", True)}
    signatures = {r[0] for r in rows}
    for first in ("project_name text", "model_id bigint"):
        for second in (
            "features real[]",
            "features double precision[]",
            "features smallint[]",
            "features integer[]",
            "features bigint[]",
            "features numeric[]",
            "features boolean[]",
            '"row" anyelement',
        ):
            assert f"{first}, {second}" in signatures


def test_parallel_plans_are_not_used(connect, diabetes: Trained) -> None:
    """With parallel plans made free, a set query over a table still predicts every row."""
    session = connect()
    for setting in (
        "parallel_setup_cost = 0",
        "parallel_tuple_cost = 0",
        "min_parallel_table_scan_size = 0",
        "max_parallel_workers_per_gather = 2",
    ):
        session.execute(f"SET {setting}")
    plan = "\n".join(
        r[0]
        for r in session.execute(
            "EXPLAIN SELECT sum(pyml.predict(%s::text, d)) FROM pyml.diabetes d",
            (diabetes.project,),
        ).fetchall()
    )
    assert "Gather" not in plan
    total = session.execute(
        "SELECT sum(pyml.predict(%s::text, d)), count(*) FROM pyml.diabetes d", (diabetes.project,)
    ).fetchone()
    assert total[1] == 442 and total[0] > 0
    # The session is healthy afterwards.
    assert session.execute(
        "SELECT pyml.predict(%s::text, d) IS NOT NULL FROM pyml.diabetes d LIMIT 1",
        (diabetes.project,),
    ).fetchone() == (True,)


def test_set_query_over_all_rows(conn: psycopg.Connection, diabetes: Trained) -> None:
    rows = conn.execute(
        "SELECT target, pyml.predict(%s::text, d) FROM pyml.diabetes d", (diabetes.project,)
    ).fetchall()
    assert len(rows) == 442
    targets = [t for t, _ in rows]
    predictions = [p for _, p in rows]
    assert all(p is not None for p in predictions)
    mean_t = sum(targets) / len(targets)
    mean_p = sum(predictions) / len(predictions)
    assert mean_p == pytest.approx(mean_t, rel=0.05)
    cov = sum((t - mean_t) * (p - mean_p) for t, p in rows)
    var_t = sum((t - mean_t) ** 2 for t in targets)
    var_p = sum((p - mean_p) ** 2 for p in predictions)
    assert cov / (var_t * var_p) ** 0.5 > 0.6  # the predictions follow the target
    summary = conn.execute(
        "SELECT count(*), count(p) FROM (SELECT pyml.predict(%s::text, ARRAY[age, sex, bmi, bp,"
        " s1, s2, s3, s4, s5, s6]) AS p FROM pyml.diabetes) t",
        (diabetes.project,),
    ).fetchone()
    assert summary == (442, 442)


def test_predict_into_reads_large_tables_in_chunks(conn: psycopg.Connection, project: str) -> None:
    """250k rows span several chunks: every row is scored once, as online predict would."""
    conn.execute(
        "CREATE TABLE public.big AS SELECT i AS id, mod(i, 97)::real AS a,"
        " mod(i * 7, 13)::real AS b, (mod(i, 89) - mod(i * 7, 13))::real AS y"
        " FROM generate_series(1, 250000) i"
    )
    conn.execute("SELECT * FROM pyml.train(%s, 'regression', 'public.big', 'y')", (project,))
    count = conn.execute(
        "SELECT pyml.predict_into(%s, 'public.big', 'public.big_scores', 'id')", (project,)
    ).fetchone()
    assert count == (250000,)
    summary = conn.execute(
        "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM public.big_scores"
    ).fetchone()
    assert summary == (250000, 250000, 1, 250000)
    mismatches = conn.execute(
        "SELECT count(*) FROM public.big_scores s JOIN public.big b USING (id)"
        " WHERE mod(b.id, 5000) = 0"
        " AND abs(s.prediction - pyml.predict(%s, ARRAY[b.id, b.a, b.b]::float8[]))"
        "   > 1e-4 * greatest(1, abs(s.prediction))",
        (project,),
    ).fetchone()
    assert mismatches == (0,)


def test_predict_into_from_a_view(conn: psycopg.Connection, project: str) -> None:
    conn.execute("CREATE VIEW public.small_view AS SELECT * FROM public.big WHERE id <= 1000")
    conn.execute("SELECT * FROM pyml.train(%s, 'regression', 'public.big', 'y')", (project,))
    count = conn.execute(
        "SELECT pyml.predict_into(%s, 'small_view', 'view_scores', 'id')", (project,)
    ).fetchone()
    assert count == (1000,)
    assert conn.execute("SELECT count(*) FROM public.view_scores").fetchone() == (1000,)


def _keyed_table(
    conn: psycopg.Connection, project: str, prefix: str, key_type: str, first: int, rows: int
) -> tuple[str, str, dict[str, Any]]:
    """``public.<prefix>_<key_type>(k, a, y)``: ``rows`` keys of ``key_type`` from ``first``
    in steps of 3, a model of ``project`` trained on it; the table, the scores table's name
    and both as identifiers (t, s) with the key type (type)."""
    table, scores = f"{prefix}_{key_type}", f"{prefix}_{key_type}_scores"
    names = {"t": sql.Identifier(table), "s": sql.Identifier(scores), "type": sql.SQL(key_type)}
    conn.execute(
        sql.SQL(
            "CREATE TABLE public.{t} AS SELECT (%s::bigint + i * 3)::{type} AS k,"
            " mod(i, 7)::real AS a, (mod(i, 7) * 2)::real AS y FROM generate_series(0, %s) i"
        ).format(**names),
        (first, rows - 1),
    )
    conn.execute("SELECT * FROM pyml.train(%s, 'regression', %s, 'y')", (project, table))
    return table, scores, names


@pytest.mark.parametrize(
    ("key_type", "first"), [("smallint", -30000), ("integer", 7), ("bigint", 2**62 + 1)]
)
def test_predict_into_keeps_integer_keys_exact(
    conn: psycopg.Connection, project: str, key_type: str, first: int
) -> None:
    """Integer keys go to and fro as raw int64 bytes (pyml._int8s): every key comes back
    exact, also past 2**53, in the key's own type; an existing row is replaced by key."""
    table, scores, names = _keyed_table(conn, project, "keys", key_type, first, 1000)
    conn.execute(
        sql.SQL(
            "CREATE TABLE public.{s} (k {type} PRIMARY KEY, prediction real,"
            " model_id bigint, scored_at timestamptz)"
        ).format(**names)
    )
    conn.execute(sql.SQL("INSERT INTO {s} VALUES (%s, -1, NULL, now())").format(**names), (first,))
    conn.execute("SELECT pyml.predict_into(%s, %s, %s, 'k')", (project, table, scores))
    wrong = conn.execute(
        sql.SQL(
            "SELECT count(*) FROM {t} t LEFT JOIN {s} s USING (k)"
            " WHERE s.k IS NULL OR abs(s.prediction - pyml.predict(%s, ARRAY[t.k, t.a])) > 1e-4"
        ).format(**names),
        (project,),
    ).fetchone()
    assert wrong == (0,)
    summary = conn.execute(sql.SQL("SELECT count(*), min(k) FROM {s}").format(**names))
    assert summary.fetchone() == (1000, first)
    assert conn.execute(
        "SELECT format_type(atttypid, NULL) FROM pg_attribute"
        " WHERE attrelid = %s::regclass AND attname = 'k'",
        (scores,),
    ).fetchone() == (key_type,)


@pytest.mark.parametrize(
    ("key_type", "first"), [("smallint", -30000), ("integer", 7), ("bigint", 2**62 + 1)]
)
def test_predict_into_a_new_table_in_bulk(
    conn: psycopg.Connection, project: str, key_type: str, first: int
) -> None:
    """A table predict_into creates is filled in bulk (pyml._insert_predictions, as COPY
    does): every key exact in its own type, every prediction the
    online one, scored_at the statement's now(), then its PRIMARY KEY."""
    table, scores, names = _keyed_table(conn, project, "bulk", key_type, first, 3000)
    with conn.transaction():
        conn.execute("SELECT pyml.predict_into(%s, %s, %s, 'k')", (project, table, scores))
        now = conn.execute("SELECT now()").fetchone()
    wrong = conn.execute(
        sql.SQL(
            "SELECT count(*) FROM {t} t LEFT JOIN {s} s USING (k) WHERE s.k IS NULL"
            " OR abs(s.prediction - pyml.predict(%s, ARRAY[t.k, t.a])) > 1e-4 OR s.scored_at <> %s"
            " OR s.model_id <> pyml.deployed_model(%s)"
        ).format(**names),
        (project, now[0] if now else None, project),
    ).fetchone()
    assert wrong == (0,)
    assert conn.execute(sql.SQL("SELECT count(*), min(k) FROM {s}").format(**names)).fetchone() == (
        3000,
        first,
    )
    assert conn.execute(
        "SELECT indisprimary FROM pg_index WHERE indrelid = %s::regclass", (scores,)
    ).fetchall() == [(True,)]


def test_bulk_insert_fills_only_a_new_plain_table(conn: psycopg.Connection, connect: Any) -> None:
    """pyml._insert_predictions writes as the caller (INSERT privilege, 42501), only into a
    table of predict_into's shape with nothing an INSERT would run (else NULL, nothing
    written), keys in range of the key's type (22003), as many predictions as keys (22023)."""
    keys = np.array([1, 2, 3], dtype=np.int64).tobytes()
    values = np.array([0.5, 1.5, 2.5], dtype=np.float32).tobytes()
    conn.execute(
        "CREATE TABLE public.bulk_plain (k int, prediction real, model_id bigint,"
        " scored_at timestamptz NOT NULL DEFAULT now())"
    )
    insert = "SELECT pyml._insert_predictions(%s::regclass, %s, %s, %s)"
    with conn.transaction():
        assert conn.execute(insert, ("public.bulk_plain", keys, values, 7)).fetchone() == (3,)
        assert conn.execute(
            "SELECT array_agg(k ORDER BY k), array_agg(prediction ORDER BY k),"
            " bool_and(model_id = 7 AND scored_at = now()) FROM public.bulk_plain"
        ).fetchone() == ([1, 2, 3], [0.5, 1.5, 2.5], True)
    with pytest.raises(
        psycopg.errors.NumericValueOutOfRange, match="out of range for type integer"
    ):
        conn.execute(insert, ("public.bulk_plain", np.array([2**40]).tobytes(), values[:4], 7))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="cannot insert"):
        conn.execute(insert, ("public.bulk_plain", keys, values[:8], 7))
    plain = "public.bulk_plain"
    for other, target, model_id in (
        ("CREATE INDEX ON public.bulk_plain (k)", plain, 7),
        (
            "CREATE TRIGGER t BEFORE INSERT ON public.bulk_plain FOR EACH ROW"
            " EXECUTE FUNCTION suppress_redundant_updates_trigger()",
            plain,
            7,
        ),
        ("ALTER TABLE public.bulk_plain ENABLE ROW LEVEL SECURITY", plain, 7),
        ("ALTER TABLE public.bulk_plain ADD CHECK (prediction > 0)", plain, 7),
        ("ALTER TABLE public.bulk_plain ADD COLUMN extra int", plain, 7),
        (
            "ALTER TABLE public.bulk_plain ALTER k SET NOT NULL,"
            " ALTER k ADD GENERATED ALWAYS AS IDENTITY",
            plain,
            7,
        ),
        ("ALTER TABLE public.bulk_plain ALTER model_id SET NOT NULL", plain, None),
        (
            "CREATE TABLE public.bulk_parts (LIKE public.bulk_plain) PARTITION BY RANGE (k);"
            " CREATE TABLE public.bulk_part PARTITION OF public.bulk_parts"
            " FOR VALUES FROM (0) TO (9)",
            "public.bulk_part",
            7,
        ),
    ):
        with conn.transaction():
            conn.execute(other)
            assert conn.execute(insert, (target, keys, values, model_id)).fetchone() == (None,), (
                other
            )
            count = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*target.split(".")))
            )
            assert count.fetchone() in ((0,), (3,))
            raise psycopg.Rollback()  # undo `other`
    conn.execute("REVOKE INSERT ON public.bulk_plain FROM CURRENT_USER")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="bulk_plain"):
        conn.execute(insert, ("public.bulk_plain", keys, values, 7))


def test_arrays_from_raw_bytes(conn: psycopg.Connection) -> None:
    values = np.array([1.5, -2.25, np.inf, 3e38], dtype=np.float32)
    keys = np.array([-(2**63), 0, 2**62 + 1], dtype=np.int64)
    got = conn.execute(
        "SELECT pyml._float4s(%s)::text, pyml._int8s(%s)::text, pyml._float4s(''::bytea)",
        (values.tobytes(), keys.tobytes()),
    ).fetchone()
    assert got == ("{1.5,-2.25,Infinity,3e+38}", "{-9223372036854775808,0,4611686018427387905}", [])
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="cannot make a real array"):
        conn.execute("SELECT pyml._float4s('\\x010203'::bytea)")


def _read(conn: psycopg.Connection, table: str, columns: list[str], key: str | None) -> Any:
    return conn.execute(
        "SELECT pyml._read_columns(%s::regclass, %s, %s, NULL, NULL)", (table, columns, key)
    ).fetchone()[0]


def test_read_columns_reads_exactly_what_the_caller_may(conn: psycopg.Connection) -> None:
    """pyml._read_columns (src/scan.c) gives the values a cast to float8 gives (NULL as NaN)
    and the keys as int8, in the table's order; NULL (pyml then reads through SQL) for row
    security or a type it does not convert; 42501 for a column the caller may not SELECT;
    22004 for a NULL key."""
    conn.execute(
        "CREATE TABLE public.scan_t (k int, a real, b smallint, c boolean, d float8, n numeric)"
    )
    conn.execute(
        "INSERT INTO public.scan_t SELECT i, i / 3.0, -i, i % 2 = 0,"
        " CASE WHEN i % 5 = 0 THEN NULL ELSE 1e300 / i END, i FROM generate_series(1, 2000) i"
    )
    raw = _read(conn, "public.scan_t", ["a", "b", "c", "d"], "k")
    n = 2000
    got = np.frombuffer(raw, dtype=np.float64, count=4 * n).reshape(4, n)
    keys = np.frombuffer(raw, dtype=np.int64, offset=32 * n)
    expected = conn.execute(
        "SELECT array_agg(coalesce(a::float8, 'NaN')), array_agg(b::float8),"
        " array_agg(c::int::float8), array_agg(coalesce(d, 'NaN')), array_agg(k::int8)"
        " FROM public.scan_t"
    ).fetchone()
    for j in range(4):
        np.testing.assert_array_equal(got[j], np.array(expected[j], dtype=np.float64))
    np.testing.assert_array_equal(keys, np.arange(1, n + 1))
    assert conn.execute(
        "SELECT length(pyml._read_columns('public.scan_t', ARRAY['a'], NULL, 0, 1)),"
        " length(pyml._read_columns('public.scan_t', ARRAY['a'], NULL, 3, 3))"
    ).fetchone() == (
        8 * conn.execute("SELECT count(*) FROM public.scan_t WHERE ctid < '(1,0)'").fetchone()[0],
        0,
    )

    assert _read(conn, "public.scan_t", ["a", "n"], None) is None  # numeric: SQL's cast
    with conn.transaction():
        conn.execute("ALTER TABLE public.scan_t ENABLE ROW LEVEL SECURITY")
        conn.execute("ALTER TABLE public.scan_t FORCE ROW LEVEL SECURITY")
        conn.execute("CREATE POLICY few ON public.scan_t USING (k <= 10)")
        assert _read(conn, "public.scan_t", ["a"], None) is None
        raise psycopg.Rollback()
    with conn.transaction():
        conn.execute("REVOKE SELECT ON public.scan_t FROM CURRENT_USER")
        conn.execute("GRANT SELECT (k, a) ON public.scan_t TO CURRENT_USER")
        assert len(_read(conn, "public.scan_t", ["a"], "k")) == 16 * n
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="scan_t"):
            _read(conn, "public.scan_t", ["a", "b"], "k")
        raise psycopg.Rollback()
    conn.execute("UPDATE public.scan_t SET k = NULL WHERE k = 7")
    with pytest.raises(psycopg.errors.NullValueNotAllowed):
        _read(conn, "public.scan_t", ["a"], "k")


def test_read_columns_reads_rows_of_every_shape_as_sql_does(conn: psycopg.Connection) -> None:
    """A row without NULLs whose columns up to the last one read are all of a fixed width is
    read where its values are (src/scan.c, fixed_offsets); any other row through the
    tuple's deforming. Either way the values a cast to float8 gives: rows written before a
    column was added (its default, or NULL), a dropped column's bytes still in old rows,
    NULLs, padding between types of different alignments, a text column before or after
    the ones read."""
    conn.execute("CREATE TABLE public.shape_t (k int8, x int2, gone float8, a float8, b int4)")
    conn.execute(
        "INSERT INTO public.shape_t SELECT i, -i, i * 3, i / 7.0,"
        " CASE WHEN i % 11 = 0 THEN NULL ELSE i * 1000 END FROM generate_series(1, 300) i"
    )
    conn.execute("ALTER TABLE public.shape_t DROP COLUMN gone")
    conn.execute("ALTER TABLE public.shape_t ADD COLUMN c float8 DEFAULT 2.5")
    conn.execute("ALTER TABLE public.shape_t ADD COLUMN d real")
    conn.execute(
        "INSERT INTO public.shape_t SELECT i, i % 300, i / 3.0, i, i / 13.0,"
        " CASE WHEN i % 4 = 0 THEN NULL ELSE i / 9.0 END FROM generate_series(301, 700) i"
    )
    conn.execute("UPDATE public.shape_t SET d = 0.5 WHERE k % 50 = 0 AND k <= 300")
    conn.execute("CREATE TABLE public.shape_s (t text, a float8, b smallint, u text)")
    conn.execute(
        "INSERT INTO public.shape_s SELECT repeat('x', i % 40), i / 3.0,"
        " CASE WHEN i % 6 = 0 THEN NULL ELSE i END, 'u' FROM generate_series(1, 500) i"
    )
    conn.execute("CREATE TABLE public.shape_u (a float8, u text, b int4)")
    conn.execute(
        "INSERT INTO public.shape_u SELECT i, repeat('y', i % 9), -i FROM generate_series(1, 99) i"
    )
    for table, columns in (
        ("public.shape_t", ["x", "a", "b", "c", "d"]),
        ("public.shape_t", ["a"]),
        ("public.shape_t", ["d", "x"]),
        ("public.shape_s", ["b", "a"]),
        ("public.shape_u", ["a"]),
        ("public.shape_u", ["b", "a"]),
    ):
        raw = _read(conn, table, columns, None)
        n = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(table))).fetchone()[0]
        got = np.frombuffer(raw, dtype=np.float64).reshape(len(columns), n)
        expected = conn.execute(
            sql.SQL("SELECT {} FROM {}").format(
                sql.SQL(", ").join(
                    sql.SQL("array_agg(coalesce({}::float8, 'NaN') ORDER BY ctid)").format(
                        sql.Identifier(c)
                    )
                    for c in columns
                ),
                sql.SQL(table),
            )
        ).fetchone()
        for j, column in enumerate(columns):
            np.testing.assert_array_equal(
                got[j], np.array(expected[j], dtype=np.float64), err_msg=f"{table}.{column}"
            )
    keys = np.frombuffer(_read(conn, "public.shape_t", ["c"], "k"), dtype=np.int64)[700:]
    np.testing.assert_array_equal(np.sort(keys), np.arange(1, 701))


def test_a_held_read_is_taken_once_by_the_backends_python(admin_url: str) -> None:
    """pyml._read_columns_held keeps the columns pyml._read_columns returns for the Python
    in the backend, which takes their buffer as it is (pyml.server._native.take_read): the
    same values, in a buffer that grew as the rows came (no statistics: room for 1024
    rows first), alive as long as a view of it is; taken once; an older token, or one of
    an earlier transaction, takes nothing."""
    code = """
from pyml.server import _native
plan = "SELECT pyml.{}('public.held_t'::regclass, ARRAY['a', 'b'], 'k', NULL, NULL) AS v"
returned = plpy.execute(plan.format("_read_columns"))[0]["v"]
older = plpy.execute(plan.format("_read_columns_held"))[0]["v"]
token = plpy.execute(plan.format("_read_columns_held"))[0]["v"]
assert token == older + 1, (older, token)
read, n = _native.take_read(token)
assert n == 5000 and read.shape[0] == 3 and read.shape[1] >= n, (n, read.shape)
assert read[:, :n].tobytes() == returned
key = read[2, :n].view("int64")
del read
import gc
gc.collect()
assert key[:3].tolist() == [1, 2, 3] and int(key.sum()) == 5000 * 5001 // 2
for gone in (token, older):  # taken, or held no more
    try:
        _native.take_read(gone)
    except RuntimeError:
        pass
    else:
        raise AssertionError(f"token {gone} taken twice")
assert plpy.execute(
    "SELECT pyml._read_columns_held('public.held_v'::regclass, ARRAY['a'], NULL, NULL, NULL)"
    " AS v"
)[0]["v"] is None  # not a plain view: read through SQL
GD["pyml_test_held"] = plpy.execute(plan.format("_read_columns_held"))[0]["v"]
"""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("SET client_min_messages = warning")
        admin.execute(
            "CREATE TABLE public.held_t AS SELECT i AS k, i / 3.0::float8 AS a, -i::real AS b"
            " FROM generate_series(1, 5000) i"
        )
        admin.execute("CREATE VIEW public.held_v AS SELECT a FROM public.held_t WHERE k > 1")
        admin.execute("SELECT pyml.version()")  # pyml's Python, booted in this session
        admin.execute(sql.SQL("DO {} LANGUAGE plpython3u").format(sql.Literal(code)))
        admin.execute(  # a read held by a transaction that ended is freed with it
            "DO $$from pyml.server import _native\n"
            "try:\n"
            "    _native.take_read(GD['pyml_test_held'])\n"
            "except RuntimeError:\n"
            "    pass\n"
            "else:\n"
            "    raise AssertionError('a read of an ended transaction was taken')\n"
            "$$ LANGUAGE plpython3u"
        )


def test_read_columns_reads_a_plain_view_through_its_table(conn: psycopg.Connection) -> None:
    """A plain view (columns of one table, renamed or not; no WHERE, no other clause) is
    read through its table: the same bytes as the table's columns. Anything else is read
    through SQL (NULL), and so is a table with inheritance children (a SELECT reads
    theirs too), a view whose owner may not read the table (SQL says so), and a
    security_invoker view of a table whose row security applies to the caller."""
    conn.execute("CREATE TABLE public.pv_t (k int, a real, b float8, c text)")
    conn.execute(
        "INSERT INTO public.pv_t SELECT i, i / 7.0, CASE WHEN i % 3 = 0 THEN NULL ELSE i END,"
        " i::text FROM generate_series(1, 3000) i"
    )
    table = _read(conn, "public.pv_t", ["b", "a"], "k")
    assert len(table) == 24 * 3000
    conn.execute("CREATE VIEW public.pv_all AS SELECT * FROM public.pv_t")
    conn.execute("CREATE VIEW public.pv_renamed AS SELECT b AS x, c, k AS key, a FROM public.pv_t")
    assert _read(conn, "public.pv_all", ["b", "a"], "k") == table
    assert _read(conn, "public.pv_renamed", ["x", "a"], "key") == table
    with pytest.raises(psycopg.errors.UndefinedColumn, match='"b" of relation "pv_renamed"'):
        _read(conn, "public.pv_renamed", ["b"], None)

    for name, query in {
        "pv_where": "SELECT a FROM public.pv_t WHERE k > 10",
        "pv_expression": "SELECT a * 2 AS a FROM public.pv_t",
        "pv_sorted": "SELECT a FROM public.pv_t ORDER BY k",
        "pv_limited": "SELECT a FROM public.pv_t LIMIT 5",
        "pv_distinct": "SELECT DISTINCT a FROM public.pv_t",
        "pv_joined": "SELECT t.a FROM public.pv_t t JOIN public.pv_t u USING (k)",
        "pv_of_view": "SELECT a FROM public.pv_all",
        "pv_sampled": "SELECT a FROM public.pv_t TABLESAMPLE SYSTEM (50)",
        "pv_union": "SELECT a FROM public.pv_t UNION ALL SELECT a FROM public.pv_t",
    }.items():
        conn.execute(f"CREATE VIEW public.{name} AS {query}")
        assert _read(conn, f"public.{name}", ["a"], None) is None, name

    with conn.transaction():  # the view's owner (this role) may not read the table
        conn.execute("REVOKE SELECT ON public.pv_t FROM CURRENT_USER")
        assert _read(conn, "public.pv_all", ["a"], None) is None
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="table pv_t"):
            conn.execute("SELECT a FROM public.pv_all")
        raise psycopg.Rollback()
    with conn.transaction():  # nor the caller the view's column
        conn.execute("REVOKE SELECT ON public.pv_renamed FROM CURRENT_USER")
        conn.execute("GRANT SELECT (key, x) ON public.pv_renamed TO CURRENT_USER")
        assert len(_read(conn, "public.pv_renamed", ["x"], "key")) == 16 * 3000
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="view pv_renamed"):
            _read(conn, "public.pv_renamed", ["a"], None)
        raise psycopg.Rollback()
    with conn.transaction():  # row security: as the view's owner, or as the caller
        conn.execute("ALTER TABLE public.pv_t ENABLE ROW LEVEL SECURITY")
        conn.execute("CREATE POLICY few ON public.pv_t USING (k <= 10)")
        conn.execute(
            "CREATE VIEW public.pv_invoker WITH (security_invoker) AS SELECT a FROM public.pv_t"
        )
        assert _read(conn, "public.pv_all", ["a"], None) == table[8 * 3000 : 16 * 3000]
        conn.execute("ALTER TABLE public.pv_t FORCE ROW LEVEL SECURITY")
        assert _read(conn, "public.pv_all", ["a"], None) is None
        assert _read(conn, "public.pv_invoker", ["a"], None) is None
        raise psycopg.Rollback()

    conn.execute("CREATE TABLE public.pv_child () INHERITS (public.pv_t)")
    conn.execute("INSERT INTO public.pv_child VALUES (9999, 1, 2, 'x')")
    assert _read(conn, "public.pv_t", ["a"], None) is None
    assert _read(conn, "public.pv_all", ["a"], None) is None
    conn.execute("CREATE VIEW public.pv_only AS SELECT a FROM ONLY public.pv_t")
    assert _read(conn, "public.pv_only", ["a"], None) == table[8 * 3000 : 16 * 3000]


def test_an_inheritance_parent_is_read_with_its_children(
    conn: psycopg.Connection, diabetes: Trained, project: str
) -> None:
    """A table with inheritance children is read as SELECT reads it, children's rows
    included: by predict_into (not in block ranges of the parent's heap alone) and by
    training."""
    names = {
        "t": sql.Identifier("public", f"{project}_parent"),
        "c": sql.Identifier("public", f"{project}_child"),
        "s": sql.Identifier(f"{project}_out"),
    }
    conn.execute(
        sql.SQL(
            "CREATE TABLE {t} AS SELECT row_number() OVER () AS id, d.* FROM pyml.diabetes d"
            " WHERE false"
        ).format(**names)
    )
    conn.execute(sql.SQL("CREATE TABLE {c} () INHERITS ({t})").format(**names))
    conn.execute(
        sql.SQL(
            "INSERT INTO {c} SELECT row_number() OVER () AS id, d.* FROM pyml.diabetes d"
        ).format(**names)
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO {t} SELECT 1000 + row_number() OVER () AS id, d.* FROM pyml.diabetes d"
            " LIMIT 7"
        ).format(**names)
    )
    total = conn.execute(sql.SQL("SELECT count(*) FROM {t}").format(**names)).fetchone()[0]
    conn.execute(
        "SELECT pyml.predict_into(%s, %s, %s, 'id')",
        (diabetes.project, f"public.{project}_parent", f"{project}_out"),
    )
    scored = conn.execute(sql.SQL("SELECT count(*) FROM {s}").format(**names)).fetchone()[0]
    assert scored == total
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'regression', %s, 'target', 'linear')",
        (project, f"public.{project}_parent"),
    )
    rows = conn.execute(
        "SELECT s.row_count FROM pyml.snapshots s JOIN pyml.models m ON m.snapshot_id = s.id"
        " JOIN pyml.projects p ON p.id = m.project_id WHERE p.name = %s",
        (project,),
    ).fetchone()[0]
    assert rows == total


def test_predict_into_scores_only_the_rows_row_security_shows(
    conn: psycopg.Connection, diabetes: Trained, project: str
) -> None:
    """Under row security, predict_into reads through SQL, where the policies apply: the
    rows the caller cannot see are not scored."""
    names = {
        "t": sql.Identifier("public", f"{project}_rls"),
        "s": sql.Identifier(f"{project}_rls_out"),
    }
    conn.execute(
        sql.SQL(
            "CREATE TABLE {t} AS SELECT row_number() OVER () AS id, d.* FROM pyml.diabetes d"
        ).format(**names)
    )
    conn.execute(sql.SQL("ALTER TABLE {t} ENABLE ROW LEVEL SECURITY").format(**names))
    conn.execute(sql.SQL("ALTER TABLE {t} FORCE ROW LEVEL SECURITY").format(**names))
    conn.execute(sql.SQL("CREATE POLICY thirds ON {t} USING (id % 3 = 0)").format(**names))
    count = one(
        conn,
        "SELECT pyml.predict_into(%s, %s, %s, 'id')",
        (diabetes.project, f"public.{project}_rls", f"public.{project}_rls_out"),
    )
    assert count == 442 // 3
    assert conn.execute(
        sql.SQL("SELECT count(*) FILTER (WHERE id % 3 <> 0) FROM public.{s}").format(**names)
    ).fetchone() == (0,)
