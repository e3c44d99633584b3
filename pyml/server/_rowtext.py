"""The text output of a relation's rows, read as SQL would read them.

A statement's rows reach pyml as the row type's text output (``(1,"a, b",,2.5)``): the sync
trigger of a small statement reads them so, and the queue of async streams keeps them so,
parsed here rather than cast by SQL (no cast or operator of a user-defined type runs in the
worker's session). Numbers come out as the float64 that ``::float8`` would give; NULL,
NaN and Infinity are refused (22004, 22023) unless the caller says otherwise. No SQL here.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyml.core.preprocess import infinity_text
from pyml.errors import InvalidParameterValue, NullValueNotAllowed, PymlError, UndefinedColumn

if TYPE_CHECKING:
    from pyml.server import store


class Layout:
    """The columns of a relation as its row text lists them (attribute order)."""

    def __init__(self, relation: store.Relation):
        self.relation = relation
        self.names = [c.name for c in relation.columns]
        self._where = {name: i for i, name in enumerate(self.names)}

    def index(self, name: str) -> int:
        try:
            return self._where[name]
        except KeyError:
            raise UndefinedColumn(
                f'column "{name}" does not exist in relation "{self.relation.qualified}"',
                hint="The stream needs it (its key, or a feature of the live model).",
            ) from None

    def numbers(
        self,
        row: list[str | None],
        at: Sequence[int],
        key_column: str,
        key: str | None,
        imputed: frozenset[str] = frozenset(),
        lenient: bool = False,
    ) -> list[float]:
        """The features of a row; NULL (or NaN) is NaN in ``imputed`` columns, else 22004;
        Infinity and -Infinity are 22023. ``lenient``: scalars are never refused here (NULL
        as NaN), the caller tells the model's refusals apart (see :func:`_refused`)."""
        values: list[float] = []
        for i in at:
            text = row[i]
            column = self.relation.columns[i]
            if text is None and (lenient or column.name in imputed) and column.category != "A":
                values.append(float("nan"))
                continue
            if text is None:
                raise null_feature(key_column, key, column.name)
            if column.category == "A":
                items = text.replace("{", "").replace("}", "").split(",")
                if "NULL" in items:
                    raise null_feature(key_column, key, column.name)
                for item in items:
                    value = number(item, column.type[:-2], column.elem_category)
                    if value - value:  # NaN or +-Infinity (0.0 for every finite number)
                        raise bad_feature(key_column, key, column.name, value)
                    values.append(value)
            else:
                value = number(text, column.type, column.category)
                # NaN (imputed like NULL where the model imputes) or +-Infinity
                if (
                    value - value
                    and not lenient
                    and not (value != value and column.name in imputed)
                ):
                    raise bad_feature(key_column, key, column.name, value)
                values.append(value)
        return values


def number(text: str, sql_type: str, category: str) -> float:
    """A value's text output as the float64 that ``::float8`` would give."""
    if category == "B":
        return 1.0 if text == "t" else 0.0
    if category != "N":
        raise InvalidParameterValue(f"a feature of type {sql_type} is not a number")
    if sql_type == "real":  # the exact float4 value, as the batch paths read it
        return _FLOAT4.unpack(_FLOAT4.pack(float(text)))[0]  # type: ignore[no-any-return]
    return float(text)


_FLOAT4 = struct.Struct("f")


def parse_record(text: str) -> list[str | None]:
    """The fields of a row's text output, such as ``(1,"a, b",,2.5)``: a NULL is an empty
    field; a quoted field doubles its quotes and escapes backslashes."""
    fields: list[str | None] = []
    end = len(text) - 1  # the closing parenthesis
    i = 1
    while True:
        if i < end and text[i] == '"':
            i += 1
            chars = []
            while True:
                c = text[i]
                if c == '"':
                    if text[i + 1] == '"':
                        chars.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                if c == "\\":
                    chars.append(text[i + 1])
                    i += 2
                    continue
                chars.append(c)
                i += 1
            fields.append("".join(chars))
        else:
            j = text.find(",", i, end)
            if j < 0:
                j = end
            fields.append(text[i:j] or None)
            i = j
        if i >= end:
            return fields
        i += 1  # the comma


def bad_feature(key_column: str, key: str | None, name: str, value: float) -> PymlError:
    """The error of a sync stream's row with a NaN (22004) or infinite (22023) feature."""
    if value != value:
        return null_feature(key_column, key, name)
    return InvalidParameterValue(
        "features must not be infinite",
        detail=f'The row with {key_column} = {key} has {infinity_text(value)} in "{name}".',
        hint="The row was not inserted: a sync stream scores it in the same transaction.",
    )


def null_feature(key_column: str, key: str | None, name: str) -> NullValueNotAllowed:
    """The error of a sync stream's row that has a NULL (or NaN) feature (22004)."""
    return NullValueNotAllowed(
        "features must not be NULL",
        detail=f'The row with {key_column} = {key} has a NULL (or NaN) in "{name}".',
        hint="The row was not inserted: a sync stream scores it in the same transaction.",
    )
