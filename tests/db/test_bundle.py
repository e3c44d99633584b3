# ruff: noqa: S608  (SQL built from this file's constants; values are bound)
"""Model bundles: ``pyml.export(..., format => 'pyml')`` in one database and
``pyml.import_model`` in another (a second database of the test cluster, made from the
template like every test database, standing for an edge PostgreSQL with no path to the
first), and the ``pyml export --format pyml`` / ``pyml import`` commands.

The copy gives the same predictions and carries the same metrics, snapshot statistics and
lineage (plus ``imported``); privileges are checked as for training and deploying; a bundle
that is malformed (22023) or holds a file that fails its checks (XX001) writes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql
from pytest_postgresql.janitor import DatabaseJanitor

from pyml.client.cluster import SUPERUSER, Cluster
from pyml.core import bundle

ROLE = "pyml_tester"  # the test role of tests/conftest.py
STRANGER = "bundle_stranger"  # a role that holds nothing on the edge's projects
PYML = [sys.executable, "-m", "pyml.client.cli"]
DIABETES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
HOUSES = "id int PRIMARY KEY, city text, size real, rooms int, garden boolean"
REGISTRY = ("projects", "snapshots", "models", "files", "deployments")


# ---------------------------------------------------------------------------
# The edge database, its sessions, the data
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def edge_db(cluster: Cluster, template: str) -> Iterator[str]:
    """A second database with the extension (a copy of the template)."""
    name = f"pyml_edge_{os.getpid()}"
    janitor = DatabaseJanitor(
        user=SUPERUSER,
        host="127.0.0.1",
        port=cluster.port,
        dbname=name,
        template_dbname=template,
    )
    janitor.init()
    yield name
    janitor.drop()


@pytest.fixture(scope="module")
def edge_url(cluster: Cluster, edge_db: str) -> str:
    return f"postgresql://{ROLE}@127.0.0.1:{cluster.port}/{edge_db}"


@pytest.fixture(scope="module")
def edge_admin(cluster: Cluster, edge_db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(cluster.uri(edge_db), autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        yield conn


@pytest.fixture(scope="module")
def edge(edge_url: str) -> Iterator[psycopg.Connection]:
    """The test role's session on the edge."""
    with psycopg.connect(edge_url, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        yield conn


@pytest.fixture(scope="module")
def stranger(
    cluster: Cluster, edge_db: str, edge_admin: psycopg.Connection
) -> Iterator[psycopg.Connection]:
    """A session on the edge of a role that holds no privilege on the test role's projects."""
    if not edge_admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (STRANGER,)).fetchone():
        try:
            edge_admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(STRANGER)))
        except psycopg.errors.UniqueViolation:  # created meanwhile by a parallel test run
            pass
    url = f"postgresql://{STRANGER}@127.0.0.1:{cluster.port}/{edge_db}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        yield conn


