"""Preprocessing: per-column ``encode`` / ``impute`` / ``scale`` rules (API.md, section 5).

The rules become one scikit-learn ``ColumnTransformer`` of encoders, imputers and
scalers. It is fitted on the training rows together with the model (so a search's
folds refit it too and target encoding never sees a fold's own labels), and stored
with the model as a skops artifact.

Serving one row through scikit-learn's transformers costs milliseconds; see
:mod:`pyml.core.rowtransform` for the plain-Python path of one row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from pyml.core.rowtransform import as_floats, is_missing, passthrough
from pyml.errors import (
    DataException,
    InvalidParameterValue,
    NullValueNotAllowed,
    UndefinedColumn,
)

if TYPE_CHECKING:
    import numpy as np

ENCODES = ("native", "target", "one_hot", "ordinal")
IMPUTES = ("error", "mean", "median", "mode", "min", "max", "zero")
SCALES = ("preserve", "standard", "min_max", "max_abs", "robust")
KEYS = ("encode", "impute", "scale")
# NULL in a category column, as a category of its own. PostgreSQL text cannot contain
# a NUL character, so no stored value collides with it.
NULL = "\x00NULL"
UNKNOWN = -1  # the code of a category never seen in training (native, ordinal)
SEED = 42


class Rule(NamedTuple):
    """The resolved preprocessing of one column."""

    category: bool  # encoded as categories (read as text), else a number
    encode: str | None  # category columns: native, target, one_hot or ordinal
    ordinal: tuple[str, ...] | None  # the order given with {"ordinal": [...]}
    impute: str | None  # None: NULL is a category of its own (category columns)
    scale: str

    def as_json(self) -> dict[str, Any]:
        """The rule as stored in ``pyml.models.preprocess`` (what was actually used)."""
        rule: dict[str, Any] = {}
        if self.category:
            rule["encode"] = {"ordinal": list(self.ordinal or ())} if self.ordinal else self.encode
        rule["impute"] = self.impute
        rule["scale"] = self.scale
        return rule

    @classmethod
    def from_json(cls, rule: dict[str, Any]) -> Rule:
        encode = rule.get("encode")
        ordinal = None
        if isinstance(encode, dict):
            ordinal, encode = tuple(encode["ordinal"]), "ordinal"
        return cls(
            encode is not None, encode, ordinal, rule.get("impute"), rule.get("scale", "preserve")
        )

    @property
    def strict(self) -> bool:
        """NULL is refused (22004) rather than imputed or made a category."""
        return self.impute == "error"

    @property
    def plain(self) -> bool:
        """A number used as it is: no transformer needed."""
        return not self.category and self.impute == "error" and self.scale == "preserve"


class Column(NamedTuple):
    """What the rules need to know of a feature column."""

    name: str
    type: str  # as format_type prints it
    category: str  # pg_type.typcategory
    is_array: bool


# ---------------------------------------------------------------------------
# Rules from the user's jsonb
# ---------------------------------------------------------------------------


def resolve(
    spec: dict[str, Any], columns: Sequence[Column], labels: Sequence[str], task: str | None
) -> dict[str, Rule]:
    """The rule of every feature column, from ``preprocess`` and the column types.

    Text and enum columns are categories (``native`` unless told); numbers and
    booleans are numbers unless an ``encode`` makes them categories.
    """
    if not isinstance(spec, dict):
        raise InvalidParameterValue('"preprocess" must be a JSON object of columns')
    by_name = {c.name: c for c in columns}
    for name, given in spec.items():
        if name in labels:
            raise InvalidParameterValue(
                f'"preprocess" names the label column "{name}"',
                hint="Preprocessing applies to feature columns.",
            )
        if name not in by_name:
            raise UndefinedColumn(
                f'"preprocess" names column "{name}", which is not a feature column of the relation'
            )
        if not isinstance(given, dict):
            raise InvalidParameterValue(
                f'"preprocess" of column "{name}" must be a JSON object',
                hint='For example {"encode": "one_hot", "impute": "mode"}.',
            )
        unknown = sorted(set(given) - set(KEYS))
        if unknown:
            raise InvalidParameterValue(
                f'unknown preprocess key "{unknown[0]}" for column "{name}"',
                hint="Valid keys: encode, impute, scale.",
            )
    return {c.name: _rule(c, spec.get(c.name, {}), task, len(labels)) for c in columns}


def _rule(column: Column, given: dict[str, Any], task: str | None, n_labels: int) -> Rule:
    encode, ordinal = _encode(column.name, given.get("encode"))
    textual = column.category in ("S", "E")
    category = textual or (encode is not None and encode != "native")
    if column.is_array:
        if textual or category:
            raise InvalidParameterValue(
                f'array column "{column.name}" cannot be encoded as categories',
                hint="Encoding applies to scalar columns; array elements are numbers.",
            )
    elif not category and column.category not in ("N", "B"):
        raise DataException(
            f'column "{column.name}" has type {column.type}, which cannot be a feature',
            hint=f"Cast it to a number or text in a view, or encode it as categories: "
            f'preprocess => \'{{"{column.name}": {{"encode": "one_hot"}}}}\'.',
        )
    impute = given.get("impute")
    if impute is None and not category:
        impute = "error"
    if impute is not None and impute not in IMPUTES:
        raise InvalidParameterValue(
            f'invalid impute "{impute}" for column "{column.name}"',
            hint="Valid values: " + ", ".join(IMPUTES) + ".",
        )
    if category and impute not in (None, "error", "mode"):
        raise InvalidParameterValue(
            f'impute "{impute}" needs numbers, and column "{column.name}" is encoded as categories',
            hint='Use "mode", "error", or leave it out (NULL is then a category of its own).',
        )
    scale = given.get("scale") or "preserve"
    if scale not in SCALES:
        raise InvalidParameterValue(
            f'invalid scale "{scale}" for column "{column.name}"',
            hint="Valid values: " + ", ".join(SCALES) + ".",
        )
    if category:
        encode = encode or "native"
        if encode == "target" and (task not in ("regression", "classification") or n_labels != 1):
            raise InvalidParameterValue(
                f'target encoding of column "{column.name}" needs one label column',
                detail=f'Task "{task}" with {n_labels} label columns.',
            )
    return Rule(category, encode if category else None, ordinal, impute, scale)


def _encode(name: str, encode: Any) -> tuple[str | None, tuple[str, ...] | None]:
    if encode is None or encode in ENCODES and encode != "ordinal":
        return encode, None
    if isinstance(encode, dict) and set(encode) == {"ordinal"}:
        values = encode["ordinal"]
        if (
            isinstance(values, list)
            and values
            and all(v is not None and not isinstance(v, dict | list) for v in values)
        ):
            # no value is None (checked above), so no text is None
            order = tuple(text for text in map(category_text, values) if text is not None)
            if len(set(order)) == len(order):
                return "ordinal", order
        raise InvalidParameterValue(
            f'"ordinal" of column "{name}" must list distinct values',
            hint='For example {"encode": {"ordinal": ["low", "medium", "high"]}}.',
        )
    raise InvalidParameterValue(
        f'invalid encode {json.dumps(encode)} for column "{name}"',
        hint='Valid values: "native", "target", "one_hot", {"ordinal": [values...]}.',
    )


def category_text(value: Any) -> str | None:
    """A category as PostgreSQL prints it (the training rows are read as ``::text``)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def needed(rules: dict[str, Rule]) -> bool:
    return any(not rule.plain for rule in rules.values())


