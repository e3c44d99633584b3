"""The portable model bundle: one model of the registry as a self-contained document.

A bundle copies a model into another database with no network path to the first (an edge
PostgreSQL: ``pyml.export(..., format => 'pyml')`` there, ``pyml.import_model`` here), or
registers a model trained outside the database (on a Dask cluster). It is UTF-8 JSON, one
object, written by :func:`dumps` and read back, checked, by :func:`loads`. No pickle, ever:
its files are the model's stored parts (:mod:`pyml.core.artifacts`), each with its sha256,
loaded only through the same checks as any stored model (:func:`model`).

The object (every key required unless marked optional; no other key is accepted)::

    format    "pyml-model"
    version   1
    source    {pyml_version, exported_at (ISO 8601),
               optional: server ("host:port" of the server that exported it),
               database (text), model_id (integer, there), trained_by ("pyml.train",
               "dask", ...), cluster (any object: where it was trained)}
    project   {name, task}
    snapshot  {relation_name, y_column_name ([text], [] for none), test_size, test_sampling,
               columns (as pyml.snapshots.columns: per column, in order, name, type, role
               "feature" or "label", and any statistics of the training rows), row_count,
               data_fingerprint,
               optional: preprocess (the preprocessing asked for, as pyml.snapshots.preprocess)}
    model     {algorithm, hyperparams, metrics, num_features, feature_names,
               classes (a list for classification, else null), preprocess (object or null),
               runtime, lineage (object or null),
               optional: search ("grid", "random" or null), search_params, search_args,
               baseline (object or null)}
    files     [{part, format, sha256, data (base64)}, ...]

What serving needs beyond the contract's keys is already in them: the relation columns a
model was trained on, in order, and their SQL types are ``snapshot.columns`` (role
``feature``); rows passed by name are matched against those names, and ``feature_names``
must be those columns in order (an array column's elements as ``column[1]``, ...). The
optional model keys (``search``, ``search_params``, ``search_args``, ``baseline``: the
distribution of its predictions on the test rows, which drift checks compare with) keep the
copy's catalog rows equal to the original's; a bundle without them imports with none.

Files: the model's part(s) in its algorithm's format (``lightgbm-text`` for LightGBM, one
per target; ``xgboost-json``, ``catboost-cbm``; ``skops`` for scikit-learn), then
optionally its preprocessing (``skops-preprocessor``, with a rule in ``model.preprocess``
for each feature column) and its ONNX graph (``onnx``), as :func:`pyml.core.artifacts.dump`
and training make them; :func:`files_of` turns parts into a bundle's files.

In memory (what :func:`dumps` takes and :func:`loads` returns), ``files[i]["data"]`` is the
file's bytes; in the document it is their base64. The document is canonical: keys sorted, no
spaces, UTF-8.

Errors: anything malformed is 22023 (:class:`~pyml.errors.InvalidParameterValue`): not UTF-8
JSON (or nested deeper than Python reads, or a number beyond a float), another format or
version, a missing, unknown or mistyped key, text PostgreSQL cannot store (NUL, a lone
surrogate), integers beyond their columns, ``feature_names`` that disagree with
``num_features`` or with the feature columns, an unknown task, algorithm or sampling, an
algorithm that does not do the task, classes that do not fit the task, bad base64, two files
with one part number, model files in another format than the algorithm's, a preprocessing
file without rules. A file whose sha256 does not match its data, or whose format is not an
allowed artifact format, is XX001 (:class:`~pyml.errors.DataCorrupted`), as for a stored
model; so is, in :func:`model`, a file that fails to load or its structural checks. A model
file that loads but takes another number of inputs, or gives another number of classes, than
the bundle says is 22023 (:func:`model`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pyml.core import artifacts
from pyml.core.params import SEARCHES, TASKS, TEST_SAMPLINGS
from pyml.core.registry import FileRow
from pyml.errors import DataCorrupted, InvalidParameterValue

if TYPE_CHECKING:
    from pyml.core.model import Model

FORMAT = "pyml-model"
VERSION = 1
# The formats a bundle's file may have: a model's, its preprocessing's, its ONNX graph's.
FILE_FORMATS = (*artifacts.FORMATS, artifacts.PREPROCESSOR, artifacts.ONNX)
ROLES = ("feature", "label")

HINT = (
    "A bundle is what pyml.export(..., format => 'pyml') returns (pyml export --format pyml "
    "writes it to a file)."
)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ELEMENT = re.compile(r"(.*)\[[0-9]+\]")  # an array column's element: column[i]

# A key's check: (required, what it must be as a message says it, test of the value).
Check = tuple[bool, str, Callable[[Any], bool]]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _is_texts(value: Any) -> bool:
    return isinstance(value, list) and all(_is_text(v) for v in value)


def _is_object(value: Any) -> bool:
    return isinstance(value, dict)


def _or_null(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or test(value)


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _one_of(choices: Iterable[str]) -> Callable[[Any], bool]:
    allowed = tuple(choices)
    return lambda value: value in allowed


_TEXT = "non-empty text"
_INT4, _INT8 = 2**31 - 1, 2**63 - 1  # the columns' largest values
_KEYS: dict[str, dict[str, Check]] = {
    "": {
        "format": (True, f'"{FORMAT}"', lambda v: v == FORMAT),
        "version": (True, "an integer", _is_int),
        "source": (True, "an object", _is_object),
        "project": (True, "an object", _is_object),
        "snapshot": (True, "an object", _is_object),
        "model": (True, "an object", _is_object),
        "files": (True, "a non-empty array", lambda v: isinstance(v, list) and len(v) > 0),
    },
    "source": {
        "pyml_version": (True, _TEXT, _is_text),
        "exported_at": (True, "an ISO 8601 timestamp", _is_timestamp),
        "server": (False, "text", _or_null(lambda v: isinstance(v, str))),
        "database": (False, "text", _or_null(lambda v: isinstance(v, str))),
        "model_id": (False, "an integer", _or_null(_is_int)),
        "trained_by": (False, _TEXT, _or_null(_is_text)),
        "cluster": (False, "an object", _or_null(_is_object)),
    },
    "project": {
        "name": (True, _TEXT, _is_text),
        "task": (True, "one of " + ", ".join(TASKS), _one_of(TASKS)),
    },
    "snapshot": {
        "relation_name": (True, _TEXT, _is_text),
        "y_column_name": (True, "an array of column names", _is_texts),
        "test_size": (True, "a number", _is_number),
        "test_sampling": (True, "one of " + ", ".join(TEST_SAMPLINGS), _one_of(TEST_SAMPLINGS)),
        "columns": (True, "a non-empty array", lambda v: isinstance(v, list) and len(v) > 0),
        "row_count": (True, "an integer >= 0", lambda v: _is_int(v) and 0 <= v <= _INT8),
        "data_fingerprint": (True, "text", lambda v: isinstance(v, str)),
        "preprocess": (False, "an object", _or_null(_is_object)),
    },
    "model": {
        "algorithm": (True, _TEXT, _is_text),
        "hyperparams": (True, "an object", _is_object),
        "metrics": (True, "an object", _is_object),
        "num_features": (True, "an integer > 0", lambda v: _is_int(v) and 0 < v <= _INT4),
        "feature_names": (True, "an array of names", _is_texts),
        "classes": (True, "an array or null", _or_null(lambda v: isinstance(v, list))),
        "preprocess": (True, "an object or null", _or_null(_is_object)),
        "runtime": (True, _TEXT, _is_text),
        "lineage": (True, "an object or null", _or_null(_is_object)),
        "search": (False, "one of " + ", ".join(SEARCHES), _or_null(_one_of(SEARCHES))),
        "search_params": (False, "an object", _or_null(_is_object)),
        "search_args": (False, "an object", _or_null(_is_object)),
        "baseline": (False, "an object or null", _or_null(_is_object)),
    },
    "column": {
        "name": (True, _TEXT, _is_text),
        "type": (True, _TEXT, _is_text),
        "role": (True, "one of " + ", ".join(ROLES), _one_of(ROLES)),
    },
    "file": {
        "part": (True, "an integer >= 0", lambda v: _is_int(v) and 0 <= v <= _INT4),
        "format": (True, "text", lambda v: isinstance(v, str)),
        "sha256": (True, "64 lowercase hexadecimal digits", lambda v: isinstance(v, str)),
        "data": (True, "base64 text", lambda v: isinstance(v, str)),
    },
}
# Objects whose keys are open: a snapshot column's statistics (its other keys).
_OPEN = frozenset({"column"})


# ---------------------------------------------------------------------------
# Writing and reading
# ---------------------------------------------------------------------------


def dumps(bundle: Mapping[str, Any]) -> bytes:
    """The bundle as canonical JSON (UTF-8, keys sorted, no spaces), its files' bytes as
    base64. Raises as :func:`loads` would for a bundle that would not load back."""
    try:
        files = [
            {**file, "data": base64.b64encode(bytes(file["data"])).decode("ascii")}
            for file in bundle["files"]
        ]
    except (KeyError, TypeError) as exc:
        raise InvalidParameterValue(
            'bundle key "files" must be an array of files, each with its data as bytes',
            detail=f"{type(exc).__name__}: {exc}.",
        ) from None
    try:
        data = json.dumps(
            {**bundle, "files": files},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        ).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue(
            "bundle cannot be written as JSON", detail=f"{str(exc).capitalize()}."
        ) from None
    loads(data)
    return data


def loads(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    """The bundle in ``data``, checked: its keys and their types, and each file's format
    and sha256 (its content is checked when it is loaded, by :func:`model`). Files come
    back with ``data`` as bytes."""
    try:
        return _loads(data)
    except RecursionError:
        raise InvalidParameterValue("bundle is nested too deeply", hint=HINT) from None


def _loads(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    try:
        text = bytes(data).decode("utf-8")
        bundle = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_float=_finite,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidParameterValue(
            "bundle is not a JSON document",
            detail=f"{str(exc).capitalize()}.",
            hint=HINT,
        ) from None
    if not isinstance(bundle, dict):
        raise InvalidParameterValue(
            f"bundle must be a JSON object, got {_json_type(bundle)}",
            hint=HINT,
        )
    if bundle.get("format") != FORMAT:
        raise InvalidParameterValue(
            f'bundle has format {json.dumps(bundle.get("format"))}, not "{FORMAT}"',
            hint=HINT,
        )
    if bundle.get("version") != VERSION or not _is_int(bundle.get("version")):
        raise InvalidParameterValue(
            f"bundle has version {json.dumps(bundle.get('version'))}, but this pyml reads "
            f"version {VERSION}",
            hint="Export it with the same pyml version as this database's.",
        )
    _keys(bundle, "", "bundle")
    _storable_text({k: v for k, v in bundle.items() if k != "files"}, "bundle")
    for file in bundle["files"]:
        if isinstance(file, dict):
            _storable_text({k: v for k, v in file.items() if k != "data"}, "bundle key files")
    for section in ("source", "project", "snapshot", "model"):
        _keys(bundle[section], section, f'bundle key "{section}"')
    _check_snapshot(bundle["snapshot"])
    _check_model(bundle["model"], bundle["project"]["task"], bundle["snapshot"])
    bundle["files"] = _files(bundle["files"])
    _check_files(bundle)
    return bundle


def files_of(rows: Iterable[FileRow | artifacts.Part]) -> list[dict[str, Any]]:
    """A model's stored parts (rows of ``pyml.files``, or :class:`~pyml.core.artifacts.Part`
    as :func:`~pyml.core.artifacts.dump` makes them) as a bundle's files."""
    return [
        {"part": r.part, "format": r.format, "sha256": r.sha256, "data": bytes(r.data)}
        for r in rows
    ]


