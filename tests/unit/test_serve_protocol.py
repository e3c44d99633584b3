"""The Open Inference Protocol's request reading (pyml.client.serve.protocol), no server."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from pyml.client.serve.protocol import ProtocolError, _flatten, _values, parse, wanted_outputs


def test_json_body() -> None:
    request, binary = parse(b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP64"}]}', None)
    assert request["inputs"][0]["name"] == "a" and binary == [None]


def test_binary_body_as_tritonclient_sends_it() -> None:
    head = {
        "inputs": [
            {"name": "x", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}},
            {
                "name": "t",
                "shape": [2],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": 13},
            },
        ]
    }
    text = b"".join(struct.pack("<I", len(s)) + s for s in (b"paris", b""))
    numbers = np.array([1.5, -2.0], dtype="<f4").tobytes()
    header = json.dumps(head).encode()
    request, binary = parse(header + numbers + text, len(header))
    assert binary == [numbers, text]
    x = _values(request["inputs"][0], binary[0], [2])
    assert x.tolist() == [1.5, -2.0]
    assert _values(request["inputs"][1], binary[1], [2], text=True) == ["paris", ""]


@pytest.mark.parametrize(
    ("body", "length", "message"),
    [
        (b"{", None, "not valid JSON"),
        (b"[]", None, "must be a JSON object"),
        (b'{"inputs": 3}', None, '"inputs" must be a list'),
        (b'{"inputs": []}', 99, "out of range"),
        (
            b'{"inputs": [{"name": "a", "parameters": {"binary_data_size": 9}}]}',
            None,
            "binary_data_size",
        ),
        (b'{"inputs": []}xyz', 14, "longer than the inputs say"),
    ],
)
def test_bad_bodies(body: bytes, length: int | None, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as caught:
        parse(body, length)
    assert caught.value.status == 400


def test_values_are_checked_against_the_shape_and_datatype() -> None:
    tensor = {"name": "a", "datatype": "FP64", "data": [[1, 2], [3, 4]]}
    assert _values(tensor, None, [2, 2]) == [1, 2, 3, 4]
    with pytest.raises(ProtocolError, match="has 4 values for shape"):
        _values(tensor, None, [3, 2])
    with pytest.raises(ProtocolError, match="unknown datatype"):
        _values({**tensor, "datatype": "FLOAT"}, None, [2, 2])
    with pytest.raises(ProtocolError, match="holds str"):
        _values({"name": "a", "datatype": "INT64", "data": ["1"]}, None, [1])
    with pytest.raises(ProtocolError, match="bytes of binary data"):
        _values({"name": "a", "datatype": "FP64"}, b"\0" * 7, [1])
    with pytest.raises(ProtocolError, match="truncated BYTES"):
        _values({"name": "a", "datatype": "BYTES"}, b"\x05\0\0\0ab", [1], text=True)


def test_flatten_nested_data() -> None:
    assert _flatten([[1, [2, 3]], [], [4]]) == [1, 2, 3, 4]


def test_wanted_outputs() -> None:
    assert wanted_outputs({}) == (None, set())
    assert wanted_outputs({"parameters": {"binary_data_output": True}}) == (None, {"*"})
    names, binary = wanted_outputs(
        {"outputs": [{"name": "predict"}, {"name": "p", "parameters": {"binary_data": True}}]}
    )
    assert names == ["predict", "p"] and binary == {"p"}
    with pytest.raises(ProtocolError):
        wanted_outputs({"outputs": [{"nam": "x"}]})
