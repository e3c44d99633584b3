"""Fitting an estimator (after its preprocessing), with a grid or random search when asked.

The search cross-validates on the training rows, reports each candidate with a NOTICE,
gives a cancel request a chance after every fold, and refits the best candidate on all
training rows.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from pyml.core import algorithms
from pyml.errors import DataException, InvalidParameterValue

if TYPE_CHECKING:
    from pyml.server.training import TrainRequest

SEED = algorithms.DEFAULT_SEED
_MAX_INT = 2**31 - 1


def fit(
    algorithm: algorithms.Algorithm,
    estimator: Any,
    X: np.ndarray,
    y: np.ndarray,
    req: TrainRequest,
    multi: bool,
    notice: Callable[[str], None] = lambda _: None,
    check: Callable[[], None] = lambda: None,
    preprocessor: Any = None,
) -> tuple[Any, Any, list[dict[str, Any]] | None]:
    """Fit (the preprocessing first, when there is one), with a grid or random search when
    asked (best parameters refit on all rows). Returns the fitted estimator, the fitted
    preprocessing and the search's candidates."""
    prefix = ""
    if multi and algorithm.name not in algorithms.NATIVE_MULTI_OUTPUT:
        from sklearn.multioutput import MultiOutputRegressor

        estimator = MultiOutputRegressor(estimator)
        prefix = "estimator__"
    if preprocessor is not None:  # one pipeline: every fold fits its own preprocessing
        from sklearn.pipeline import Pipeline

        estimator = Pipeline([("preprocess", preprocessor), ("model", estimator)])
        prefix = "model__" + prefix
    search = None
    if req.search is not None:
        from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

        grid = {f"{prefix}{k}": v for k, v in req.search_params.items()}
        from sklearn.model_selection import ParameterGrid

        cv = int(req.search_args.get("cv", 5))
        n_iter = int(req.search_args.get("n_iter", 10))
        candidates = len(ParameterGrid(grid)) if req.search == "grid" else n_iter
        scoring = _progress_scorer(
            estimator,
            "f1_macro" if algorithm.task == "classification" else "r2",
            candidates,
            cv,
            notice,
            check,
        )
        # error_score="raise": a cancel request (raised by check) must end the search, not
        # be counted as a failed candidate.
        if req.search == "grid":
            search = GridSearchCV(
                estimator, grid, scoring=scoring, cv=cv, refit=True, error_score="raise"
            )
        else:
            search = RandomizedSearchCV(
                estimator,
                grid,
                n_iter=n_iter,
                scoring=scoring,
                cv=cv,
                refit=True,
                random_state=SEED,
                error_score="raise",
            )
        estimator = search
    try:
        estimator.fit(X, y)
    except TypeError as exc:  # e.g. a string where a library compares numbers
        raise _bad_hyperparameter(algorithm, exc) from exc
    except ValueError as exc:
        if type(exc).__name__ == "InvalidParameterError":
            raise _bad_hyperparameter(algorithm, exc) from exc
        raise DataException(
            f'algorithm "{algorithm.name}" cannot be fitted on this data', detail=str(exc)
        ) from exc
    except Exception as exc:
        if "bad_alloc" in str(exc):  # C++'s std::bad_alloc, as the library reports it
            raise MemoryError(str(exc)) from exc
        if type(exc).__name__ in ("LightGBMError", "XGBoostError", "CatBoostError"):
            raise _bad_hyperparameter(algorithm, exc) from exc
        raise
    fitted = estimator if search is None else search.best_estimator_
    if preprocessor is not None:
        fitted, preprocessor = fitted.named_steps["model"], fitted.named_steps["preprocess"]
    if search is None:
        return fitted, preprocessor, None
    cv_results = search.cv_results_
    strip = "model__" if preprocessor is not None else ""
    results = [
        {
            "params": {k.removeprefix(strip): v for k, v in cv_results["params"][i].items()},
            "mean_test_score": cv_results["mean_test_score"][i],
            "std_test_score": cv_results["std_test_score"][i],
            "rank_test_score": cv_results["rank_test_score"][i],
            "mean_fit_time": cv_results["mean_fit_time"][i],
        }
        for i in range(len(cv_results["params"]))
    ]
    return fitted, preprocessor, results


def _bad_hyperparameter(algorithm: algorithms.Algorithm, exc: Exception) -> InvalidParameterValue:
    """A library's complaint about a hyperparameter value, in PostgreSQL style."""
    import re

    named = re.search(r"'(\w+)' parameter", str(exc))
    what = f'hyperparameter "{named.group(1)}"' if named else "a hyperparameter"
    return InvalidParameterValue(
        f'invalid value for {what} of algorithm "{algorithm.name}"', detail=str(exc)
    )


def _progress_scorer(
    estimator: Any,
    scoring: str,
    candidates: int,
    folds: int,
    notice: Callable[[str], None],
    check: Callable[[], None],
) -> Callable[..., float]:
    """The search's scorer: reports each candidate when its last fold is scored (mean
    score, best so far, elapsed time), and gives a cancel request a chance after each fold."""
    from sklearn.metrics import check_scoring

    scorer = check_scoring(estimator, scoring=scoring)
    calls = itertools.count()
    started = time.perf_counter()
    scores: list[float] = []
    best = [float("-inf")]

    def score(fitted: Any, X: np.ndarray, y: np.ndarray) -> float:
        check()  # statement_timeout, pg_cancel_backend, Ctrl-C: the search stops here
        candidate, fold = divmod(next(calls), folds)
        value = float(scorer(fitted, X, y))
        scores.append(value)
        if fold == folds - 1:
            mean = float(np.mean(scores[-folds:]))
            best[0] = max(best[0], mean)
            notice(
                f"pyml: search candidate {candidate + 1}/{candidates}: {scoring} = "
                f"{mean:.4f} (best so far {best[0]:.4f}, "
                f"{time.perf_counter() - started:.1f}s elapsed)"
            )
        return value

    return score


def check(algorithm: algorithms.Algorithm, req: TrainRequest) -> None:
    """Refuse a search that cannot run, before any data is read."""
    if req.search is None:
        return
    if algorithm.task in algorithms.UNSUPERVISED_TASKS:
        raise InvalidParameterValue(
            f'search is not available for task "{algorithm.task}"',
            hint="Train one model per setting and deploy the best.",
        )
    if not req.search_params:
        raise InvalidParameterValue('"search_params" must name at least one hyperparameter')
    allowed = algorithm.allowed_params()
    for name, values in req.search_params.items():
        if name not in allowed:
            raise InvalidParameterValue(
                f'unknown hyperparameter "{name}" for algorithm "{algorithm.name}"'
            )
        if not isinstance(values, list) or not values:
            raise InvalidParameterValue(
                f'"search_params" value of "{name}" must be a non-empty array, got {values!r}'
            )
        for value in values:  # each candidate value, checked as a hyperparameter would be
            try:
                algorithm.make({**req.hyperparams, name: value})
            except InvalidParameterValue as exc:
                exc.detail = " ".join(
                    filter(None, ('The value is a candidate in "search_params".', exc.detail))
                )
                raise
    unknown = set(req.search_args) - {"cv", "n_iter"}
    if unknown:
        raise InvalidParameterValue(
            f'unknown search argument "{sorted(unknown)[0]}"',
            hint="Valid search arguments: cv, n_iter.",
        )
    for name, low in (("cv", 2), ("n_iter", 1)):
        value = req.search_args.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not low <= value <= _MAX_INT
        ):
            raise InvalidParameterValue(
                f'search argument "{name}" must be an integer in the range [{low}, {_MAX_INT}], '
                f"got {value!r}"
            )
