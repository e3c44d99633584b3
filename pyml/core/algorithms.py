"""The algorithm registry: SQL algorithm names -> estimator classes, per task.

Names and estimators follow PostgresML so its users can move over. Estimators
are resolved lazily, so importing this module imports no ML library.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from pyml.core import _bounds
from pyml.errors import FeatureNotSupported, InvalidParameterValue

# name: (regressor, classifier); "module:Class", None where no estimator exists.
_REGISTRY: dict[str, tuple[str | None, str | None]] = {
    "linear": ("sklearn.linear_model:LinearRegression", "sklearn.linear_model:LogisticRegression"),
    "ridge": ("sklearn.linear_model:Ridge", "sklearn.linear_model:RidgeClassifier"),
    "lasso": ("sklearn.linear_model:Lasso", None),
    "elastic_net": ("sklearn.linear_model:ElasticNet", None),
    "least_angle": ("sklearn.linear_model:Lars", None),
    "lasso_least_angle": ("sklearn.linear_model:LassoLars", None),
    "orthogonal_matching_pursuit": ("sklearn.linear_model:OrthogonalMatchingPursuit", None),
    "bayesian_ridge": ("sklearn.linear_model:BayesianRidge", None),
    "automatic_relevance_determination": ("sklearn.linear_model:ARDRegression", None),
    "stochastic_gradient_descent": (
        "sklearn.linear_model:SGDRegressor",
        "sklearn.linear_model:SGDClassifier",
    ),
    "perceptron": (None, "sklearn.linear_model:Perceptron"),
    # scikit-learn 1.8 deprecates PassiveAggressive* for these SGD settings (see _PRESETS).
    "passive_aggressive": (
        "sklearn.linear_model:SGDRegressor",
        "sklearn.linear_model:SGDClassifier",
    ),
    "ransac": ("sklearn.linear_model:RANSACRegressor", None),
    "theil_sen": ("sklearn.linear_model:TheilSenRegressor", None),
    "huber": ("sklearn.linear_model:HuberRegressor", None),
    "quantile": ("sklearn.linear_model:QuantileRegressor", None),
    "kernel_ridge": ("sklearn.kernel_ridge:KernelRidge", None),
    "gaussian_process": (
        "sklearn.gaussian_process:GaussianProcessRegressor",
        "sklearn.gaussian_process:GaussianProcessClassifier",
    ),
    "svm": ("sklearn.svm:SVR", "sklearn.svm:SVC"),
    "nu_svm": ("sklearn.svm:NuSVR", "sklearn.svm:NuSVC"),
    "linear_svm": ("sklearn.svm:LinearSVR", "sklearn.svm:LinearSVC"),
    "knn": ("sklearn.neighbors:KNeighborsRegressor", "sklearn.neighbors:KNeighborsClassifier"),
    "ada_boost": ("sklearn.ensemble:AdaBoostRegressor", "sklearn.ensemble:AdaBoostClassifier"),
    "bagging": ("sklearn.ensemble:BaggingRegressor", "sklearn.ensemble:BaggingClassifier"),
    "extra_trees": (
        "sklearn.ensemble:ExtraTreesRegressor",
        "sklearn.ensemble:ExtraTreesClassifier",
    ),
    "gradient_boosting_trees": (
        "sklearn.ensemble:GradientBoostingRegressor",
        "sklearn.ensemble:GradientBoostingClassifier",
    ),
    "hist_gradient_boosting": (
        "sklearn.ensemble:HistGradientBoostingRegressor",
        "sklearn.ensemble:HistGradientBoostingClassifier",
    ),
    "random_forest": (
        "sklearn.ensemble:RandomForestRegressor",
        "sklearn.ensemble:RandomForestClassifier",
    ),
    "lightgbm": ("lightgbm:LGBMRegressor", "lightgbm:LGBMClassifier"),
    "xgboost": ("xgboost:XGBRegressor", "xgboost:XGBClassifier"),
    "xgboost_random_forest": ("xgboost:XGBRFRegressor", "xgboost:XGBRFClassifier"),
    "catboost": ("catboost:CatBoostRegressor", "catboost:CatBoostClassifier"),
}

# Unsupervised algorithms (no label column): name -> (task, "module:Class").
_UNSUPERVISED: dict[str, tuple[str, str]] = {
    "kmeans": ("clustering", "sklearn.cluster:KMeans"),
    "mini_batch_kmeans": ("clustering", "sklearn.cluster:MiniBatchKMeans"),
    "birch": ("clustering", "sklearn.cluster:Birch"),
    "affinity_propagation": ("clustering", "sklearn.cluster:AffinityPropagation"),
    "mean_shift": ("clustering", "sklearn.cluster:MeanShift"),
    "pca": ("decomposition", "sklearn.decomposition:PCA"),
}


ALGORITHMS: tuple[str, ...] = (*_REGISTRY, *_UNSUPERVISED)
TASKS: tuple[str, ...] = ("regression", "classification", "clustering", "decomposition")
UNSUPERVISED_TASKS: tuple[str, ...] = ("clustering", "decomposition")

# The algorithm of a training that names none (``algorithm => NULL``, the SQL default), per
# task, as in PostgresML.
DEFAULTS: dict[str, str] = {
    "regression": "linear",
    "classification": "linear",
    "clustering": "kmeans",
    "decomposition": "pca",
}

# Settings that make an estimator the named algorithm: (name, task) -> parameters.
_PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    ("passive_aggressive", "classification"): dict(
        loss="hinge", penalty=None, learning_rate="pa1", eta0=1.0
    ),
    ("passive_aggressive", "regression"): dict(
        loss="epsilon_insensitive", penalty=None, learning_rate="pa1", eta0=1.0
    ),
}

# Optional libraries: the pip requirement that provides each.
_OPTIONAL = {"xgboost": "xgboost", "catboost": "catboost"}

# Estimators that predict several targets at once; the others are wrapped per target.
NATIVE_MULTI_OUTPUT = frozenset(
    {
        "linear",
        "ridge",
        "lasso",
        "elastic_net",
        "least_angle",
        "lasso_least_angle",
        "orthogonal_matching_pursuit",
        "kernel_ridge",
        "gaussian_process",
        "knn",
        "bagging",
        "extra_trees",
        "random_forest",
    }
)

# Fixed seed so that training is reproducible unless the user passes another one.
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Algorithm:
    """An algorithm resolved for one task."""

    name: str
    task: str
    target: str  # "module:Class"

    @property
    def library(self) -> str:
        return self.target.partition(":")[0].split(".")[0]

    def estimator_class(self) -> type[Any]:
        module_name, _, class_name = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            package = _OPTIONAL.get(self.library, self.library)
            raise FeatureNotSupported(
                f'algorithm "{self.name}" needs the Python package "{package}", '
                "which is not installed",
                hint=f"Install it in the server's virtual environment: pip install {package}",
            ) from exc
        return getattr(module, class_name)  # type: ignore[no-any-return]

    def defaults(self) -> dict[str, Any]:
        """Parameters pyml sets unless the user does: seeds, quiet logs."""
        params = self.estimator_class()().get_params()
        defaults: dict[str, Any] = dict(_PRESETS.get((self.name, self.task), {}))
        if "random_state" in params:
            defaults["random_state"] = DEFAULT_SEED
        if self.library == "lightgbm":
            defaults.update(verbose=-1, deterministic=True, force_row_wise=True)
        if self.library == "xgboost":
            defaults["verbosity"] = 0
        if self.library == "catboost":
            defaults.update(random_seed=DEFAULT_SEED, verbose=False, allow_writing_files=False)
        return defaults

    def allowed_params(self) -> set[str]:
        """Names accepted as hyperparameters (LightGBM also takes its native parameter names;
        CatBoost's ``get_params()`` lists only the parameters set, so its constructor's)."""
        if self.library == "catboost":
            import inspect

            init = inspect.signature(self.estimator_class().__init__).parameters
            return {name for name in init if name != "self"}
        names = set(self.estimator_class()().get_params())
        if self.library == "lightgbm":
            names |= _lightgbm_parameter_names()
        return names

    def _suggest(self, name: str, allowed: set[str]) -> str:
        import difflib

        close = difflib.get_close_matches(name, sorted(allowed), n=3)
        if close:
            return "Did you mean " + " or ".join(f'"{c}"' for c in close) + "?"
        own = sorted(
            allowed if self.library == "catboost" else self.estimator_class()().get_params()
        )
        return "Valid hyperparameters: " + ", ".join(own) + "."

    def make(self, hyperparams: dict[str, Any]) -> Any:
        """Build the estimator with pyml's defaults overridden by ``hyperparams``."""
        allowed = self.allowed_params()
        unknown = sorted(set(hyperparams) - allowed)
        if unknown:
            raise InvalidParameterValue(
                f'unknown hyperparameter "{unknown[0]}" for algorithm "{self.name}"',
                hint=self._suggest(unknown[0], allowed),
            )
        _bounds.check_integers(self.name, hyperparams)
        if self.library == "lightgbm":
            _bounds.check_lightgbm(self.name, hyperparams)
        params = {**self.defaults(), **hyperparams}
        if self.library == "catboost" and "random_state" in hyperparams:
            del params["random_seed"]  # CatBoost takes one of the two names
        estimator = self.estimator_class()(**params)
        self._validate(estimator)
        return estimator

    def _validate(self, estimator: Any) -> None:
        """scikit-learn's own check of types and ranges (``_parameter_constraints``), before
        any data is read: ``{"n_estimators": 1e20}`` fails here, not after hours of fitting."""
        if not hasattr(type(estimator), "_parameter_constraints"):
            return  # not a scikit-learn estimator (LightGBM, XGBoost, CatBoost)
        try:
            estimator._validate_params()
        except ValueError as exc:  # sklearn.utils._param_validation.InvalidParameterError
            raise InvalidParameterValue(
                _constraint_message(self.name, str(exc)), detail=str(exc)
            ) from exc


