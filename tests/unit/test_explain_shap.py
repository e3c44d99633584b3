"""The explanation of a model with no exact method, with and without shap installed."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from sklearn.svm import SVR

from pyml.core import explanation as explain
from pyml.core.model import Model
from pyml.errors import FeatureNotSupported


def _svm() -> tuple[Model, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(0, 0.1, 200)
    model = Model(
        id=1,
        project="p",
        task="regression",
        algorithm="svm",
        feature_names=["a", "b", "c"],
        classes=None,
        format="skops",
        parts=[SVR().fit(X, y)],
    )
    return model, X


def test_without_shap_it_is_0A000_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "shap", None)  # import shap raises ImportError
    model, X = _svm()
    assert not explain.exact(model)
    with pytest.raises(FeatureNotSupported) as info:
        explain.explain(model, X[:1], lambda: X[:20])
    assert info.value.sqlstate == "0A000"
    assert "pip install shap" in (info.value.hint or "")


def test_with_shap_the_values_sum_to_the_prediction() -> None:
    model, X = _svm()
    rows = explain.explain(model, X[:1], lambda: explain.background_sample(X))
    assert [name for name, _ in rows] == ["a", "b", "c", "__bias__"]
    assert sum(v for _, v in rows) == pytest.approx(float(model.values(X[:1])[0]), rel=1e-6)