def file_rows(bundle: Mapping[str, Any]) -> list[FileRow]:
    """The bundle's files as rows of ``pyml.files`` (model id aside), ordered by part."""
    return [
        FileRow(f["part"], f["format"], f["sha256"], f["data"])
        for f in sorted(bundle["files"], key=lambda f: f["part"])
    ]


def feature_columns(bundle: Mapping[str, Any]) -> list[str]:
    """The relation columns the model was trained on, in order (``snapshot.columns``)."""
    return [c["name"] for c in bundle["snapshot"]["columns"] if c["role"] == "feature"]


def model(bundle: Mapping[str, Any]) -> Model:
    """The bundle's model, every file loaded and checked as a stored model's are (the
    ONNX graph too, by onnxruntime): XX001 for one that cannot be loaded. A bundle from
    :func:`loads`."""
    rows = file_rows(bundle)
    onnx = artifacts.onnx_part(rows)
    fmt, parts, preprocessor = artifacts.load(rows)
    spec = bundle["model"]
    try:
        loaded = _model(bundle, spec, fmt, parts, preprocessor, onnx)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # the rules' content
        raise InvalidParameterValue(
            'bundle key "model.preprocess" does not fit its features',
            detail=f"{type(exc).__name__}: {exc}.",
        ) from None
    _fits(loaded, parts, preprocessor is not None)
    if loaded.serves_onnx:
        try:
            loaded.runtime  # noqa: B018 - onnxruntime parses the graph now
        except DataCorrupted:
            raise
        except Exception as exc:
            raise DataCorrupted(
                'model artifact is not a valid "onnx" file', detail=f"{exc}."
            ) from exc
    return loaded