def resolve(name: str | None, task: str) -> Algorithm:
    """Look up ``name`` for ``task`` (None: the task's default, :data:`DEFAULTS`); raise
    22023 for an unknown name or combination."""
    if name is None:
        name = DEFAULTS[task]
    if name not in _REGISTRY and name not in _UNSUPERVISED:
        raise InvalidParameterValue(
            f'unknown algorithm "{name}"',
            hint="Valid algorithms: " + ", ".join(ALGORITHMS) + ".",
        )
    if name in _UNSUPERVISED or task in UNSUPERVISED_TASKS:
        own_task, own_target = _UNSUPERVISED.get(name, ("", ""))
        if own_task != task:
            valid = [n for n, (t, _) in _UNSUPERVISED.items() if t == task]
            raise InvalidParameterValue(
                f'algorithm "{name}" does not support task "{task}"',
                hint=(f"Algorithms for {task}: " + ", ".join(valid) + ".") if valid else None,
            )
        return Algorithm(name=name, task=task, target=own_target)
    regressor, classifier = _REGISTRY[name]
    target = regressor if task == "regression" else classifier
    if target is None:
        supported = "regression" if regressor else "classification"
        raise InvalidParameterValue(
            f'algorithm "{name}" does not support task "{task}"',
            detail=f'"{name}" is available for {supported} only.',
        )
    return Algorithm(name=name, task=task, target=target)


