"""The text a deferred registry write passes to the type input functions
(pyml.server._db._text): what PL/Python would have bound, read back the same."""

from __future__ import annotations

import math
import struct

import pytest

from pyml.server._db import _text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, None),
        (True, b"t"),
        (False, b"f"),
        (0, b"0"),
        (-9223372036854775808, b"-9223372036854775808"),
        (0.1, b"0.1"),
        (1e-310, b"1e-310"),
        (math.nan, b"NaN"),
        (math.inf, b"Infinity"),
        (-math.inf, b"-Infinity"),
        ("", b""),
        ('a "b", (c)\\', b'a "b", (c)\\'),
    ],
)
def test_text_of_each_kind(value: object, text: bytes | None) -> None:
    assert _text(value, utf8=True) == text


def test_a_float_reads_back_as_the_same_float4() -> None:
    # float4in of the shortest text of a double that is a float4 gives that float4
    for bits in (0x3F800001, 0x00000001, 0x7F7FFFFF, 0x3EAAAAAB, 0xC2F6E979):
        value = struct.unpack("<f", struct.pack("<I", bits))[0]
        text = _text(value, utf8=True)
        assert text is not None
        assert struct.pack("<f", float(text)) == struct.pack("<I", bits)


def test_text_outside_utf8_databases_must_be_ascii() -> None:
    assert _text("plain", utf8=False) == b"plain"
    assert _text("é", utf8=True) == "é".encode()
    with pytest.raises(ValueError):
        _text("é", utf8=False)


def test_values_without_a_text_here_are_refused() -> None:
    for value in ([1.0], {"a": 1}, b"bytes"):
        with pytest.raises(ValueError):
            _text(value, utf8=True)
