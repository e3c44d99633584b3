"""The algorithm registry and hyperparameter checks (no database)."""

import sys
import types

import numpy as np
import pytest

from pyml.core import algorithms
from pyml.errors import FeatureNotSupported, InvalidParameterValue

SKLEARN = [
    (name, task)
    for name, estimators in algorithms._REGISTRY.items()
    for task, estimator in zip(("regression", "classification"), estimators, strict=True)
    if name not in ("xgboost", "xgboost_random_forest", "catboost") and estimator is not None
] + [(name, task) for name, (task, _) in algorithms._UNSUPERVISED.items()]


def test_every_pgml_algorithm_is_registered() -> None:
    expected = {
        "linear",
        "ridge",
        "lasso",
        "elastic_net",
        "least_angle",
        "lasso_least_angle",
        "orthogonal_matching_pursuit",
        "bayesian_ridge",
        "automatic_relevance_determination",
        "stochastic_gradient_descent",
        "perceptron",
        "passive_aggressive",
        "ransac",
        "theil_sen",
        "huber",
        "quantile",
        "kernel_ridge",
        "gaussian_process",
        "svm",
        "nu_svm",
        "linear_svm",
        "knn",
        "ada_boost",
        "bagging",
        "extra_trees",
        "gradient_boosting_trees",
        "hist_gradient_boosting",
        "random_forest",
        "lightgbm",
        "xgboost",
        "xgboost_random_forest",
        "catboost",
        # unsupervised
        "kmeans",
        "mini_batch_kmeans",
        "birch",
        "affinity_propagation",
        "mean_shift",
        "pca",
    }
    assert set(algorithms.ALGORITHMS) == expected


@pytest.mark.parametrize(("name", "task"), SKLEARN)
def test_estimator_builds_with_seed(name: str, task: str) -> None:
    algorithm = algorithms.resolve(name, task)
    estimator = algorithm.make({})
    params = estimator.get_params()
    if "random_state" in params:
        assert params["random_state"] == algorithms.DEFAULT_SEED


def test_unknown_algorithm() -> None:
    with pytest.raises(InvalidParameterValue, match='unknown algorithm "nope"') as info:
        algorithms.resolve("nope", "regression")
    assert info.value.sqlstate == "22023"


def test_algorithm_without_estimator_for_task() -> None:
    with pytest.raises(InvalidParameterValue, match='does not support task "classification"'):
        algorithms.resolve("lasso", "classification")
    with pytest.raises(InvalidParameterValue, match='does not support task "regression"'):
        algorithms.resolve("perceptron", "regression")


def test_unknown_hyperparameter_is_named() -> None:
    algorithm = algorithms.resolve("random_forest", "regression")
    with pytest.raises(InvalidParameterValue, match='unknown hyperparameter "n_trees"'):
        algorithm.make({"n_trees": 3})


def test_lightgbm_accepts_native_parameter_names() -> None:
    algorithm = algorithms.resolve("lightgbm", "regression")
    estimator = algorithm.make({"max_bin": 63, "num_leaves": 7})
    assert estimator.get_params()["num_leaves"] == 7
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3))
    estimator.fit(X, X[:, 0])


def test_user_seed_wins() -> None:
    estimator = algorithms.resolve("random_forest", "classification").make({"random_state": 7})
    assert estimator.get_params()["random_state"] == 7


def test_missing_optional_package_is_0a000(monkeypatch: pytest.MonkeyPatch) -> None:
    algorithm = algorithms.Algorithm("catboost", "regression", "no_such_module:Estimator")
    with pytest.raises(FeatureNotSupported) as info:
        algorithm.estimator_class()
    assert info.value.sqlstate == "0A000"
    assert "pip install" in (info.value.hint or "")


def test_every_task_has_a_default_algorithm() -> None:
    """``algorithm => NULL`` is the task's default, as in PostgresML."""
    assert set(algorithms.DEFAULTS) == set(algorithms.TASKS)
    assert algorithms.DEFAULTS == {
        "regression": "linear",
        "classification": "linear",
        "clustering": "kmeans",
        "decomposition": "pca",
    }
    for task, name in algorithms.DEFAULTS.items():
        algorithm = algorithms.resolve(None, task)
        assert (algorithm.name, algorithm.task) == (name, task)
        algorithm.make({})


class _CatBoostLike:
    """CatBoost's way: parameters in the constructor, ``get_params()`` lists only those set."""

    def __init__(
        self,
        iterations: int | None = None,
        n_estimators: int | None = None,
        random_seed: int | None = None,
        random_state: int | None = None,
        verbose: bool | None = None,
        allow_writing_files: bool | None = None,
    ) -> None:
        self._set = {k: v for k, v in locals().items() if k != "self" and v is not None}

    def get_params(self) -> dict[str, object]:
        return dict(self._set)


def test_catboost_takes_its_constructor_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    """pgml's examples pass ``{"n_estimators": 10}`` to catboost: a constructor parameter
    that ``get_params()`` of a default CatBoost estimator does not list."""
    fake = types.ModuleType("catboost")
    fake.CatBoostRegressor = _CatBoostLike  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "catboost", fake)
    algorithm = algorithms.Algorithm("catboost", "regression", "catboost:CatBoostRegressor")
    assert algorithm.make({"n_estimators": 10}).get_params()["n_estimators"] == 10
    # a user's random_state replaces pyml's random_seed (CatBoost refuses both)
    seeded = algorithm.make({"random_state": 3}).get_params()
    assert seeded["random_state"] == 3 and "random_seed" not in seeded
    with pytest.raises(InvalidParameterValue, match='unknown hyperparameter "n_estimator"') as info:
        algorithm.make({"n_estimator": 10})
    assert info.value.hint == 'Did you mean "n_estimators"?'
