"""pyml's SQL functions as SQLAlchemy 2 expressions (``pip install 'pyml[sqlalchemy]'``).

SQLAlchemy's ``func`` cannot pass named arguments, and does not know what pyml's functions
return. Here each function is an element with its return type, arguments are bound parameters
cast to the SQL function's argument types, and :func:`named` writes ``name => value``::

    import sqlalchemy as sa
    from pyml.client import sqlalchemy as pyml_sa

    iris = sa.table("iris", sa.column("target"), schema="pyml")
    sa.select(iris.c.target, pyml_sa.predict("iris", iris.table_valued()))  # a whole row
    sa.select(pyml_sa.train("iris", task="classification", relation_name="pyml.iris",
                            y_column_name="target", hyperparams={"n_estimators": 50}))
    sa.select(sa.func.pyml.drift("iris", pyml_sa.named("relation_name", "new_rows")))

``predict`` is ``REAL`` (a ``Float``), ``predict_proba`` ``ARRAY(REAL)``, ``predict_label``
``TEXT``; ``train`` and ``deploy`` are table-valued (``select(...)`` them, or use their
``.c`` columns). Features may be SQL expressions (a column of arrays,
``postgresql.array([...])``, a table's ``table_valued()`` row) or values: numpy arrays and
lists are sent as the array type of their dtype (``float32`` → ``real[]``, ``float64`` and
lists mixing ints and floats → ``double precision[]``, ...), so no adapter is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import Function
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.sql.visitors import InternalTraversal

from pyml.client import _signatures

__all__ = ["NamedArgument", "deploy", "named", "predict", "predict_label", "predict_proba", "train"]

_TYPES: dict[str, Any] = {
    "text": sa.Text,
    "jsonb": postgresql.JSONB,
    "real": sa.REAL,
    "boolean": sa.Boolean,
    "bigint": sa.BigInteger,
    "text[]": lambda: postgresql.ARRAY(sa.Text),
}


def _sql_type(name: str) -> Any:
    return _TYPES[name]()


class NamedArgument(ColumnElement[Any]):
    """``name => value``: an argument passed by name in a function call."""

    __visit_name__ = "pyml_named_argument"
    _traverse_internals = [
        ("name", InternalTraversal.dp_string),
        ("value", InternalTraversal.dp_clauseelement),
    ]

    value: ColumnElement[Any]

    def __init__(self, name: str, value: Any, type_: Any = None):
        self.name = name
        if not isinstance(value, ColumnElement):
            value = sa.literal(value, type_)
        self.value = value if type_ is None else sa.cast(value, type_)
        self.type = self.value.type


@compiles(NamedArgument)
def _compile_named(element: NamedArgument, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{compiler.preparer.quote(element.name)} => {compiler.process(element.value, **kw)}"


def named(name: str, value: Any, type_: Any = None) -> NamedArgument:
    """``name => value`` for any function call, e.g. ``func.pyml.deploy("p",
    named("strategy", "rollback"))``; with ``type_``, the value is cast to it."""
    return NamedArgument(name, value, type_)


def _is_expression(value: Any) -> bool:
    return isinstance(value, sa.ClauseElement)


def _arguments(signature: Mapping[str, str], given: Mapping[str, Any]) -> list[NamedArgument]:
    found = _signatures.arguments(signature, given, keep=_is_expression)
    # JSON text is bound as text and cast: a JSONB-typed parameter would be serialised again
    return [
        NamedArgument(
            name,
            sa.literal(value, sa.Text) if isinstance(value, str) and sql_type == "jsonb" else value,
            _sql_type(sql_type),
        )
        for name, value, sql_type in found
    ]


def _columns(columns: Mapping[str, str]) -> list[sa.ColumnClause[Any]]:
    return [sa.column(name, _sql_type(sql_type)) for name, sql_type in columns.items()]


# ---------------------------------------------------------------------------
# Prediction
# ---------------------------------------------------------------------------

# numpy dtype kind and item size -> the element type an array of it is sent as
_ELEMENTS: dict[tuple[str, int], Any] = {
    ("f", 2): sa.REAL,
    ("f", 4): sa.REAL,
    ("f", 8): postgresql.DOUBLE_PRECISION,
    ("i", 1): sa.SmallInteger,
    ("i", 2): sa.SmallInteger,
    ("i", 4): sa.Integer,
    ("i", 8): sa.BigInteger,
    ("u", 1): sa.SmallInteger,
    ("u", 2): sa.Integer,
    ("u", 4): sa.BigInteger,
    ("b", 1): sa.Boolean,
}


def _target(project: Any) -> Any:
    if isinstance(project, sa.ClauseElement):
        return project
    if isinstance(project, bool) or not isinstance(project, str | int):
        raise TypeError(f"project must be a project name or a model id, got {project!r}")
    return sa.cast(sa.literal(project), sa.Text if isinstance(project, str) else sa.BigInteger)


def _features(features: Any) -> Any:
    """An expression as it is; a numpy array or (nested) list as a bound array parameter of
    its dtype's element type (a list mixing ints and floats is float64)."""
    if isinstance(features, sa.ClauseElement):
        return features
    values = np.asarray(features)
    element = _ELEMENTS.get((values.dtype.kind, values.dtype.itemsize))
    if element is None or values.ndim == 0:
        raise TypeError(
            f"features must be an array of numbers or a SQL expression, got "
            f"{values.dtype} with {values.ndim} dimensions"
        )
    array = postgresql.ARRAY(element, dimensions=values.ndim)
    return sa.bindparam(None, values.tolist(), type_=array)


