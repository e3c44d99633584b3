"""One row through a fitted preprocessing ``ColumnTransformer``, in plain Python.

Serving one row through scikit-learn's transformers costs milliseconds (every
transformer validates its input). :class:`RowTransform` reads the fitted statistics
out of the same ``ColumnTransformer`` (the one :mod:`pyml.core.preprocess` builds and the
model stores) and applies them to one row; it gives the same numbers (tested against
``ColumnTransformer.transform``). :func:`compile_row` returns None for a step it does not
know, and the model then uses scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any


class RowTransform:
    """``transformer.transform`` of one row (a list of values), in plain Python."""

    def __init__(self, transformer: Any):
        self.blocks: list[tuple[list[int], list[Callable[[list[Any]], list[Any]]]]] = []
        for _, fitted, members in transformer.transformers_:
            if isinstance(fitted, str) and fitted == "drop" or not len(members):
                continue
            if passthrough(fitted):
                steps = []
            elif type(fitted).__name__ == "Pipeline":
                steps = [_compile(step) for _, step in fitted.steps]
            else:
                steps = [_compile(fitted)]
            self.blocks.append((list(members), steps))

    def __call__(self, row: Sequence[Any]) -> list[float]:
        out: list[float] = []
        for members, steps in self.blocks:
            values = [row[j] for j in members]
            for step in steps:
                values = step(values)
            out += [float(v) for v in values]
        return out


def compile_row(transformer: Any) -> RowTransform | None:
    """A :class:`RowTransform`, or None when a step is not one this module builds."""
    try:
        return RowTransform(transformer)
    except _Unknown:
        return None


class _Unknown(Exception):
    pass


def passthrough(fitted: Any) -> bool:
    """The remainder: "passthrough", or (when fitted) an identity FunctionTransformer."""
    if isinstance(fitted, str):
        return fitted == "passthrough"
    return (
        type(fitted).__name__ == "FunctionTransformer"
        and fitted.func is None
        and fitted.inverse_func is None
    )


def _compile(step: Any) -> Callable[[list[Any]], list[Any]]:
    kind = type(step).__name__
    compiler = _COMPILERS.get(kind)
    if compiler is None:
        raise _Unknown(kind)
    return compiler(step)


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _imputer(step: Any) -> Callable[[list[Any]], list[Any]]:
    fill = [v.item() if hasattr(v, "item") else v for v in step.statistics_]
    return lambda values: [fill[i] if is_missing(v) else v for i, v in enumerate(values)]


def _ordinal(step: Any) -> Callable[[list[Any]], list[Any]]:
    if step.handle_unknown != "use_encoded_value":
        raise _Unknown("OrdinalEncoder")
    codes = [{c: float(i) for i, c in enumerate(cats)} for cats in step.categories_]
    unknown = float(step.unknown_value)
    return lambda values: [codes[i].get(v, unknown) for i, v in enumerate(values)]


def _one_hot(step: Any) -> Callable[[list[Any]], list[Any]]:
    if (
        step.drop is not None
        or step.handle_unknown != "ignore"
        or getattr(step, "_infrequent_enabled", False)
    ):
        raise _Unknown("OneHotEncoder")
    positions = [{c: i for i, c in enumerate(cats)} for cats in step.categories_]

    def encode(values: list[Any]) -> list[Any]:
        out: list[Any] = []
        for i, v in enumerate(values):
            block = [0.0] * len(positions[i])
            at = positions[i].get(v)
            if at is not None:
                block[at] = 1.0
            out += block
        return out

    return encode


def _target(step: Any) -> Callable[[list[Any]], list[Any]]:
    positions = [{c: i for i, c in enumerate(cats)} for cats in step.categories_]
    means = as_floats(step.target_mean_)
    per = len(means)  # classes of a multiclass target, else 1
    encodings = [[float(e) for e in enc] for enc in step.encodings_]

    def encode(values: list[Any]) -> list[Any]:
        out: list[Any] = []
        for i, v in enumerate(values):
            at = positions[i].get(v)
            for k in range(per):
                out.append(means[k] if at is None else encodings[i * per + k][at])
        return out

    return encode


def as_floats(value: Any) -> list[float]:
    """A number or an array of numbers, as a list of floats."""
    import numpy as np

    return [float(v) for v in np.atleast_1d(np.asarray(value, dtype=np.float64))]


def _standard(step: Any) -> Callable[[list[Any]], list[Any]]:
    mean = [float(m) for m in step.mean_] if step.with_mean else None
    scale = [float(s) for s in step.scale_] if step.with_std else None

    def scaled(values: list[Any]) -> list[Any]:
        out = [float(v) for v in values]
        if mean is not None:
            out = [v - mean[i] for i, v in enumerate(out)]
        if scale is not None:
            out = [v / scale[i] for i, v in enumerate(out)]
        return out

    return scaled


def _min_max(step: Any) -> Callable[[list[Any]], list[Any]]:
    if step.clip:
        raise _Unknown("MinMaxScaler(clip=True)")
    scale, low = [float(s) for s in step.scale_], [float(m) for m in step.min_]
    return lambda values: [float(v) * scale[i] + low[i] for i, v in enumerate(values)]


def _max_abs(step: Any) -> Callable[[list[Any]], list[Any]]:
    scale = [float(s) for s in step.scale_]
    return lambda values: [float(v) / scale[i] for i, v in enumerate(values)]


def _robust(step: Any) -> Callable[[list[Any]], list[Any]]:
    center = [float(c) for c in step.center_] if step.with_centering else None
    scale = [float(s) for s in step.scale_] if step.with_scaling else None

    def scaled(values: list[Any]) -> list[Any]:
        out = [float(v) for v in values]
        if center is not None:
            out = [v - center[i] for i, v in enumerate(out)]
        if scale is not None:
            out = [v / scale[i] for i, v in enumerate(out)]
        return out

    return scaled


_COMPILERS: dict[str, Callable[[Any], Callable[[list[Any]], list[Any]]]] = {
    "SimpleImputer": _imputer,
    "OrdinalEncoder": _ordinal,
    "OneHotEncoder": _one_hot,
    "TargetEncoder": _target,
    "StandardScaler": _standard,
    "MinMaxScaler": _min_max,
    "MaxAbsScaler": _max_abs,
    "RobustScaler": _robust,
}
