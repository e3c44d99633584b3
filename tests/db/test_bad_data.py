"""Bad data gets clear errors, the same way on every path (issue 13, "Bad data").

- NULL labels, and NaN labels where NaN is a value of its own (real, double precision,
  numeric), are 22004 in every supervised task, before anything is fitted or stored.
- Infinity and -Infinity are 22023: in training features and labels, and in the inputs of
  every prediction path and every algorithm (imputation fills NULL and NaN, not Infinity).
- pyml.predict_into writes one row per key: a second run replaces the rows of the keys it
  scores; duplicate source keys are 21000, NULL keys 22004, a target table without a unique
  index on the key 55000.

Each failing call is checked for what it left: no project, snapshot, model, file or deployment,
no target table rows, no streamed rows or events.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql

ROWS = 80  # rows of the training table
BAD = (3, 17)  # the ids of the rows made bad
FEATURES = ("a", "b", "c")  # real, double precision, numeric
INFINITIES = ("Infinity", "-Infinity")
REGISTRY = ("projects", "snapshots", "models", "files", "deployments")


def one(conn: psycopg.Connection, query: Any, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def registry(admin: psycopg.Connection) -> dict[str, int]:
    """How many rows each registry table holds (read as superuser)."""
    return {
        t: one(admin, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("pyml", t)))
        for t in REGISTRY
    }


def train(
    conn: psycopg.Connection,
    project: str,
    relation: str,
    label: Any,
    task: str | None,
    algorithm: str = "linear",
    preprocess: dict[str, Any] | None = None,
    joint: bool = False,
) -> None:
    function = "train_joint" if joint else "train"
    conn.execute(
        sql.SQL(
            "SELECT * FROM pyml.{}(%s, task => %s, relation_name => %s,"
            " y_column_name => %s, algorithm => %s, preprocess => %s::jsonb)"
        ).format(sql.Identifier(function)),
        (project, task, relation, label, algorithm, json.dumps(preprocess or {})),
    )


@pytest.fixture(scope="module")
def admin(admin_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        yield conn


@pytest.fixture(scope="module")
def data(conn: psycopg.Connection) -> str:
    """``bd_data``: id, features a real, b double precision, c numeric, and labels: y (a
    number), k (two classes, integer), t (text), flag (boolean), y2 (a second number)."""
    conn.execute(
        "CREATE TABLE public.bd_data AS SELECT i::bigint AS id,"
        " (mod(i * 7, 23) / 10.0)::real AS a, (mod(i * 5, 17) / 10.0)::float8 AS b,"
        " (mod(i * 3, 11) / 10.0)::numeric AS c,"
        " (mod(i * 7, 23) / 10.0 + 2 * mod(i * 5, 17) / 10.0 - mod(i * 3, 11) / 10.0)::float8"
        "   AS y,"
        " (mod(i * 7, 23) + mod(i * 5, 17) > 19)::int AS k,"
        " CASE WHEN mod(i * 7, 23) > 11 THEN 'high' ELSE 'low' END AS t,"
        " mod(i * 5, 17) > 8 AS flag,"
        " (mod(i * 3, 11) / 10.0 - mod(i * 7, 23) / 10.0)::real AS y2"
        " FROM generate_series(1, %s) AS i",
        (ROWS,),
    )
    conn.execute("ALTER TABLE public.bd_data ADD PRIMARY KEY (id)")
    return "public.bd_data"


def copy_with(
    conn: psycopg.Connection,
    data: str,
    name: str,
    columns: str,
    bad_column: str | None = None,
    value: str | None = None,
    cast: str | None = None,
) -> str:
    """``public.<name>`` with ``columns`` of bd_data; ``bad_column`` set to ``value`` (NULL
    when None) in the rows BAD; ``cast`` gives that column another type first."""
    select = (
        columns
        if cast is None or bad_column is None
        else columns.replace(bad_column, f"{bad_column}::{cast} AS {bad_column}")
    )
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier("public", name)))
    conn.execute(
        sql.SQL("CREATE TABLE {} AS SELECT {} FROM {}").format(
            sql.Identifier("public", name), sql.SQL(select), sql.SQL(data)
        )
    )
    if bad_column is not None:
        column_type = one(
            conn,
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attname = %s",
            (f"public.{name}", bad_column),
        )
        conn.execute(
            sql.SQL("UPDATE {} SET {} = %s::{} WHERE id = ANY(%s)").format(
                sql.Identifier("public", name), sql.Identifier(bad_column), sql.SQL(column_type)
            ),
            (value, list(BAD)),
        )
    return f"public.{name}"


def training_view(
    conn: psycopg.Connection, table: str, columns: str, view: str | None = None
) -> str:
    """A view of ``table`` without its id (every column of a training relation but the
    labels is a feature): ``view``, or ``<table>_v``."""
    view = view or f"{table}_v"
    conn.execute(
        sql.SQL("CREATE OR REPLACE VIEW {} AS SELECT {} FROM {}").format(
            sql.SQL(view), sql.SQL(columns), sql.SQL(table)
        )
    )
    return view


@contextmanager
def refused(
    admin: psycopg.Connection, error: type[psycopg.Error], *, match: str, detail: str | None = None
) -> Iterator[None]:
    """The block fails with ``error`` (message containing ``match``, DETAIL containing
    ``detail``) and leaves the registry as it was."""
    before = registry(admin)
    with pytest.raises(error) as caught:
        yield
    assert match in message(caught.value), message(caught.value)
    if detail is not None:
        assert detail in (caught.value.diag.message_detail or ""), caught.value.diag
    assert registry(admin) == before


@pytest.fixture
def tables(request: pytest.FixtureRequest) -> tuple[str, str]:
    """Names of a source and a target table of the test's own (its name, parameters
    included, made an identifier)."""
    name = request.node.name
    words = re.sub(r"\W+", "_", name).lower()[:40]
    base = f"public.{words}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return base + "_src", base + "_out"


def message(error: psycopg.Error) -> str:
    """The primary message, without PL/Python's prefix."""
    return error.diag.message_primary or ""


