"""Exceptions raised by pyml, each carrying the SQLSTATE it is reported with.

Only :mod:`pyml.server._sqlapi` turns these into PostgreSQL errors; everything else
just raises them. Subclasses map to standard SQLSTATEs so that psycopg clients
get specific exception classes (``psycopg.errors.InvalidParameterValue``, ...).
"""

from __future__ import annotations


class PymlError(Exception):
    """Base class: a message in PostgreSQL style, with optional detail and hint."""

    sqlstate = "XX000"
    hint: str | None = None

    def __init__(self, message: str, *, detail: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail
        if hint is not None:
            self.hint = hint


class InvalidParameterValue(PymlError, ValueError):
    """A bad argument value: task, algorithm, strategy, test_size, feature count..."""

    sqlstate = "22023"


class NullValueNotAllowed(PymlError, ValueError):
    """A NULL feature without an impute rule, or a NULL label."""

    sqlstate = "22004"


class CardinalityViolation(PymlError, ValueError):
    """More than one row where one is expected: a key that two source rows share."""

    sqlstate = "21000"


class DataException(PymlError, ValueError):
    """Data that cannot be used: an empty training set, a non-numeric feature."""

    sqlstate = "22000"


class UndefinedObject(PymlError, LookupError):
    """Unknown project, model or dataset."""

    sqlstate = "42704"


class UndefinedTable(PymlError, LookupError):
    """The relation does not exist."""

    sqlstate = "42P01"


class UndefinedColumn(PymlError, LookupError):
    """The column does not exist."""

    sqlstate = "42703"


class ObjectNotInPrerequisiteState(PymlError):
    """Nothing deployed yet, deleting the live model, task mismatch, version mismatch."""

    sqlstate = "55000"


class InsufficientPrivilege(PymlError):
    """The caller lacks a privilege on a project (or a relation)."""

    sqlstate = "42501"


class FeatureNotSupported(PymlError):
    """An optional dependency is not installed (the hint names the install command)."""

    sqlstate = "0A000"


class ProgramLimitExceeded(PymlError):
    """A size limit was exceeded."""

    sqlstate = "54000"


class OutOfMemory(PymlError, MemoryError):
    """Training needed more memory than setting ``pyml.train_memory_limit`` allows."""

    sqlstate = "53200"
    hint = (
        "Train on fewer rows or with smaller hyperparameters, or raise setting "
        '"pyml.train_memory_limit" (up to the value in the server\'s configuration).'
    )


class ActiveSqlTransaction(PymlError):
    """A procedure that commits was called inside a transaction block."""

    sqlstate = "25001"


class ReadOnlySqlTransaction(PymlError):
    """A call that writes, on a hot standby or in a read-only transaction."""

    sqlstate = "25006"


class DataCorrupted(PymlError):
    """A model artifact fails its checksum or is not an allowed format."""

    sqlstate = "XX001"


__all__ = [
    "ActiveSqlTransaction",
    "CardinalityViolation",
    "DataCorrupted",
    "DataException",
    "FeatureNotSupported",
    "InsufficientPrivilege",
    "InvalidParameterValue",
    "NullValueNotAllowed",
    "ObjectNotInPrerequisiteState",
    "OutOfMemory",
    "ProgramLimitExceeded",
    "PymlError",
    "UndefinedColumn",
    "UndefinedObject",
    "UndefinedTable",
]
