"""pyml.client from Python against the real server: psycopg adapters, typed helpers, NOTICEs in
logging, SQLAlchemy statements executed for real, and the server's errors as psycopg classes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.dialects import postgresql

import pyml.client
from pyml.client import _functions, _signatures
from pyml.client import sqlalchemy as pyml_sa

Connect = Callable[..., psycopg.Connection]
DIABETES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


@pytest.fixture(scope="module")
def diabetes(conn: psycopg.Connection) -> pyml.client.TrainResult:
    """A regression model of pyml.diabetes, trained by the helper."""
    return pyml.client.train(
        conn,
        "py_diabetes",
        task="regression",
        relation_name="pyml.diabetes",
        y_column_name="target",
    )


@pytest.fixture(scope="module")
def rows(conn: psycopg.Connection) -> np.ndarray:
    """The first rows of pyml.diabetes, as float32 (their real values)."""
    found = conn.execute(
        sql.SQL("SELECT {} FROM pyml.diabetes LIMIT 6").format(
            sql.SQL(", ").join(map(sql.Identifier, DIABETES))
        )
    ).fetchall()
    return np.array(found, dtype=np.float32)


def sql_predict(conn: psycopg.Connection, project: str, row: np.ndarray) -> float:
    """The prediction of one row called from SQL text, the reference for every path here."""
    (value,) = conn.execute(
        "SELECT pyml.predict(%s, %s::real[])", (project, [float(v) for v in row])
    ).fetchone()
    return value


@pytest.fixture(scope="module")
def registered(connect: Connect) -> psycopg.Connection:
    conn = connect()
    pyml.client.register(conn)
    return conn


# ---------------------------------------------------------------------------
# Adapters
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "type_name"),
    [
        (np.array([0.1, -2.5, 3e-8], dtype=np.float32), "real[]"),
        (np.array([[0.1, 2.0], [3.0, -4.5]], dtype=np.float32), "real[]"),
        (np.array([0.1, np.pi]), "double precision[]"),
        (np.arange(6.0).reshape(2, 3) / 7, "double precision[]"),
        (np.array([1, -2], dtype=np.int16), "smallint[]"),
        (np.array([[1, 2**31 - 1]], dtype=np.int32), "integer[]"),
        (np.array([2**40, -1]), "bigint[]"),
        (np.array([True, False]), "boolean[]"),
        (np.zeros((0, 3), dtype=np.float32), "real[]"),
    ],
)
@pytest.mark.parametrize("placeholder", ["%s", "%t", "%b"])
def test_numpy_arrays_arrive_with_their_type_and_values(
    registered: psycopg.Connection, values: np.ndarray, type_name: str, placeholder: str
) -> None:
    query = f"SELECT pg_typeof({placeholder})::text, {placeholder}"
    found, back = registered.execute(query, (values, values), binary=True).fetchone()
    assert found == type_name
    assert np.array_equal(np.array(back, dtype=values.dtype).reshape(values.shape), values)
    (dims,) = registered.execute(f"SELECT array_dims({placeholder})", (values,)).fetchone()
    assert dims == ("".join(f"[1:{n}]" for n in values.shape) if values.size else None)


def test_numpy_scalars_and_mixed_lists(registered: psycopg.Connection) -> None:
    found = registered.execute(
        "SELECT pg_typeof(%s)::text, pg_typeof(%s)::text, pg_typeof(%s)::text, %s, %s",
        (np.float32(0.5), np.int64(3), [1, 2.5], [1, 2.5], [[1, np.float32(0.5)], [2, 3]]),
    ).fetchone()
    assert found == ("real", "bigint", "double precision[]", [1.0, 2.5], [[1.0, 0.5], [2.0, 3.0]])


def test_without_register_psycopg_refuses_them(conn: psycopg.Connection) -> None:
    """What users hit before (issue 15): the helpers and register() are what change it."""
    with pytest.raises(psycopg.ProgrammingError, match="cannot adapt type 'ndarray'"):
        conn.execute("SELECT %s", (np.zeros(2),))
    with pytest.raises(psycopg.DataError, match="mixed types"):
        conn.execute("SELECT %s", ([1, 2.5],))
    with pytest.raises(psycopg.ProgrammingError, match="cannot adapt type 'dict'"):
        conn.execute("SELECT %s", ({"a": 1},))


def test_helpers_leave_the_connection_adapters_alone(
    conn: psycopg.Connection, diabetes: pyml.client.TrainResult, rows: np.ndarray
) -> None:
    pyml.client.predict(conn, "py_diabetes", rows[0])
    with pytest.raises(psycopg.ProgrammingError, match="cannot adapt type 'ndarray'"):
        conn.execute("SELECT %s", (rows[0],))


def with_whole_number(row: np.ndarray) -> tuple[list[Any], np.ndarray]:
    """``row`` with its second value set to 1, as a list mixing ints and floats, and as real."""
    mixed = [float(row[0]), 1, *map(float, row[2:])]
    return mixed, np.array(mixed, dtype=np.float32)


def test_raw_psycopg_calls_with_register(
    registered: psycopg.Connection, diabetes: pyml.client.TrainResult, rows: np.ndarray
) -> None:
    expected = sql_predict(registered, "py_diabetes", rows[0])
    for features in (rows[0], rows[0].astype(np.float64), rows[0].tolist()):
        (value,) = registered.execute(
            "SELECT pyml.predict(%s, %s)", ("py_diabetes", features)
        ).fetchone()
        assert value == expected
    mixed, real = with_whole_number(rows[0])
    (value,) = registered.execute("SELECT pyml.predict(%s, %s)", ("py_diabetes", mixed)).fetchone()
    assert value == sql_predict(registered, "py_diabetes", real)
    (count,) = registered.execute(
        "SELECT count(*) FROM pyml.predict_batch(%s, %s)", ("py_diabetes", rows)
    ).fetchone()
    assert count == len(rows)
    project, deployed = registered.execute(
        "SELECT project, deployed FROM pyml.train(%s, algorithm => 'ridge',"
        " hyperparams => %s, automatic_deploy => false)",
        ("py_diabetes", {"alpha": np.float64(0.5)}),
    ).fetchone()
    assert (project, deployed) == ("py_diabetes", False)


# ---------------------------------------------------------------------------
# Typed helpers
# ---------------------------------------------------------------------------


def newest_model(conn: psycopg.Connection, project: str) -> tuple[int, dict[str, Any]]:
    return conn.execute(
        "SELECT m.id, m.hyperparams FROM pyml.models m JOIN pyml.projects p"
        " ON p.id = m.project_id WHERE p.name = %s ORDER BY m.id DESC LIMIT 1",
        (project,),
    ).fetchone()


def test_train_returns_a_typed_result(
    conn: psycopg.Connection, diabetes: pyml.client.TrainResult
) -> None:
    assert diabetes.project == "py_diabetes"
    assert (diabetes.task, diabetes.algorithm, diabetes.deployed) == ("regression", "linear", True)
    assert isinstance(diabetes.model_id, int)
    assert {"r2", "mean_absolute_error", "mean_squared_error"} <= set(diabetes.metrics)
    (metrics,) = conn.execute(
        "SELECT metrics FROM pyml.models WHERE id = %s", (diabetes.model_id,)
    ).fetchone()
    assert diabetes.metrics == metrics


def test_train_with_dict_hyperparams_and_keywords(
    conn: psycopg.Connection, diabetes: pyml.client.TrainResult
) -> None:
    result = pyml.client.train(
        conn,
        "py_diabetes",
        relation_name="pyml.diabetes",
        y_column_name="target",
        algorithm="lightgbm",
        hyperparams={"n_estimators": np.int64(7), "learning_rate": 0.2},
        test_size=0.3,
        test_sampling="last",
        automatic_deploy=False,
    )
    assert (result.algorithm, result.deployed) == ("lightgbm", False)
    model_id, hyperparams = newest_model(conn, "py_diabetes")
    assert result.model_id == model_id != diabetes.model_id
    assert (hyperparams["n_estimators"], hyperparams["learning_rate"]) == (7, 0.2)
    (test_size, sampling) = conn.execute(
        "SELECT s.test_size, s.test_sampling FROM pyml.models m"
        " JOIN pyml.snapshots s ON s.id = m.snapshot_id WHERE m.id = %s",
        (model_id,),
    ).fetchone()
    assert (test_size, sampling) == (0.3, "last")
    # JSON text works as in SQL
    again = pyml.client.train(
        conn, "py_diabetes", algorithm="ridge", hyperparams='{"alpha": 2}', automatic_deploy=False
    )
    model_id, hyperparams = newest_model(conn, "py_diabetes")
    assert (again.model_id, hyperparams["alpha"]) == (model_id, 2)


def test_train_joint_for_several_labels(conn: psycopg.Connection) -> None:
    result = pyml.client.train(
        conn,
        "py_linnerud",
        task="regression",
        relation_name="pyml.linnerud",
        y_column_name=("weight", "waist", "pulse"),
    )
    assert (result.task, result.deployed) == ("regression", True)
    assert result.model_id == newest_model(conn, "py_linnerud")[0]


def test_the_model_read_is_the_one_this_transaction_trained(
    connect: Connect, admin_url: str, diabetes: pyml.client.TrainResult
) -> None:
    """A model of the same project committed by another session after ours was trained has
    a higher id; the lookup still finds ours (a newest-id lookup would not)."""
    mine = connect(autocommit=False)
    mine.execute("SELECT * FROM pyml.train('py_diabetes', automatic_deploy => false)")
    with psycopg.connect(admin_url, autocommit=True) as other:
        (theirs,) = other.execute(
            "INSERT INTO pyml.models (project_id, algorithm, status)"
            " SELECT id, 'linear', 'failed' FROM pyml.projects WHERE name = 'py_diabetes'"
            " RETURNING id"
        ).fetchone()
        try:
            (newest, ours) = mine.execute(
                "SELECT max(m.id), max(m.id) FILTER (WHERE m.id <> %s) FROM pyml.models m"
                " JOIN pyml.projects p ON p.id = m.project_id WHERE p.name = 'py_diabetes'",
                (theirs,),
            ).fetchone()
            (found, _) = mine.execute(_functions._TRAINED_MODEL, ("py_diabetes",)).fetchone()
        finally:
            mine.rollback()  # the project row stays locked by this transaction until then
            other.execute("DELETE FROM pyml.models WHERE id = %s", (theirs,))
    assert newest == theirs
    assert found == ours


def test_deploy_returns_a_typed_result(
    conn: psycopg.Connection, diabetes: pyml.client.TrainResult
) -> None:
    assert diabetes.model_id is not None
    result = pyml.client.deploy(conn, "py_diabetes", "most_recent")
    assert result.project == "py_diabetes" and result.strategy == "most_recent"
    by_id = pyml.client.deploy(conn, diabetes.model_id)
    assert by_id == pyml.client.DeployResult("py_diabetes", "specific", "linear", diabetes.model_id)
    with pytest.raises(TypeError):
        pyml.client.deploy(conn, diabetes.model_id, "rollback")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, "list", "mixed"])
def test_predict_one_row(
    conn: psycopg.Connection, diabetes: pyml.client.TrainResult, rows: np.ndarray, dtype: Any
) -> None:
    row = rows[0]
    if dtype == np.int64:
        row = np.round(row * 100)  # whole numbers: the same values as real and as bigint
    expected = sql_predict(conn, "py_diabetes", row)
    if dtype == "list":
        features: Any = [float(v) for v in row]
    elif dtype == "mixed":
        features, real = with_whole_number(row)
        expected = sql_predict(conn, "py_diabetes", real)
    else:
        features = row.astype(dtype)
    value = pyml.client.predict(conn, "py_diabetes", features)
    assert type(value) is float
    assert value == expected
    assert pyml.client.predict(conn, diabetes.model_id, features) == expected  # by model id


def test_predictions_read_as_postgresql_prints_real(
    conn: psycopg.Connection, diabetes: pyml.client.TrainResult, rows: np.ndarray
) -> None:
    value = pyml.client.predict(conn, "py_diabetes", rows[0])
    text, exact = conn.execute(
        "SELECT pyml.predict(%s, %s::real[])::text, pyml.predict(%s, %s::real[])",
        ("py_diabetes", rows[0].tolist()) * 2,
        binary=True,
    ).fetchone()
    assert repr(value) == text  # what psql shows
    assert np.float32(value) == np.float32(exact)  # the same real


@pytest.mark.parametrize("form", ["float32", "float64", "lists", "flat"])
def test_predict_rows(
    conn: psycopg.Connection, diabetes: pyml.client.TrainResult, rows: np.ndarray, form: str
) -> None:
    expected = [sql_predict(conn, "py_diabetes", row) for row in rows]
    features: Any = {
        "float32": rows,
        "float64": rows.astype(np.float64),
        "lists": rows.tolist(),
        "flat": rows.ravel(),
    }[form]
    batch = pyml.client.predict_batch(conn, "py_diabetes", features)
    assert batch.dtype == np.float64
    assert batch.tolist() == expected
    if form != "flat":
        assert pyml.client.predict(conn, "py_diabetes", features).tolist() == expected


@pytest.fixture(scope="module")
def animals(conn: psycopg.Connection) -> str:
    """Text labels whose first-seen order (zebra, ant, moth) is not their sorted order."""
    conn.execute(
        "CREATE TABLE animals AS SELECT (i % 3) * 10 + (i % 7) / 10.0 AS x,"
        " (ARRAY['zebra', 'ant', 'moth'])[i % 3 + 1] AS kind FROM generate_series(0, 89) i"
    )
    pyml.client.train(
        conn,
        "py_animals",
        task="classification",
        relation_name="animals",
        y_column_name="kind",
        algorithm="random_forest",
    )
    return "py_animals"


@pytest.fixture(scope="module")
def sizes(conn: psycopg.Connection) -> str:
    """Integer labels 10, 2, 7: sorted as numbers they are not sorted as text."""
    conn.execute(
        "CREATE TABLE sizes AS SELECT (i % 3) * 10 + (i % 7) / 10.0 AS x,"
        " (ARRAY[10, 2, 7])[i % 3 + 1] AS size FROM generate_series(0, 89) i"
    )
    pyml.client.train(
        conn,
        "py_sizes",
        task="classification",
        relation_name="sizes",
        y_column_name="size",
        algorithm="random_forest",
    )
    return "py_sizes"


def test_predict_proba_maps_text_labels(conn: psycopg.Connection, animals: str) -> None:
    for x, kind in ((0.3, "zebra"), (10.2, "ant"), (20.5, "moth")):
        proba = pyml.client.predict_proba(conn, animals, [x])
        assert list(proba) == ["ant", "moth", "zebra"]  # pyml.models.classes order
        assert max(proba, key=proba.__getitem__) == kind
        assert pyml.client.predict_label(conn, animals, np.array([x])) == kind
        assert sum(proba.values()) == pytest.approx(1.0, abs=1e-6)


def test_predict_proba_maps_integer_labels(conn: psycopg.Connection, sizes: str) -> None:
    for x, size in ((0.3, 10), (10.2, 2), (20.5, 7)):
        proba = pyml.client.predict_proba(conn, sizes, np.array([x], dtype=np.float32))
        assert list(proba) == [2, 7, 10]
        assert all(type(label) is int for label in proba)
        assert max(proba, key=proba.__getitem__) == size
        assert pyml.client.predict(conn, sizes, [x]) == size
    (raw,) = conn.execute("SELECT pyml.predict_proba(%s, ARRAY[10.2])", (sizes,)).fetchone()
    assert list(pyml.client.predict_proba(conn, sizes, [10.2]).values()) == raw


def test_predict_proba_reads_the_labels_of_the_model_that_answered(
    conn: psycopg.Connection, animals: str
) -> None:
    """A model of the same project with other labels: the live one's labels, whichever it is;
    by id, that model's."""
    first = pyml.client.deploy(conn, animals, "most_recent").model_id
    conn.execute("CREATE TABLE animals_2 AS SELECT x, upper(kind) AS kind FROM animals")
    other = pyml.client.train(
        conn,
        animals,
        relation_name="animals_2",
        y_column_name="kind",
        algorithm="random_forest",
        automatic_deploy=False,
    )
    assert other.model_id is not None
    assert list(pyml.client.predict_proba(conn, animals, [0.3])) == ["ant", "moth", "zebra"]
    assert list(pyml.client.predict_proba(conn, other.model_id, [0.3])) == ["ANT", "MOTH", "ZEBRA"]
    pyml.client.deploy(conn, other.model_id)
    assert list(pyml.client.predict_proba(conn, animals, [0.3])) == ["ANT", "MOTH", "ZEBRA"]
    pyml.client.deploy(conn, first)
    assert list(pyml.client.predict_proba(conn, animals, [0.3])) == ["ant", "moth", "zebra"]