def run(conn: psycopg.Connection, template: str, *names: str, params: Any = None) -> Any:
    """``template`` with ``{}`` replaced by ``names`` (the test's own table names)."""
    return conn.execute(sql.SQL(template).format(*map(sql.SQL, names)), params)


# ---------------------------------------------------------------------------
# Training: NULL and NaN labels are 22004, in every supervised task
# ---------------------------------------------------------------------------


LABELS = [
    # task, label column, its type, the bad value (None: NULL)
    ("classification", "k", "real", "NaN"),
    ("classification", "k", "double precision", "NaN"),
    ("classification", "k", "numeric", "NaN"),
    ("classification", "k", "real", None),
    ("classification", "k", "integer", None),
    ("classification", "t", "text", None),
    ("classification", "flag", "boolean", None),
    ("regression", "y", "real", "NaN"),
    ("regression", "y", "double precision", None),
    ("regression", "y", "numeric", "NaN"),
]


@pytest.mark.parametrize(("task", "label", "sql_type", "value"), LABELS)
@pytest.mark.parametrize("algorithm", ["linear", "lightgbm"])
def test_null_or_nan_label_is_refused(
    conn: psycopg.Connection,
    admin: psycopg.Connection,
    data: str,
    project: str,
    task: str,
    label: str,
    sql_type: str,
    value: str | None,
    algorithm: str,
) -> None:
    table = copy_with(conn, data, "bd_label", f"id, a, b, c, {label}", label, value, sql_type)
    view = training_view(conn, table, f"a, b, c, {label}")
    with refused(
        admin,
        errors.NullValueNotAllowed,
        match=f'label column "{label}" contains NULL values',
        detail=f"2 of {ROWS} rows have a NULL",
    ):
        train(conn, project, view, label, task, algorithm)


def test_nan_label_of_a_joint_target_is_refused(
    conn: psycopg.Connection, admin: psycopg.Connection, data: str, project: str
) -> None:
    table = copy_with(conn, data, "bd_joint_nan", "id, a, b, c, y, y2", "y2", "NaN")
    view = training_view(conn, table, "a, b, c, y, y2")
    with refused(
        admin, errors.NullValueNotAllowed, match='label column "y2"', detail=f"2 of {ROWS} rows"
    ):
        train(conn, project, view, ["y", "y2"], "regression", joint=True)


def test_retraining_on_nan_labels_keeps_the_live_model(
    conn: psycopg.Connection, admin: psycopg.Connection, data: str, project: str
) -> None:
    """The reported case: NaN labels trained and deployed a model with a null class."""
    clean = training_view(
        conn, copy_with(conn, data, "bd_clean_k", "id, a, b, c, k::real AS k"), "a, b, c, k"
    )
    train(conn, project, clean, "k", "classification")
    live = one(conn, "SELECT pyml.deployed_model(%s)", (project,))
    bad = training_view(
        conn, copy_with(conn, data, "bd_nan_k", "id, a, b, c, k", "k", "NaN", "real"), "a, b, c, k"
    )
    with refused(admin, errors.NullValueNotAllowed, match='label column "k"'):
        train(conn, project, bad, "k", None, "lightgbm")
    assert one(conn, "SELECT pyml.deployed_model(%s)", (project,)) == live
    assert one(admin, "SELECT classes FROM pyml.models WHERE id = %s", (live,)) == [0, 1]
    assert one(conn, "SELECT pyml.predict(%s, ARRAY[1, 1, 1])", (project,)) in (0.0, 1.0)


# ---------------------------------------------------------------------------
# Training: Infinity is 22023, in features and labels
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", INFINITIES)
@pytest.mark.parametrize(
    ("task", "algorithm", "label"),
    [
        ("regression", "linear", "y"),
        ("regression", "lightgbm", "y"),
        ("regression", "random_forest", "y"),
        ("classification", "linear", "k"),
        ("classification", "lightgbm", "k"),
        ("clustering", "kmeans", None),
        ("decomposition", "pca", None),
    ],
)
@pytest.mark.parametrize("feature", FEATURES)
def test_infinite_feature_is_refused_in_training(
    conn: psycopg.Connection,
    admin: psycopg.Connection,
    data: str,
    project: str,
    value: str,
    task: str,
    algorithm: str,
    label: str | None,
    feature: str,
) -> None:
    labels = f", {label}" if label else ""
    table = copy_with(conn, data, "bd_inf", f"id, a, b, c{labels}", feature, value)
    view = training_view(conn, table, f"a, b, c{labels}")
    with refused(
        admin,
        errors.InvalidParameterValue,
        match=f'feature "{feature}" contains infinite values',
        detail=f"2 of {ROWS} rows are Infinity or -Infinity",
    ):
        train(conn, project, view, label, task, algorithm)