def _fits(model: Model, parts: list[Any], preprocessed: bool) -> None:
    """22023 when the loaded model file takes another number of inputs than the bundle says
    (without preprocessing: with it, the estimator sees the transformed columns) or gives
    another number of classes."""
    classes = len(model.classes or [])
    for part in parts:
        width = getattr(part, "num_features", None)  # a LightGBM booster
        outputs = getattr(part, "num_classes", None)
        if width is None:
            width = getattr(part, "n_features_in_", None)  # a scikit-learn estimator
            found = getattr(part, "classes_", None)
            outputs = len(found) if model.task == "classification" and found is not None else None
        elif model.task == "classification":
            outputs = 2 if outputs == 1 else outputs  # a binary booster has one output
        else:
            outputs = None
        if not preprocessed and isinstance(width, int) and width != model.num_features:
            raise InvalidParameterValue(
                f"bundle's model file takes {width} features, but the bundle names "
                f"{model.num_features}"
            )
        if outputs is not None and outputs != classes:
            raise InvalidParameterValue(
                f"bundle's model file gives {outputs} classes, but the bundle names {classes}"
            )


def _model(
    bundle: Mapping[str, Any],
    spec: Mapping[str, Any],
    fmt: str,
    parts: list[Any],
    preprocessor: Any,
    onnx: bytes | None,
) -> Model:
    from pyml.core.model import Model

    return Model(
        id=None,
        project=bundle["project"]["name"],
        task=bundle["project"]["task"],
        algorithm=spec["algorithm"],
        feature_names=list(spec["feature_names"]),
        classes=spec["classes"],
        format=fmt,
        parts=parts,
        columns=feature_columns(bundle),
        preprocess=spec["preprocess"] or {},
        preprocessor=preprocessor,
        onnx=onnx,
    )


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f'duplicate key "{key}"')
        result[key] = value
    return result