def predict(project: Any, features: Any) -> Function[Any]:
    """``pyml.predict(project, features)``, typed ``REAL``. ``project``: a project name, a model
    id or an expression; ``features``: see the module docstring."""
    return sa.func.pyml.predict(_target(project), _features(features), type_=sa.REAL())


def predict_label(project: Any, features: Any) -> Function[Any]:
    """``pyml.predict_label(project, features)``, typed ``TEXT``."""
    return sa.func.pyml.predict_label(_target(project), _features(features), type_=sa.Text())


def predict_proba(project: Any, features: Any) -> Function[Any]:
    """``pyml.predict_proba(project, features)``, typed ``ARRAY(REAL)``: probabilities in
    ``pyml.models.classes`` order of the model that answered."""
    return sa.func.pyml.predict_proba(
        _target(project), _features(features), type_=postgresql.ARRAY(sa.REAL)
    )


# ---------------------------------------------------------------------------
# Training and deployment (table-valued)
# ---------------------------------------------------------------------------


def train(
    project_name: Any,
    *,
    task: Any = None,
    relation_name: Any = None,
    y_column_name: Any = None,
    algorithm: Any = None,
    hyperparams: Any = None,
    search: Any = None,
    search_params: Any = None,
    search_args: Any = None,
    test_size: Any = None,
    test_sampling: Any = None,
    runtime: Any = None,
    automatic_deploy: Any = None,
    materialize_snapshot: Any = None,
    preprocess: Any = None,
) -> TableValuedAlias:
    """``pyml.train(project_name => ..., <argument> => ...)`` with the arguments given (None:
    the function's default), as a table of ``project, task, algorithm, deployed``;
    ``pyml.train_joint`` when ``y_column_name`` lists several columns. jsonb arguments take
    dicts or JSON text; any argument may also be a SQL expression."""
    name, signature = _signatures.train_function(
        None if isinstance(y_column_name, sa.ClauseElement) else y_column_name
    )
    given = dict(
        project_name=project_name,
        task=task,
        relation_name=relation_name,
        y_column_name=y_column_name,
        algorithm=algorithm,
        hyperparams=hyperparams,
        search=search,
        search_params=search_params,
        search_args=search_args,
        test_size=test_size,
        test_sampling=test_sampling,
        runtime=runtime,
        automatic_deploy=automatic_deploy,
        materialize_snapshot=materialize_snapshot,
        preprocess=preprocess,
    )
    function = getattr(sa.func.pyml, name)(*_arguments(signature, given))
    table: TableValuedAlias = function.table_valued(*_columns(_signatures.TRAIN_COLUMNS), name=name)
    return table


def deploy(project: Any, strategy: Any = None, algorithm: Any = None) -> TableValuedAlias:
    """``pyml.deploy`` of a project (by ``strategy``, optionally among one ``algorithm``'s
    models) or of one model by id, as a table of ``project, strategy, algorithm, model_id``."""
    if isinstance(project, int) and not isinstance(project, bool):
        if strategy is not None or algorithm is not None:
            raise TypeError("deploying a model by id takes no strategy or algorithm")
        arguments = _arguments(_signatures.DEPLOY_BY_ID, {"model_id": project})
    else:
        arguments = _arguments(
            _signatures.DEPLOY,
            {"project_name": project, "strategy": strategy, "algorithm": algorithm},
        )
    function = sa.func.pyml.deploy(*arguments)
    table: TableValuedAlias = function.table_valued(
        *_columns(_signatures.DEPLOY_COLUMNS), name="deploy"
    )
    return table
