"""Evaluation: the metrics of a model on its test rows, and which one decides per task."""

from __future__ import annotations

import numpy as np

from pyml.core.model import Model
from pyml.errors import FeatureNotSupported

KEY_METRIC = {
    "regression": "r2",
    "classification": "f1",
    "clustering": "silhouette",
    "decomposition": "cumulative_explained_variance",
}


def evaluate(model: Model, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The metrics of ``model`` on the test rows (same keys as PostgresML)."""
    from sklearn import metrics as m

    if model.task == "clustering":
        clusters = model.predict(X)
        found = len(np.unique(clusters))
        if 2 <= found < len(X):  # silhouette is defined for 2..n-1 clusters
            return {"silhouette": float(m.silhouette_score(model.prepare(X), clusters))}
        return {}
    if model.task == "decomposition":
        ratio = model.parts[0].explained_variance_ratio_
        return {"cumulative_explained_variance": float(np.sum(ratio))}
    if model.task != "classification":
        predicted = model.values(X)
        return {
            "r2": m.r2_score(y, predicted),
            "mean_absolute_error": m.mean_absolute_error(y, predicted),
            "mean_squared_error": m.mean_squared_error(y, predicted),
        }
    predicted = model.class_index(X)
    labels = list(range(len(model.classes or [])))
    result = {
        "f1": m.f1_score(y, predicted, average="macro", labels=labels, zero_division=0),
        "precision": m.precision_score(
            y, predicted, average="macro", labels=labels, zero_division=0
        ),
        "recall": m.recall_score(y, predicted, average="macro", labels=labels, zero_division=0),
        "accuracy": m.accuracy_score(y, predicted),
        "mcc": m.matthews_corrcoef(y, predicted),
    }
    if len(labels) == 2 and len(np.unique(y)) == 2:
        scores = model.scores(X)
        if scores is not None:
            result["roc_auc"] = m.roc_auc_score(y, scores)
        try:
            proba = model.proba(X)  # float32 sums (onnxruntime) are 1 within 1e-7: made 1
            proba = proba / np.where((total := proba.sum(axis=1, keepdims=True)) > 0, total, 1)
            result["log_loss"] = m.log_loss(y, proba, labels=labels)
        except FeatureNotSupported:
            pass
    return result
