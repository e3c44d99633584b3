"""Absurd hyperparameters are refused when the estimator is made, before any data is read."""

from __future__ import annotations

from typing import Any

import pytest

from pyml.core import _bounds, algorithms
from pyml.errors import InvalidParameterValue
from pyml.server import search
from pyml.server.training import TrainRequest


def make(name: str, task: str, **hyperparams: Any) -> Any:
    return algorithms.resolve(name, task).make(hyperparams)


def test_lightgbm_counts_must_be_c_ints() -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        make("lightgbm", "regression", n_estimators=1e20)
    assert caught.value.message == (
        'hyperparameter "n_estimators" of algorithm "lightgbm" must '
        "be an integer in the range [1, 2147483647], got 1e+20"
    )
    assert caught.value.sqlstate == "22023"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n_estimators", 0),
        ("num_iterations", 2**31),
        ("num_boost_round", 10**20),
        ("num_leaves", 1),
        ("max_leaves", 131073),
        ("max_bin", 1),
        ("min_child_samples", -1),
        ("subsample_for_bin", 0),
        ("num_threads", 2**40),
        ("n_estimators", 100.0),
        ("n_estimators", "100"),
        ("num_leaves", True),
        ("max_depth", 2**31),
    ],
)
def test_lightgbm_bounds(name: str, value: Any) -> None:
    with pytest.raises(InvalidParameterValue, match=f'hyperparameter "{name}"'):
        make("lightgbm", "classification", **{name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n_estimators", 1),
        ("num_leaves", 2),
        ("num_leaves", 131072),
        ("max_depth", -1),
        ("n_jobs", -1),
        ("random_state", None),
        ("min_child_samples", 0),
        ("max_bin", 2),
        ("learning_rate", 0.3),
    ],
)
def test_lightgbm_values_in_bounds(name: str, value: Any) -> None:
    assert make("lightgbm", "regression", **{name: value}).get_params()[name] == value


def test_every_alias_has_bounds() -> None:
    """The table covers LightGBM's own list of aliases for the integer parameters it has."""
    from lightgbm.basic import _ConfigAliases

    aliases = _ConfigAliases._get_all_param_aliases()
    for name in (
        "num_iterations",
        "num_leaves",
        "min_data_in_leaf",
        "max_bin",
        "num_class",
        "bagging_freq",
        "early_stopping_round",
        "num_threads",
        "seed",
    ):
        assert set(aliases[name]) <= set(_bounds.LIGHTGBM_INTEGERS)


def test_scikit_learn_checks_its_own_constraints() -> None:
    with pytest.raises(InvalidParameterValue) as caught:
        make("random_forest", "regression", n_estimators=1e20)
    assert caught.value.message == (
        'hyperparameter "n_estimators" of algorithm "random_forest" '
        "must be an int in the range [1, inf), got 1e+20"
    )
    assert "RandomForestRegressor" in (caught.value.detail or "")  # the library's own words
    with pytest.raises(InvalidParameterValue, match='"C" of algorithm "linear" must be a float'):
        make("linear", "classification", C=-1)


def test_integers_beyond_64_bits_are_refused() -> None:
    """JSON's 1e20 arrives as an integer, which scikit-learn's [1, inf) would take."""
    with pytest.raises(InvalidParameterValue, match=r"must be an integer in the range \["):
        make("random_forest", "regression", n_estimators=10**20)
    assert make("random_forest", "regression", n_estimators=10).n_estimators == 10


def request(**fields: Any) -> TrainRequest:
    return TrainRequest(project_name="p", search="grid", **fields)


def test_search_candidates_are_checked() -> None:
    algorithm = algorithms.resolve("lightgbm", "regression")
    with pytest.raises(InvalidParameterValue) as caught:
        search.check(algorithm, request(search_params={"num_leaves": [7, 1]}))
    assert caught.value.message.startswith('hyperparameter "num_leaves"')
    assert caught.value.detail == 'The value is a candidate in "search_params".'
    search.check(algorithm, request(search_params={"num_leaves": [7, 15]}))


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ({"cv": 1}, "cv"),
        ({"cv": 1e20}, "cv"),
        ({"cv": "5"}, "cv"),
        ({"n_iter": 0}, "n_iter"),
        ({"n_iter": 2**31}, "n_iter"),
    ],
)
def test_search_arguments_are_bounded(args: dict[str, Any], name: str) -> None:
    algorithm = algorithms.resolve("knn", "regression")
    with pytest.raises(InvalidParameterValue, match=f'search argument "{name}" must be'):
        search.check(algorithm, request(search_params={"n_neighbors": [3, 5]}, search_args=args))


@pytest.mark.parametrize(
    "params",
    [
        {"machines": "10.0.0.1:12400,10.0.0.2:12400"},
        {"machine_list_filename": "/tmp/mlist.txt"},
        {"num_machines": 2},
    ],
)
def test_distributed_lightgbm_training_is_refused(params: dict[str, object]) -> None:
    with pytest.raises(InvalidParameterValue, match="lightgbm"):
        _bounds.check_lightgbm("lightgbm", params)