def input_rules(
    rules: dict[str, Rule], columns: Sequence[str], feature_names: Sequence[str]
) -> list[Rule]:
    """The rule of each model input: array columns give one input per element, named
    ``column[i]``."""
    result: list[Rule] = []
    names = iter(feature_names)
    pending = next(names, None)
    for column in columns:
        while pending is not None and (
            pending == column or (pending.startswith(column + "[") and pending.endswith("]"))
        ):
            result.append(rules[column])
            pending = next(names, None)
    if len(result) != len(feature_names):
        raise DataException("the model's feature names do not match its preprocessing rules")
    return result


# ---------------------------------------------------------------------------
# Inputs, checking and building
# ---------------------------------------------------------------------------


def inputs(n: int, blocks: Sequence[Any]) -> np.ndarray:
    """One input matrix from columns as read: float arrays (``(n,)`` or ``(n, width)``)
    and lists of text (categories). float64, or object when there is text."""
    import numpy as np

    if not any(isinstance(b, list) for b in blocks):
        return np.hstack([np.asarray(b).reshape(n, -1) for b in blocks])
    width = sum(1 if isinstance(b, list) else np.asarray(b).reshape(n, -1).shape[1] for b in blocks)
    X = np.empty((n, width), dtype=object)
    at = 0
    for block in blocks:
        if isinstance(block, list):
            X[:, at] = block
            at += 1
        else:
            values = np.asarray(block).reshape(n, -1)
            X[:, at : at + values.shape[1]] = values
            at += values.shape[1]
    return X


