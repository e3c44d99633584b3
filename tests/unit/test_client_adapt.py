"""pyml.client's psycopg dumpers, without a server: bytes compared with psycopg's own dumpers.

psycopg already dumps lists of numpy scalars (``[np.float32(1.5), ...]`` → ``real[]``); an
array must produce exactly the bytes and the type of that list, in both formats.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import postgres
from psycopg.adapt import AdaptersMap, PyFormat, Transformer

from pyml.client import _adapt, _signatures
from pyml.client._adapt import json_dumps, register


class Context:
    """An adapters context without a connection (what a Transformer needs)."""

    def __init__(self, adapters: AdaptersMap):
        self.adapters = adapters
        self.connection = None


def registered() -> Any:  # a Transformer (chosen at import: C or Python)
    adapters = AdaptersMap(psycopg.adapters)
    register(adapters)
    return Transformer(Context(adapters))


def plain() -> Any:
    return Transformer(Context(AdaptersMap(psycopg.adapters)))


def dump(tx: Any, value: Any, format: PyFormat) -> tuple[int, bytes | None]:
    dumper = tx.get_dumper(value, format)
    data = dumper.dump(value)
    return dumper.oid, None if data is None else bytes(data)


def array_oid(type_name: str) -> int:
    return postgres.types[type_name].array_oid


def scalars(values: np.ndarray) -> list[Any]:
    """The array as (nested) lists of numpy scalars, which psycopg dumps itself."""
    if values.ndim == 1:
        return list(values)
    return [scalars(row) for row in values]


ARRAYS = [
    (np.array([1.5, -2.25, 0.1], dtype=np.float32), "float4"),
    (np.arange(6, dtype=np.float32).reshape(2, 3) / 7, "float4"),
    (np.array([1.5, np.nan, np.inf, -0.1], dtype=np.float64), "float8"),
    (np.arange(12, dtype=np.float64).reshape(3, 4) / 3, "float8"),
    (np.array([-3, 0, 3], dtype=np.int16), "int2"),
    (np.array([[-3, 7], [2**31 - 1, 0]], dtype=np.int32), "int4"),
    (np.array([2**40, -1], dtype=np.int64), "int8"),
    (np.array([True, False, True]), "bool"),
]


@pytest.mark.parametrize("format", [PyFormat.BINARY, PyFormat.AUTO])
@pytest.mark.parametrize(
    ("values", "type_name"), ARRAYS, ids=lambda v: getattr(v, "dtype", v) and str(v)
)
def test_arrays_dump_as_psycopg_dumps_their_scalars(
    values: np.ndarray, type_name: str, format: PyFormat
) -> None:
    oid, data = dump(registered(), values, format)
    assert oid == array_oid(type_name)
    assert (oid, data) == dump(plain(), scalars(values), PyFormat.BINARY)


@pytest.mark.parametrize(
    ("values", "text"),
    [
        (np.array([[1, 2], [3, 4]], dtype=np.int16), b"{{1,2},{3,4}}"),
        (np.array([True, False]), b"{t,f}"),
        (np.array([0.5, np.nan, -np.inf]), b"{0.5,nan,-inf}"),
        (np.array([0.1], dtype=np.float32), b"{0.10000000149011612}"),  # the float4's exact value
        (np.zeros((0, 3), dtype=np.float32), b"{}"),
    ],
)
def test_arrays_in_text(values: np.ndarray, text: bytes) -> None:
    assert dump(registered(), values, PyFormat.TEXT)[1] == text


@pytest.mark.parametrize(
    ("dtype", "type_name"),
    [
        (np.float16, "float4"),
        (np.int8, "int2"),
        (np.uint8, "int2"),
        (np.uint16, "int4"),
        (np.uint32, "int8"),
    ],
)
def test_narrow_and_unsigned_types_widen(dtype: type, type_name: str) -> None:
    values: Any = np.array([[1, 2], [3, 127]], dtype=dtype)
    oid, data = dump(registered(), values, PyFormat.BINARY)
    assert oid == array_oid(type_name)
    widened: Any = values.astype(postgres_dtype(type_name))
    assert (oid, data) == dump(plain(), scalars(widened), PyFormat.BINARY)


def postgres_dtype(type_name: str) -> type:
    return {"float4": np.float32, "int2": np.int16, "int4": np.int32, "int8": np.int64}[type_name]


def test_empty_arrays_have_no_dimensions() -> None:
    oid, data = dump(registered(), np.zeros((0, 4)), PyFormat.BINARY)
    assert oid == array_oid("float8")
    assert data == b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\xbd"  # 0, 0, oid 701


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, True, False]), [1.0, None, 3.0]),
        (np.array(["a", "b"]), ["a", "b"]),
        (np.array([2**64 - 1], dtype=np.uint64), [2**64 - 1]),
        (np.array(2.5), 2.5),
    ],
)
def test_other_arrays_dump_as_their_python_values(values: np.ndarray, expected: Any) -> None:
    assert dump(registered(), values, PyFormat.BINARY) == dump(
        registered(), expected, PyFormat.BINARY
    )


@pytest.mark.parametrize("format", [PyFormat.BINARY, PyFormat.TEXT])
@pytest.mark.parametrize(
    ("mixed", "uniform", "type_name"),
    [
        ([1, 2.5, 3], [1.0, 2.5, 3.0], "float8"),
        ([[1, 2.5], [3, None]], [[1.0, 2.5], [3.0, None]], "float8"),
        ([np.float32(0.5), 2, np.int64(3)], [0.5, 2.0, 3.0], "float8"),
        ([True, 2.5], [1.0, 2.5], "float8"),
        ([np.int64(2**40), 1], [2**40, 1], "int8"),
        ([np.int8(1), 300], [1, 300], "int2"),
        ([np.int8(1), 2**70], [1, 2**70], "numeric"),
    ],
)
def test_lists_mixing_numbers(
    mixed: list[Any], uniform: list[Any], type_name: str, format: PyFormat
) -> None:
    oid, data = dump(registered(), mixed, format)
    assert oid == array_oid(type_name)
    assert (oid, data) == dump(plain(), uniform, format)


@pytest.mark.parametrize("value", [[1, 2, 3], [1.5, None], ["a", "b"], [], [[1, 2], [3, 4]]])
def test_lists_of_one_type_dump_as_psycopg_dumps_them(value: list[Any]) -> None:
    for format in (PyFormat.BINARY, PyFormat.TEXT, PyFormat.AUTO):
        assert dump(registered(), value, format) == dump(plain(), value, format)


def test_other_mixtures_are_still_refused() -> None:
    with pytest.raises(psycopg.DataError, match="mixed types"):
        dump(registered(), [1, "a"], PyFormat.BINARY)


def test_dicts_dump_as_jsonb_with_numpy_values() -> None:
    value = {"n_estimators": np.int64(50), "alpha": np.float32(0.5), "grid": np.arange(2)}
    oid, data = dump(registered(), value, PyFormat.BINARY)
    assert oid == postgres.types["jsonb"].oid
    assert data == b"\x01" + b'{"n_estimators": 50, "alpha": 0.5, "grid": [0, 1]}'
    assert dump(registered(), value, PyFormat.TEXT)[1] == data[1:]


def test_json_refuses_what_json_cannot_spell() -> None:
    with pytest.raises(ValueError):
        json_dumps({"alpha": float("nan")})
    with pytest.raises(TypeError, match="object"):
        json_dumps({"when": object()})
    assert json.loads(json_dumps({"a": [np.float64(0.25), np.bool_(True)]})) == {"a": [0.25, True]}


def test_register_changes_only_the_context_given() -> None:
    adapters = AdaptersMap(psycopg.adapters)
    register(adapters)
    assert adapters.get_dumper(np.ndarray, PyFormat.AUTO) is _adapt.NDArrayBinaryDumper
    with pytest.raises(psycopg.ProgrammingError):
        psycopg.adapters.get_dumper(np.ndarray, PyFormat.AUTO)
    with pytest.raises(psycopg.ProgrammingError):
        dump(plain(), {"a": 1}, PyFormat.AUTO)


def test_train_arguments_in_signature_order() -> None:
    found = _signatures.arguments(
        _signatures.TRAIN_JOINT,
        {
            "test_size": 0.5,
            "project_name": "p",
            "hyperparams": {"a": np.int64(1)},
            "y_column_name": ("x", "y"),
            "search": None,
            "preprocess": '{"c": {}}',
        },
    )
    assert found == [
        ("project_name", "p", "text"),
        ("y_column_name", ["x", "y"], "text[]"),
        ("hyperparams", '{"a": 1}', "jsonb"),
        ("test_size", 0.5, "real"),
        ("preprocess", '{"c": {}}', "jsonb"),
    ]
    with pytest.raises(TypeError, match="unexpected arguments: bogus"):
        _signatures.arguments(_signatures.TRAIN, {"project_name": "p", "bogus": 1})
    assert _signatures.train_function("y")[0] == "train"
    assert _signatures.train_function(["y", "z"])[0] == "train_joint"


def test_the_command_does_not_import_numpy_or_psycopg() -> None:
    """The helpers are imported on first use: ``pyml up`` starts without numpy or psycopg."""
    code = (
        "import sys, pyml.client, pyml.client.cli; "
        "print(sorted({'numpy', 'psycopg'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_the_public_names_resolve() -> None:
    import pyml.client

    for name in pyml.client.__all__:
        assert getattr(pyml.client, name) is not None
    with pytest.raises(AttributeError):
        pyml.client.nothing  # noqa: B018