def test_predict_proba_takes_one_row(conn: psycopg.Connection, animals: str) -> None:
    with pytest.raises(ValueError, match="one row"):
        pyml.client.predict_proba(conn, animals, [[0.3], [10.2]])


def test_grantees(admin_url: str, url: str, conn: psycopg.Connection, animals: str) -> None:
    """Roles granted one privilege: predict reads the labels, train gets its model's id."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        for role in ("pyclient_reader", "pyclient_trainer"):
            if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                try:
                    admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
                except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
                    pass  # made meanwhile by a parallel run
    conn.execute("GRANT SELECT ON animals TO pyclient_trainer")
    conn.execute("SELECT pyml.grant(%s, 'pyclient_reader', 'predict')", (animals,))
    conn.execute("SELECT pyml.grant(%s, 'pyclient_trainer', 'train')", (animals,))
    as_role = url.replace("pyml_tester@", "{}@", 1)
    with psycopg.connect(as_role.format("pyclient_reader"), autocommit=True) as reader:
        assert pyml.client.predict_proba(reader, animals, [0.3]) == pyml.client.predict_proba(
            conn, animals, [0.3]
        )
    with psycopg.connect(as_role.format("pyclient_trainer"), autocommit=True) as trainer:
        trainer.execute("SET client_min_messages = warning")
        result = pyml.client.train(
            trainer, animals, relation_name="animals", y_column_name="kind", automatic_deploy=False
        )
    assert result.model_id == newest_model(conn, animals)[0]
    assert result.metrics["accuracy"] == 1.0


# ---------------------------------------------------------------------------
# NOTICEs
# ---------------------------------------------------------------------------


@pytest.fixture
def chatty(connect: Connect) -> Iterator[psycopg.Connection]:
    """A session that receives NOTICEs (the shared one sets client_min_messages = warning)."""
    conn = connect()
    conn.execute("RESET client_min_messages")
    yield conn


def test_train_notices_reach_logging(
    chatty: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="pyml"):
        pyml.client.train(
            chatty,
            "py_iris",
            task="classification",
            relation_name="pyml.iris",
            y_column_name="target",
        )
        loaded = [
            r
            for r in caplog.records
            if r.getMessage().startswith("pyml: loaded 150 rows x 4 features from pyml.iris")
        ]
        assert [(r.name, r.levelno) for r in loaded] == [("pyml", logging.INFO)]
        assert any(r.getMessage().startswith("pyml: fitting linear on ") for r in caplog.records)
        # the handler was removed after the call
        caplog.clear()
        chatty.execute("DO $$BEGIN RAISE NOTICE 'after the call'; END$$")
        assert caplog.records == []


def test_log_notices_levels_detail_and_hint(
    chatty: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="pyml"), pyml.client.log_notices(chatty):
        chatty.execute(
            "DO $$BEGIN RAISE WARNING 'careful' USING DETAIL = 'It is hot.',"
            " HINT = 'Wait.'; RAISE NOTICE 'noted'; END$$"
        )
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "careful\nDETAIL:  It is hot.\nHINT:  Wait."),
        (logging.INFO, "noted"),
    ]


def test_no_notices_when_the_session_asks_for_none(
    conn: psycopg.Connection, diabetes: pyml.client.TrainResult, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="pyml"):
        pyml.client.train(conn, "py_diabetes", automatic_deploy=False)
    assert caplog.records == []


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_errors_are_the_servers_psycopg_classes(
    conn: psycopg.Connection, diabetes: pyml.client.TrainResult, rows: np.ndarray
) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match='"nope"'):
        pyml.client.train(conn, "py_diabetes", algorithm="nope")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        pyml.client.train(conn, "py_diabetes", hyperparams={"no_such_parameter": 1})
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        pyml.client.predict(conn, "py_diabetes", rows[0][:3])
    with pytest.raises(psycopg.errors.UndefinedObject):
        pyml.client.predict(conn, "py_nothing", rows[0])
    with pytest.raises(psycopg.errors.UndefinedObject):
        pyml.client.predict_proba(conn, "py_nothing", rows[0])
    with pytest.raises(psycopg.errors.UndefinedTable):
        pyml.client.train(
            conn, "py_nothing", task="regression", relation_name="no_table", y_column_name="y"
        )
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        pyml.client.deploy(conn, "py_diabetes", "sideways")
    # the session goes on
    assert pyml.client.predict(conn, "py_diabetes", rows[0]) == sql_predict(
        conn, "py_diabetes", rows[0]
    )


def test_nothing_deployed(conn: psycopg.Connection) -> None:
    pyml.client.train(
        conn,
        "py_undeployed",
        task="classification",
        relation_name="pyml.iris",
        y_column_name="target",
        automatic_deploy=False,
    )
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        pyml.client.predict_proba(conn, "py_undeployed", [5.1, 3.5, 1.4, 0.2])


def test_a_failed_training_keeps_the_callers_transaction(
    connect: Connect, diabetes: pyml.client.TrainResult
) -> None:
    conn = connect(autocommit=False)
    conn.execute("CREATE TEMP TABLE kept (x int)")
    conn.execute("INSERT INTO kept VALUES (1)")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        pyml.client.train(conn, "py_diabetes", algorithm="nope")
    assert conn.execute("SELECT count(*) FROM kept").fetchone() == (1,)
    result = pyml.client.train(conn, "py_diabetes", automatic_deploy=False)
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    assert result.model_id is not None
    conn.rollback()  # the model goes with the caller's transaction
    assert conn.execute(
        "SELECT count(*) FROM pyml.models WHERE id = %s", (result.model_id,)
    ).fetchone() == (0,)
    conn.rollback()


# ---------------------------------------------------------------------------
# Signatures
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "arguments", "columns"),
    [
        ("pyml.train", _signatures.TRAIN, _signatures.TRAIN_COLUMNS),
        ("pyml.train_joint", _signatures.TRAIN_JOINT, _signatures.TRAIN_COLUMNS),
        ("pyml.deploy", _signatures.DEPLOY, _signatures.DEPLOY_COLUMNS),
        ("pyml.deploy", _signatures.DEPLOY_BY_ID, _signatures.DEPLOY_COLUMNS),
    ],
)
def test_signatures_match_the_installed_functions(
    conn: psycopg.Connection, function: str, arguments: dict[str, str], columns: dict[str, str]
) -> None:
    installed = conn.execute(
        "SELECT pg_get_function_identity_arguments(p.oid),"
        " array(SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod)"
        "       FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0"
        "       ORDER BY a.attnum)"
        " FROM pg_proc p JOIN pg_type t ON t.oid = p.prorettype"
        " WHERE p.oid::regproc::text = %s",
        (function,),
    ).fetchall()
    wanted = ", ".join(f"{name} {sql_type}" for name, sql_type in arguments.items())
    found = {args.removesuffix(", caller_search_path text"): cols for args, cols in installed}
    assert found[wanted] == [f"{name} {sql_type}" for name, sql_type in columns.items()]


# ---------------------------------------------------------------------------
# SQLAlchemy
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def patients(conn: psycopg.Connection) -> sa.Table:
    conn.execute(
        "CREATE TABLE patients AS SELECT row_number() OVER () AS id, *"
        " FROM (SELECT * FROM pyml.diabetes LIMIT 8) d"
    )
    return sa.Table(
        "patients",
        sa.MetaData(),
        sa.Column("id", sa.BigInteger),
        *(sa.Column(name, sa.REAL) for name in [*DIABETES, "target"]),
    )


def test_sqlalchemy_predict_over_a_table(
    engine: sa.Engine,
    conn: psycopg.Connection,
    diabetes: pyml.client.TrainResult,
    patients: sa.Table,
) -> None:
    expected = conn.execute(
        "SELECT id, pyml.predict('py_diabetes', p) FROM patients p ORDER BY id"
    ).fetchall()
    by_row = sa.select(
        patients.c.id, pyml_sa.predict("py_diabetes", patients.table_valued())
    ).order_by(patients.c.id)
    by_array = sa.select(
        patients.c.id,
        pyml_sa.predict("py_diabetes", postgresql.array([patients.c[name] for name in DIABETES])),
    ).order_by(patients.c.id)
    with engine.connect() as connection:
        assert [tuple(r) for r in connection.execute(by_row)] == expected
        assert [tuple(r) for r in connection.execute(by_array)] == expected
        assert all(type(value) is float for _, value in expected)


def test_sqlalchemy_predict_with_values(
    engine: sa.Engine,
    conn: psycopg.Connection,
    diabetes: pyml.client.TrainResult,
    rows: np.ndarray,
    animals: str,
) -> None:
    with engine.connect() as connection:
        for features in (rows[0], rows[0].astype(np.float64), rows[0].tolist()):
            value = connection.execute(sa.select(pyml_sa.predict("py_diabetes", features)))
            assert value.scalar_one() == sql_predict(conn, "py_diabetes", rows[0])
        proba = connection.execute(sa.select(pyml_sa.predict_proba(animals, [0.3]))).scalar_one()
        assert proba == list(pyml.client.predict_proba(conn, animals, [0.3]).values())
        label = connection.execute(sa.select(pyml_sa.predict_label(animals, [0.3]))).scalar_one()
        assert label == "zebra"


def test_sqlalchemy_train_with_named_arguments(engine: sa.Engine, conn: psycopg.Connection) -> None:
    statement = sa.select(
        pyml_sa.train(
            "py_sa_diabetes",
            task="regression",
            relation_name="pyml.diabetes",
            y_column_name="target",
            algorithm="ridge",
            hyperparams={"alpha": np.float64(0.5)},
            test_size=0.3,
        )
    )
    with engine.begin() as connection:
        row = connection.execute(statement).one()
    assert row._asdict() == {
        "project": "py_sa_diabetes",
        "task": "regression",
        "algorithm": "ridge",
        "deployed": True,
    }
    assert type(row.deployed) is bool
    _, hyperparams = newest_model(conn, "py_sa_diabetes")
    assert hyperparams["alpha"] == 0.5
    with engine.begin() as connection:
        deployed = connection.execute(
            sa.select(pyml_sa.deploy("py_sa_diabetes", "most_recent"))
        ).one()
    assert deployed.model_id == newest_model(conn, "py_sa_diabetes")[0]


def test_sqlalchemy_errors(engine: sa.Engine) -> None:
    with engine.connect() as connection, pytest.raises(sa.exc.DBAPIError) as info:
        connection.execute(sa.select(pyml_sa.train("py_sa_diabetes", algorithm="nope")))
    assert isinstance(info.value.orig, psycopg.errors.InvalidParameterValue)


def test_sqlalchemy_engine_with_the_adapters(
    url: str, diabetes: pyml.client.TrainResult, conn: psycopg.Connection, rows: np.ndarray
) -> None:
    """The README's one line: register() on every connection the engine opens."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    sa.event.listen(engine, "connect", lambda dbapi_conn, _: pyml.client.register(dbapi_conn))
    try:
        with engine.connect() as connection:
            value = connection.execute(
                sa.text("SELECT pyml.predict(:p, :f)"), {"p": "py_diabetes", "f": rows[0]}
            ).scalar_one()
    finally:
        engine.dispose()
    assert value == sql_predict(conn, "py_diabetes", rows[0])