def _houses(conn: psycopg.Connection, rows: list[tuple[Any, ...]]) -> None:
    conn.execute(f"CREATE TABLE houses ({HOUSES})")
    with conn.cursor().copy("COPY houses FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


@pytest.fixture(scope="module")
def houses(conn: psycopg.Connection, edge: psycopg.Connection) -> list[tuple[Any, ...]]:
    """A table of the source database only (text, NULLs, an integer, a boolean) and the
    expensive label; the edge gets the same rows without the label, as its own data."""
    rng = np.random.default_rng(18)
    n = 300
    city = rng.choice(["paris", "lyon", "nice"], n).astype(object)
    city[rng.random(n) < 0.1] = None
    size = rng.lognormal(4, 0.5, n).round(1).astype(object)
    size[rng.random(n) < 0.1] = None
    rooms = rng.integers(1, 7, n)
    garden = rng.random(n) < 0.4
    value = [
        {"paris": 3.0, "lyon": 1.5, "nice": 2.0, None: 1.0}[c] * (s or 50) + 20 * g + 5 * r
        for c, s, g, r in zip(city, size, garden, rooms, strict=True)
    ]
    rows = [(i + 1, city[i], size[i], int(rooms[i]), bool(garden[i])) for i in range(n)]
    conn.execute(f"CREATE TABLE houses ({HOUSES}, expensive boolean)")
    with conn.cursor().copy("COPY houses FROM STDIN") as copy:
        for row, v in zip(rows, value, strict=True):
            copy.write_row((*row, bool(v > np.median(value))))
    conn.execute(
        "CREATE VIEW houses_train AS SELECT city, size, rooms, garden, expensive"
        " FROM houses ORDER BY id"
    )
    _houses(edge, rows)
    return rows


def _model_of(conn: psycopg.Connection, project: str) -> int:
    (model_id,) = conn.execute("SELECT pyml.deployed_model(%s)", (project,)).fetchone()
    return int(model_id)


def _export(conn: psycopg.Connection, model: str | int) -> bytes:
    cast = "bigint" if isinstance(model, int) else "text"
    (data,) = conn.execute(f"SELECT pyml.export(%s::{cast}, format => 'pyml')", (model,)).fetchone()
    return bytes(data)


def _import(conn: psycopg.Connection, data: bytes, project: str | None = None, **kw: Any) -> int:
    deploy = kw.get("deploy", True)
    (model_id,) = conn.execute(
        "SELECT pyml.import_model(%s, %s, %s)", (data, project, deploy)
    ).fetchone()
    return int(model_id)


def _catalog(conn: psycopg.Connection, model_id: int) -> dict[str, Any]:
    """What a model's copy must keep: its catalog row, snapshot, files."""
    (lineage,) = conn.execute("SELECT pyml.lineage(%s)", (model_id,)).fetchone()
    snapshot = lineage["snapshot"]
    return {
        "task": lineage["project"]["task"],
        **{
            key: lineage[key]
            for key in (
                "algorithm",
                "hyperparams",
                "metrics",
                "feature_names",
                "classes",
                "preprocess",
                "search",
                "search_params",
                "search_args",
                "baseline",
            )
        },
        "snapshot": {
            key: snapshot[key]
            for key in (
                "relation",
                "y_column_name",
                "test_size",
                "test_sampling",
                "row_count",
                "data_fingerprint",
                "preprocess",
                "columns",
            )
        },
        "artifacts": lineage["artifacts"],
    }


def _counts(admin: psycopg.Connection) -> dict[str, int]:
    return {
        table: admin.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("pyml", table))
        ).fetchone()[0]
        for table in REGISTRY
    }


# ---------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------


def test_lightgbm_model_round_trip(conn: psycopg.Connection, edge: psycopg.Connection) -> None:
    conn.execute(
        "SELECT * FROM pyml.train('bundle lgbm', 'regression', 'pyml.diabetes', 'target',"
        " 'lightgbm', hyperparams => '{\"n_estimators\": 30}')"
    )
    original = _model_of(conn, "bundle lgbm")
    data = _export(conn, "bundle lgbm")
    document = bundle.loads(data)
    by_id = bundle.loads(_export(conn, original))
    for one in (document, by_id):  # the live model's bundle is its model's
        one["source"].pop("exported_at")
    assert by_id == document
    assert document["source"]["model_id"] == original
    assert document["source"]["trained_by"] == "pyml.train"

    copy = _import(edge, data)
    assert _model_of(edge, "bundle lgbm") == copy
    (strategy,) = edge.execute(
        "SELECT strategy FROM pyml.deployments WHERE model_id = %s", (copy,)
    ).fetchone()
    assert strategy == "specific"
    assert _catalog(edge, copy) == _catalog(conn, original)

    rows = conn.execute(
        f"SELECT ARRAY[{', '.join(DIABETES)}]::real[] FROM pyml.diabetes ORDER BY 1 LIMIT 60"
    ).fetchall()
    flat = [v for (row,) in rows for v in row]
    query = "SELECT array_agg(p) FROM pyml.predict_batch(%s, %s::real[]) p"
    there = conn.execute(query, ("bundle lgbm", flat)).fetchone()[0]
    here = edge.execute(query, ("bundle lgbm", flat)).fetchone()[0]
    assert len(here) == 60
    assert here == there
    for (row,) in rows[:5]:  # the online path too
        q = "SELECT pyml.predict(%s, %s::real[])"
        assert (
            edge.execute(q, ("bundle lgbm", row)).fetchone()
            == conn.execute(q, ("bundle lgbm", row)).fetchone()
        )

    (lineage,) = edge.execute("SELECT pyml.lineage(%s)", (copy,)).fetchone()
    (before,) = conn.execute("SELECT pyml.lineage(%s)", (original,)).fetchone()
    environment = lineage["environment"]
    imported = environment.pop("imported")
    assert environment == before["environment"]  # versions, host, timings of the training
    assert imported["from"] == bundle.loads(data)["source"]
    assert imported["from"]["database"] == conn.info.dbname
    assert imported["imported_by"] == ROLE
    assert imported["database"] == edge.info.dbname
    assert lineage["trained_by"] == ROLE and lineage["live"] is True


