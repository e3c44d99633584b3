"""Preprocessing rules and the one-row transform (pure code, no database)."""

from __future__ import annotations

import numpy as np
import pytest
import skops.io

from pyml.core import artifacts, rowtransform
from pyml.core import preprocess as _preprocess
from pyml.core.preprocess import Column, Rule
from pyml.errors import (
    DataException,
    InvalidParameterValue,
    NullValueNotAllowed,
    UndefinedColumn,
)

COLUMNS = [
    Column("city", "text", "S", False),
    Column("size", "double precision", "N", False),
    Column("rooms", "integer", "N", False),
    Column("flag", "boolean", "B", False),
    Column("grade", "text", "S", False),
    Column("zip", "integer", "N", False),
]


def _rules(spec: dict, task: str = "regression") -> list[Rule]:
    rules = _preprocess.resolve(spec, COLUMNS, ["y"], task)
    return [rules[c.name] for c in COLUMNS]


def test_defaults_text_is_native_category_numbers_are_plain():
    rules = _preprocess.resolve({}, COLUMNS, ["y"], "regression")
    assert rules["city"] == Rule(True, "native", None, None, "preserve")
    assert rules["size"].plain and rules["flag"].plain
    assert rules["size"].strict  # impute "error" by default: NULL is refused
    assert not rules["city"].strict  # NULL is a category of its own


def test_rules_round_trip_through_json():
    rules = _rules(
        {
            "grade": {"encode": {"ordinal": ["low", "mid", "high"]}, "impute": "mode"},
            "zip": {"encode": "one_hot"},
            "size": {"impute": "min", "scale": "robust"},
        }
    )
    for rule in rules:
        assert Rule.from_json(rule.as_json()) == rule
    assert rules[5].category  # an integer column encoded as categories


@pytest.mark.parametrize(
    ("spec", "error", "words"),
    [
        ({"nope": {"scale": "standard"}}, UndefinedColumn, "nope"),
        ({"y": {"scale": "standard"}}, InvalidParameterValue, "label"),
        ({"size": {"scal": "standard"}}, InvalidParameterValue, 'unknown preprocess key "scal"'),
        ({"size": {"scale": "log"}}, InvalidParameterValue, 'invalid scale "log"'),
        ({"size": {"impute": "guess"}}, InvalidParameterValue, 'invalid impute "guess"'),
        ({"city": {"encode": "hash"}}, InvalidParameterValue, "invalid encode"),
        ({"city": {"encode": {"ordinal": []}}}, InvalidParameterValue, "distinct"),
        ({"city": {"encode": {"ordinal": ["a", "a"]}}}, InvalidParameterValue, "distinct"),
        ({"city": {"impute": "mean"}}, InvalidParameterValue, "needs numbers"),
        ({"city": "one_hot"}, InvalidParameterValue, "JSON object"),
    ],
)
def test_bad_rules_are_refused(spec, error, words):
    with pytest.raises(error, match=words):
        _preprocess.resolve(spec, COLUMNS, ["y"], "regression")


def test_target_encoding_needs_a_label():
    with pytest.raises(InvalidParameterValue, match="one label"):
        _preprocess.resolve({"city": {"encode": "target"}}, COLUMNS, [], "clustering")


def test_other_types_need_an_encoding():
    when = Column("when", "date", "D", False)
    with pytest.raises(DataException, match="date"):
        _preprocess.resolve({}, [when], ["y"], "regression")
    rule = _preprocess.resolve({"when": {"encode": "one_hot"}}, [when], ["y"], "regression")
    assert rule["when"].category


def test_input_rules_expand_array_columns():
    rules = {
        "a": Rule(False, None, None, "mean", "preserve"),
        "b": Rule(True, "native", None, None, "preserve"),
    }
    expanded = _preprocess.input_rules(rules, ["a", "b"], ["a[1]", "a[2]", "b"])
    assert expanded == [rules["a"], rules["a"], rules["b"]]


def _data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.empty((n, len(COLUMNS)), dtype=object)
    X[:, 0] = rng.choice(["paris", "lyon", "nice", None], n, p=[0.5, 0.3, 0.15, 0.05])
    size = rng.lognormal(3, 1, n)
    size[rng.random(n) < 0.1] = np.nan
    X[:, 1] = size
    X[:, 2] = rng.integers(1, 6, n).astype(float)
    X[:, 3] = rng.integers(0, 2, n).astype(float)
    X[:, 4] = rng.choice(["low", "mid", "high", None], n)
    X[:, 5] = rng.choice(["75001", "69002", "06000"], n)
    y = rng.normal(size=n) + np.where(X[:, 0] == "paris", 2.0, 0.0)
    return X, y


SPECS = [
    {},
    {"city": {"encode": "target"}, "size": {"impute": "median", "scale": "standard"}},
    {
        "city": {"encode": "one_hot", "scale": "max_abs"},
        "size": {"impute": "mean", "scale": "min_max"},
        "grade": {"encode": {"ordinal": ["low", "mid", "high"]}, "impute": "mode"},
        "zip": {"encode": "one_hot"},
    },
    {
        "city": {"impute": "mode", "scale": "robust"},
        "size": {"impute": "max"},
        "rooms": {"scale": "standard"},
        "grade": {"encode": "target"},
    },
    {
        "size": {"impute": "zero"},
        "rooms": {"impute": "min", "scale": "robust"},
        "grade": {"encode": "one_hot"},
        "flag": {"scale": "min_max"},
    },
]


