"""Loading a model never runs code from the database (API.md section 7).

As superuser, models are planted next to a real one: a pickle (as format "skops" and as
format "pickle", with a correct sha256) whose unpickling would create a marker in /tmp,
a skops file holding a type outside the allow-list, and tampered bytes whose sha256 was
not updated. Each is refused with SQLSTATE XX001, by deploy (which loads the model) or by
every prediction from it; the marker never appears. (Damaged artifacts with a correct
sha256 are planted by the hundred in test_fuzz.py.)
"""

from __future__ import annotations

import hashlib
import os
import pickle
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import skops.io
from psycopg import sql
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

PROJECT = "Safety"
FEATURES = [5.1, 3.5, 1.4, 0.2]  # one iris row


class _Planted:
    """Unpickling this creates a directory at ``path``: code run from the data.

    The pickle holds only ``os.mkdir`` and its argument, so the server could run it
    without importing this module.
    """

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.path,))


@pytest.fixture(scope="module")
def admin(admin_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        yield conn


@pytest.fixture(scope="module")
def models(admin: psycopg.Connection) -> dict[str, int]:
    """Two real models of the project, by algorithm (the linear one is live)."""
    for algorithm in ("linear", "lightgbm"):
        admin.execute(
            "SELECT * FROM pyml.train(%s, 'classification', 'pyml.iris', 'target', %s)",
            (PROJECT, algorithm),
        )
    rows = admin.execute(
        "SELECT m.algorithm, m.id FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
        " WHERE p.name = %s",
        (PROJECT,),
    ).fetchall()
    return dict(rows)


@pytest.fixture
def marker() -> Iterator[Path]:
    """A path in /tmp that the server's user could create; removed afterwards."""
    path = Path("/tmp") / f"pyml_planted_{uuid.uuid4().hex}"
    yield path
    if path.is_dir():
        path.rmdir()


def plant(
    admin: psycopg.Connection, like: int, fmt: str, data: bytes, sha256: str | None = None
) -> int:
    """A copy of model ``like`` whose only artifact is ``data``; returns its id."""
    (model_id,) = admin.execute(
        "INSERT INTO pyml.models (project_id, snapshot_id, algorithm, hyperparams, status,"
        " metrics, num_features, feature_names, classes, preprocess, runtime, lineage)"
        " SELECT project_id, snapshot_id, algorithm, hyperparams, status, metrics, num_features,"
        " feature_names, classes, preprocess, runtime, lineage FROM pyml.models WHERE id = %s"
        " RETURNING id",
        (like,),
    ).fetchone()
    admin.execute(
        "INSERT INTO pyml.files (model_id, part, format, sha256, data) VALUES (%s, 0, %s, %s, %s)",
        (model_id, fmt, sha256 or hashlib.sha256(data).hexdigest(), data),
    )
    return int(model_id)


def assert_refused(admin: psycopg.Connection, model_id: int) -> psycopg.errors.DataCorrupted:
    """The model is refused with XX001: at deploy (deploy loads the model first), or, when
    deploy by id does not load it, at every prediction. Predicting with it by id is refused
    either way. Returns the first refusal."""
    errors: list[psycopg.errors.DataCorrupted] = []
    calls: list[tuple[str, tuple[object, ...]]]
    try:
        deployed = admin.execute("SELECT model_id, strategy FROM pyml.deploy(%s)", (model_id,))
    except psycopg.errors.DataCorrupted as error:
        errors.append(error)
        calls = [("SELECT pyml.predict(%s, %s::real[])", (model_id, FEATURES))]
    else:
        assert deployed.fetchall() == [(model_id, "specific")]
        calls = [
            ("SELECT pyml.predict(%s, %s::real[])", (PROJECT, FEATURES)),
            ("SELECT pyml.predict(%s, %s::real[])", (model_id, FEATURES)),
            ("SELECT pyml.predict_proba(%s, %s::real[])", (PROJECT, FEATURES)),
            ("SELECT * FROM pyml.predict_batch(%s, %s::real[])", (PROJECT, FEATURES * 2)),
        ]
    for query, params in calls:
        with pytest.raises(psycopg.errors.DataCorrupted) as info:
            admin.execute(query, params)
        errors.append(info.value)
    for refused in errors:
        assert refused.diag.sqlstate == "XX001"
    return errors[0]


def test_real_models_predict(admin: psycopg.Connection, models: dict[str, int]) -> None:
    """The control: the models the planted ones copy do load and predict."""
    assert sorted(models) == ["lightgbm", "linear"]
    for model_id in models.values():
        (value,) = admin.execute(
            "SELECT pyml.predict(%s, %s::real[])", (model_id, FEATURES)
        ).fetchone()
        assert value == 0.0  # setosa


def test_payload_is_live(tmp_path: Path) -> None:
    """Unpickling the payload does run it: the refusals below are real."""
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Planted(str(probe))))  # the payload under test
    assert probe.is_dir()


def test_payload_would_run_in_the_server(admin: psycopg.Connection, marker: Path) -> None:
    """The server's user can create the marker: its absence below means nothing ran."""
    payload = pickle.dumps(_Planted(str(marker))).hex()
    code = f"import pickle\npickle.loads(bytes.fromhex({payload!r}))"
    admin.execute(sql.SQL("DO {} LANGUAGE plpython3u").format(sql.Literal(code)))
    assert marker.is_dir()


@pytest.mark.parametrize("fmt", ["skops", "pickle"])
def test_planted_pickle_is_refused(
    admin: psycopg.Connection, models: dict[str, int], marker: Path, fmt: str
) -> None:
    data = pickle.dumps(_Planted(str(marker)))
    model_id = plant(admin, models["linear"], fmt, data)
    error = assert_refused(admin, model_id)
    if fmt == "pickle":
        assert 'format "pickle", which is not allowed' in str(error)
    else:
        assert 'is not a valid "skops" file' in str(error)
    assert not marker.exists(), "the planted pickle was executed"


def test_skops_type_outside_the_allow_list_is_refused(
    admin: psycopg.Connection, models: dict[str, int]
) -> None:
    X = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])
    pipeline = Pipeline(
        [
            ("run", FunctionTransformer(func=os.system)),
            ("model", LogisticRegression()),
        ]
    )
    pipeline.named_steps["model"].fit(X, [0, 2, 1])
    data = skops.io.dumps(pipeline)
    refused = f"{os.system.__module__}.{os.system.__name__}"
    assert skops.io.get_untrusted_types(data=data) == [refused]
    model_id = plant(admin, models["linear"], "skops", data)
    error = assert_refused(admin, model_id)
    assert "types that are not allowed" in str(error)
    assert refused in (error.diag.message_detail or "")


@pytest.mark.parametrize("algorithm", ["linear", "lightgbm"])
def test_tampered_artifact_is_refused(
    admin: psycopg.Connection, models: dict[str, int], algorithm: str
) -> None:
    fmt, sha256, data = admin.execute(
        "SELECT format, sha256, data FROM pyml.files WHERE model_id = %s AND part = 0",
        (models[algorithm],),
    ).fetchone()
    tampered = bytearray(data)
    tampered[len(tampered) // 2] ^= 0x01
    model_id = plant(admin, models[algorithm], fmt, bytes(tampered), sha256=sha256)
    error = assert_refused(admin, model_id)
    assert "fails its checksum" in str(error)
