"""pyml.load_dataset against the real server (API.md section 5)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy
import psycopg
import pytest
from psycopg import sql
from sklearn import datasets as skd

BREAST_CANCER_FEATURES = [
    f"{prefix}{feature}{suffix}"
    for prefix, suffix in (("mean ", ""), ("", " error"), ("worst ", ""))
    for feature in (
        "radius",
        "texture",
        "perimeter",
        "area",
        "smoothness",
        "compactness",
        "concavity",
        "concave points",
        "symmetry",
        "fractal dimension",
    )
]
WINE_FEATURES = [
    "alcohol",
    "malic_acid",
    "ash",
    "alcalinity_of_ash",
    "magnesium",
    "total_phenols",
    "flavanoids",
    "nonflavanoid_phenols",
    "proanthocyanins",
    "hue",
    "color_intensity",
    "od280/od315_of_diluted_wines",
    "proline",
]
IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
DIABETES_FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]

# pgml's table layout: (column name, format_type) in table order.
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "breast_cancer": [(c, "real") for c in BREAST_CANCER_FEATURES] + [("malignant", "boolean")],
    "diabetes": [(c, "real") for c in [*DIABETES_FEATURES, "target"]],
    "digits": [("image", "smallint[]"), ("target", "smallint")],
    "iris": [(c, "real") for c in IRIS_FEATURES] + [("target", "integer")],
    "linnerud": [(c, "real") for c in ("chins", "situps", "jumps", "weight", "waist", "pulse")],
    "wine": [(c, "real") for c in WINE_FEATURES] + [("target", "integer")],
}
ROWS = {
    "breast_cancer": 569,
    "diabetes": 442,
    "digits": 1797,
    "iris": 150,
    "linnerud": 20,
    "wine": 178,
}


def expected_sums(source: str) -> dict[str, float]:
    """Column sums computed from scikit-learn's copy of the data."""
    if source == "linnerud":
        bunch = skd.load_linnerud()
        sums = dict(zip(["chins", "situps", "jumps"], bunch.data.sum(axis=0), strict=True))
        sums.update(zip(["weight", "waist", "pulse"], bunch.target.sum(axis=0), strict=True))
        return sums
    if source == "digits":
        bunch = skd.load_digits()
        return {"image": float(bunch.images.sum()), "target": float(bunch.target.sum())}
    bunch = getattr(skd, f"load_{source}")()
    names = {
        "breast_cancer": BREAST_CANCER_FEATURES,
        "diabetes": DIABETES_FEATURES,
        "iris": [f"{n.replace('_', ' ')} (cm)" for n in IRIS_FEATURES],
        "wine": WINE_FEATURES,
    }[source]
    sums = {}
    for column, name in zip(COLUMNS[source], names, strict=False):
        sums[column[0]] = float(bunch.data[:, list(bunch.feature_names).index(name)].sum())
    if source == "breast_cancer":
        sums["malignant"] = float((bunch.target == 0).sum())  # scikit-learn's class 0
    else:
        sums["target"] = float(bunch.target.sum())
    return sums


