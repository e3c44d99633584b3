"""The algorithm registry and hyperparameter checks (no database)."""

import numpy as np
import pytest

from pyml.core import algorithms
from pyml.errors import FeatureNotSupported, InvalidParameterValue

SKLEARN = [
    (name, task)
    for name, estimators in algorithms._REGISTRY.items()
    for task, estimator in zip(("regression", "classification"), estimators, strict=True)
    if name not in ("xgboost", "xgboost_random_forest", "catboost") and estimator is not None
] + [
    (name, task) for name, (task, _) in algorithms._UNSUPERVISED.items()
]


def test_every_pgml_algorithm_is_registered() -> None:
    expected = {
        "linear", "ridge", "lasso", "elastic_net", "least_angle", "lasso_least_angle",
        "orthogonal_matching_pursuit", "bayesian_ridge", "automatic_relevance_determination",
        "stochastic_gradient_descent", "perceptron", "passive_aggressive", "ransac", "theil_sen",
        "huber", "quantile", "kernel_ridge", "gaussian_process", "svm", "nu_svm", "linear_svm",
        "knn", "ada_boost", "bagging", "extra_trees", "gradient_boosting_trees",
        "hist_gradient_boosting", "random_forest", "lightgbm", "xgboost",
        "xgboost_random_forest", "catboost",
        # unsupervised
        "kmeans", "mini_batch_kmeans", "birch", "affinity_propagation", "mean_shift", "pca",
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