def _storable_text(value: Any, where: str) -> None:
    """22023 for text PostgreSQL cannot store (in text or jsonb): a NUL character, or a
    lone surrogate (which JSON's \\u escapes can write and UTF-8 cannot)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _storable_text(key, where)
            _storable_text(item, where)
    elif isinstance(value, list):
        for item in value:
            _storable_text(item, where)
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            bad = True
        else:
            bad = "\x00" in value
        if bad:
            raise InvalidParameterValue(
                f"{where} holds text PostgreSQL cannot store",
                detail="It has a NUL character (\\u0000) or a lone surrogate (\\ud800 to \\udfff).",
            )


def _finite(text: str) -> float:
    """A JSON number with a fraction or exponent; one too large for a float (1e999) is
    refused rather than read as infinity, which jsonb cannot hold."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _keys(obj: Mapping[str, Any], kind: str, where: str) -> None:
    """22023 for a missing required key, a mistyped one, or (in closed objects) an unknown one."""
    checks = _KEYS[kind]
    if kind not in _OPEN:
        unknown = sorted(set(obj) - set(checks))
        if unknown:
            raise InvalidParameterValue(
                f'{where} has unknown key "{unknown[0]}"',
                detail="Its keys are: " + ", ".join(checks) + ".",
            )
    for key, (required, what, test) in checks.items():
        if key not in obj:
            if required:
                raise InvalidParameterValue(f'{where} has no key "{key}"')
            continue
        if not test(obj[key]):
            shown = json.dumps(obj[key])
            shown = shown if len(shown) <= 40 else _json_type(obj[key])
            raise InvalidParameterValue(f"{_inner(where, key)} must be {what}, got {shown}")