@pytest.mark.parametrize("task", ["regression", "classification", "multiclass"])
@pytest.mark.parametrize("spec", SPECS)
def test_row_transform_equals_scikit_learn(spec, task):
    X, y = _data()
    if task == "classification":
        y = (y > 0.5).astype(int)
    elif task == "multiclass":
        y = np.digitize(y, [-0.5, 0.5, 1.5])
    spec = {**spec, "size": {"impute": "mean", **spec.get("size", {})}}
    rules = _rules(spec, "regression" if task == "regression" else "classification")
    transformer = _preprocess.build(
        rules, X, "regression" if task == "regression" else "classification"
    )
    transformer.fit(X, y)
    row = rowtransform.compile_row(transformer)
    assert row is not None
    fresh, _ = _data(60, seed=1)
    fresh[0, 0] = "marseille"  # never seen in training: unknown, not an error
    fresh[1, 4] = "top"
    fresh[2, 5] = "13001"
    expected = _preprocess.transform(transformer, fresh)
    got = np.array([row(list(r)) for r in fresh])
    np.testing.assert_array_equal(got, expected)
    sources = _preprocess.sources(transformer, len(rules))
    assert len(sources) == expected.shape[1]
    assert sorted(set(sources)) == list(range(len(rules)))


def test_native_categories_in_first_seen_order_null_its_own():
    X = np.array([["b"], [None], ["a"], ["b"]], dtype=object)
    rules = [Rule(True, "native", None, None, "preserve")]
    transformer = _preprocess.build(rules, X, "regression").fit(X, np.zeros(4))
    codes = _preprocess.transform(
        transformer, np.array([["b"], [None], ["a"], ["zz"]], dtype=object)
    )
    assert codes.ravel().tolist() == [0.0, 1.0, 2.0, _preprocess.UNKNOWN]


def test_statistics_come_from_the_rows_given():
    X = np.array([[1.0], [np.nan], [3.0], [100.0]])
    rules = [Rule(False, None, None, "min", "preserve")]
    transformer = _preprocess.build(rules, X[:3], "regression").fit(X[:3], np.zeros(3))
    assert _preprocess.transform(transformer, np.array([[np.nan]]))[0, 0] == 1.0


def test_check_inputs_names_the_feature():
    X = np.array([["a", 1.0], ["b", np.nan]], dtype=object)
    rules = [
        Rule(True, "native", None, None, "preserve"),
        Rule(False, None, None, "error", "preserve"),
    ]
    with pytest.raises(NullValueNotAllowed, match='"size"'):
        _preprocess.check_inputs(X, rules, ["city", "size"])
    _preprocess.check_inputs(X[:1], rules, ["city", "size"])


def test_check_inputs_refuses_infinity_where_nulls_are_imputed():
    X = np.array([["a", 1.0, np.nan], [None, np.inf, 2.0], ["c", -np.inf, 3.0]], dtype=object)
    rules = [
        Rule(True, "native", None, None, "preserve"),
        Rule(False, None, None, "mean", "preserve"),
        Rule(False, None, None, "median", "standard"),
    ]
    names = ["city", "size", "rooms"]
    with pytest.raises(InvalidParameterValue, match='"size" contains infinite values') as caught:
        _preprocess.check_inputs(X, rules, names)
    assert caught.value.detail == "2 of 3 rows are Infinity or -Infinity."
    with pytest.raises(InvalidParameterValue, match='"size" is -Infinity'):
        _preprocess.check_inputs(X[2:], rules, names)
    _preprocess.check_inputs(X[:1], rules, names)  # NULL text is a category, NaN is imputed


@pytest.mark.parametrize("task", ["regression", "classification"])
@pytest.mark.parametrize("spec", SPECS)
def test_fitted_transformer_is_a_safe_artifact(spec, task):
    from sklearn.linear_model import LinearRegression

    X, y = _data()
    if task == "classification":
        y = (y > 0.5).astype(int)
    spec = {**spec, "size": {"impute": "mean", **spec.get("size", {})}}
    rules = _rules(spec, task)
    transformer = _preprocess.build(rules, X, task).fit(X, y)
    model = LinearRegression().fit(_preprocess.transform(transformer, X), y)
    parts = artifacts.dump("sklearn", model, transformer)
    assert [p.format for p in parts] == ["skops", "skops-preprocessor"]
    assert not set(skops.io.get_untrusted_types(data=parts[1].data)) - set(
        artifacts.SKOPS_ALLOWED_TYPES
    )
    loaded = artifacts.load(
        [{"part": p.part, "format": p.format, "sha256": p.sha256, "data": p.data} for p in parts]
    )
    assert loaded.format == "skops" and len(loaded.parts) == 1
    np.testing.assert_array_equal(
        _preprocess.transform(loaded.preprocessor, X), _preprocess.transform(transformer, X)
    )


def test_fitted_statistics_name_what_was_learnt():
    X, y = _data()
    rules = _rules(
        {
            "city": {"encode": "one_hot", "scale": "standard"},
            "size": {"impute": "median", "scale": "robust"},
            "grade": {"encode": "target"},
        }
    )
    transformer = _preprocess.build(rules, X, "regression").fit(X, y)
    stats = _preprocess.fitted_statistics(transformer, [c.name for c in COLUMNS])
    size = X[:, 1].astype(float)
    assert stats["size"]["fill"] == np.nanmedian(size)
    assert stats["size"]["center"] == np.nanmedian(size)  # median-filled: same median
    assert stats["city"] == {"categories": 4}  # three cities and NULL; scaled after one-hot
    assert stats["grade"]["categories"] == 4 and "target_mean" in stats["grade"]
    assert "rooms" not in stats  # passed through
