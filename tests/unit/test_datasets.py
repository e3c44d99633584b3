"""Unit tests for pyml.datasets (no database)."""

from __future__ import annotations

import dataclasses

import pytest
from sklearn import datasets as skd

from pyml.core import datasets
from pyml.errors import InvalidParameterValue, UndefinedObject

BREAST_CANCER_COLUMNS = [
    (name, "real")
    for name in (
        "mean radius",
        "mean texture",
        "mean perimeter",
        "mean area",
        "mean smoothness",
        "mean compactness",
        "mean concavity",
        "mean concave points",
        "mean symmetry",
        "mean fractal dimension",
        "radius error",
        "texture error",
        "perimeter error",
        "area error",
        "smoothness error",
        "compactness error",
        "concavity error",
        "concave points error",
        "symmetry error",
        "fractal dimension error",
        "worst radius",
        "worst texture",
        "worst perimeter",
        "worst area",
        "worst smoothness",
        "worst compactness",
        "worst concavity",
        "worst concave points",
        "worst symmetry",
        "worst fractal dimension",
    )
] + [("malignant", "boolean")]

EXPECTED_COLUMNS = {
    "breast_cancer": BREAST_CANCER_COLUMNS,
    "diabetes": [(n, "real") for n in ("age", "sex", "bmi", "bp")]
    + [(f"s{i}", "real") for i in range(1, 7)]
    + [("target", "real")],
    "digits": [("image", "smallint[][]"), ("target", "smallint")],
    "iris": [(n, "real") for n in ("sepal_length", "sepal_width", "petal_length", "petal_width")]
    + [("target", "integer")],
    "linnerud": [(n, "real") for n in ("chins", "situps", "jumps", "weight", "waist", "pulse")],
    "wine": [
        (n, "real")
        for n in (
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
        )
    ]
    + [("target", "integer")],
}

SKLEARN_LOADERS = {
    "breast_cancer": skd.load_breast_cancer,
    "diabetes": skd.load_diabetes,
    "digits": skd.load_digits,
    "iris": skd.load_iris,
    "linnerud": skd.load_linnerud,
    "wine": skd.load_wine,
}

PYTHON_TYPES = {"real": float, "boolean": bool, "integer": int, "smallint": int}


def test_available_lists_the_six_datasets():
    assert datasets.AVAILABLE == ("breast_cancer", "diabetes", "digits", "iris", "linnerud", "wine")


@pytest.mark.parametrize("name", sorted(EXPECTED_COLUMNS))
def test_shape_columns_and_value_types(name):
    ds = datasets.load(name)
    assert isinstance(ds, datasets.Dataset)
    assert ds.name == name
    assert ds.columns == EXPECTED_COLUMNS[name]
    assert len(ds.rows) == SKLEARN_LOADERS[name]().data.shape[0]
    assert ds.description and "\n" not in ds.description
    for row in ds.rows:
        assert isinstance(row, tuple)
        assert len(row) == len(ds.columns)
        for value, (_, sql_type) in zip(row, ds.columns, strict=True):
            if sql_type == "smallint[][]":
                assert len(value) == 8
                assert all(len(line) == 8 and all(type(v) is int for v in line) for line in value)
            else:
                assert type(value) is PYTHON_TYPES[sql_type]


def test_dataset_is_frozen():
    ds = datasets.load("iris", limit=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"


def test_breast_cancer_malignant_is_target_zero():
    ds = datasets.load("breast_cancer")
    bunch = skd.load_breast_cancer()
    assert [row[-1] for row in ds.rows] == [t == 0 for t in bunch.target.tolist()]
    assert sum(row[-1] for row in ds.rows) == 212  # 212 malignant, 357 benign
    assert list(ds.rows[0][:30]) == bunch.data[0].tolist()


def test_wine_values_follow_column_names():
    ds = datasets.load("wine")
    bunch = skd.load_wine()
    names = [n for n, _ in ds.columns]
    for i, row in enumerate(ds.rows):
        for j, feature in enumerate(bunch.feature_names):
            assert row[names.index(feature)] == bunch.data[i, j]
        assert row[-1] == int(bunch.target[i])


def test_values_match_sklearn_order():
    iris = datasets.load("iris")
    assert [row[:4] for row in iris.rows] == [tuple(x) for x in skd.load_iris().data.tolist()]
    assert [row[-1] for row in iris.rows] == skd.load_iris().target.tolist()
    digits = datasets.load("digits")
    bunch = skd.load_digits()
    assert digits.rows[5] == (bunch.images[5].astype(int).tolist(), int(bunch.target[5]))
    lin = datasets.load("linnerud")
    raw = skd.load_linnerud()
    assert lin.rows[0] == tuple(raw.data[0].tolist() + raw.target[0].tolist())
    diabetes = datasets.load("diabetes")
    assert diabetes.rows[-1][-1] == float(skd.load_diabetes().target[-1])


@pytest.mark.parametrize("limit", [0, 1, 7])
def test_limit_truncates(limit):
    full = datasets.load("wine")
    ds = datasets.load("wine", limit=limit)
    assert len(ds.rows) == limit
    assert ds.rows == full.rows[:limit]
    assert ds.columns == full.columns


def test_limit_larger_than_dataset_keeps_all_rows():
    assert len(datasets.load("linnerud", limit=1000).rows) == 20


def test_negative_limit_is_rejected():
    with pytest.raises(InvalidParameterValue) as exc:
        datasets.load("iris", limit=-1)
    assert exc.value.sqlstate == "22023"
    assert str(exc.value) == '"limit" must be non-negative, got -1'


def test_unknown_dataset():
    with pytest.raises(UndefinedObject) as exc:
        datasets.load("nope")
    assert exc.value.sqlstate == "42704"
    assert str(exc.value) == 'dataset "nope" does not exist'
    assert exc.value.hint is not None
    assert all(name in exc.value.hint for name in datasets.AVAILABLE)


def test_subset_is_rejected():
    with pytest.raises(InvalidParameterValue) as exc:
        datasets.load("iris", subset="setosa")
    assert exc.value.sqlstate == "22023"
    assert '"iris"' in str(exc.value)


def test_kwargs():
    assert len(datasets.load("iris", kwargs={}).rows) == 150
    with pytest.raises(InvalidParameterValue) as exc:
        datasets.load("iris", kwargs={"split": "train"})
    assert exc.value.sqlstate == "22023"
    assert '"split"' in str(exc.value)