def test_imputation_does_not_hide_infinity(
    conn: psycopg.Connection, admin: psycopg.Connection, data: str, project: str
) -> None:
    table = copy_with(conn, data, "bd_inf_imputed", "id, a, b, c, y", "a", "Infinity")
    run(conn, "UPDATE {} SET a = NULL WHERE id = 5", table)
    view = training_view(conn, table, "a, b, c, y")
    preprocess = {"a": {"impute": "mean"}}
    with refused(admin, errors.InvalidParameterValue, match='feature "a" contains infinite values'):
        train(conn, project, view, "y", "regression", preprocess=preprocess)
    run(conn, "UPDATE {} SET a = 'NaN' WHERE id = ANY(%s)", table, params=(list(BAD),))
    train(conn, project, view, "y", "regression", preprocess=preprocess)  # NULL, NaN: imputed
    assert one(conn, "SELECT pyml.deployed_model(%s)", (project,)) is not None


def test_infinite_array_element_is_refused_in_training(
    conn: psycopg.Connection, admin: psycopg.Connection, data: str, project: str
) -> None:
    run(
        conn,
        "CREATE TABLE public.bd_arrays AS SELECT id, ARRAY[a, b]::float8[] AS v, y FROM {}",
        data,
    )
    conn.execute("UPDATE public.bd_arrays SET v[2] = '-Infinity' WHERE id = 3")
    view = training_view(conn, "public.bd_arrays", "v, y")
    with refused(
        admin,
        errors.InvalidParameterValue,
        match='feature "v[2]" contains infinite values',
        detail=f"1 of {ROWS} rows is Infinity or -Infinity",
    ):
        train(conn, project, view, "y", "regression")


@pytest.mark.parametrize(
    ("task", "label", "sql_type", "value"),
    [
        ("regression", "y", "real", "Infinity"),
        ("regression", "y", "numeric", "-Infinity"),
        ("classification", "k", "double precision", "Infinity"),
        ("classification", "k", "numeric", "-Infinity"),
    ],
)
def test_infinite_label_is_refused(
    conn: psycopg.Connection,
    admin: psycopg.Connection,
    data: str,
    project: str,
    task: str,
    label: str,
    sql_type: str,
    value: str,
) -> None:
    table = copy_with(conn, data, "bd_inf_label", f"id, a, b, c, {label}", label, value, sql_type)
    view = training_view(conn, table, f"a, b, c, {label}")
    with refused(
        admin,
        errors.InvalidParameterValue,
        match=f'label column "{label}" contains infinite values',
        detail=f"2 of {ROWS} rows have Infinity or -Infinity as label",
    ):
        train(conn, project, view, label, task, "lightgbm")


def test_infinite_joint_target_is_refused(
    conn: psycopg.Connection, admin: psycopg.Connection, data: str, project: str
) -> None:
    table = copy_with(conn, data, "bd_joint_inf", "id, a, b, c, y, y2", "y2", "Infinity")
    view = training_view(conn, table, "a, b, c, y, y2")
    with refused(
        admin, errors.InvalidParameterValue, match='label column "y2" contains infinite values'
    ):
        train(conn, project, view, ["y", "y2"], "regression", joint=True)


def test_snapshot_refuses_infinity(
    conn: psycopg.Connection, admin: psycopg.Connection, data: str
) -> None:
    table = copy_with(conn, data, "bd_inf_snapshot", "id, a, b, c, y", "b", "Infinity")
    view = training_view(conn, table, "a, b, c, y")
    with refused(admin, errors.InvalidParameterValue, match='feature "b" contains infinite values'):
        conn.execute("SELECT * FROM pyml.snapshot(%s, 'y')", (view,))


# ---------------------------------------------------------------------------
# Prediction: Infinity is 22023 on every path, for every algorithm
# ---------------------------------------------------------------------------


MODELS = {
    # project: (task, algorithm, label, preprocess)
    "bd linear": ("regression", "linear", "y", None),
    "bd lightgbm": ("regression", "lightgbm", "y", None),
    "bd forest": ("regression", "random_forest", "y", None),
    "bd cls linear": ("classification", "linear", "k", None),
    "bd cls lightgbm": ("classification", "lightgbm", "k", None),
    "bd cls text": ("classification", "lightgbm", "t", None),
    "bd imputed": (
        "regression",
        "lightgbm",
        "y",
        {"a": {"impute": "mean"}, "b": {"impute": "median", "scale": "standard"}},
    ),
    "bd kmeans": ("clustering", "kmeans", None, None),
    "bd pca": ("decomposition", "pca", None, None),
}
REGRESSORS = ["bd linear", "bd lightgbm", "bd forest", "bd imputed"]
CLASSIFIERS = ["bd cls linear", "bd cls lightgbm", "bd cls text"]
ARRAY_TYPES = ("real[]", "double precision[]", "numeric[]")