def _inner(where: str, key: str) -> str:
    """'bundle key "model.algorithm"' from 'bundle key "model"' and 'algorithm'."""
    if where.endswith('"'):
        return f'{where[:-1]}.{key}"'
    return f'{where} key "{key}"'


def _check_snapshot(snapshot: Mapping[str, Any]) -> None:
    names = []
    for i, column in enumerate(snapshot["columns"]):
        where = f'bundle key "snapshot.columns[{i}]"'
        if not isinstance(column, dict):
            raise InvalidParameterValue(f"{where} must be an object, got {_json_type(column)}")
        _keys(column, "column", where)
        names.append(column["name"])
    if len(set(names)) != len(names):
        raise InvalidParameterValue('bundle key "snapshot.columns" names a column twice')
    if not any(c["role"] == "feature" for c in snapshot["columns"]):
        raise InvalidParameterValue('bundle key "snapshot.columns" has no feature column')
    labels = [c["name"] for c in snapshot["columns"] if c["role"] == "label"]
    if labels != list(snapshot["y_column_name"]):
        raise InvalidParameterValue(
            'bundle keys "snapshot.y_column_name" and "snapshot.columns" disagree',
            detail=f"The label columns are {json.dumps(labels)} in one and "
            f"{json.dumps(snapshot['y_column_name'])} in the other.",
        )
    size = snapshot["test_size"]
    rows = snapshot["row_count"]
    if not (0 < size < 1 or (1 < size < rows and float(size).is_integer())):
        raise InvalidParameterValue(
            'bundle key "snapshot.test_size" must be in the range (0, 1) or a whole number '
            f"of rows > 1 and below the row count ({rows}), got {size:g}"
        )


def _check_model(spec: Mapping[str, Any], task: str, snapshot: Mapping[str, Any]) -> None:
    from pyml.core import algorithms

    try:
        algorithms.resolve(spec["algorithm"], task)
    except InvalidParameterValue as exc:
        raise InvalidParameterValue(
            f"bundle's {exc.message}", detail=exc.detail, hint=exc.hint
        ) from None
    names = spec["feature_names"]
    if len(names) != spec["num_features"]:
        raise InvalidParameterValue(
            'bundle keys "model.feature_names" and "model.num_features" disagree',
            detail=f"It names {len(names)} features but says there are {spec['num_features']}.",
        )
    columns = [c["name"] for c in snapshot["columns"] if c["role"] == "feature"]
    if not _inputs_follow(names, columns):
        raise InvalidParameterValue(
            'bundle keys "model.feature_names" and "snapshot.columns" disagree',
            detail="The inputs must be the feature columns in order (an array column's "
            "elements as column[1], column[2], ...); the feature columns are "
            + ", ".join(f'"{c}"' for c in columns)
            + ".",
        )
    classes = spec["classes"]
    if task == "classification":
        if not classes or len(classes) < 2:
            raise InvalidParameterValue(
                'bundle key "model.classes" must list at least two classes for task '
                '"classification"'
            )
        if any(isinstance(c, list | dict) or c is None for c in classes):
            raise InvalidParameterValue('bundle key "model.classes" must hold labels')
    elif classes is not None:
        raise InvalidParameterValue(f'bundle key "model.classes" must be null for task "{task}"')


