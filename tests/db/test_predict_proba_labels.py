"""pyml.predict_proba_labels and pyml.predict_proba_jsonb: predict_proba with the class labels.

Both must give exactly predict_proba's numbers, each next to its label as predict_label writes
it, for every overload (project or model id; every array type, or a row), and fail the way
predict_proba fails.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql

ARRAY_TYPES = ("real", "double precision", "smallint", "integer", "bigint", "numeric")
FUNCTIONS = ("predict_proba_labels", "predict_proba_jsonb")
# A virginica-like flower, in whole numbers: every array type holds it exactly.
FLOWER = [6, 3, 5, 2]


@dataclass(frozen=True)
class Trained:
    project: str
    table: str  # the training table (the label column included)
    model_id: int  # the live model
    labels: list[str]  # pyml.models.classes as predict_label writes them


def one(conn: psycopg.Connection, query: Any, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def train(
    conn: psycopg.Connection,
    project: str,
    table: str,
    label: str,
    algorithm: str,
    hyperparams: dict[str, Any],
    automatic_deploy: bool = True,
) -> int:
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'classification', %s, %s, %s, %s::jsonb,"
        " automatic_deploy => %s)",
        (project, table, label, algorithm, json.dumps(hyperparams), automatic_deploy),
    )
    return int(
        one(
            conn,
            "SELECT max(m.id) FROM pyml.models m JOIN pyml.projects p"
            " ON p.id = m.project_id WHERE p.name = %s",
            (project,),
        )
    )


def label_text(value: Any) -> str:
    """A class label of pyml.models.classes (JSON) as PostgreSQL prints it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def trained(
    conn: psycopg.Connection,
    project: str,
    table: str,
    label: str,
    algorithm: str = "linear",
    hyperparams: dict[str, Any] | None = None,
) -> Trained:
    model_id = train(conn, project, table, label, algorithm, hyperparams or {"max_iter": 1000})
    classes = one(conn, "SELECT classes FROM pyml.models WHERE id = %s", (model_id,))
    return Trained(project, table, model_id, [label_text(c) for c in classes])


@pytest.fixture(scope="module")
def codes(conn: psycopg.Connection) -> Trained:
    """Numeric labels that are not 0..n-1 and not first seen in sorted order."""
    conn.execute(
        "CREATE TABLE public.proba_codes AS SELECT sepal_length, sepal_width, petal_length,"
        " petal_width, (ARRAY[30, 10, 20])[target + 1] AS code FROM pyml.iris"
    )
    return trained(conn, "proba codes", "public.proba_codes", "code")


@pytest.fixture(scope="module")
def names(conn: psycopg.Connection) -> Trained:
    """Text labels, first seen in an order that is not the sorted one."""
    conn.execute(
        "CREATE TABLE public.proba_names AS SELECT sepal_length, sepal_width, petal_length,"
        " petal_width, (ARRAY['zeta', 'alpha', 'mu'])[target + 1] AS species FROM pyml.iris"
    )
    return trained(conn, "proba names", "public.proba_names", "species")


@pytest.fixture(scope="module")
def cancer(conn: psycopg.Connection) -> Trained:
    """A boolean label (binary LightGBM: one probability per row inside)."""
    return trained(
        conn, "proba cancer", "pyml.breast_cancer", "malignant", "lightgbm", {"n_estimators": 10}
    )


@pytest.fixture(scope="module")
def regression(conn: psycopg.Connection) -> str:
    conn.execute(
        "SELECT * FROM pyml.train('proba regression', 'regression', 'pyml.diabetes', 'target')"
    )
    return "proba regression"


def labelled(
    conn: psycopg.Connection, key: str | int, features: sql.Composable, params: tuple[Any, ...] = ()
) -> list[tuple[str, float]]:
    """predict_proba_labels' rows, in the order the function returns them."""
    cast = sql.SQL("text" if isinstance(key, str) else "bigint")
    query = sql.SQL(
        "SELECT p.label, p.probability FROM pyml.predict_proba_labels(%s::{}, {})"
        " WITH ORDINALITY AS p(label, probability, n) ORDER BY p.n"
    ).format(cast, features)
    return [(label, probability) for label, probability in conn.execute(query, (key, *params))]


def as_real(value: float) -> np.float32:
    return np.float32(value)