@pytest.fixture(scope="module")
def admin(admin_url: str) -> Iterator[psycopg.Connection]:
    """A superuser session: it owns the datasets the template loaded."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        yield conn


def table_columns(conn: psycopg.Connection, table: str) -> list[tuple[str, str]]:
    return [
        (name, sqltype)
        for name, sqltype in conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (table,),
        )
    ]


def load(conn: psycopg.Connection, source: str, limit: int | None = None) -> list[tuple[Any, ...]]:
    return conn.execute(
        'SELECT * FROM pyml.load_dataset(source => %s, "limit" => %s::bigint)', (source, limit)
    ).fetchall()


def owned(conn: psycopg.Connection, admin: psycopg.Connection, source: str) -> None:
    """Make the application role the owner of ``pyml.<source>`` (the template's belong to
    the superuser, and only the owner may replace a table)."""
    admin.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("pyml", source)))
    load(conn, source)


def count(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*table.split(".")))
    ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("source", sorted(COLUMNS))
def test_load_dataset(conn: psycopg.Connection, admin: psycopg.Connection, source: str) -> None:
    """The application role loads each dataset into a fresh pyml.<name>."""
    admin.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("pyml", source)))
    cursor = conn.execute("SELECT * FROM pyml.load_dataset(%s)", (source,))
    assert [c.name for c in cursor.description or []] == ["table_name", "rows"]
    assert cursor.fetchall() == [(f"pyml.{source}", ROWS[source])]
    table = f"pyml.{source}"
    assert count(conn, table) == ROWS[source]
    assert table_columns(conn, table) == COLUMNS[source]

    # Each column holds its own data (pgml once swapped two wine columns).
    table_ident = sql.Identifier("pyml", source)
    for name, expected in expected_sums(source).items():
        column = sql.Identifier(name)
        if name == "image":
            query = sql.SQL("SELECT sum(v)::float8 FROM {}, unnest(image) AS v").format(table_ident)
        elif name == "malignant":
            query = sql.SQL("SELECT count(*) FILTER (WHERE {})::float8 FROM {}").format(
                column, table_ident
            )
        else:
            query = sql.SQL("SELECT sum({}::float8) FROM {}").format(column, table_ident)
        actual = conn.execute(query).fetchone()
        assert actual is not None
        assert actual[0] == pytest.approx(expected, rel=1e-5, abs=1e-4), name


def test_digits_images_are_8x8(conn: psycopg.Connection, admin: psycopg.Connection) -> None:
    owned(conn, admin, "digits")
    dims = conn.execute("SELECT DISTINCT array_dims(image) FROM pyml.digits").fetchall()
    assert dims == [("[1:8][1:8]",)]
    bounds = conn.execute(
        "SELECT min(v), max(v), min(target), max(target) FROM pyml.digits, unnest(image) AS v"
    ).fetchone()
    assert bounds is not None
    low, high, first, last = bounds
    assert 0 <= low <= high <= 16
    assert 0 <= first <= last <= 9
    first_image = conn.execute("SELECT image FROM pyml.digits LIMIT 1").fetchone()
    assert first_image is not None
    assert numpy.array(first_image[0]).shape == (8, 8)


def test_breast_cancer_label_is_malignant(
    conn: psycopg.Connection, admin: psycopg.Connection
) -> None:
    owned(conn, admin, "breast_cancer")
    counts = conn.execute(
        "SELECT malignant, count(*) FROM pyml.breast_cancer GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert counts == [(False, 357), (True, 212)]
    # Malignant tumours are the larger ones.
    larger = conn.execute(
        'SELECT avg("mean radius") FILTER (WHERE malignant)'
        ' > avg("mean radius") FILTER (WHERE NOT malignant) FROM pyml.breast_cancer'
    ).fetchone()
    assert larger == (True,)


@pytest.mark.parametrize(("limit", "expected"), [(10, 10), (1, 1), (0, 0), (1000, 150)])
def test_limit(
    conn: psycopg.Connection, admin: psycopg.Connection, limit: int, expected: int
) -> None:
    owned(conn, admin, "iris")
    assert load(conn, "iris", limit) == [("pyml.iris", expected)]
    assert count(conn, "pyml.iris") == expected


def test_reloading_replaces_the_table(conn: psycopg.Connection, admin: psycopg.Connection) -> None:
    owned(conn, admin, "linnerud")
    assert load(conn, "linnerud", 5) == [("pyml.linnerud", 5)]
    conn.execute("INSERT INTO pyml.linnerud VALUES (1, 2, 3, 4, 5, 6)")
    assert count(conn, "pyml.linnerud") == 6
    assert load(conn, "linnerud") == [("pyml.linnerud", 20)]
    assert count(conn, "pyml.linnerud") == 20
    stray = conn.execute("SELECT count(*) FROM pyml.linnerud WHERE chins = 1 AND pulse = 6")
    assert stray.fetchone() == (0,)
    assert table_columns(conn, "pyml.linnerud") == COLUMNS["linnerud"]


def test_reloading_a_changed_table_restores_its_layout(
    conn: psycopg.Connection, admin: psycopg.Connection
) -> None:
    owned(conn, admin, "iris")
    conn.execute("ALTER TABLE pyml.iris ADD COLUMN extra text")
    conn.execute("ALTER TABLE pyml.iris DROP COLUMN sepal_width")
    assert load(conn, "iris") == [("pyml.iris", 150)]
    assert table_columns(conn, "pyml.iris") == COLUMNS["iris"]


def test_reloading_drops_dependent_views_with_cascade(
    conn: psycopg.Connection, admin: psycopg.Connection
) -> None:
    """As in PostgresML: views over the dataset table are dropped with it (DROP TABLE ...
    CASCADE), and PostgreSQL's NOTICE names each one."""
    owned(conn, admin, "iris")
    conn.execute("CREATE VIEW iris_setosa AS SELECT * FROM pyml.iris WHERE target = 0")
    conn.execute("CREATE VIEW iris_setosa_petals AS SELECT petal_length FROM iris_setosa")
    notices: list[str] = []

    def keep(diag: psycopg.errors.Diagnostic) -> None:
        notices.append(f"{diag.message_primary}\n{diag.message_detail or ''}")

    conn.add_notice_handler(keep)
    try:
        conn.execute("SET client_min_messages = notice")
        assert load(conn, "iris") == [("pyml.iris", 150)]
    finally:
        conn.execute("SET client_min_messages = warning")
        conn.remove_notice_handler(keep)
    assert [n for n in notices if n.startswith("drop cascades")] == [
        "drop cascades to 2 other objects\n"
        "drop cascades to view public.iris_setosa\n"
        "drop cascades to view public.iris_setosa_petals"
    ]
    views = conn.execute("SELECT to_regclass('iris_setosa'), to_regclass('iris_setosa_petals')")
    assert views.fetchone() == (None, None)
    assert count(conn, "pyml.iris") == 150


def test_reload_of_a_table_owned_by_another_role(
    conn: psycopg.Connection, admin: psycopg.Connection
) -> None:
    """PostgreSQL's rule: only the owner may drop a table; the old table stays intact."""
    admin.execute("SELECT * FROM pyml.load_dataset('wine', \"limit\" => 7)")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        load(conn, "wine")
    assert count(admin, "pyml.wine") == 7
    assert load(admin, "wine") == [("pyml.wine", 178)]


def test_unknown_dataset(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.UndefinedObject) as info:
        load(conn, "no_such_dataset")
    assert '"no_such_dataset"' in info.value.diag.message_primary
    exists = conn.execute("SELECT to_regclass('pyml.no_such_dataset')").fetchone()
    assert exists == (None,)
