"""Offline toy datasets for ``pyml.load_dataset``, built from scikit-learn's bundled data.

This module is pure: it only builds rows in memory. The SQL layer creates
``pyml.<name>`` from :attr:`Dataset.columns` and inserts :attr:`Dataset.rows`.
Nothing is ever downloaded; every dataset ships inside scikit-learn.
"""

# Table/column names and types follow pgml.load_dataset (pgml-extension/src/orm/dataset.rs).

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyml.errors import InvalidParameterValue, UndefinedObject

AVAILABLE: tuple[str, ...] = ("breast_cancer", "diabetes", "digits", "iris", "linnerud", "wine")


@dataclass(frozen=True)
class Dataset:
    """A dataset ready to be written to a table.

    ``name`` is the table name without schema, ``columns`` lists
    ``(column name, PostgreSQL type)`` pairs and ``rows`` holds one tuple of
    plain Python values per row, in scikit-learn's order.
    """

    name: str
    columns: list[tuple[str, str]]
    rows: list[tuple[Any, ...]]
    description: str


_BREAST_CANCER_FEATURES = [
    f"{prefix}{feature}{suffix}"
    for prefix, suffix in (("mean ", ""), ("", " error"), ("worst ", ""))
    for feature in (
        "radius",
        "texture",
        "perimeter",
        "area",
        "smoothness",
        "compactness",
        "concavity",
        "concave points",
        "symmetry",
        "fractal dimension",
    )
]

# pgml lists hue before color_intensity (scikit-learn has them the other way round);
# values are picked by scikit-learn feature name, so each column holds its own data.
_WINE_FEATURES = [
    "alcohol",
    "malic_acid",
    "ash",
    "alcalinity_of_ash",
    "magnesium",
    "total_phenols",
    "flavanoids",
    "nonflavanoid_phenols",
    "proanthocyanins",
    "hue",
    "color_intensity",
    "od280/od315_of_diluted_wines",
    "proline",
]


def _pick(bunch: Any, names: list[str]) -> list[list[float]]:
    """Return ``bunch.data`` as lists of floats, columns reordered to ``names``."""
    order = [list(bunch.feature_names).index(name) for name in names]
    rows: list[list[float]] = bunch.data[:, order].astype(float).tolist()
    return rows


def _join(features: list[list[Any]], labels: list[Any]) -> list[tuple[Any, ...]]:
    """Zip feature lists and label values (a scalar or a list) into row tuples."""
    return [
        (*x, *(y if isinstance(y, list) else [y])) for x, y in zip(features, labels, strict=True)
    ]


def _breast_cancer() -> Dataset:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    malignant = (bunch.target == 0).tolist()  # scikit-learn encodes malignant as class 0
    rows = _join(_pick(bunch, _BREAST_CANCER_FEATURES), malignant)
    columns = [(name, "real") for name in _BREAST_CANCER_FEATURES] + [("malignant", "boolean")]
    description = "Wisconsin breast cancer diagnostic data (binary classification)"
    return Dataset("breast_cancer", columns, rows, description)


def _diabetes() -> Dataset:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    names = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    rows = _join(_pick(bunch, names), bunch.target.astype(float).tolist())
    columns = [(name, "real") for name in [*names, "target"]]
    description = "diabetes disease progression after one year (regression)"
    return Dataset("diabetes", columns, rows, description)


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(int).tolist()
    rows = list(zip(images, bunch.target.astype(int).tolist(), strict=True))
    columns = [("image", "smallint[][]"), ("target", "smallint")]
    description = "8x8 images of handwritten digits (multiclass classification)"
    return Dataset("digits", columns, rows, description)


def _iris() -> Dataset:
    from sklearn.datasets import load_iris

    bunch = load_iris()
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    features = _pick(bunch, [f"{name.replace('_', ' ')} (cm)" for name in names])
    rows = _join(features, bunch.target.astype(int).tolist())
    columns = [(name, "real") for name in names] + [("target", "integer")]
    return Dataset("iris", columns, rows, "iris flower measurements (multiclass classification)")


def _linnerud() -> Dataset:
    from sklearn.datasets import load_linnerud

    bunch = load_linnerud()
    exercise = _pick(bunch, ["Chins", "Situps", "Jumps"])
    order = [list(bunch.target_names).index(name) for name in ("Weight", "Waist", "Pulse")]
    physiological = bunch.target[:, order].astype(float).tolist()
    rows = _join(exercise, physiological)
    columns = [(name, "real") for name in ("chins", "situps", "jumps", "weight", "waist", "pulse")]
    description = "exercise and physiological measurements of 20 men (multi-output regression)"
    return Dataset("linnerud", columns, rows, description)


def _wine() -> Dataset:
    from sklearn.datasets import load_wine

    bunch = load_wine()
    rows = _join(_pick(bunch, _WINE_FEATURES), bunch.target.astype(int).tolist())
    columns = [(name, "real") for name in _WINE_FEATURES] + [("target", "integer")]
    description = "chemical analysis of wines from three cultivars (multiclass classification)"
    return Dataset("wine", columns, rows, description)


_BUILDERS: dict[str, Callable[[], Dataset]] = {
    "breast_cancer": _breast_cancer,
    "diabetes": _diabetes,
    "digits": _digits,
    "iris": _iris,
    "linnerud": _linnerud,
    "wine": _wine,
}


def load(
    source: str,
    subset: str | None = None,
    limit: int | None = None,
    kwargs: dict[str, Any] | None = None,
) -> Dataset:
    """Build the offline dataset ``source``, keeping at most ``limit`` rows.

    Raises :class:`~pyml.errors.UndefinedObject` for an unknown dataset and
    :class:`~pyml.errors.InvalidParameterValue` for a negative ``limit``, a
    non-NULL ``subset`` or any ``kwargs`` key (none is supported).
    """
    builder = _BUILDERS.get(source)
    if builder is None:
        raise UndefinedObject(
            f'dataset "{source}" does not exist',
            hint=f"Available datasets: {', '.join(AVAILABLE)}.",
        )
    if subset is not None:
        raise InvalidParameterValue(f'dataset "{source}" has no subsets, got "{subset}"')
    if limit is not None and limit < 0:
        raise InvalidParameterValue(f'"limit" must be non-negative, got {limit}')
    if kwargs is not None and not isinstance(kwargs, dict):
        raise InvalidParameterValue(f'"kwargs" must be a JSON object, got {type(kwargs).__name__}')
    if kwargs:
        raise InvalidParameterValue(
            f'unrecognized option "{sorted(kwargs)[0]}" for dataset "{source}"',
            hint="No options are supported for offline datasets.",
        )
    dataset = builder()
    if limit is not None and limit < len(dataset.rows):
        dataset = Dataset(dataset.name, dataset.columns, dataset.rows[:limit], dataset.description)
    return dataset


__all__ = ["AVAILABLE", "Dataset", "load"]