@pytest.fixture(scope="module")
def models(conn: psycopg.Connection, data: str) -> list[str]:
    """The projects of MODELS and "bd joint", trained on bd_data; ``bd_inputs``: its
    features, with b = Infinity in row 3 and c = -Infinity in row 17."""
    for i, (name, (task, algorithm, label, preprocess)) in enumerate(MODELS.items()):
        view = training_view(
            conn, data, "a, b, c" + (f", {label}" if label else ""), f"public.bd_train_{i}"
        )
        train(conn, name, view, label, task, algorithm, preprocess)
    view = training_view(conn, data, "a, b, c, y, y2", "public.bd_train_joint")
    train(conn, "bd joint", view, ["y", "y2"], "regression", "lightgbm", joint=True)
    run(conn, "CREATE TABLE public.bd_inputs AS SELECT id, a, b, c FROM {}", data)
    conn.execute("ALTER TABLE public.bd_inputs ADD PRIMARY KEY (id)")
    conn.execute("UPDATE public.bd_inputs SET b = 'Infinity' WHERE id = 3")
    conn.execute("UPDATE public.bd_inputs SET c = '-Infinity' WHERE id = 17")
    return [*MODELS, "bd joint"]


@contextmanager
def infinite(position: str | None = None) -> Iterator[None]:
    """The block fails with 22023 for an infinite input (``position`` in its text)."""
    with pytest.raises(errors.InvalidParameterValue) as caught:
        yield
    primary = message(caught.value)
    assert "infinite" in primary or "Infinity" in primary, primary
    if position is not None:
        text = f"{primary} {caught.value.diag.message_detail}"
        assert position in text, text


@pytest.mark.parametrize("value", INFINITIES)
@pytest.mark.parametrize("name", REGRESSORS + CLASSIFIERS + ["bd kmeans"])
def test_infinite_array_input(
    connect: Callable[..., psycopg.Connection], models: list[str], name: str, value: str
) -> None:
    """A fresh session (the general path) and one whose fast path is warm answer alike."""
    function = sql.Identifier("predict_label" if name == "bd cls text" else "predict")
    for warm in (False, True):
        session = connect()
        if warm:
            session.execute(
                sql.SQL("SELECT pyml.{}(%s, ARRAY[1, 1, 0.5]::float8[])").format(function), (name,)
            )
        for sql_type in ARRAY_TYPES:
            with infinite(f'Feature 2 ("b") is {value}'):
                session.execute(
                    sql.SQL("SELECT pyml.{}(%s, %s::{})").format(function, sql.SQL(sql_type)),
                    (name, f"{{1,{value},0.5}}"),
                )
        session.close()


@pytest.mark.parametrize("function", ["predict_proba", "predict_label"])
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_infinite_input_of_predict_proba_and_label(
    conn: psycopg.Connection, models: list[str], name: str, function: str
) -> None:
    call = sql.Identifier(function)
    with infinite('Feature 2 ("b") is Infinity'):
        conn.execute(
            sql.SQL("SELECT pyml.{}(%s, ARRAY[1, 'Infinity', 0.5]::real[])").format(call), (name,)
        )
    with infinite():
        conn.execute(
            sql.SQL("SELECT pyml.{}(%s, t) FROM public.bd_inputs t WHERE id = 3").format(call),
            (name,),
        )


@pytest.mark.parametrize("name", REGRESSORS + ["bd cls linear", "bd cls lightgbm", "bd kmeans"])
def test_infinite_row_input(conn: psycopg.Connection, models: list[str], name: str) -> None:
    """A table row (matched by column name) and ROW(...) (by position)."""
    for row in (3, 17):
        with infinite():
            conn.execute(
                "SELECT pyml.predict(%s, t) FROM public.bd_inputs t WHERE id = %s", (name, row)
            )
    with infinite():
        conn.execute(
            "SELECT pyml.predict(%s, ROW(1::real, 'Infinity'::float8, 0.5::numeric))", (name,)
        )
    assert (
        one(
            conn,
            "SELECT count(pyml.predict(%s, t)) FROM public.bd_inputs t WHERE id NOT IN (3, 17)",
            (name,),
        )
        == ROWS - 2
    )


@pytest.mark.parametrize("name", REGRESSORS + ["bd cls lightgbm"])
def test_infinite_input_of_predict_batch(
    conn: psycopg.Connection, models: list[str], name: str
) -> None:
    with infinite('Feature 2 ("b") of row 3 is -Infinity'):
        conn.execute(
            "SELECT * FROM pyml.predict_batch(%s, %s::float8[])",
            (name, "{1,1,0.5,2,1,0.5,1,-Infinity,0.5}"),
        )
    assert (
        len(
            conn.execute(
                "SELECT * FROM pyml.predict_batch(%s, %s::float8[])", (name, "{1,1,0.5,2,1,0.5}")
            ).fetchall()
        )
        == 2
    )


