"""Training: pyml.train against a raw fit of the same estimator; the live model exported.

The export reads the public catalog (``pyml.files``: format and bytes of the live model), the way
a user who moves a model out of the database would: LightGBM text goes to
``lightgbm.Booster(model_str=...)``, a skops file to ``skops.io.loads``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

from bench.config import TEST_SIZE, BenchError, ModelSpec


@dataclass
class Trained:
    spec: ModelSpec
    model_id: int
    hyperparams: dict[str, Any]
    format: str
    predictor: Any  # the stored artifact loaded here: .predict(X) -> values
    train_runs: list[float]  # pyml.train wall times (the first made the live model)
    train_rows: int
    pyml_fit_seconds: float | None = None
    raw_fit_runs: list[float] = field(default_factory=list)
    raw_reproduces: dict[str, Any] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)

    @property
    def train_seconds(self) -> float:
        return min(self.train_runs)

    @property
    def raw_fit_seconds(self) -> float | None:
        return min(self.raw_fit_runs) if self.raw_fit_runs else None


def _call_train(
    conn: psycopg.Connection, spec: ModelSpec, deploy: bool
) -> tuple[float, bool, list[str]]:
    """``pyml.train`` on the spec's view: (wall time from the client, deployed, NOTICEs)."""
    notices: list[str] = []

    def on_notice(diag: psycopg.errors.Diagnostic) -> None:
        notices.append(diag.message_primary or "")

    conn.add_notice_handler(on_notice)
    try:
        started = time.perf_counter()
        row = conn.execute(
            "SELECT deployed FROM pyml.train(project_name => %s, task => 'regression',"
            " relation_name => %s, y_column_name => 'label', algorithm => %s,"
            " hyperparams => %s::jsonb, test_size => %s::real, test_sampling => 'last',"
            " automatic_deploy => %s)",
            (
                spec.project,
                spec.train_view,
                spec.algorithm,
                json.dumps(spec.hyperparams),
                TEST_SIZE,
                deploy,
            ),
        ).fetchone()
        seconds = time.perf_counter() - started
    finally:
        conn.remove_notice_handler(on_notice)
    return seconds, bool(row and row[0]), notices


def train(conn: psycopg.Connection, spec: ModelSpec, rows: int) -> Trained:
    """The project's first model, by ``pyml.train``, deployed; exported here."""
    seconds, deployed, notices = _call_train(conn, spec, deploy=True)
    if not deployed:
        raise BenchError(f"pyml.train did not deploy the first model of {spec.project}")
    model_id = conn.execute("SELECT pyml.deployed_model(%s)", (spec.project,)).fetchone()[0]
    hyperparams, metrics = conn.execute(
        "SELECT hyperparams, metrics FROM pyml.models WHERE id = %s", (model_id,)
    ).fetchone()
    fmt, predictor = export(conn, model_id)
    fit_time = (metrics or {}).get("fit_time")
    return Trained(
        spec=spec,
        model_id=model_id,
        hyperparams=hyperparams or {},
        format=fmt,
        predictor=predictor,
        train_runs=[seconds],
        train_rows=training_rows(rows),
        pyml_fit_seconds=float(fit_time) if fit_time is not None else None,
        notices=notices,
    )


def retrain(conn: psycopg.Connection, trained: Trained) -> None:
    """Time ``pyml.train`` again, same data and hyperparameters, not deployed."""
    seconds, _, _ = _call_train(conn, trained.spec, deploy=False)
    trained.train_runs.append(seconds)


def training_rows(rows: int) -> int:
    """With test_sampling 'last', pyml fits on the first rows of the relation as read."""
    return rows - int(round(TEST_SIZE * rows))


def export(conn: psycopg.Connection, model_id: int) -> tuple[str, Any]:
    parts = conn.execute(
        "SELECT format, data FROM pyml.files WHERE model_id = %s AND format <> 'onnx'"
        " ORDER BY part",  # the ONNX part (issue 16) is a copy: the original is exported
        (model_id,),
    ).fetchall()
    if len(parts) != 1:
        raise BenchError(f"model {model_id}: expected one artifact part, found {len(parts)}")
    fmt, data = parts[0][0], bytes(parts[0][1])
    if fmt == "lightgbm-text":
        import lightgbm

        return fmt, lightgbm.Booster(model_str=data.decode())
    if fmt == "skops":
        import skops.io

        # Our own artifact, just written by pyml.train in our own database.
        return fmt, skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))
    raise BenchError(f"model {model_id}: cannot export format {fmt!r}")


def estimator(algorithm: str, hyperparams: dict[str, Any]) -> Any:
    """The estimator pyml.train fitted, built here with the hyperparameters it recorded."""
    if algorithm == "lightgbm":
        import lightgbm

        cls = lightgbm.LGBMRegressor
    elif algorithm == "random_forest":
        from sklearn import ensemble

        cls = ensemble.RandomForestRegressor
    else:
        raise BenchError(f"no raw equivalent for {algorithm}")
    if algorithm == "lightgbm":  # takes LightGBM's own parameters too (verbose, deterministic)
        return cls(**hyperparams)
    known = set(cls().get_params())
    return cls(**{k: v for k, v in hyperparams.items() if k in known})


def raw_fit(trained: Trained, X: np.ndarray, y: np.ndarray, sample: np.ndarray) -> None:
    """Time ``fit`` alone on the same training rows (in memory); check it is the same model."""
    n = trained.train_rows
    model = estimator(trained.spec.algorithm, trained.hyperparams)
    X_train, y_train = np.ascontiguousarray(X[:n]), np.ascontiguousarray(y[:n])
    started = time.perf_counter()
    model.fit(X_train, y_train)
    trained.raw_fit_runs.append(time.perf_counter() - started)
    ours = np.asarray(model.predict(X[sample]), dtype=np.float64)
    stored = predict_raw(trained, X[sample])
    diff = float(np.max(np.abs(ours - stored))) if len(sample) else 0.0
    trained.raw_reproduces = {"max_abs_diff": diff, "same": bool(diff <= 1e-9)}


def predict_raw(trained: Trained, X: np.ndarray) -> np.ndarray:
    return np.asarray(trained.predictor.predict(X), dtype=np.float64).reshape(-1)
