"""pyml.client.sqlalchemy compiled without a server: named arguments, casts, return types."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from pyml.client import sqlalchemy as pyml

DIALECT = postgresql.psycopg.dialect()


def compiled(statement: sa.ClauseElement) -> tuple[str, dict[str, object]]:
    result = statement.compile(dialect=DIALECT)
    return " ".join(str(result).split()), dict(result.params)


def test_train_passes_named_arguments_as_bound_parameters() -> None:
    sql, params = compiled(
        sa.select(
            pyml.train(
                "iris",
                task="classification",
                relation_name="pyml.iris",
                y_column_name="target",
                hyperparams={"n_estimators": np.int64(5)},
                test_size=0.3,
                automatic_deploy=False,
            )
        )
    )
    assert sql == (
        "SELECT train.project, train.task, train.algorithm, train.deployed FROM pyml.train("
        "project_name => CAST(%(param_1)s::VARCHAR AS TEXT), "
        "task => CAST(%(param_2)s::VARCHAR AS TEXT), "
        "relation_name => CAST(%(param_3)s::VARCHAR AS TEXT), "
        "y_column_name => CAST(%(param_4)s::VARCHAR AS TEXT), "
        "hyperparams => CAST(%(param_5)s::VARCHAR AS JSONB), "
        "test_size => CAST(%(param_6)s AS REAL), "
        "automatic_deploy => CAST(%(param_7)s AS BOOLEAN)) AS train"
    )
    assert params == {
        "param_1": "iris",
        "param_2": "classification",
        "param_3": "pyml.iris",
        "param_4": "target",
        "param_5": '{"n_estimators": 5}',
        "param_6": 0.3,
        "param_7": False,
    }


def test_train_columns_are_typed() -> None:
    train = pyml.train("p")
    assert [(c.name, type(c.type)) for c in train.c] == [
        ("project", sa.Text),
        ("task", sa.Text),
        ("algorithm", sa.Text),
        ("deployed", sa.Boolean),
    ]


def test_several_label_columns_call_train_joint() -> None:
    sql, params = compiled(sa.select(pyml.train("j", y_column_name=["a", "b"])))
    assert "FROM pyml.train_joint(project_name => " in sql
    assert "y_column_name => CAST(%(param_2)s::TEXT[] AS TEXT[])" in sql
    assert params["param_2"] == ["a", "b"]


def test_arguments_may_be_expressions_and_json_text() -> None:
    jobs = sa.table("jobs", sa.column("project"), sa.column("source"))
    sql, params = compiled(
        sa.select(
            pyml.train(jobs.c.project, relation_name=jobs.c.source, hyperparams='{"alpha": 1}')
        )
    )
    assert (
        "pyml.train(project_name => CAST(jobs.project AS TEXT), relation_name => "
        "CAST(jobs.source AS TEXT), hyperparams => CAST(%(param_1)s::VARCHAR AS JSONB))" in sql
    )
    assert params == {"param_1": '{"alpha": 1}'}


def test_unknown_arguments_are_refused() -> None:
    with pytest.raises(TypeError):
        pyml.train("p", bogus=1)  # type: ignore[call-arg]


def test_predict_is_real_over_a_table_row() -> None:
    iris = sa.table("iris", sa.column("target"), schema="pyml")
    expression = pyml.predict("iris", iris.table_valued())
    assert isinstance(expression.type, sa.Float)
    assert isinstance(expression.type, sa.REAL)
    sql, params = compiled(sa.select(iris.c.target, expression.label("p")))
    assert sql == (
        "SELECT pyml.iris.target, pyml.predict(CAST(%(param_1)s::VARCHAR AS TEXT), "
        "iris) AS p FROM pyml.iris"
    )
    assert params == {"param_1": "iris"}


@pytest.mark.parametrize(
    ("features", "cast", "value"),
    [
        (np.array([1.5, 2.0], dtype=np.float32), "REAL[]", [1.5, 2.0]),
        (np.array([[1.5, 2.0]]), "DOUBLE PRECISION[][]", [[1.5, 2.0]]),
        ([1, 2.5], "DOUBLE PRECISION[]", [1.0, 2.5]),
        ([1, 2], "BIGINT[]", [1, 2]),
        (np.array([1, 2], dtype=np.int16), "SMALLINT[]", [1, 2]),
        ((True, False), "BOOLEAN[]", [True, False]),
    ],
)
def test_feature_values_are_sent_as_the_array_type_of_their_dtype(
    features: object, cast: str, value: object
) -> None:
    sql, params = compiled(sa.select(pyml.predict(7, features)))
    assert sql == (
        f"SELECT pyml.predict(CAST(%(param_1)s::INTEGER AS BIGINT), "
        f"%(param_2)s::{cast}) AS predict_1"
    )
    assert params == {"param_1": 7, "param_2": value}


def test_predict_proba_and_label_types() -> None:
    proba = pyml.predict_proba("p", [1.0])
    assert isinstance(proba.type, postgresql.ARRAY)
    assert isinstance(proba.type.item_type, sa.REAL)
    assert isinstance(pyml.predict_label("p", [1.0]).type, sa.Text)


def test_bad_features_and_projects_are_refused() -> None:
    with pytest.raises(TypeError, match="features"):
        pyml.predict("p", ["a", "b"])
    with pytest.raises(TypeError, match="project"):
        pyml.predict(1.5, [1.0])


def test_deploy_by_strategy_or_id() -> None:
    sql, params = compiled(sa.select(pyml.deploy("p", "rollback")))
    assert sql == (
        "SELECT deploy.project, deploy.strategy, deploy.algorithm, deploy.model_id "
        "FROM pyml.deploy(project_name => CAST(%(param_1)s::VARCHAR AS TEXT), "
        "strategy => CAST(%(param_2)s::VARCHAR AS TEXT)) AS deploy"
    )
    sql, params = compiled(sa.select(pyml.deploy(12)))
    assert "FROM pyml.deploy(model_id => CAST(%(param_1)s::BIGINT AS BIGINT)) AS deploy" in sql
    assert type(pyml.deploy(12).c.model_id.type) is sa.BigInteger
    with pytest.raises(TypeError):
        pyml.deploy(12, "rollback")


def test_named_works_with_any_function() -> None:
    sql, params = compiled(
        sa.select(
            sa.func.pyml.drift(
                "p",
                pyml.named("relation_name", "new_rows"),
                pyml.named("model_id", 3, sa.BigInteger),
            )
        )
    )
    assert sql == (
        "SELECT pyml.drift(%(drift_2)s::VARCHAR, relation_name => %(param_1)s::VARCHAR,"
        " model_id => CAST(%(param_2)s::BIGINT AS BIGINT)) AS drift_1"
    )
    assert params == {"drift_2": "p", "param_1": "new_rows", "param_2": 3}


def test_statements_are_cached_by_shape() -> None:
    """Named arguments take part in SQLAlchemy's cache key: a different name or shape is a
    different statement, different values the same one."""
    key = sa.select(pyml.train("a", algorithm="x"))._generate_cache_key()
    same = sa.select(pyml.train("b", algorithm="y"))._generate_cache_key()
    other = sa.select(pyml.train("a", search="x"))._generate_cache_key()
    assert key is not None and same is not None and other is not None
    assert key.key == same.key
    assert key.key != other.key