def test_infinite_input_of_predict_joint(conn: psycopg.Connection, models: list[str]) -> None:
    with infinite('Feature 2 ("b") is Infinity'):
        conn.execute("SELECT pyml.predict_joint('bd joint', ARRAY[1, 'Infinity', 0.5]::real[])")
    with infinite('Feature 3 ("c") is -Infinity'):
        conn.execute("SELECT pyml.predict_joint('bd joint', ARRAY[1, 1, '-Infinity']::numeric[])")
    assert len(one(conn, "SELECT pyml.predict_joint('bd joint', ARRAY[1, 1, 0.5]::real[])")) == 2


@pytest.mark.parametrize("name", ["bd linear", "bd lightgbm", "bd imputed"])
def test_infinite_input_of_explain(conn: psycopg.Connection, models: list[str], name: str) -> None:
    with infinite():
        conn.execute("SELECT * FROM pyml.explain(%s, ARRAY[1, '-Infinity', 0.5]::real[])", (name,))
    with infinite():
        conn.execute(
            "SELECT e.* FROM public.bd_inputs t, pyml.explain(%s, t) e WHERE t.id = 17", (name,)
        )
    assert conn.execute(
        "SELECT * FROM pyml.explain(%s, ARRAY[1, 1, 0.5]::real[])", (name,)
    ).fetchall()


def test_infinite_input_of_decompose(conn: psycopg.Connection, models: list[str]) -> None:
    with infinite('Feature 2 ("b") is Infinity'):
        conn.execute("SELECT pyml.decompose('bd pca', ARRAY[1, 'Infinity', 0.5]::real[])")
    assert one(conn, "SELECT pyml.decompose('bd pca', ARRAY[1, 1, 0.5]::real[])")


def test_imputed_model_takes_null_and_nan_but_not_infinity(
    conn: psycopg.Connection, models: list[str]
) -> None:
    for features in ("{NULL,1,0.5}", "{NaN,NaN,0.5}"):
        value = one(conn, "SELECT pyml.predict('bd imputed', %s::float8[])", (features,))
        assert math.isfinite(value)
    assert math.isfinite(
        one(conn, "SELECT pyml.predict('bd imputed', ROW(NULL::real, 'NaN'::float8, 0.5::numeric))")
    )
    with infinite('Feature 1 ("a") is Infinity'):
        conn.execute("SELECT pyml.predict('bd imputed', ARRAY['Infinity', 1, 0.5]::float8[])")
    with infinite('feature "b" is -Infinity'):
        conn.execute(
            "SELECT pyml.predict('bd imputed', ROW(1::real, '-Infinity'::float8, 0.5::numeric))"
        )
    with pytest.raises(errors.NullValueNotAllowed):  # c is not imputed: NULL is refused
        conn.execute("SELECT pyml.predict('bd imputed', ARRAY[1, 1, NULL]::float8[])")


# ---------------------------------------------------------------------------
# predict_into: Infinity names the row's key; nothing is written
# ---------------------------------------------------------------------------


def scores(conn: psycopg.Connection, table: str) -> list[tuple[Any, ...]]:
    return run(conn, "SELECT id, prediction, model_id FROM {} ORDER BY id", table).fetchall()


@pytest.mark.parametrize("name", ["bd linear", "bd lightgbm", "bd imputed", "bd cls lightgbm"])
def test_infinite_input_of_predict_into(
    conn: psycopg.Connection, models: list[str], name: str, tables: tuple[str, str]
) -> None:
    _, out = tables
    with pytest.raises(errors.InvalidParameterValue) as caught:
        conn.execute("SELECT pyml.predict_into(%s, 'public.bd_inputs', %s)", (name, out))
    if name == "bd imputed":  # the preprocessing's own check
        assert message(caught.value) == 'feature "b" contains infinite values'
        assert caught.value.diag.message_detail == "The row with id = 3."
    else:
        assert message(caught.value) == "features must not be infinite"
        assert caught.value.diag.message_detail == 'The row with id = 3 has Infinity in "b".'
    assert one(conn, "SELECT to_regclass(%s)", (out,)) is None
    # an existing table keeps what it had
    run(
        conn,
        "CREATE TABLE {} (id bigint PRIMARY KEY, prediction real, model_id bigint,"
        " scored_at timestamptz)",
        out,
    )
    run(conn, "INSERT INTO {} VALUES (1, 0, NULL, now())", out)
    with infinite():
        conn.execute("SELECT pyml.predict_into(%s, 'public.bd_inputs', %s)", (name, out))
    assert scores(conn, out) == [(1, 0.0, None)]


# ---------------------------------------------------------------------------
# predict_into: one row per key
# ---------------------------------------------------------------------------