# ---------------------------------------------------------------------------
# Checking and building
# ---------------------------------------------------------------------------


def check_inputs(
    X: np.ndarray,
    rules: Sequence[Rule],
    names: Sequence[str],
    where: Callable[[int], str] | None = None,
) -> None:
    """22004 for NULL (or NaN) in an input whose rule has no imputation (``impute`` ``error``);
    22023 for Infinity or -Infinity in any number input: imputation fills missing values, and
    an infinite value is not missing. ``where(row)`` says which row (DETAIL); without it the
    DETAIL counts the rows."""
    import numpy as np

    for j, rule in enumerate(rules):
        column = X[:, j]
        if rule.category:  # text: only NULL can be wrong, and only when refused
            if rule.strict:
                _refuse_nulls(names[j], _missing_mask(column), where)
            continue
        values = column.astype(np.float64) if column.dtype == object else column
        if rule.strict:
            _refuse_nulls(names[j], np.isnan(values), where)
        infinite = np.isinf(values)
        if infinite.any():
            row = int(np.flatnonzero(infinite)[0])
            raise InvalidParameterValue(
                f'feature "{names[j]}" '
                + (
                    f"is {infinity_text(values[row])}"
                    if len(X) == 1
                    else "contains infinite values"
                ),
                detail=where(row) if where else f"{_of(infinite)} Infinity or -Infinity.",
                hint=INFINITY_HINT,
            )


def _refuse_nulls(name: str, missing: np.ndarray, where: Callable[[int], str] | None) -> None:
    import numpy as np

    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise NullValueNotAllowed(
            f'feature "{name}" ' + ("is NULL" if len(missing) == 1 else "contains NULL values"),
            detail=where(row) if where else f"{_of(missing)} NULL (or NaN).",
            hint=f'Pass preprocess => \'{{"{name.split("[")[0]}": '
            '{"impute": "mean"}}\' (or median, mode, min, max, zero) to fill them.',
        )


def _of(bad: np.ndarray) -> str:
    """How many of the rows are ``bad``: "3 of 150 rows are"."""
    count = int(bad.sum())
    return f"{count} of {len(bad)} rows {'is' if count == 1 else 'are'}"


INFINITY_HINT = (
    "Models take finite numbers only, and imputation fills NULL and NaN, not "
    "infinite values: replace them, or leave those rows out."
)


def infinity_text(value: float) -> str:
    """An infinite value as PostgreSQL prints it."""
    return "Infinity" if value > 0 else "-Infinity"


