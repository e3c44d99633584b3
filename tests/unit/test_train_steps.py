"""Pure training steps: label encoding, splits, parameters, binary array decoding."""

import struct

import numpy as np
import pytest

from pyml.core import params, statistics
from pyml.core.registry import jsonable
from pyml.core.split import split, take
from pyml.errors import DataException, InvalidParameterValue, NullValueNotAllowed
from pyml.server import store
from pyml.server.training import encode_labels


def test_labels_become_sorted_class_indices() -> None:
    classes, y = encode_labels([True, False, True], "classification")
    assert classes == [False, True]
    assert y.tolist() == [1, 0, 1]


def test_text_labels_are_kept_as_text() -> None:
    classes, y = encode_labels(["b", "a", "c", "a"], "classification")
    assert classes == ["a", "b", "c"]
    assert y.tolist() == [1, 0, 2, 0]


def test_null_label_is_22004() -> None:
    with pytest.raises(NullValueNotAllowed):
        encode_labels([1, None], "classification")
    with pytest.raises(NullValueNotAllowed):
        encode_labels(np.array([1.0, np.nan]), "regression")


def test_single_class_is_refused() -> None:
    with pytest.raises(DataException):
        encode_labels([1, 1, 1], "classification")


@pytest.mark.parametrize("sampling", ["random", "stratified"])
def test_split_is_reproducible(sampling: str) -> None:
    y = np.array([0, 1] * 50)
    first = split(100, 0.25, sampling, y)
    second = split(100, 0.25, sampling, y)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert len(first[1]) == 25 and len(first[0]) == 75
    assert not set(first[0]) & set(first[1])


def test_stratified_split_keeps_class_shares() -> None:
    y = np.array([0] * 80 + [1] * 20)
    _, test = split(100, 0.25, "stratified", y)
    assert np.bincount(y[test]).tolist() == [20, 5]


@pytest.mark.parametrize("sampling", ["last", "random"])
def test_take_gives_the_rows_a_split_names(sampling: str) -> None:
    """take(values, rows) is values[rows]; a view of values only for one run of rows."""
    values = np.arange(40.0).reshape(20, 2)
    for rows in split(20, 0.25, sampling, None):
        taken = take(values, rows)
        np.testing.assert_array_equal(taken, values[rows])
        one_run = bool(np.all(np.diff(rows) == 1))
        assert np.shares_memory(taken, values) == one_run
    assert sampling == "random" or np.shares_memory(
        take(values, split(20, 5, "last", None)[0]), values
    )
    assert take(values, np.array([], dtype=np.int64)).shape == (0, 2)


def test_last_split_takes_the_last_rows() -> None:
    train, test = split(10, 3, "last", None)
    assert train.tolist() == list(range(7)) and test.tolist() == [7, 8, 9]


@pytest.mark.parametrize("size", [0.0, 1.0, -0.5, 1.5, float("nan")])
def test_bad_test_size(size: float) -> None:
    with pytest.raises(InvalidParameterValue, match='"test_size"'):
        params.test_size(size)


def test_test_size_leaving_no_rows() -> None:
    with pytest.raises(InvalidParameterValue):
        split(3, 0.01, "random", None)


def test_one_of_message() -> None:
    with pytest.raises(
        InvalidParameterValue,
        match='"task" must be one of regression, '
        "classification, clustering, decomposition;"
        ' got "ranking"',
    ):
        params.one_of("task", "ranking", params.TASKS)


def test_json_object_argument() -> None:
    assert params.json_object("hyperparams", '{"a": 1}') == {"a": 1}
    with pytest.raises(InvalidParameterValue, match="must be a JSON object"):
        params.json_object("hyperparams", "[1, 2]")


def _array_send(values: list[float | None], dims: list[int]) -> bytes:
    has_null = any(v is None for v in values)
    out = struct.pack(">iii", len(dims), int(has_null), 701)
    for d in dims:
        out += struct.pack(">ii", d, 1)
    for v in values:
        out += struct.pack(">i", -1) if v is None else struct.pack(">id", 8, v)
    return out


def test_decode_float8_array() -> None:
    decoded = store.decode_float8_array(_array_send([1.5, -2.0, 3.25], [3]), 3)
    assert decoded.tolist() == [1.5, -2.0, 3.25]


def test_decode_float8_array_with_nulls_and_two_dimensions() -> None:
    decoded = store.decode_float8_array(_array_send([1.0, None, 3.0, 4.0], [2, 2]), 2)
    assert decoded.shape == (2, 2)
    assert decoded[0, 0] == 1.0 and np.isnan(decoded[0, 1]) and decoded[1, 1] == 4.0


def test_describe_numeric() -> None:
    stats = statistics.describe_numeric(np.array([1.0, 2.0, 3.0, np.nan]))
    assert stats["count"] == 4 and stats["nulls"] == 1
    assert stats["min"] == 1.0 and stats["max"] == 3.0 and stats["mean"] == 2.0
    assert len(stats["quantiles"]) == 11
    assert sum(stats["histogram"]["counts"]) == 3


def test_describe_categorical() -> None:
    stats = statistics.describe_categorical(["a", "b", "a", None, True])
    assert stats["nulls"] == 1
    assert stats["categories"] == {"a": 2, "b": 1, "true": 1}


def test_jsonable() -> None:
    assert jsonable({"a": np.float32(0.5), "b": [np.int64(2)], "c": float("nan"), "d": object}) == {
        "a": 0.5,
        "b": [2],
        "c": None,
        "d": repr(object),
    }