def test_predict_into_a_new_table_gives_it_a_primary_key(
    conn: psycopg.Connection, models: list[str], tables: tuple[str, str]
) -> None:
    src, out = tables
    run(conn, "CREATE TABLE {} AS SELECT * FROM public.bd_inputs WHERE id NOT IN (3, 17)", src)
    assert one(conn, "SELECT pyml.predict_into('bd linear', %s, %s)", (src, out)) == ROWS - 2
    assert (
        one(
            conn,
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = %s::regclass AND contype = 'p'",
            (out,),
        )
        == "PRIMARY KEY (id)"
    )
    assert one(conn, "SELECT pyml.predict_into('bd linear', %s, %s)", (src, out)) == ROWS - 2
    assert len(scores(conn, out)) == ROWS - 2


@pytest.mark.parametrize("index", ["PRIMARY KEY (id)", "UNIQUE (id)"])
@pytest.mark.parametrize("source_key", ["none", "primary key"])
def test_second_run_replaces_the_rows_of_its_keys(
    conn: psycopg.Connection,
    models: list[str],
    tables: tuple[str, str],
    index: str,
    source_key: str,
) -> None:
    src, out = tables
    run(
        conn,
        "CREATE TABLE {} AS SELECT * FROM public.bd_inputs WHERE id NOT IN (3, 17) AND id <= 40",
        src,
    )
    if source_key == "primary key":  # then predict_into need not check the source's keys
        run(conn, "ALTER TABLE {} ADD PRIMARY KEY (id)", src)
    run(
        conn,
        "CREATE TABLE {} (id bigint, prediction real, model_id bigint,"
        " scored_at timestamptz, " + index + ")",
        out,
    )
    run(
        conn,
        "INSERT INTO {} VALUES (1, -1, NULL, '2001-01-01'), (1000, -1, NULL, '2001-01-01')",
        out,
    )
    first = one(conn, "SELECT pyml.deployed_model('bd linear')")
    assert one(conn, "SELECT pyml.predict_into('bd linear', %s, %s)", (src, out)) == 38
    after_first = scores(conn, out)
    assert len(after_first) == 39
    assert after_first[-1] == (1000, -1.0, None)  # a key the source does not have: left alone
    assert all(model_id == first for _, _, model_id in after_first[:-1])
    # the same keys scored by another model: replaced, not added
    second = one(conn, "SELECT pyml.deployed_model('bd forest')")
    assert one(conn, "SELECT pyml.predict_into('bd forest', %s, %s)", (src, out)) == 38
    after_second = scores(conn, out)
    assert [r[0] for r in after_second] == [r[0] for r in after_first]
    assert all(model_id == second for _, _, model_id in after_second[:-1])
    assert after_second[-1] == (1000, -1.0, None)
    expected = one(
        conn,
        sql.SQL(
            "SELECT pyml.predict('bd forest', ARRAY[a, b, c]::float8[]) FROM {} WHERE id = 1"
        ).format(sql.SQL(src)),
    )
    assert after_second[0][1] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "constraint",
    ["", ", UNIQUE (id, model_id)", ", EXCLUDE USING btree (id WITH =)"],
    ids=["none", "composite", "exclusion"],
)
def test_existing_table_without_a_unique_key_is_55000(
    conn: psycopg.Connection, models: list[str], tables: tuple[str, str], constraint: str
) -> None:
    _, out = tables
    run(
        conn,
        "CREATE TABLE {} (id bigint, prediction real, model_id bigint,"
        " scored_at timestamptz" + constraint + ")",
        out,
    )
    run(conn, "INSERT INTO {} VALUES (1, -1, NULL, '2001-01-01')", out)
    with pytest.raises(errors.ObjectNotInPrerequisiteState) as caught:
        conn.execute("SELECT pyml.predict_into('bd linear', 'public.bd_data', %s)", (out,))
    diag = caught.value.diag
    assert message(caught.value) == f'table "{out}" has no unique index on column "id"'
    assert diag.message_hint == f"Add one, for example: ALTER TABLE {out} ADD PRIMARY KEY (id);"
    assert scores(conn, out) == [(1, -1.0, None)]
    run(conn, "ALTER TABLE {} ADD PRIMARY KEY (id)", out)  # as the hint says
    assert one(conn, "SELECT pyml.predict_into('bd linear', 'public.bd_data', %s)", (out,)) == ROWS
    assert len(scores(conn, out)) == ROWS


def test_existing_table_without_the_key_column_is_42703(
    conn: psycopg.Connection, models: list[str], tables: tuple[str, str]
) -> None:
    _, out = tables
    run(conn, "CREATE TABLE {} (key bigint PRIMARY KEY, prediction real)", out)
    with pytest.raises(errors.UndefinedColumn):
        conn.execute("SELECT pyml.predict_into('bd linear', 'public.bd_data', %s)", (out,))