# ---------------------------------------------------------------------------
# What they return
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["codes", "names", "cancer"])
def test_rows_give_predict_proba_with_labels_in_classes_order(
    conn: psycopg.Connection, request: pytest.FixtureRequest, fixture: str
) -> None:
    model: Trained = request.getfixturevalue(fixture)
    query = sql.SQL(
        "SELECT pyml.predict_proba(%(p)s::text, t), pyml.predict_label(%(p)s::text, t),"
        " (SELECT array_agg(l.label ORDER BY l.n) FROM pyml.predict_proba_labels(%(p)s::text, t)"
        "  WITH ORDINALITY AS l(label, probability, n)),"
        " (SELECT array_agg(l.probability ORDER BY l.n)"
        "  FROM pyml.predict_proba_labels(%(p)s::text, t) WITH ORDINALITY AS l(label, probability,"
        "  n)),"
        " pyml.predict_proba_jsonb(%(p)s::text, t)"
        " FROM {} t ORDER BY ctid LIMIT 40"
    ).format(sql.SQL(model.table))
    rows = conn.execute(query, {"p": model.project}).fetchall()
    assert len(rows) == 40
    for proba, predicted, labels, probabilities, as_object in rows:
        assert labels == model.labels
        assert probabilities == proba  # the same real values, in the same order
        assert predicted == labels[max(range(len(proba)), key=proba.__getitem__)]
        assert isinstance(as_object, dict)
        assert sorted(as_object) == sorted(model.labels)
        assert [as_real(as_object[label]) for label in labels] == [as_real(p) for p in proba]


def test_jsonb_is_what_postgresql_builds_from_the_labelled_rows(
    conn: psycopg.Connection, names: Trained
) -> None:
    """Its numbers are the reals themselves, written as PostgreSQL writes a real in jsonb
    (0.97871214, 5.3699967e-08 as 0.000000053699967, 1 and 0 as integers)."""
    forest = train(
        conn,
        names.project,
        names.table,
        "species",
        "random_forest",
        {"n_estimators": 5},
        automatic_deploy=False,
    )  # probabilities 0, 0.2, ... 1
    rows = conn.execute(
        "SELECT pyml.predict_proba_jsonb(m, t)::text,"
        " (SELECT jsonb_object_agg(l.label, l.probability)"
        "  FROM pyml.predict_proba_labels(m, t) AS l)::text"
        " FROM unnest(%s::bigint[]) AS m, LATERAL (SELECT * FROM proba_names ORDER BY ctid"
        " LIMIT 40) AS t",
        ([names.model_id, forest],),
    ).fetchall()
    assert len(rows) == 80
    for ours, postgresql in rows:
        assert ours == postgresql
    assert any(re.search(r": 1[,}]", ours) and re.search(r": 0[,}]", ours) for ours, _ in rows)


@pytest.mark.parametrize("array_type", ARRAY_TYPES)
def test_every_array_type_gives_the_same_result(
    conn: psycopg.Connection, names: Trained, array_type: str
) -> None:
    features = sql.SQL("%s::{}[]").format(sql.SQL(array_type))
    expected = labelled(conn, names.project, sql.SQL("%s::real[]"), (FLOWER,))
    assert labelled(conn, names.project, features, (FLOWER,)) == expected
    assert [label for label, _ in expected] == names.labels
    assert max(expected, key=lambda lp: lp[1])[0] == "mu"  # virginica, in these names
    as_object = one(
        conn,
        sql.SQL("SELECT pyml.predict_proba_jsonb(%s, {})").format(features),
        (names.project, FLOWER),
    )
    assert {k: as_real(v) for k, v in as_object.items()} == {
        label: as_real(p) for label, p in expected
    }


def test_boolean_array(conn: psycopg.Connection, names: Trained) -> None:
    flags = [True, False, True, True]
    assert labelled(conn, names.project, sql.SQL("%s::boolean[]"), (flags,)) == labelled(
        conn, names.project, sql.SQL("%s::integer[]"), ([1, 0, 1, 1],)
    )