def test_sklearn_model_with_preprocessing_round_trip(
    conn: psycopg.Connection, edge: psycopg.Connection, houses: list[tuple[Any, ...]]
) -> None:
    """A random forest with one-hot categories and imputed NULLs, served through its ONNX
    part, trained on a table the edge does not have: its own rows predict the same there."""
    conn.execute(
        "SELECT * FROM pyml.train('bundle forest', 'classification', 'houses_train',"
        " 'expensive', 'random_forest', hyperparams => '{\"n_estimators\": 15}',"
        " preprocess => %s)",
        (json.dumps({"city": {"encode": "one_hot"}, "size": {"impute": "median"}}),),
    )
    original = _model_of(conn, "bundle forest")
    (formats,) = conn.execute(
        "SELECT array_agg(format ORDER BY part) FROM pyml.files WHERE model_id = %s", (original,)
    ).fetchone()
    assert formats == ["skops", "skops-preprocessor", "onnx"]

    copy = _import(edge, _export(conn, original), deploy=False)
    assert edge.execute("SELECT pyml.deployed_model('bundle forest')").fetchone() == (None,)
    assert _catalog(edge, copy) == _catalog(conn, original)
    edge.execute("SELECT * FROM pyml.deploy(%s::bigint)", (copy,))

    query = (
        "SELECT array_agg(pyml.predict_label('bundle forest', ROW(h.city, h.size, h.rooms,"
        " h.garden)) ORDER BY h.id), array_agg(pyml.predict_proba('bundle forest',"
        " ROW(h.city, h.size, h.rooms, h.garden)) ORDER BY h.id) FROM houses h"
    )
    labels, probabilities = edge.execute(query).fetchone()
    assert (labels, probabilities) == conn.execute(query).fetchone()
    assert len(labels) == len(houses) and set(labels) == {"true", "false"}


IRIS = "ARRAY[sepal_length, sepal_width, petal_length, petal_width]::real[]"
ALL = "ARRAY[sepal_length, sepal_width, petal_length, petal_width, target]::real[]"
KINDS = {
    # name: (training call, the prediction compared, on the rows of)
    "kmeans": (
        "SELECT * FROM pyml.train(%s, 'clustering', 'pyml.iris', NULL, 'kmeans',"
        " '{\"n_clusters\": 3}')",
        f"pyml.predict(%s, {ALL})",
        "pyml.iris",
    ),
    "pca": (
        "SELECT * FROM pyml.train(%s, 'decomposition', 'pyml.iris', NULL, 'pca',"
        " '{\"n_components\": 2}')",
        f"pyml.decompose(%s, {ALL})",
        "pyml.iris",
    ),
    "lightgbm multiclass": (
        "SELECT * FROM pyml.train(%s, 'classification', 'pyml.iris', 'target', 'lightgbm',"
        " '{\"n_estimators\": 5}')",
        f"pyml.predict_proba(%s, {IRIS})",
        "pyml.iris",
    ),
    "knn": (
        "SELECT * FROM pyml.train(%s, 'classification', 'pyml.iris', 'target', 'knn')",
        f"pyml.predict_proba(%s, {IRIS})",
        "pyml.iris",
    ),
    "hist_gradient_boosting": (
        "SELECT * FROM pyml.train(%s, 'classification', 'pyml.iris', 'target',"
        " 'hist_gradient_boosting', '{\"max_iter\": 5}')",
        f"pyml.predict_proba(%s, {IRIS})",
        "pyml.iris",
    ),
    "joint": (
        "SELECT * FROM pyml.train_joint(%s, 'regression', 'pyml.linnerud',"
        " ARRAY['weight', 'waist', 'pulse'], 'linear')",
        "pyml.predict_joint(%s, ARRAY[chins, situps, jumps]::real[])",
        "pyml.linnerud",
    ),
}


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_model_round_trips(
    conn: psycopg.Connection, edge: psycopg.Connection, kind: str
) -> None:
    train, prediction, rows = KINDS[kind]
    project = f"bundle {kind}"
    conn.execute(train, (project,))
    original = _model_of(conn, project)
    copy = _import(edge, _export(conn, project))
    assert _catalog(edge, copy) == _catalog(conn, original)
    query = f"SELECT array_agg({prediction} ORDER BY ctid) FROM {rows}"
    assert edge.execute(query, (project,)).fetchone() == conn.execute(query, (project,)).fetchone()


