"""Reading rows of a sync stream's small statements from their text form (pure code)."""

from __future__ import annotations

import struct

import pytest

from pyml.errors import InvalidParameterValue
from pyml.server._rowtext import number as _number
from pyml.server._rowtext import parse_record
from pyml.server.streaming import _inline


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("(1,0.01,,2)", ["1", "0.01", None, "2"]),
        ('(1,"a, b",x)', ["1", "a, b", "x"]),
        ('("say ""hi""","back\\\\slash")', ['say "hi"', "back\\slash"]),
        ('("")', [""]),
        ("(,)", [None, None]),
        ('("{1,2,3}",t)', ["{1,2,3}", "t"]),
        ('(7,"(nested, row)",)', ["7", "(nested, row)", None]),
    ],
)
def test_parse_record(text: str, fields: list[str | None]) -> None:
    assert parse_record(text) == fields


def test_real_values_are_the_exact_float4() -> None:
    exact = struct.unpack("f", struct.pack("f", 0.1))[0]
    assert _number("0.1", "real", "N") == exact != 0.1
    assert _number("0.1", "double precision", "N") == 0.1
    assert _number("12.50", "numeric(5,2)", "N") == 12.5
    assert (_number("t", "boolean", "B"), _number("f", "boolean", "B")) == (1.0, 0.0)


def test_text_is_not_a_number() -> None:
    with pytest.raises(InvalidParameterValue):
        _number("abc", "text", "S")


def test_payload_inline_only_when_small() -> None:
    assert _inline(["1", "2", "3"])
    assert not _inline([str(i) for i in range(101)])
    assert _inline(["k" * 3000, "k" * 3000])
    assert not _inline(["k" * 4000, "k" * 4000])
    assert not _inline(["\U0001f600" * 700])  # 4 UTF-8 bytes each; Python escapes to 12