def test_a_row_gives_what_its_array_gives(conn: psycopg.Connection, codes: Trained) -> None:
    by_row = labelled(
        conn, codes.project, sql.SQL("ROW(%s::real, %s::real, %s::real, %s::real)"), tuple(FLOWER)
    )
    assert by_row == labelled(conn, codes.project, sql.SQL("%s::real[]"), (FLOWER,))
    assert [label for label, _ in by_row] == codes.labels == ["10", "20", "30"]


def test_a_model_by_id_deployed_or_not(conn: psycopg.Connection, names: Trained) -> None:
    other = train(
        conn,
        names.project,
        names.table,
        "species",
        "random_forest",
        {"n_estimators": 5},
        automatic_deploy=False,
    )
    assert one(conn, "SELECT pyml.deployed_model(%s)", (names.project,)) == names.model_id
    features = sql.SQL("%s::real[]")
    by_live_id = labelled(conn, names.model_id, features, (FLOWER,))
    assert by_live_id == labelled(conn, names.project, features, (FLOWER,))
    by_other_id = labelled(conn, other, features, (FLOWER,))
    assert [label for label, _ in by_other_id] == names.labels
    assert [p for _, p in by_other_id] == one(
        conn, "SELECT pyml.predict_proba(%s::bigint, %s::real[])", (other, FLOWER)
    )
    assert by_other_id != by_live_id
    row = sql.SQL("ROW(%s::real, %s::real, %s::real, %s::real)")
    assert labelled(conn, other, row, tuple(FLOWER)) == by_other_id
    as_object = one(
        conn,
        "SELECT pyml.predict_proba_jsonb(%s::bigint, t) FROM proba_names t ORDER BY ctid LIMIT 1",
        (other,),
    )
    assert sorted(as_object) == sorted(names.labels)


def test_booleans_are_labelled_true_and_false(conn: psycopg.Connection, cancer: Trained) -> None:
    assert cancer.labels == ["false", "true"]
    rows = conn.execute(
        "SELECT b.malignant, (pyml.predict_proba_jsonb(%s, b) ->> 'true')::real,"
        " pyml.predict(%s, b) FROM pyml.breast_cancer b ORDER BY ctid LIMIT 50",
        (cancer.project, cancer.project),
    ).fetchall()
    for _, p_true, predicted in rows:
        assert predicted == (1.0 if p_true > 0.5 else 0.0)
    assert sum((p > 0.5) == malignant for malignant, p, _ in rows) >= 45


def test_null_arguments_give_no_rows_or_null(conn: psycopg.Connection, names: Trained) -> None:
    assert labelled(conn, names.project, sql.SQL("NULL::real[]")) == []
    assert labelled(conn, names.project, sql.SQL("NULL::proba_names")) == []
    assert conn.execute(
        "SELECT pyml.predict_proba_jsonb(NULL::text, %s::real[]),"
        " pyml.predict_proba_jsonb(%s::text, NULL::real[]),"
        " pyml.predict_proba_jsonb(%s::bigint, NULL::proba_names)",
        (FLOWER, names.project, names.model_id),
    ).fetchone() == (None, None, None)


def test_calls_are_logged_like_predict_proba(conn: psycopg.Connection, codes: Trained) -> None:
    conn.execute("SELECT pyml.log_predictions(%s, 1.0)", (codes.project,))
    try:
        proba = one(conn, "SELECT pyml.predict_proba(%s, %s::real[])", (codes.project, FLOWER))
        labelled(conn, codes.project, sql.SQL("%s::real[]"), (FLOWER,))
        conn.execute(
            "SELECT pyml.predict_proba_jsonb(%s::bigint, ROW(6::real, 3::real, 5::real, 2::real))",
            (codes.model_id,),
        )
        logged = conn.execute(
            "SELECT l.model_id, l.prediction FROM pyml.prediction_log l"
            " JOIN pyml.projects p ON p.id = l.project_id WHERE p.name = %s ORDER BY l.logged_at",
            (codes.project,),
        ).fetchall()
    finally:
        conn.execute("SELECT pyml.log_predictions(%s, 0)", (codes.project,))
    assert [model_id for model_id, _ in logged] == [codes.model_id] * 3
    for _, prediction in logged:
        assert [as_real(p) for p in prediction] == [as_real(p) for p in proba]


# ---------------------------------------------------------------------------
# Errors: those of predict_proba
# ---------------------------------------------------------------------------