def test_copy_of_a_copy_keeps_where_it_came_from(
    conn: psycopg.Connection, edge: psycopg.Connection
) -> None:
    """An imported model exported again: the next copy's lineage keeps the first import."""
    conn.execute(
        "SELECT * FROM pyml.train('bundle twice', 'classification', 'pyml.iris', 'target',"
        " 'linear')"
    )
    first = _import(edge, _export(conn, "bundle twice"))
    second = _import(conn, _export(edge, first), "bundle twice back")
    (lineage,) = conn.execute("SELECT pyml.lineage(%s)", (second,)).fetchone()
    imported = lineage["environment"]["imported"]
    assert imported["from"]["database"] == edge.info.dbname
    assert imported["from"]["model_id"] == first
    assert imported["earlier"]["from"]["database"] == conn.info.dbname
    assert imported["from"]["trained_by"] == "pyml.train"
    q = "SELECT pyml.predict_proba(%s, ARRAY[5.9, 3.0, 5.1, 1.8]::real[])"
    assert (
        conn.execute(q, ("bundle twice back",)).fetchone()
        == conn.execute(q, ("bundle twice",)).fetchone()
    )


# ---------------------------------------------------------------------------
# Projects and privileges
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def regression_bundle(conn: psycopg.Connection) -> bytes:
    conn.execute(
        "SELECT * FROM pyml.train('bundle ridge', 'regression', 'pyml.diabetes', 'target', 'ridge')"
    )
    return _export(conn, "bundle ridge")