@pytest.mark.parametrize("target", ["new", "existing"])
def test_duplicate_source_keys_are_21000(
    conn: psycopg.Connection, models: list[str], tables: tuple[str, str], target: str
) -> None:
    src, out = tables
    run(
        conn,
        "CREATE TABLE {} AS SELECT * FROM public.bd_data WHERE id > 20"
        " UNION ALL SELECT * FROM public.bd_data WHERE id IN (30, 40)",
        src,
    )
    if target == "existing":
        run(
            conn,
            "CREATE TABLE {} (id bigint PRIMARY KEY, prediction real, model_id bigint,"
            " scored_at timestamptz)",
            out,
        )
        run(conn, "INSERT INTO {} VALUES (30, -1, NULL, '2001-01-01')", out)
    with pytest.raises(errors.CardinalityViolation) as caught:
        conn.execute("SELECT pyml.predict_into('bd lightgbm', %s, %s)", (src, out))
    diag = caught.value.diag
    assert message(caught.value) == f'relation "{src}" has more than one row with id = 30'
    assert (diag.message_detail or "").startswith("2 keys appear in more than one row.")
    if target == "new":
        assert one(conn, "SELECT to_regclass(%s)", (out,)) is None
    else:
        assert scores(conn, out) == [(30, -1.0, None)]


@pytest.mark.parametrize("target", ["new", "existing (primary key)", "existing (unique)"])
def test_null_source_keys_are_22004(
    conn: psycopg.Connection, models: list[str], tables: tuple[str, str], target: str
) -> None:
    src, out = tables
    run(conn, "CREATE TABLE {} AS SELECT * FROM public.bd_data WHERE id > 20", src)
    run(conn, "UPDATE {} SET id = NULL WHERE id IN (25, 26, 27)", src)
    if target != "new":
        key = "PRIMARY KEY" if "primary" in target else "UNIQUE"
        run(
            conn,
            "CREATE TABLE {} (id bigint " + key + ", prediction real, model_id bigint,"
            " scored_at timestamptz)",
            out,
        )
    with pytest.raises(errors.NullValueNotAllowed) as caught:
        conn.execute("SELECT pyml.predict_into('bd lightgbm', %s, %s)", (src, out))
    diag = caught.value.diag
    assert message(caught.value) == f'key column "id" of relation "{src}" contains NULL values'
    assert (diag.message_detail or "").startswith("3 rows have a NULL key.")
    if target == "new":
        assert one(conn, "SELECT to_regclass(%s)", (out,)) is None
    else:
        assert scores(conn, out) == []


def test_duplicate_keys_in_different_chunks_are_found(
    conn: psycopg.Connection, project: str, tables: tuple[str, str]
) -> None:
    """A source read in several chunks, a key in the first and the last: the new table's
    primary key finds it once the table is filled."""
    src, out = tables
    run(
        conn,
        "CREATE TABLE {} AS SELECT i::int8 AS id, mod(i, 97)::real AS a,"
        " mod(i * 7, 13)::real AS b, (mod(i, 89) - mod(i * 7, 13))::real AS y"
        " FROM generate_series(1, 250000) i",
        src,
    )
    run(conn, "UPDATE {} SET id = 1 WHERE id = 250000", src)
    run(conn, "ANALYZE {}", src)
    view = training_view(conn, src, "a, b, y")
    train(conn, project, view, "y", "regression", "lightgbm")
    with pytest.raises(errors.CardinalityViolation, match="more than one row with id = 1"):
        conn.execute("SELECT pyml.predict_into(%s, %s, %s)", (project, src, out))
    assert one(conn, "SELECT to_regclass(%s)", (out,)) is None


# ---------------------------------------------------------------------------
# Streams: a sync statement fails (nothing written); an async row becomes an event with its
# error
# ---------------------------------------------------------------------------


def events(admin: psycopg.Connection, stream_id: int) -> list[tuple[Any, ...]]:
    return admin.execute(
        "SELECT key, prediction, error FROM pyml.stream_events"
        " WHERE stream_id = %s ORDER BY key::int",
        (stream_id,),
    ).fetchall()


@pytest.fixture
def streamed(
    conn: psycopg.Connection, models: list[str], tables: tuple[str, str]
) -> Callable[[str, str], tuple[str, int]]:
    """``make(project, mode)``: a new table (id, a, b, c) streamed by the project's model."""

    def make(name: str, mode: str) -> tuple[str, int]:
        table, _ = tables
        run(
            conn,
            "CREATE TABLE {} (id bigint PRIMARY KEY, a real, b double precision, c numeric)",
            table,
        )
        stream_id = one(conn, "SELECT pyml.stream(%s, %s, mode => %s)", (name, table, mode))
        return table, stream_id

    return make


def insert_rows(conn: psycopg.Connection, table: str, count: int, bad: dict[int, str]) -> None:
    """Rows 1..count in one statement; ``bad``: row -> the text of its b."""
    run(
        conn,
        "INSERT INTO {} SELECT i, mod(i, 7) / 3.0,"
        " coalesce((%s::jsonb ->> i::text)::float8, mod(i, 5) / 2.0), 0.5"
        " FROM generate_series(1, %s) AS i",
        table,
        params=(json.dumps({str(k): v for k, v in bad.items()}), count),
    )