def _error(conn: psycopg.Connection, query: Any, params: Any) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as info:
        conn.execute(query, params).fetchall()
    return info.value


CALLS = [
    ("array", "SELECT pyml.{}(%s::text, ARRAY[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]::real[])"),
    ("row", "SELECT pyml.{}(%s::text, d) FROM pyml.diabetes d LIMIT 1"),
    ("model id", "SELECT pyml.{}(pyml.deployed_model(%s), ARRAY[1, 2, 3, 4, 5, 6, 7, 8, 9, 10])"),
]


def call(query: str, function: str) -> sql.Composed:
    return sql.SQL(query).format(sql.Identifier(function))


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize(("how", "query"), CALLS, ids=[c[0] for c in CALLS])
def test_a_regression_project_has_no_classes(
    conn: psycopg.Connection, regression: str, function: str, how: str, query: str
) -> None:
    ours = _error(conn, call(query, function), (regression,))
    theirs = _error(conn, call(query, "predict_proba"), (regression,))
    assert isinstance(ours, psycopg.errors.InvalidParameterValue)
    assert ours.diag.message_primary == theirs.diag.message_primary
    assert ours.diag.message_primary is not None
    assert ours.diag.message_primary.endswith(
        'project "proba regression" is a regression project, which has no classes'
    )
    assert ours.diag.message_hint == theirs.diag.message_hint == "Use pyml.predict."


@pytest.mark.parametrize("function", FUNCTIONS)
def test_unknown_project_and_model(conn: psycopg.Connection, function: str) -> None:
    with pytest.raises(psycopg.errors.UndefinedObject, match='project "no such" does not exist'):
        conn.execute(call("SELECT * FROM pyml.{}('no such', ARRAY[1, 2])", function))
    with pytest.raises(psycopg.errors.UndefinedObject, match="model 987654 does not exist"):
        conn.execute(call("SELECT * FROM pyml.{}(987654, ARRAY[1, 2])", function))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_wrong_feature_count(conn: psycopg.Connection, names: Trained, function: str) -> None:
    ours = _error(
        conn, call("SELECT * FROM pyml.{}(%s, ARRAY[1, 2, 3]::real[])", function), (names.project,)
    )
    theirs = _error(conn, "SELECT pyml.predict_proba(%s, ARRAY[1, 2, 3]::real[])", (names.project,))
    assert isinstance(ours, psycopg.errors.InvalidParameterValue)
    assert ours.diag.message_primary == theirs.diag.message_primary


@pytest.mark.parametrize("function", FUNCTIONS)
def test_an_algorithm_without_probabilities(
    conn: psycopg.Connection, names: Trained, function: str
) -> None:
    model = train(
        conn, names.project, names.table, "species", "linear_svm", {}, automatic_deploy=False
    )
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="class probabilities"):
        conn.execute(
            call("SELECT * FROM pyml.{}(%s::bigint, %s::real[])", function), (model, FLOWER)
        )


# ---------------------------------------------------------------------------
# Declarations
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("function", FUNCTIONS)
def test_declared_like_predict_proba(conn: psycopg.Connection, function: str) -> None:
    rows = conn.execute(
        "SELECT pg_get_function_arguments(p.oid), pg_get_function_result(p.oid),"
        " p.provolatile::text, p.proisstrict, p.proparallel::text, p.proretset, p.proconfig,"
        " obj_description(p.oid, 'pg_proc')"
        " FROM pg_proc p WHERE p.pronamespace = 'pyml'::regnamespace AND p.proname = %s",
        (function,),
    ).fetchall()
    arguments = sorted(r[0] for r in rows)
    expected = sorted(
        f"{key}, {features}"
        for key in ("project_name text", "model_id bigint")
        for features in [
            '"row" anyelement',
            *(f"features {t}[]" for t in ARRAY_TYPES),
            "features boolean[]",
        ]
    )
    assert arguments == expected
    result = (
        "TABLE(label text, probability real)" if function == "predict_proba_labels" else "jsonb"
    )
    for _, returns, volatility, strict, parallel, retset, config, comment in rows:
        assert returns == result
        assert (volatility, strict, parallel) == ("s", True, "u")
        assert retset == (function == "predict_proba_labels")
        assert config == ["search_path=pg_catalog, pg_temp"]
        assert comment