def _missing_mask(column: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.fromiter((is_missing(v) for v in column), bool, len(column))


def build(rules: Sequence[Rule], X: np.ndarray, task: str) -> Any:
    """An unfitted ``ColumnTransformer`` for inputs with ``rules``; ``X`` is the training
    rows (the category order of ``native`` and the fill value of ``min``/``max`` come
    from them). Numbers without a rule pass through, after the transformed columns."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    groups: dict[Any, list[int]] = {}
    for j, rule in enumerate(rules):
        if rule.plain:
            continue
        if rule.encode in ("one_hot", "target") or rule.impute in ("min", "max"):
            key: Any = j  # several outputs per input, or a fill value of its own
        else:
            key = rule
        groups.setdefault(key, []).append(j)
    transformers = []
    for members in groups.values():
        rule = rules[members[0]]
        steps = _steps(rule, X[:, members], task)
        transformers.append((f"c{members[0]}", Pipeline(steps), members))
    return ColumnTransformer(transformers, remainder="passthrough", sparse_threshold=0)


def _steps(rule: Rule, X: np.ndarray, task: str) -> list[tuple[str, Any]]:
    import numpy as np
    from sklearn.impute import SimpleImputer

    steps: list[tuple[str, Any]] = []
    if rule.category:
        if rule.impute is None:
            steps.append(
                (
                    "null",
                    SimpleImputer(
                        missing_values=None,
                        strategy="constant",
                        fill_value=NULL,
                        keep_empty_features=True,
                    ),
                )
            )
        elif rule.impute == "mode":
            steps.append(
                (
                    "impute",
                    SimpleImputer(
                        missing_values=None, strategy="most_frequent", keep_empty_features=True
                    ),
                )
            )
        steps.append(("encode", _encoder(rule, X, task)))
    elif rule.impute is not None and rule.impute != "error":  # not None: numbers (_rule)
        values = np.asarray(X, dtype=np.float64)
        strategy, fill = {
            "mean": ("mean", None),
            "median": ("median", None),
            "mode": ("most_frequent", None),
            "zero": ("constant", 0.0),
            "min": ("constant", _nan_stat(np.nanmin, values)),
            "max": ("constant", _nan_stat(np.nanmax, values)),
        }[rule.impute]
        steps.append(
            ("impute", SimpleImputer(strategy=strategy, fill_value=fill, keep_empty_features=True))
        )
    if rule.scale != "preserve":
        steps.append(("scale", _scaler(rule.scale)))
    assert steps, rule  # plain rules pass through and never get here
    return steps


def _nan_stat(stat: Callable[..., Any], values: np.ndarray) -> float:
    import numpy as np

    present = values[~np.isnan(values)]
    return float(stat(present)) if present.size else 0.0


def _encoder(rule: Rule, X: np.ndarray, task: str) -> Any:
    import numpy as np
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    if rule.encode == "native":  # numbered in first-seen order
        categories = [_first_seen(X[:, j], rule.impute) for j in range(X.shape[1])]
        return OrdinalEncoder(
            categories=categories,
            handle_unknown="use_encoded_value",
            unknown_value=UNKNOWN,
            dtype=np.float64,
        )
    if rule.encode == "ordinal":
        return OrdinalEncoder(
            categories=[list(rule.ordinal or ())] * X.shape[1],
            handle_unknown="use_encoded_value",
            unknown_value=UNKNOWN,
            dtype=np.float64,
        )
    if rule.encode == "one_hot":
        return OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64)
    return _target_encoder(task)


def _first_seen(values: np.ndarray, impute: str | None) -> list[str]:
    seen = dict.fromkeys(NULL if v is None else v for v in values)
    if impute is not None:  # NULL is filled before encoding: it is no category
        seen.pop(NULL, None)
    return list(seen) or [NULL]


def _target_encoder(task: str) -> Any:
    import sklearn
    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.preprocessing import TargetEncoder

    target_type = "continuous" if task == "regression" else "auto"
    major, minor = (int(p) for p in sklearn.__version__.split(".")[:2])
    if (major, minor) >= (1, 9):  # a seeded splitter makes the cross fitting reproducible
        splitter = KFold if task == "regression" else StratifiedKFold
        return TargetEncoder(
            target_type=target_type, cv=splitter(5, shuffle=True, random_state=SEED)
        )
    return TargetEncoder(target_type=target_type, shuffle=True, random_state=SEED)


def _scaler(scale: str) -> Any:
    from sklearn import preprocessing

    return {
        "standard": preprocessing.StandardScaler,
        "min_max": preprocessing.MinMaxScaler,
        "max_abs": preprocessing.MaxAbsScaler,
        "robust": preprocessing.RobustScaler,
    }[scale]()


def sources(transformer: Any, n_inputs: int) -> list[int]:
    """For each output column of a fitted ``ColumnTransformer`` from :func:`build`, the
    input it comes from (to sum one-hot parts back into their column)."""
    result: list[int] = []
    for name, _, members in transformer.transformers_:
        span = transformer.output_indices_[name]
        width = span.stop - span.start
        if name == "remainder":
            members = list(members)
        if width == len(members):
            result += list(members)
        elif len(members) == 1:
            result += [members[0]] * width
        elif width:
            raise AssertionError(f"transformer {name} has {width} outputs for {members}")
    width = max((span.stop for span in transformer.output_indices_.values()), default=0)
    if len(result) != width or (result and max(result) >= n_inputs):
        raise AssertionError("output columns do not map onto the inputs")
    return result


def fitted_statistics(transformer: Any, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """What the fitted ``transformer`` learnt for each input, by input name: fill values,
    number of categories, target means, scaler parameters. (For ``pyml.models.preprocess``:
    the statistics themselves live in the stored transformer.)"""
    found: dict[str, dict[str, Any]] = {}
    for _, fitted, members in transformer.transformers_:
        if isinstance(fitted, str) or passthrough(fitted) or not len(members):
            continue
        steps = [step for _, step in fitted.steps] if hasattr(fitted, "steps") else [fitted]
        for step in steps:
            described = _describe(step, len(members))
            if described is None:  # the columns have expanded (one-hot): stop here
                break
            for j, stats in zip(members, described, strict=True):
                found.setdefault(names[j], {}).update(stats)
    return found


def _describe(step: Any, width: int) -> list[dict[str, Any]] | None:
    kind = type(step).__name__

    def floats(values: Any) -> list[float]:
        return [float(v) for v in values]

    if kind == "SimpleImputer":
        return [{} if isinstance(v, str) else {"fill": float(v)} for v in step.statistics_]
    if kind in ("OrdinalEncoder", "OneHotEncoder"):
        return [{"categories": len(c)} for c in step.categories_]
    if kind == "TargetEncoder":
        means = as_floats(step.target_mean_)
        return [
            {"categories": len(c), "target_mean": means[0] if len(means) == 1 else means}
            for c in step.categories_
        ]
    if getattr(step, "n_features_in_", width) != width:
        return None
    if kind == "StandardScaler":
        return [
            {"mean": m, "std": s}
            for m, s in zip(floats(step.mean_), floats(step.scale_), strict=True)
        ]
    if kind == "MinMaxScaler":
        return [
            {"min": lo, "max": hi}
            for lo, hi in zip(floats(step.data_min_), floats(step.data_max_), strict=True)
        ]
    if kind == "MaxAbsScaler":
        return [{"max_abs": v} for v in floats(step.max_abs_)]
    if kind == "RobustScaler":
        return [
            {"center": c, "scale": v}
            for c, v in zip(floats(step.center_), floats(step.scale_), strict=True)
        ]
    return None


def transform(transformer: Any, X: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.asarray(transformer.transform(X), dtype=np.float64)