@pytest.mark.parametrize("count", [1, 3, 100], ids=["one row", "small", "chunked"])
@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("Infinity", errors.InvalidParameterValue),
        ("-Infinity", errors.InvalidParameterValue),
        ("NaN", errors.NullValueNotAllowed),
    ],
)
@pytest.mark.parametrize("name", ["bd linear", "bd lightgbm"])
def test_sync_stream_statement_with_a_bad_feature_fails(
    conn: psycopg.Connection,
    admin: psycopg.Connection,
    streamed: Callable[[str, str], tuple[str, int]],
    name: str,
    value: str,
    error: type[psycopg.Error],
    count: int,
) -> None:
    table, stream_id = streamed(name, "sync")
    with pytest.raises(error) as caught:
        insert_rows(conn, table, count, {count: value})
    shown = "a NULL (or NaN)" if value == "NaN" else value
    assert caught.value.diag.message_detail == f'The row with id = {count} has {shown} in "b".'
    assert one(conn, sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(table))) == 0
    assert events(admin, stream_id) == []
    insert_rows(conn, table, count, {})
    assert len(events(admin, stream_id)) == count


def test_sync_stream_imputes_nan_and_refuses_infinity(
    conn: psycopg.Connection,
    admin: psycopg.Connection,
    streamed: Callable[[str, str], tuple[str, int]],
) -> None:
    table, stream_id = streamed("bd imputed", "sync")
    insert_rows(conn, table, 3, {2: "NaN"})
    assert [p is not None for _, p, _ in events(admin, stream_id)] == [True] * 3
    with pytest.raises(errors.InvalidParameterValue):
        run(conn, "INSERT INTO {} VALUES (10, 1, 'Infinity', 0.5)", table)
    assert len(events(admin, stream_id)) == 3


@pytest.mark.parametrize("name", ["bd linear", "bd lightgbm", "bd imputed"])
def test_async_stream_row_with_infinity_becomes_an_event_with_its_error(
    conn: psycopg.Connection,
    admin: psycopg.Connection,
    streamed: Callable[[str, str], tuple[str, int]],
    name: str,
) -> None:
    table, stream_id = streamed(name, "async")
    insert_rows(conn, table, 6, {2: "Infinity", 5: "-Infinity"})
    conn.execute("CALL pyml.stream_work(%s)", (stream_id,))
    got = {int(key): (prediction, error) for key, prediction, error in events(admin, stream_id)}
    assert sorted(got) == [1, 2, 3, 4, 5, 6]
    assert got[2] == (None, 'feature "b" is Infinity')
    assert got[5] == (None, 'feature "b" is -Infinity')
    for row in (1, 3, 4, 6):
        assert got[row][0] is not None and got[row][1] is None


# ---------------------------------------------------------------------------
# Drift: Infinity is a value of the data, kept in the statistics; the prediction comparison
# leaves out the rows the model refuses
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bd lightgbm", "bd imputed", "bd cls lightgbm"])
def test_drift_of_rows_with_infinity(
    conn: psycopg.Connection, models: list[str], name: str
) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS public.bd_finite AS SELECT * FROM public.bd_inputs"
        " WHERE id NOT IN (3, 17)"
    )

    def drift(relation: str) -> dict[tuple[str, str], float]:
        rows = conn.execute(
            "SELECT feature, metric, value FROM pyml.drift(%s, %s)", (name, relation)
        ).fetchall()
        return {(feature, metric): value for feature, metric, value in rows}

    with_infinity, finite = drift("public.bd_inputs"), drift("public.bd_finite")
    assert set(with_infinity) == set(finite)
    assert {feature for feature, _ in finite} == {"a", "b", "c", "__prediction__"}
    assert all(math.isfinite(v) for v in with_infinity.values())
    # the predictions compared are those of the same (finite) rows
    for key in [k for k in finite if k[0] == "__prediction__"]:
        assert with_infinity[key] == pytest.approx(finite[key]), key
    # a feature's statistics count its infinite values, in the outer bins
    assert with_infinity[("b", "ks")] != pytest.approx(finite[("b", "ks")])


def test_monitoring_round_on_rows_with_infinity_records_a_failed_retrain(
    conn: psycopg.Connection,
    admin: psycopg.Connection,
    data: str,
    project: str,
    tables: tuple[str, str],
) -> None:
    """Drift is measured (Infinity kept as a value), the retrain it calls for fails with the
    training error, recorded in the report; the live model stays."""
    src, _ = tables
    run(conn, "CREATE TABLE {} AS SELECT id, a, b, c, y FROM {}", src, data)
    view = training_view(conn, src, "a, b, c, y")
    train(conn, project, view, "y", "regression", "lightgbm")
    live = one(conn, "SELECT pyml.deployed_model(%s)", (project,))
    run(conn, "UPDATE {} SET a = a + 5", src)  # drifted
    run(conn, "UPDATE {} SET b = 'Infinity' WHERE id = 3", src)
    models = registry(admin)["models"]
    drifted, retrained, deployed, old, new, report = conn.execute(
        "SELECT * FROM pyml.check(%s)", (project,)
    ).fetchone()
    assert (drifted, retrained, deployed, old, new) == (True, False, False, live, None)
    decision, detail = admin.execute(
        "SELECT decision, detail FROM pyml.drift_reports WHERE id = %s", (report,)
    ).fetchone()
    assert (decision, detail) == ("failed", 'feature "b" contains infinite values')
    assert one(conn, "SELECT pyml.deployed_model(%s)", (project,)) == live
    assert registry(admin)["models"] == models
