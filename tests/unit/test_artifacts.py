"""Unit tests for pyml.core.artifacts: round trips, checksums, formats, the skops allow-list."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pytest
import skops.io
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.multioutput import MultiOutputRegressor
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from pyml.core import _lgbm, artifacts
from pyml.errors import DataCorrupted


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)
    X = rng.rand(200, 4)
    y = X @ np.array([3.0, -2.0, 0.5, 1.0]) + 0.1 * rng.randn(200)
    labels = (X[:, 0] + X[:, 1] > 1).astype(np.int64)
    return X, y, labels


def _rows(parts: list[artifacts.Part]) -> list[dict[str, Any]]:
    return [{"part": p.part, "format": p.format, "sha256": p.sha256, "data": p.data} for p in parts]


def _row(data: bytes, fmt: str = "skops", part: int = 0) -> dict[str, Any]:
    return {"part": part, "format": fmt, "sha256": hashlib.sha256(data).hexdigest(), "data": data}


class _Planted:
    """Unpickling this creates a directory at ``path`` (code run from the data)."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.path,))


# -- round trips ---------------------------------------------------------------------


def test_part_checksum_is_sha256_of_data() -> None:
    part = artifacts.Part(0, "skops", b"abc")
    assert part.sha256 == hashlib.sha256(b"abc").hexdigest()


def test_sklearn_round_trip(data) -> None:
    X, y, _ = data
    estimator = LinearRegression().fit(X, y)
    parts = artifacts.dump("sklearn", estimator)
    assert [(p.part, p.format) for p in parts] == [(0, "skops")]
    assert parts[0].data[:2] == b"PK"  # a zip file, not a pickle
    fmt, (loaded,), _ = artifacts.load(_rows(parts))
    assert fmt == "skops"
    assert type(loaded) is LinearRegression
    np.testing.assert_array_equal(loaded.predict(X), estimator.predict(X))


@pytest.mark.parametrize(
    "estimator",
    [
        RandomForestClassifier(n_estimators=5, random_state=0),
        KNeighborsClassifier(algorithm="kd_tree"),
        LogisticRegression(),
    ],
    ids=["tree", "kd_tree", "linear"],
)
def test_allow_listed_sklearn_types_load(data, estimator) -> None:
    """Estimators holding types that skops does not trust by default (Tree, KDTree...)."""
    X, _, labels = data
    estimator.fit(X, labels)
    fmt, (loaded,), _ = artifacts.load(_rows(artifacts.dump("sklearn", estimator)))
    np.testing.assert_array_equal(loaded.predict_proba(X), estimator.predict_proba(X))


def test_hist_gradient_boosting_round_trip(data) -> None:
    X, y, _ = data
    estimator = HistGradientBoostingRegressor(max_iter=5, random_state=0).fit(X, y)
    _, (loaded,), _ = artifacts.load(_rows(artifacts.dump("sklearn", estimator)))
    np.testing.assert_array_equal(loaded.predict(X), estimator.predict(X))


def test_lightgbm_round_trip(data) -> None:
    X, y, _ = data
    estimator = lightgbm.LGBMRegressor(n_estimators=10, verbose=-1, random_state=0).fit(X, y)
    parts = artifacts.dump("lightgbm", estimator)
    assert [(p.part, p.format) for p in parts] == [(0, "lightgbm-text")]
    assert parts[0].data.startswith(b"tree\n")  # LightGBM's model text
    fmt, (booster,), _ = artifacts.load(_rows(parts))
    assert fmt == "lightgbm-text"
    assert isinstance(booster, _lgbm.Booster)  # the C API, without the lightgbm package
    np.testing.assert_array_equal(booster.predict(X), estimator.predict(X))
    row = X[0].tolist()
    assert booster.predict_row(row) == estimator.predict(X[:1])[0]


def test_lightgbm_multi_output_has_one_part_per_target(data) -> None:
    X, y, _ = data
    Y = np.column_stack([y, -y, 2 * y])
    estimator = MultiOutputRegressor(
        lightgbm.LGBMRegressor(n_estimators=5, verbose=-1, random_state=0)
    ).fit(X, Y)
    parts = artifacts.dump("lightgbm", estimator)
    assert [(p.part, p.format) for p in parts] == [(i, "lightgbm-text") for i in range(3)]
    # parts are loaded in part order, whatever order the rows come in
    _, boosters, _ = artifacts.load(list(reversed(_rows(parts))))
    predicted = np.column_stack([b.predict(X) for b in boosters])
    np.testing.assert_array_equal(predicted, estimator.predict(X))


