"""The SQLSTATE contract of API.md section 6, row by row, through the SQL functions.

Every error is asserted by its psycopg class (one class per SQLSTATE) and its message
is checked for PostgreSQL style: lowercase start, no final period, names in double
quotes, and nothing of Python in it: no ``plpy.Error: `` before the message and no traceback
in its CONTEXT (pyml's functions run in language plpyml, src/pyml.c).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import errors as e

LIVE = "err_live"  # iris classification, knn, deployed
UNDEPLOYED = "err_undeployed"  # iris classification, never deployed
IRIS_ROW = "ARRAY[5.1, 3.5, 1.4, 0.2]::real[]"


def message(exc: psycopg.Error) -> str:
    return exc.diag.message_primary or ""


def assert_postgres_style(exc: psycopg.Error, needle: str | None = None) -> None:
    """Lowercase start, no final period, no traceback; ``needle`` (a quoted name) appears."""
    text = message(exc)
    assert text, "empty message"
    assert not text[0].isupper(), text
    assert not text.endswith("."), text
    assert "Traceback" not in text and "\n" not in text, text
    assert not text.startswith(("plpy.", "spiexceptions.")), text
    assert "Traceback" not in (exc.diag.context or ""), exc.diag.context
    if needle is not None:
        assert needle in text, f"{needle!r} not in {text!r}"
    for sentence in (exc.diag.message_detail, exc.diag.message_hint):
        if sentence:  # DETAIL and HINT are sentences: capitalised (or opening with a quote)
            assert not sentence[0].islower(), sentence


@pytest.fixture(scope="module", autouse=True)
def setup(conn: psycopg.Connection) -> Iterator[None]:
    """Projects and tables the error cases refer to."""
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'classification', 'pyml.iris', 'target', algorithm => 'knn')",
        (LIVE,),
    )
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'classification', 'pyml.iris', 'target',"
        " algorithm => 'knn', automatic_deploy => false)",
        (UNDEPLOYED,),
    )
    conn.execute("CREATE TABLE public.err_null_feature (a real, b real, y real)")
    conn.execute(
        "INSERT INTO public.err_null_feature SELECT i, CASE WHEN i = 5 THEN NULL"
        " ELSE i END, i FROM generate_series(1, 20) AS i"
    )
    conn.execute("CREATE TABLE public.err_null_label (a real, y integer)")
    conn.execute(
        "INSERT INTO public.err_null_label SELECT i, CASE WHEN i = 5 THEN NULL"
        " ELSE i % 2 END FROM generate_series(1, 20) AS i"
    )
    conn.execute("CREATE TABLE public.err_text_label (a real, y text)")
    conn.execute(
        "INSERT INTO public.err_text_label SELECT i, CASE WHEN i % 2 = 0 THEN 'even'"
        " ELSE 'odd' END FROM generate_series(1, 20) AS i"
    )
    yield


@dataclass(frozen=True)
class Case:
    id: str
    query: str
    error: type[psycopg.Error]
    needle: str | None = None  # expected in the message


def train_sql(args: str, project: str = "err_new") -> str:
    return f"SELECT * FROM pyml.train('{project}', {args})"  # noqa: S608 (constants)


CASES = [
    # -- 42704 unknown project / model / dataset ---------------------------------------------
    Case(
        "project-predict",
        f"SELECT pyml.predict('no_such_project', {IRIS_ROW})",
        e.UndefinedObject,
        '"no_such_project"',
    ),
    Case(
        "project-predict-proba",
        f"SELECT pyml.predict_proba('no_such_project', {IRIS_ROW})",
        e.UndefinedObject,
        '"no_such_project"',
    ),
    Case(
        "project-train-without-task",
        train_sql("relation_name => 'pyml.iris', y_column_name => 'target'", "no_such_project"),
        e.UndefinedObject,
        '"no_such_project"',
    ),
    Case(
        "project-deploy",
        "SELECT * FROM pyml.deploy('no_such_project')",
        e.UndefinedObject,
        '"no_such_project"',
    ),
    Case(
        "project-deployed-model",
        "SELECT pyml.deployed_model('no_such_project')",
        e.UndefinedObject,
        '"no_such_project"',
    ),
    Case(
        "project-delete",
        "SELECT pyml.delete_project('no_such_project')",
        e.UndefinedObject,
        '"no_such_project"',
    ),
    Case(
        "model-predict",
        f"SELECT pyml.predict(987654321::bigint, {IRIS_ROW})",
        e.UndefinedObject,
        "987654321",
    ),
    Case(
        "model-deploy",
        "SELECT * FROM pyml.deploy(987654321::bigint)",
        e.UndefinedObject,
        "987654321",
    ),
    Case("model-delete", "SELECT pyml.delete_model(987654321)", e.UndefinedObject, "987654321"),
    Case(
        "dataset",
        "SELECT * FROM pyml.load_dataset('no_such_dataset')",
        e.UndefinedObject,
        '"no_such_dataset"',
    ),
    # -- 42P01 relation does not exist ----------------------------------------------------
    Case(
        "relation-train",
        train_sql("'regression', 'public.no_such_table', 'y'"),
        e.UndefinedTable,
        '"public.no_such_table"',
    ),
    Case(
        "relation-snapshot",
        "SELECT * FROM pyml.snapshot('public.no_such_table', 'y')",
        e.UndefinedTable,
        '"public.no_such_table"',
    ),
    Case(
        "relation-predict-into",
        f"SELECT pyml.predict_into('{LIVE}', 'public.no_such_table', 'public.err_out')",
        e.UndefinedTable,
        '"public.no_such_table"',
    ),
    # -- 42703 column does not exist ------------------------------------------------------
    Case(
        "column-train",
        train_sql("'classification', 'pyml.iris', 'no_such_column'"),
        e.UndefinedColumn,
        '"no_such_column"',
    ),
    Case(
        "column-train-joint",
        "SELECT * FROM pyml.train_joint('err_new', 'regression', 'pyml.linnerud',"
        " ARRAY['weight', 'no_such_column'])",
        e.UndefinedColumn,
        '"no_such_column"',
    ),
    Case(
        "column-snapshot",
        "SELECT * FROM pyml.snapshot('pyml.iris', 'no_such_column')",
        e.UndefinedColumn,
        '"no_such_column"',
    ),
    Case(
        "column-predict-into-key",
        f"SELECT pyml.predict_into('{LIVE}', 'pyml.iris', 'public.err_out',"
        " key_column => 'no_such_column')",
        e.UndefinedColumn,
        '"no_such_column"',
    ),
    # -- 22023 bad argument values --------------------------------------------------------
    Case(
        "task",
        train_sql("'clustering_nope', 'pyml.iris', 'target'"),
        e.InvalidParameterValue,
        "clustering_nope",
    ),
    Case(
        "algorithm",
        train_sql("'classification', 'pyml.iris', 'target', algorithm => 'no_such_algorithm'"),
        e.InvalidParameterValue,
        '"no_such_algorithm"',
    ),
    Case(
        "strategy",
        "SELECT * FROM pyml.deploy('err_live', strategy => 'no_such_strategy')",
        e.InvalidParameterValue,
        "no_such_strategy",
    ),
    Case(
        "deploy-algorithm",
        "SELECT * FROM pyml.deploy('err_live', algorithm => 'no_such_algorithm')",
        e.InvalidParameterValue,
        '"no_such_algorithm"',
    ),
    Case(
        "test-sampling",
        train_sql("'classification', 'pyml.iris', 'target', test_sampling => 'sideways'"),
        e.InvalidParameterValue,
        "sideways",
    ),
    Case(
        "search",
        train_sql(
            "'classification', 'pyml.iris', 'target', algorithm => 'knn',"
            " search => 'exhaustive', search_params => '{\"n_neighbors\": [1, 3]}'"
        ),
        e.InvalidParameterValue,
        "exhaustive",
    ),
    *(
        Case(
            f"test-size-{label}",
            train_sql(f"'classification', 'pyml.iris', 'target', test_size => {value}"),
            e.InvalidParameterValue,
            '"test_size"',
        )
        for label, value in (
            ("zero", "0"),
            ("negative", "-0.5"),
            ("one", "1"),
            ("nan", "'NaN'::real"),
            ("all-rows", "150"),
            ("more-than-rows", "1000"),
        )
    ),
    Case(
        "hyperparameter-name",
        train_sql(
            "'classification', 'pyml.iris', 'target', algorithm => 'knn',"
            " hyperparams => '{\"no_such_knob\": 1}'"
        ),
        e.InvalidParameterValue,
        '"no_such_knob"',
    ),
    Case(
        "hyperparameter-value",
        train_sql(
            "'classification', 'pyml.iris', 'target', algorithm => 'knn',"
            " hyperparams => '{\"n_neighbors\": -1}'"
        ),
        e.InvalidParameterValue,
        "n_neighbors",
    ),
    Case(
        "hyperparameter-type",
        train_sql(
            "'classification', 'pyml.iris', 'target', algorithm => 'lightgbm',"
            ' hyperparams => \'{"n_estimators": "many"}\''
        ),
        e.InvalidParameterValue,
        "hyperparameter",
    ),
    Case(
        "search-parameter-name",
        train_sql(
            "'classification', 'pyml.iris', 'target', algorithm => 'knn',"
            " search => 'grid', search_params => '{\"no_such_knob\": [1, 2]}'"
        ),
        e.InvalidParameterValue,
        '"no_such_knob"',
    ),
    Case(
        "label-type",
        train_sql("'regression', 'public.err_text_label', 'y'"),
        e.InvalidParameterValue,
        None,
    ),
    # -- 22004 NULL feature without impute rule, NULL label ---------------------------------
    Case(
        "null-feature-predict",
        "SELECT pyml.predict('err_live', ARRAY[5.1, NULL, 1.4, 0.2]::real[])",
        e.NullValueNotAllowed,
        None,
    ),
    Case(
        "null-feature-train",
        train_sql("'regression', 'public.err_null_feature', 'y'"),
        e.NullValueNotAllowed,
        '"b"',
    ),
    Case(
        "null-label-regression",
        train_sql("'regression', 'public.err_null_label', 'y'"),
        e.NullValueNotAllowed,
        None,
    ),
    Case(
        "null-label-classification",
        train_sql("'classification', 'public.err_null_label', 'y'"),
        e.NullValueNotAllowed,
        None,
    ),
    # -- 55000 object not in prerequisite state -------------------------------------------
    Case(
        "nothing-deployed",
        f"SELECT pyml.predict('{UNDEPLOYED}', {IRIS_ROW})",
        e.ObjectNotInPrerequisiteState,
        f'"{UNDEPLOYED}"',
    ),
    Case(
        "delete-live-model",
        "SELECT pyml.delete_model((SELECT model_id FROM pyml.deployed_models"
        " WHERE project = 'err_live'))",
        e.ObjectNotInPrerequisiteState,
        f'"{LIVE}"',
    ),
    Case(
        "delete-project-with-live-model",
        f"SELECT pyml.delete_project('{LIVE}')",
        e.ObjectNotInPrerequisiteState,
        f'"{LIVE}"',
    ),
    Case(
        "task-mismatch",
        train_sql("'regression', 'pyml.diabetes', 'target'", LIVE),
        e.ObjectNotInPrerequisiteState,
        f'"{LIVE}"',
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_sqlstate(conn: psycopg.Connection, case: Case) -> None:
    with pytest.raises(case.error) as info:
        conn.execute(case.query)
    assert info.value.diag.sqlstate == case.error.sqlstate
    assert_postgres_style(info.value, case.needle)


def test_failed_calls_changed_nothing(conn: psycopg.Connection) -> None:
    """The error cases above ran in autocommit: each failure was rolled back entirely."""
    projects = conn.execute("SELECT name FROM pyml.projects ORDER BY name").fetchall()
    assert projects == [(LIVE,), (UNDEPLOYED,)]
    live = conn.execute("SELECT count(*) FROM pyml.deployed_models").fetchone()
    assert live == (1,)
    assert conn.execute("SELECT to_regclass('public.err_out')").fetchone() == (None,)


def test_feature_count_states_expected_and_given(conn: psycopg.Connection) -> None:
    with pytest.raises(e.InvalidParameterValue) as info:
        conn.execute(f"SELECT pyml.predict('{LIVE}', ARRAY[1, 2, 3]::real[])")
    assert_postgres_style(info.value)
    text = " ".join(filter(None, (message(info.value), info.value.diag.message_detail)))
    assert "4" in text and "3" in text, text


def test_algorithm_not_available_for_task(conn: psycopg.Connection) -> None:
    """lasso has no classifier. API.md lists "algorithm" under 22023 while STYLE.md files a
    task/algorithm combination under 0A000; either is accepted here."""
    with pytest.raises((e.InvalidParameterValue, e.FeatureNotSupported)) as info:
        conn.execute(train_sql("'classification', 'pyml.iris', 'target', algorithm => 'lasso'"))
    assert_postgres_style(info.value, '"lasso"')


@pytest.mark.parametrize("algorithm", ["xgboost", "catboost"])
def test_optional_dependency(conn: psycopg.Connection, algorithm: str) -> None:
    """0A000 with an install hint when the package is missing from the server's venv."""
    installed = importlib.util.find_spec(algorithm) is not None  # the server runs this venv
    query = train_sql(
        f"'regression', 'pyml.diabetes', 'target', algorithm => '{algorithm}',"
        " hyperparams => '{\"n_estimators\": 3}'",
        f"err_{algorithm}",
    )
    if installed:
        row = conn.execute(query).fetchone()
        assert row is not None and row[2] == algorithm
        conn.execute(f"SELECT pyml.delete_project('err_{algorithm}', force => true)")
        return
    with pytest.raises(e.FeatureNotSupported) as info:
        conn.execute(query)
    assert_postgres_style(info.value, f'"{algorithm}"')
    assert info.value.diag.message_hint is not None
    assert f"pip install {algorithm}" in info.value.diag.message_hint