def _inputs_follow(names: list[str], columns: list[str]) -> bool:
    """Whether ``names`` are ``columns`` in order, each once or as its elements
    ``column[i]`` (as :func:`pyml.core.preprocess.input_rules` reads them)."""
    position = 0
    for column in columns:
        taken = 0
        while position < len(names) and (
            names[position] == column or _column_of(names[position]) == column
        ):
            position += 1
            taken += 1
        if taken == 0:
            return False
    return position == len(names)


def _column_of(name: str) -> str | None:
    element = _ELEMENT.fullmatch(name)
    return element.group(1) if element else None


# The format of a model's part, by the library of its algorithm (scikit-learn: skops).
_NATIVE = {"lightgbm": "lightgbm-text", "xgboost": "xgboost-json", "catboost": "catboost-cbm"}


def _check_files(bundle: Mapping[str, Any]) -> None:
    """22023 when the files do not fit the model: a part in another format than its
    algorithm's, a preprocessing part without a rule for each feature column."""
    from pyml.core import algorithms

    spec = bundle["model"]
    library = algorithms.resolve(spec["algorithm"], bundle["project"]["task"]).library
    expected = _NATIVE.get(library, "skops")
    special = (artifacts.PREPROCESSOR, artifacts.ONNX)
    found = sorted({f["format"] for f in bundle["files"] if f["format"] not in special})
    if found and found != [expected]:
        raise InvalidParameterValue(
            f'bundle\'s algorithm "{spec["algorithm"]}" is stored as "{expected}", but its '
            f'model files are "{", ".join(found)}"'
        )
    if any(f["format"] == artifacts.PREPROCESSOR for f in bundle["files"]):
        rules = spec["preprocess"] or {}
        missing = [c for c in feature_columns(bundle) if not isinstance(rules.get(c), dict)]
        if missing:
            raise InvalidParameterValue(
                f'bundle key "model.preprocess" has no rule for feature "{missing[0]}"',
                detail="A model with a preprocessing file has a rule for every feature column.",
            )


def _files(files: list[Any]) -> list[dict[str, Any]]:
    """The files with their data decoded, checked: 22023 for a malformed entry, XX001 for a
    format that is not allowed or a sha256 that does not match."""
    decoded = []
    for i, file in enumerate(files):
        where = f'bundle key "files[{i}]"'
        if not isinstance(file, dict):
            raise InvalidParameterValue(f"{where} must be an object, got {_json_type(file)}")
        _keys(file, "file", where)
        if not _SHA256.fullmatch(file["sha256"]):
            raise InvalidParameterValue(
                f"{_inner(where, 'sha256')} must be 64 lowercase hexadecimal digits"
            )
        try:
            data = base64.b64decode(file["data"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidParameterValue(f"{_inner(where, 'data')} is not base64") from None
        decoded.append({**file, "data": data})
    parts = [f["part"] for f in decoded]
    if len(set(parts)) != len(parts):
        raise InvalidParameterValue('bundle key "files" has two files with one part number')
    for file in decoded:
        if file["format"] not in FILE_FORMATS:
            raise DataCorrupted(
                f'model artifact has format "{file["format"]}", which is not allowed',
                detail="Allowed formats: " + ", ".join(FILE_FORMATS) + ".",
            )
        if hashlib.sha256(file["data"]).hexdigest() != file["sha256"]:
            raise DataCorrupted(
                f"model artifact part {file['part']} fails its checksum",
                detail="The bundle's sha256 does not match the file's bytes.",
            )
    return decoded
