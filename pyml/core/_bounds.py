"""Bounds of hyperparameters that a library does not check before it starts fitting.

scikit-learn estimators check their own (``_parameter_constraints``, see
:mod:`pyml.core.algorithms`). LightGBM's scikit-learn wrapper checks nothing: a value reaches the
C++ library as text, and an absurd count (``{"n_estimators": 1e20}``) runs until the server
kills the process. Here are LightGBM's integer parameters with their aliases and the bounds
documented in ``include/LightGBM/config.h`` (LightGBM 4.6, the source of docs/Parameters.rst;
every one is a C ``int``). A value must be an integer (not a float, string or boolean) in its
range; ``None`` leaves LightGBM's default.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

from pyml.errors import InvalidParameterValue

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# name: (lowest, highest, aliases). config.h's "check = >0" is a lowest of 1, ">1" of 2.
_LIGHTGBM_INTEGERS: dict[str, tuple[int, int, tuple[str, ...]]] = {
    # The Python package refuses fewer than 1 boosting round (config.h says >= 0).
    "num_iterations": (
        1,
        INT_MAX,
        (
            "num_iteration",
            "n_iter",
            "num_tree",
            "num_trees",
            "num_round",
            "num_rounds",
            "nrounds",
            "num_boost_round",
            "n_estimators",
            "max_iter",
        ),
    ),
    "num_leaves": (2, 131072, ("num_leaf", "max_leaves", "max_leaf", "max_leaf_nodes")),
    "num_threads": (INT_MIN, INT_MAX, ("num_thread", "nthread", "nthreads", "n_jobs")),
    "seed": (INT_MIN, INT_MAX, ("random_seed", "random_state")),
    "max_depth": (INT_MIN, INT_MAX, ()),
    "min_data_in_leaf": (
        0,
        INT_MAX,
        ("min_data_per_leaf", "min_data", "min_child_samples", "min_samples_leaf"),
    ),
    "bagging_freq": (INT_MIN, INT_MAX, ("subsample_freq",)),
    "bagging_seed": (INT_MIN, INT_MAX, ("bagging_fraction_seed",)),
    "feature_fraction_seed": (INT_MIN, INT_MAX, ()),
    "extra_seed": (INT_MIN, INT_MAX, ()),
    "early_stopping_round": (
        INT_MIN,
        INT_MAX,
        ("early_stopping_rounds", "early_stopping", "n_iter_no_change"),
    ),
    "max_drop": (INT_MIN, INT_MAX, ()),
    "drop_seed": (INT_MIN, INT_MAX, ()),
    "min_data_per_group": (1, INT_MAX, ()),
    "max_cat_threshold": (1, INT_MAX, ()),
    "max_cat_to_onehot": (1, INT_MAX, ()),
    "top_k": (1, INT_MAX, ("topk",)),
    "verbosity": (INT_MIN, INT_MAX, ("verbose",)),
    "saved_feature_importance_type": (INT_MIN, INT_MAX, ()),
    "snapshot_freq": (INT_MIN, INT_MAX, ("save_period",)),
    "num_grad_quant_bins": (INT_MIN, INT_MAX, ()),
    "max_bin": (2, INT_MAX, ("max_bins",)),
    "min_data_in_bin": (1, INT_MAX, ()),
    "bin_construct_sample_cnt": (1, INT_MAX, ("subsample_for_bin",)),
    "data_random_seed": (INT_MIN, INT_MAX, ("data_seed",)),
    "start_iteration_predict": (INT_MIN, INT_MAX, ()),
    "num_iteration_predict": (INT_MIN, INT_MAX, ()),
    "pred_early_stop_freq": (INT_MIN, INT_MAX, ()),
    "objective_seed": (INT_MIN, INT_MAX, ()),
    "num_class": (1, INT_MAX, ("num_classes",)),
    "lambdarank_truncation_level": (1, INT_MAX, ()),
    "metric_freq": (1, INT_MAX, ("output_freq",)),
    "multi_error_top_k": (1, INT_MAX, ()),
    "num_machines": (1, 1, ("num_machine",)),  # no distributed training (see below)
    "local_listen_port": (1, INT_MAX, ("local_port", "port")),
    "time_out": (1, INT_MAX, ()),
    "gpu_platform_id": (INT_MIN, INT_MAX, ()),
    "gpu_device_id": (INT_MIN, INT_MAX, ()),
    "num_gpu": (1, INT_MAX, ()),
}

LIGHTGBM_INTEGERS: dict[str, tuple[int, int]] = {
    alias: (low, high)
    for name, (low, high, aliases) in _LIGHTGBM_INTEGERS.items()
    for alias in (name, *aliases)
}


def check_integers(algorithm: str, params: dict[str, Any]) -> None:
    """Raise 22023 for an integer that no library can take as a number: beyond 64 bits (JSON
    ``1e20`` arrives as an integer, which scikit-learn's "[1, inf)" would accept)."""
    for name, value in params.items():
        if (
            isinstance(value, Integral)
            and not isinstance(value, bool)
            and not (INT64_MIN <= int(value) <= INT64_MAX)
        ):
            raise _out_of_range(name, algorithm, INT64_MIN, INT64_MAX, value)


# Distributed training makes the fitting process listen on a port and wait for peers: a
# server process must not. (num_machines is bounded to 1 above.)
_LIGHTGBM_NETWORK = frozenset(
    {
        "machines",
        "workers",
        "nodes",
        "machine_list_filename",
        "machine_list_file",
        "machine_list",
        "mlist",
    }
)


def check_lightgbm(algorithm: str, params: dict[str, Any]) -> None:
    """Raise 22023 for an integer parameter of LightGBM outside its range, or a parameter
    of distributed training."""
    network = sorted(_LIGHTGBM_NETWORK & params.keys())
    if network:
        raise InvalidParameterValue(
            f'hyperparameter "{network[0]}" of algorithm "{algorithm}" is not allowed',
            detail="Distributed training (machines listening for peers) is not available "
            "inside the database server.",
        )
    for name, value in params.items():
        bounds = LIGHTGBM_INTEGERS.get(name)
        if bounds is None or value is None:
            continue
        low, high = bounds
        if (
            isinstance(value, bool)
            or not isinstance(value, Integral)
            or not (low <= int(value) <= high)
        ):
            raise _out_of_range(name, algorithm, low, high, value)


def _out_of_range(
    name: str, algorithm: str, low: int, high: int, value: Any
) -> InvalidParameterValue:
    return InvalidParameterValue(
        f'hyperparameter "{name}" of algorithm "{algorithm}" must be an integer in the range '
        f"[{low}, {high}], got {value!r}"
    )