# ---------------------------------------------------------------------------
# XX001: artifacts that fail their checksum or are not an allowed format
# ---------------------------------------------------------------------------


class _Planted:
    """Unpickling this creates a directory: proof that a pickle was executed."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str]]:
        return (os.mkdir, (self.path,))


def _replace_artifact(admin_url: str, model_id: int, fmt: str, data: bytes, sha256: str) -> None:
    """Swap a model's artifact as only a superuser may (no role writes pyml.files)."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("DELETE FROM pyml.files WHERE model_id = %s", (model_id,))
        admin.execute(
            "INSERT INTO pyml.files (model_id, part, format, sha256, data)"
            " VALUES (%s, 0, %s, %s, %s)",
            (model_id, fmt, sha256, data),
        )


def _fresh_model(conn: psycopg.Connection, project: str) -> int:
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'classification', 'pyml.iris', 'target',"
        " algorithm => 'knn', automatic_deploy => false)",
        (project,),
    )
    row = conn.execute(
        "SELECT m.id FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
        " WHERE p.name = %s",
        (project,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _predict_in_new_session(connect: Callable[..., psycopg.Connection], model_id: int) -> None:
    """A session that has not cached the model yet."""
    connect().execute(f"SELECT pyml.predict(%s::bigint, {IRIS_ROW})", (model_id,))


def test_artifact_checksum_mismatch(
    conn: psycopg.Connection, connect: Callable[..., psycopg.Connection], admin_url: str
) -> None:
    model_id = _fresh_model(conn, "err_checksum")
    row = conn.execute(
        "SELECT format, sha256, data FROM pyml.files WHERE model_id = %s", (model_id,)
    ).fetchone()
    assert row is not None
    fmt, sha256, data = row
    tampered = bytes(data[:-1]) + bytes([data[-1] ^ 1])
    _replace_artifact(admin_url, model_id, fmt, tampered, sha256)
    with pytest.raises(e.DataCorrupted) as info:
        _predict_in_new_session(connect, model_id)
    assert info.value.diag.sqlstate == "XX001"
    assert_postgres_style(info.value)
    conn.execute("SELECT pyml.delete_project('err_checksum', force => true)")


@pytest.mark.parametrize("fmt", ["pickle", "skops"])
def test_planted_pickle_is_refused_not_run(
    conn: psycopg.Connection, connect: Callable[..., psycopg.Connection], fmt: str, admin_url: str
) -> None:
    project = f"err_pickle_{fmt}"
    model_id = _fresh_model(conn, project)
    marker = f"/tmp/pyml_planted_{uuid.uuid4().hex}"
    payload = pickle.dumps(_Planted(marker))
    _replace_artifact(admin_url, model_id, fmt, payload, hashlib.sha256(payload).hexdigest())
    try:
        with pytest.raises(e.DataCorrupted) as info:
            _predict_in_new_session(connect, model_id)
        assert info.value.diag.sqlstate == "XX001"
        assert_postgres_style(info.value)
        assert not os.path.exists(marker), "the planted pickle was executed"
    finally:
        if os.path.isdir(marker):
            os.rmdir(marker)
    conn.execute("SELECT pyml.delete_project(%s, force => true)", (project,))


# ---------------------------------------------------------------------------
# SQL injection through names
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "relation",
    [
        "pyml.iris; DROP TABLE pyml.models",
        "pyml.iris; DROP TABLE pyml.models; --",
        "pyml.iris WHERE false",
        "(SELECT * FROM pyml.iris) AS x",
        'pyml.iris"; DROP TABLE pyml.models; --',
    ],
)
def test_relation_name_is_not_sql(conn: psycopg.Connection, relation: str) -> None:
    with pytest.raises(e.UndefinedTable) as info:
        conn.execute(
            "SELECT * FROM pyml.train('err_inject', 'classification', %s, 'target')", (relation,)
        )
    assert_postgres_style(info.value)
    assert conn.execute("SELECT to_regclass('pyml.models')").fetchone() == ("pyml.models",)
    assert conn.execute("SELECT count(*) FROM pyml.models").fetchone() != (0,)


def test_column_name_is_not_sql(conn: psycopg.Connection) -> None:
    with pytest.raises(e.UndefinedColumn):
        conn.execute(
            "SELECT * FROM pyml.train('err_inject', 'classification', 'pyml.iris',"
            " 'target FROM pyml.iris; DROP TABLE pyml.models; --')"
        )
    assert conn.execute("SELECT to_regclass('pyml.models')").fetchone() == ("pyml.models",)


def test_target_table_is_not_sql(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.Error):
        conn.execute(
            f"SELECT pyml.predict_into('{LIVE}', 'pyml.iris', "
            "'public.err_scores (a int); DROP TABLE pyml.models; --', key_column => 'target')"
        )
    assert conn.execute("SELECT to_regclass('pyml.models')").fetchone() == ("pyml.models",)


def test_project_name_is_a_value(conn: psycopg.Connection) -> None:
    name = "err'); DROP TABLE pyml.models; --"
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'classification', 'pyml.iris', 'target',"
        " automatic_deploy => false)",
        (name,),
    )
    assert conn.execute(
        "SELECT count(*) FROM pyml.projects WHERE name = %s", (name,)
    ).fetchone() == (1,)
    assert conn.execute("SELECT to_regclass('pyml.models')").fetchone() == ("pyml.models",)
    conn.execute("SELECT pyml.delete_project(%s, force => true)", (name,))