def storable(estimator: Any) -> Any:
    """What to store of a fitted estimator: itself, or an equivalent skops can hold.

    Birch predicts the cluster of the nearest subcluster centre; skops cannot hold its
    clustering-feature tree (needed only to go on training), so its prediction rule is
    stored instead: a 1-nearest-neighbour classifier over the subcluster centres.
    """
    if type(estimator).__name__ == "Birch":
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(n_neighbors=1, algorithm="brute").fit(
            estimator.subcluster_centers_, estimator.subcluster_labels_
        )
    return estimator


def _constraint_message(algorithm: str, text: str) -> str:
    """scikit-learn's "The 'C' parameter of LogisticRegression must be a float in the range
    (0.0, inf]. Got -1 instead." in PostgreSQL's style."""
    import re

    found = re.fullmatch(
        r"The '(\w+)' parameter of \w+ must be (.*)\. Got (.*) instead\.", text.strip(), re.DOTALL
    )
    if found is None:
        return f'invalid value for a hyperparameter of algorithm "{algorithm}": {text}'
    name, constraint, value = found.groups()
    return f'hyperparameter "{name}" of algorithm "{algorithm}" must be {constraint}, got {value}'


def _lightgbm_parameter_names() -> set[str]:
    from lightgbm.basic import _ConfigAliases

    try:
        aliases = _ConfigAliases._get_all_param_aliases()
    except AttributeError:  # older LightGBM: fall back to the wrapper's parameters
        return set()
    return set(aliases) | {alias for names in aliases.values() for alias in names}