# -- refusals ------------------------------------------------------------------------


def test_checksum_mismatch_is_refused(data) -> None:
    X, y, _ = data
    (row,) = _rows(artifacts.dump("sklearn", LinearRegression().fit(X, y)))
    tampered = bytearray(row["data"])
    tampered[len(tampered) // 2] ^= 0xFF
    row["data"] = bytes(tampered)
    with pytest.raises(DataCorrupted, match="part 0 fails its checksum") as info:
        artifacts.load([row])
    assert info.value.sqlstate == "XX001"


def test_checksum_is_checked_for_every_part(data) -> None:
    X, y, _ = data
    Y = np.column_stack([y, -y])
    rows = _rows(
        artifacts.dump(
            "lightgbm",
            MultiOutputRegressor(lightgbm.LGBMRegressor(n_estimators=2, verbose=-1)).fit(X, Y),
        )
    )
    rows[1]["sha256"] = rows[0]["sha256"]
    with pytest.raises(DataCorrupted, match="part 1 fails its checksum"):
        artifacts.load(rows)


@pytest.mark.parametrize("fmt", ["pickle", "joblib", "", "SKOPS"])
def test_unknown_format_is_refused(fmt: str) -> None:
    with pytest.raises(DataCorrupted, match="not allowed") as info:
        artifacts.load([_row(pickle.dumps({"a": 1}), fmt)])
    assert info.value.sqlstate == "XX001"
    assert "skops" in (info.value.detail or "")


def test_mixed_formats_are_refused(data) -> None:
    X, y, _ = data
    (row,) = _rows(artifacts.dump("sklearn", LinearRegression().fit(X, y)))
    other = _row(b"tree\n", "lightgbm-text", part=1)
    with pytest.raises(DataCorrupted, match="not allowed"):
        artifacts.load([row, other])


def test_no_parts_is_refused() -> None:
    with pytest.raises(DataCorrupted, match="no artifact"):
        artifacts.load([])


def test_planted_pickle_is_never_unpickled(tmp_path: Path) -> None:
    # The payload is live: unpickling it does create the file.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Planted(str(probe))))  # proving the payload works
    assert probe.exists()

    marker = tmp_path / "marker"
    payload = pickle.dumps(_Planted(str(marker)))
    for fmt in ("skops", "pickle", "lightgbm-text"):
        with pytest.raises(DataCorrupted):
            artifacts.load([_row(payload, fmt)])
    assert not marker.exists()


def test_skops_file_with_a_type_outside_the_allow_list_is_refused() -> None:
    pipeline = Pipeline(
        [
            ("run", FunctionTransformer(func=os.system)),
            ("model", LinearRegression()),
        ]
    )
    data = skops.io.dumps(pipeline)
    refused = f"{os.system.__module__}.{os.system.__name__}"
    assert skops.io.get_untrusted_types(data=data) == [refused]
    with pytest.raises(DataCorrupted, match="types that are not allowed") as info:
        artifacts.load([_row(data)])
    assert info.value.detail == f"Refused types: {refused}."


def test_damaged_file_of_an_allowed_format_is_refused() -> None:
    with pytest.raises(DataCorrupted, match='not a valid "lightgbm-text" file'):
        artifacts.load([_row(b"this is not a model", "lightgbm-text")])


def test_few_rows_are_predicted_single_threaded(data) -> None:
    """A forest trained with n_jobs=2 would start a thread pool for every online call."""
    from sklearn.ensemble import RandomForestRegressor

    from pyml.core.model import Model

    X, y, _ = data
    forest = RandomForestRegressor(n_estimators=5, n_jobs=2, random_state=0).fit(X, y)
    parts = artifacts.dump("sklearn", forest)
    fmt, loaded, _ = artifacts.load(_rows(parts))
    model = Model(
        id=1,
        project="p",
        task="regression",
        algorithm="random_forest",
        feature_names=[f"f{i}" for i in range(X.shape[1])],
        classes=None,
        format=fmt,
        parts=loaded,
    )
    np.testing.assert_allclose(model.values(X[:1]), forest.predict(X[:1]))
    assert loaded[0].n_jobs == 1
    big = np.repeat(X, 1000 // len(X) + 1, axis=0)
    np.testing.assert_allclose(model.values(big), forest.predict(big))
    assert loaded[0].n_jobs == 2
