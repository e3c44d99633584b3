"""Why a model predicts what it does: per-feature importances and per-prediction contributions.

Contributions are additive: with the ``__bias__`` row they sum to the model's raw
prediction (the value for regression; for classification the raw score of the
predicted class: LightGBM's log-odds, a linear model's decision function, a tree
ensemble's probability). They are exact where the model allows it:

- LightGBM: its native contribution output (TreeSHAP);
- scikit-learn tree models (decision trees, random forests, extra trees, gradient
  boosting): the decision-path decomposition, each split's change of the node value
  credited to its feature (exact in sum, model-specific rather than SHAP);
- linear models: coefficient times value, the intercept as the bias;
- anything else: SHAP's model-agnostic KernelExplainer when ``shap`` is installed (its
  values also sum to the prediction, relative to the mean prediction over a background
  sample of the model's held-out rows), else 0A000.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyml.errors import FeatureNotSupported

if TYPE_CHECKING:
    import numpy as np

    from pyml.core.model import Model

BIAS = "__bias__"


def exact(model: Model) -> bool:
    """Whether :func:`explain` has an exact method for ``model`` (else it needs shap and a
    background sample)."""
    if model.format == "lightgbm-text" and len(model.parts) == 1:
        return True
    if model.format != "skops":
        return False
    estimator = model.parts[0]
    return type(estimator).__name__ in _TREE_MODELS or (
        hasattr(estimator, "coef_") and hasattr(estimator, "intercept_")
    )


def explain(
    model: Model, inputs: np.ndarray, background: Callable[[], np.ndarray] | None = None
) -> list[tuple[str, float]]:
    """Contributions of each input to the raw prediction of one row (shape (1, k)).

    With preprocessing, the contributions of the columns the estimator sees are summed
    back into the input they come from (a one-hot column's parts into that column).
    ``background`` gives rows to compare with (model inputs), for models explained by shap.
    """
    import numpy as np

    target = _predicted_class(model, inputs)
    x = model.prepare(inputs)
    if not exact(model):
        values, bias = _shap(model, x, target, background)
    elif model.format == "lightgbm-text":
        values, bias = _lightgbm(model, x, target)
    elif type(model.parts[0]).__name__ in _TREE_MODELS:
        values, bias = _tree_paths(model, model.parts[0], x, target)
    else:
        values, bias = _linear(model, model.parts[0], x, target)
    values = _per_input(model, np.ravel(values))
    rows = [(name, float(v)) for name, v in zip(model.feature_names, values, strict=True)]
    return [*rows, (BIAS, float(bias))]


def _per_input(model: Model, values: np.ndarray) -> np.ndarray:
    """Values of the estimator's columns, summed into the model's inputs."""
    import numpy as np

    if model.preprocessor is None:
        return values
    return np.bincount(model.sources, weights=values, minlength=model.num_features)


# Models whose prediction is a tree's leaf value, the mean of trees' values, or (gradient
# boosting) an initial value plus scaled trees' values: decision paths decompose them exactly.
_TREE_MODELS = {
    "DecisionTreeRegressor",
    "DecisionTreeClassifier",
    "ExtraTreeRegressor",
    "ExtraTreeClassifier",
    "RandomForestRegressor",
    "RandomForestClassifier",
    "ExtraTreesRegressor",
    "ExtraTreesClassifier",
    "GradientBoostingRegressor",
    "GradientBoostingClassifier",
}


def _predicted_class(model: Model, inputs: np.ndarray) -> int:
    """The class whose score is explained: the second of two (like a binary model's raw
    output), else the predicted one."""
    if model.task != "classification":
        return 0
    if model.classes is not None and len(model.classes) == 2:
        return 1
    return int(model.class_index(inputs)[0])


def _lightgbm(model: Model, x: np.ndarray, c: int) -> tuple[np.ndarray, float]:
    booster = model.parts[0]
    contrib = booster.predict(x, contrib=True)[0]
    k = x.shape[1]
    if booster.num_classes > 1:  # per class blocks of k + 1: take the predicted class
        contrib = contrib[c * (k + 1) : (c + 1) * (k + 1)]
    return contrib[:k], contrib[k]


def _tree_paths(
    model: Model, estimator: Any, x: np.ndarray, target: int
) -> tuple[np.ndarray, float]:
    """Decision-path contributions: along each tree's path, the change of the node value is
    credited to the split feature; the root value is the bias. Averaged (forests) or scaled
    and summed with the initial prediction (gradient boosting)."""
    import numpy as np

    k = x.shape[1]
    classifier = model.task == "classification"
    if hasattr(estimator, "tree_"):
        return _one_tree(estimator.tree_, x, target, classifier)
    members = estimator.estimators_
    if hasattr(estimator, "learning_rate") and hasattr(estimator, "init_"):  # gradient boosting
        if classifier and estimator.n_classes_ > 2:
            column = target
        else:
            column = 0
        trees = [row[column] for row in members]
        total, bias = np.zeros(k), 0.0
        for tree in trees:
            values, root = _one_tree(tree.tree_, x, 0, False)
            total += estimator.learning_rate * values
            bias += estimator.learning_rate * root
        raw = estimator._raw_predict_init(x)[0]
        bias += float(raw[column] if len(raw) > 1 else raw[0])
        return total, bias
    total, bias = np.zeros(k), 0.0
    for tree in members:
        values, root = _one_tree(tree.tree_, x, target, classifier)
        total += values
        bias += root
    return total / len(members), bias / len(members)


def _one_tree(tree: Any, x: np.ndarray, target: int, classifier: bool) -> tuple[np.ndarray, float]:
    import numpy as np

    def value(node: int) -> float:
        v = tree.value[node]
        if classifier:
            return float(v[0][target] / v[0].sum())
        return float(v[0][0])

    contributions = np.zeros(x.shape[1])
    node = 0
    root = value(0)
    while tree.children_left[node] != -1:
        feature = tree.feature[node]
        left = x[0, feature] <= tree.threshold[node]
        if np.isnan(x[0, feature]):
            missing_left = getattr(tree, "missing_go_to_left", None)
            left = bool(missing_left[node]) if missing_left is not None else True
        child = tree.children_left[node] if left else tree.children_right[node]
        contributions[feature] += value(child) - value(node)
        node = child
    return contributions, root


def _linear(model: Model, estimator: Any, x: np.ndarray, target: int) -> tuple[np.ndarray, float]:
    import numpy as np

    coef = np.atleast_2d(np.asarray(estimator.coef_, dtype=np.float64))
    intercept = np.atleast_1d(np.asarray(estimator.intercept_, dtype=np.float64))
    row = target if model.task == "classification" and coef.shape[0] > 1 else 0
    return coef[row] * x[0], float(intercept[row] if len(intercept) > row else intercept[0])


BACKGROUND_ROWS = 20  # KernelExplainer's cost grows with it: rows x coalitions predictions


def background_sample(X: np.ndarray) -> np.ndarray:
    """At most :data:`BACKGROUND_ROWS` rows of ``X``, the same ones every time."""
    import numpy as np

    if len(X) <= BACKGROUND_ROWS:
        return X
    pick = np.random.default_rng(0).choice(len(X), BACKGROUND_ROWS, replace=False)
    return X[np.sort(pick)]


def _shap(
    model: Model, x: np.ndarray, target: int, background: Callable[[], np.ndarray] | None
) -> tuple[np.ndarray, float]:
    """KernelExplainer values of the raw output (the value, or the explained class's
    probability), relative to its mean over a sample of held-out rows."""
    import numpy as np

    if background is None or model.task not in ("regression", "classification"):
        raise FeatureNotSupported(f"explaining a {model.task} model is not supported")
    try:
        import shap
    except ImportError:
        raise FeatureNotSupported(
            f'no exact explanation for algorithm "{model.algorithm}"',
            detail="Exact contributions exist for LightGBM, tree models and linear models.",
            hint="pip install shap (in the server's virtual environment) for a model-agnostic "
            "explanation.",
        ) from None
    rows = model.prepare(background())

    def output(X: np.ndarray) -> np.ndarray:
        if model.task == "classification":
            return model._proba_t(X)[:, target]
        values = model._values_t(X)
        if values.ndim != 1:
            raise FeatureNotSupported("explaining a joint (multi-target) model is not supported")
        return values

    explainer = shap.KernelExplainer(output, rows)
    values = np.asarray(explainer.shap_values(x, silent=True), dtype=np.float64)
    return values.reshape(-1), float(np.ravel(explainer.expected_value)[0])


# ---------------------------------------------------------------------------
# Importances
# ---------------------------------------------------------------------------


def importances(model: Model) -> list[float] | None:
    """Native importances of the model (gain for LightGBM, impurity for trees, |coef| for
    linear models), normalised to sum to 1; None when the model has none."""
    import numpy as np

    if model.format == "lightgbm-text" and len(model.parts) == 1:
        values = np.asarray(model.parts[0].feature_importance(), dtype=np.float64)
    elif model.format == "skops" and hasattr(model.parts[0], "feature_importances_"):
        values = np.asarray(model.parts[0].feature_importances_, dtype=np.float64)
    elif model.format == "skops" and hasattr(model.parts[0], "coef_"):
        coef = np.atleast_2d(np.asarray(model.parts[0].coef_, dtype=np.float64))
        values = np.abs(coef).mean(axis=0)
    else:
        return None
    values = _per_input(model, values)
    total = values.sum()
    return (values / total if total > 0 else values).tolist()  # type: ignore[no-any-return]


def permutation(model: Model, X: np.ndarray, y: np.ndarray) -> list[float]:
    """Mean decrease of the test score (r2 or accuracy) when an input is shuffled (inputs
    as given to the model, so a text column is shuffled as one). A clustering or
    decomposition model has no labels to score against: 0A000."""
    if model.task not in ("regression", "classification"):
        raise FeatureNotSupported(
            f"feature importance of a {model.task} model is not supported",
            detail=f'Algorithm "{model.algorithm}" has no importances of its own, and '
            "permutation importance needs labels to score against.",
        )
    from sklearn import metrics
    from sklearn.inspection import permutation_importance

    def score(_: Any, X: np.ndarray, y: np.ndarray) -> float:
        if model.task == "classification":
            return float(metrics.accuracy_score(y, model.class_index(X)))
        return float(metrics.r2_score(y, model.values(X)))

    result = permutation_importance(
        model.parts[0], X, y, scoring=score, n_repeats=5, random_state=0
    )
    return [float(v) for v in result.importances_mean]