def test_a_role_without_train_on_the_project_is_refused(
    edge: psycopg.Connection,
    edge_admin: psycopg.Connection,
    stranger: psycopg.Connection,
    regression_bundle: bytes,
) -> None:
    _import(edge, regression_bundle, "bundle owned")  # the test role owns the project
    before = _counts(edge_admin)
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
        _import(stranger, regression_bundle, "bundle owned", deploy=False)
    assert info.value.diag.message_primary == 'permission denied for project "bundle owned"'
    assert '"train" privilege' in str(info.value.diag.message_detail)
    edge.execute("SELECT pyml.grant('bundle owned', %s, 'train')", (STRANGER,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
        _import(stranger, regression_bundle, "bundle owned")  # deploys: needs deploy too
    assert '"deploy" privilege' in str(info.value.diag.message_detail)
    assert _counts(edge_admin) == before
    copy = _import(stranger, regression_bundle, "bundle owned", deploy=False)
    (created_by,) = edge_admin.execute(
        "SELECT created_by FROM pyml.models WHERE id = %s", (copy,)
    ).fetchone()
    assert created_by == STRANGER
    # A new project is the importer's own, as with training.
    _import(stranger, regression_bundle, "bundle strangers own")
    (owner,) = edge_admin.execute(
        "SELECT owner FROM pyml.projects WHERE name = 'bundle strangers own'"
    ).fetchone()
    assert owner == STRANGER


@pytest.fixture(scope="module")
def iris_project(edge: psycopg.Connection) -> str:
    """A classification project of the edge's own."""
    edge.execute("SELECT * FROM pyml.train('bundle iris', 'classification', 'pyml.iris', 'target')")
    return "bundle iris"


def test_a_project_of_another_task_is_55000(
    edge: psycopg.Connection,
    edge_admin: psycopg.Connection,
    regression_bundle: bytes,
    iris_project: str,
) -> None:
    before = _counts(edge_admin)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as info:
        _import(edge, regression_bundle, "bundle iris")
    assert info.value.diag.message_primary == (
        'project "bundle iris" has task "classification", not "regression"'
    )
    assert _counts(edge_admin) == before


# ---------------------------------------------------------------------------
# Malformed bundles and damaged files write nothing
# ---------------------------------------------------------------------------


def _document(data: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(data)
    return document


def _rewrite(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    document = _document(data)
    change(document)
    return json.dumps(document).encode()


def _file(document: dict[str, Any], fmt: str, payload: bytes) -> None:
    document["files"][0].update(
        format=fmt,
        sha256=hashlib.sha256(payload).hexdigest(),
        data=base64.b64encode(payload).decode(),
    )


class _Planted:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("touch /tmp/pyml-bundle-planted",))


def _as_lightgbm(document: dict[str, Any]) -> None:
    """A LightGBM model whose file is a pickle (the ONNX part dropped)."""
    document["model"]["algorithm"] = "lightgbm"
    document["files"] = document["files"][:1]
    _file(document, "lightgbm-text", pickle.dumps(_Planted()))


MALFORMED: dict[str, Callable[[bytes], bytes]] = {
    "not json": lambda data: b"PK\x03\x04 a zip file",
    "not an object": lambda data: b"[]",
    "wrong format": lambda data: _rewrite(data, lambda d: d.update(format="onnx")),
    "wrong version": lambda data: _rewrite(data, lambda d: d.update(version=2)),
    "missing key": lambda data: _rewrite(data, lambda d: d["model"].pop("feature_names")),
    "mistyped key": lambda data: _rewrite(data, lambda d: d["snapshot"].update(row_count="9")),
    "features disagree": lambda data: _rewrite(data, lambda d: d["model"].update(num_features=3)),
    "unknown task": lambda data: _rewrite(data, lambda d: d["project"].update(task="ranking")),
    "file of another library": lambda data: _rewrite(
        data, lambda d: d["model"].update(algorithm="lightgbm")
    ),
    "bad base64": lambda data: _rewrite(data, lambda d: d["files"][0].update(data="%%%")),
}
DAMAGED: dict[str, Callable[[bytes], bytes]] = {
    "sha256 mismatch": lambda data: _rewrite(
        data, lambda d: d["files"][0].update(sha256=hashlib.sha256(b"other").hexdigest())
    ),
    "unknown format": lambda data: _rewrite(
        data, lambda d: _file(d, "pickle", pickle.dumps(_Planted()))
    ),
    "planted pickle": lambda data: _rewrite(
        data, lambda d: _file(d, "skops", pickle.dumps(_Planted()))
    ),
    "planted pickle as lightgbm": lambda data: _rewrite(data, _as_lightgbm),
    "truncated skops file": lambda data: _rewrite(
        data,
        lambda d: _file(
            d,
            "skops",
            base64.b64decode(d["files"][0]["data"])[:-200],  # a truncated zip
        ),
    ),
}


@pytest.mark.parametrize("case", [*MALFORMED, *DAMAGED])
def test_bad_bundles_write_nothing(
    edge: psycopg.Connection,
    edge_admin: psycopg.Connection,
    regression_bundle: bytes,
    case: str,
) -> None:
    bad = {**MALFORMED, **DAMAGED}[case](regression_bundle)
    error = (
        psycopg.errors.InvalidParameterValue if case in MALFORMED else psycopg.errors.DataCorrupted
    )
    before = _counts(edge_admin)
    for project in ("bundle damaged", "bundle owned"):  # a new project, an existing one
        with pytest.raises(error):
            _import(edge, bad, project)
    assert _counts(edge_admin) == before
    assert not Path("/tmp/pyml-bundle-planted").exists()  # noqa: S108 - the planted path


def test_null_arguments_and_export_format(
    edge: psycopg.Connection, conn: psycopg.Connection, regression_bundle: bytes
) -> None:
    with pytest.raises(psycopg.errors.NullValueNotAllowed):
        edge.execute("SELECT pyml.import_model(NULL)")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        edge.execute("SELECT pyml.import_model(%s, '')", (regression_bundle,))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="onnx, pyml"):
        conn.execute("SELECT pyml.export('bundle ridge', format => 'zip')")
    # deploy => NULL is the default (true), as automatic_deploy is for training
    copy = edge.execute(
        "SELECT pyml.import_model(%s, 'bundle null deploy', NULL)", (regression_bundle,)
    ).fetchone()[0]
    assert _model_of(edge, "bundle null deploy") == copy


def test_read_only_transactions_export_but_do_not_import(
    edge_url: str, conn: psycopg.Connection, regression_bundle: bytes
) -> None:
    """As on a hot standby: exporting reads, importing writes (25006, before any work)."""
    with psycopg.connect(edge_url) as session:
        session.execute("SET TRANSACTION READ ONLY")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction) as info:
            _import(session, regression_bundle, "bundle read only")
        assert info.value.diag.message_primary == (
            "cannot run pyml.import_model in a read-only transaction"
        )
    with conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        assert bundle.loads(_export(conn, "bundle ridge"))["project"]["name"] == "bundle ridge"


# ---------------------------------------------------------------------------
# The commands
# ---------------------------------------------------------------------------


def _pyml(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PYML, *args], capture_output=True, text=True, timeout=300)


def test_cli_round_trip(
    conn: psycopg.Connection,
    edge: psycopg.Connection,
    url: str,
    edge_url: str,
    regression_bundle: bytes,
    iris_project: str,
    tmp_path: Path,
) -> None:
    path = tmp_path / "ridge.pyml"
    done = _pyml("export", "bundle ridge", "--format", "pyml", "-o", str(path), "--url", url)
    assert done.returncode == 0, done.stderr
    assert "as a bundle" in done.stderr
    document = bundle.loads(path.read_bytes())
    assert document["source"]["model_id"] == _model_of(conn, "bundle ridge")

    done = _pyml("import", str(path), "--project", "bundle cli", "--no-deploy", "--url", edge_url)
    assert done.returncode == 0, done.stderr
    copy = int(done.stdout)
    assert "not deployed" in done.stderr
    assert edge.execute("SELECT pyml.deployed_model('bundle cli')").fetchone() == (None,)
    done = _pyml("import", str(path), "--project", "bundle cli", "--url", edge_url)
    assert done.returncode == 0, done.stderr
    assert _model_of(edge, "bundle cli") == int(done.stdout) != copy
    row = [0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02]
    q = "SELECT pyml.predict(%s, %s::real[])"
    assert (
        edge.execute(q, ("bundle cli", row)).fetchone()
        == conn.execute(q, ("bundle ridge", row)).fetchone()
    )

    by_id = tmp_path / "by-id.pyml"
    done = _pyml(
        "export", "--model", str(copy), "--format", "pyml", "-o", str(by_id), "--url", edge_url
    )
    assert done.returncode == 0, done.stderr
    assert bundle.loads(by_id.read_bytes())["source"]["model_id"] == copy

    # A file that is not a bundle: refused before it is sent, exit 1, the reason on stderr.
    bad = tmp_path / "bad.pyml"
    bad.write_bytes(b'{"format": "pyml-model", "version": 7}')
    done = _pyml("import", str(bad), "--url", edge_url)
    assert done.returncode == 1
    assert "bundle has version 7, but this pyml reads version 1" in done.stderr
    # A server-side refusal: the project of another task.
    done = _pyml("import", str(path), "--project", iris_project, "--url", edge_url)
    assert done.returncode == 1
    assert 'has task "classification", not "regression"' in done.stderr
    # An export that fails writes no file.
    missing = tmp_path / "missing.pyml"
    done = _pyml("export", "no such project", "--format", "pyml", "-o", str(missing), "--url", url)
    assert done.returncode == 1 and not missing.exists()
    assert 'project "no such project" does not exist' in done.stderr
