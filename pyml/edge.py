"""The device runtime: predict with an exported model, outside the database (issue 16).

Needs only the standard library, numpy and onnxruntime (no psycopg, no scikit-learn, nothing
else of pyml but :mod:`pyml.errors`; ``tests/unit/test_layout.py`` checks it), so it runs on a
small device with ``pip install numpy onnxruntime`` and this file's package.

A model is a pair: ``model.onnx`` (the graph ``pyml.export`` gives: preprocessing and model,
one input per training column) and ``model.json`` (its card, ``pyml.model_card``: task, inputs
and their types, classes, sha256 and size of the graph). Two layouts hold a pair:

- plain: ``FILE.onnx`` and ``FILE.json`` side by side, as ``pyml export -o FILE.onnx`` writes
  them (the graph first, then the card; each through a temporary file and a rename);
- kept by ``pyml pull`` (:func:`install`)::

      DIR/models/<model id>-<sha256 prefix>/model.onnx, model.json   one directory per model
      DIR/current -> models/<...>                                    swapped by a rename
      DIR/model.json -> current/model.json, DIR/model.onnx -> current/model.onnx

  A new model is written into a fresh directory, synced, then ``current`` is replaced by a
  symbolic link renamed over it: a reader resolves ``current`` once and reads both files of
  the one directory it names, so it never pairs a graph with another model's card. The model
  before stays (a reader may be loading it); older ones are deleted.

:class:`Predictor` reads a pair, checks the graph's sha256 and size against the card, and
predicts from rows given by column name, as ``pyml.predict`` / ``predict_label`` /
``predict_proba`` do in SQL. Before each call it looks (one ``stat``) whether the card
changed, and loads the new pair; a pair that does not verify is refused and the model before
kept serving.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from pyml.errors import (
    DataCorrupted,
    DataException,
    FeatureNotSupported,
    InvalidParameterValue,
    ObjectNotInPrerequisiteState,
    UndefinedColumn,
)

CARD = "model.json"
MODEL = "model.onnx"
CURRENT = "current"
VERSIONS = "models"
FORMAT = "onnx"
TASKS = ("regression", "classification", "clustering", "decomposition")
log = logging.getLogger("pyml.edge")


class MissingColumn(UndefinedColumn, KeyError):
    """A row lacks a column the model takes (a ``KeyError`` too, as a mapping's would be)."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return self.message


# ---------------------------------------------------------------------------
# Pairs on disk
# ---------------------------------------------------------------------------


def check_card(card: Any) -> dict[str, Any]:
    """``card`` if it has what a consumer needs, else DataCorrupted naming what is wrong."""

    def refuse(detail: str) -> DataCorrupted:
        return DataCorrupted("model card is not valid", detail=detail)

    if not isinstance(card, dict):
        raise refuse(f"It is a JSON {type(card).__name__}, not an object.")
    for key, kind in (
        ("model_id", int),
        ("task", str),
        ("sha256", str),
        ("bytes", int),
        ("inputs", list),
    ):
        if not isinstance(card.get(key), kind) or isinstance(card.get(key), bool):
            raise refuse(f'Its "{key}" is missing or not a {kind.__name__}.')
    if card.get("format", FORMAT) != FORMAT:
        raise refuse(f'Its format is "{card["format"]}", not "{FORMAT}".')
    if card["task"] not in TASKS:
        raise refuse(f'Its task "{card["task"]}" is unknown.')
    if not re.fullmatch(r"[0-9a-f]{64}", card["sha256"]):
        raise refuse('Its "sha256" is not 64 hexadecimal digits.')
    for spec in card["inputs"]:
        if not (isinstance(spec, dict) and isinstance(spec.get("name"), str)):
            raise refuse("An input has no name.")
    if card["task"] == "classification" and not isinstance(card.get("classes"), list):
        raise refuse("It is a classification model without classes.")
    return card


def verify(card: Mapping[str, Any], data: bytes) -> None:
    """Refuse (DataCorrupted) a graph whose size or sha256 is not the card's."""
    if len(data) != card["bytes"]:
        raise DataCorrupted(
            f"model {card['model_id']} does not match its card",
            detail=f"The graph has {len(data)} bytes; the card says {card['bytes']}.",
        )
    digest = hashlib.sha256(data).hexdigest()
    if digest != card["sha256"]:
        raise DataCorrupted(
            f"model {card['model_id']} does not match its card",
            detail=f"The graph's sha256 is {digest}; the card says {card['sha256']}.",
        )


def _paths(path: Path) -> tuple[Path, Path]:
    """The card and graph of ``path``: a directory (either layout) or a ``.onnx`` file. In
    the layout of :func:`install`, the card's links are resolved once and the graph taken
    beside the file they reach, so both come from the same model's directory."""
    if path.is_dir():
        card = Path(os.path.realpath(path / CARD))
        return card, card.parent / MODEL
    return path.with_suffix(".json"), path


def read(path: str | os.PathLike[str]) -> tuple[dict[str, Any], bytes]:
    """The verified card and graph at ``path`` (a directory or a ``.onnx`` file)."""
    card_path, model_path = _paths(Path(path))
    try:
        text = card_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ObjectNotInPrerequisiteState(
            f'no model in "{path}"',
            detail=f"{card_path} does not exist.",
            hint="Run 'pyml pull PROJECT --dir DIR' or 'pyml export PROJECT -o FILE.onnx'.",
        ) from None
    try:
        card = check_card(json.loads(text))
    except json.JSONDecodeError as exc:
        raise DataCorrupted("model card is not valid", detail=f"{card_path}: {exc}.") from None
    try:
        data = model_path.read_bytes()
    except FileNotFoundError:
        raise DataCorrupted(
            f"model {card['model_id']} has a card but no graph",
            detail=f"{model_path} does not exist.",
        ) from None
    verify(card, data)
    return card, data


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` through a temporary file in its directory, synced, then renamed over it:
    a reader sees the old file or the new one, whole, also after a power cut."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def card_bytes(card: Mapping[str, Any]) -> bytes:
    return (json.dumps(card, indent=2) + "\n").encode()


def write_pair(path: Path, card: Mapping[str, Any], data: bytes) -> Path:
    """The plain layout: the graph at ``path`` and the card beside it (``.json``), graph
    first, each atomically. Returns the card's path."""
    verify(card, data)
    card_path = path.with_suffix(".json")
    if card_path == path:
        raise InvalidParameterValue(
            f'output file "{path}" must not end in ".json"', hint="The card is written there."
        )
    write_atomic(path, data)
    write_atomic(card_path, card_bytes(card))
    return card_path


def installed(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The card of the pair in ``directory`` when it is whole and verifies, else None."""
    try:
        card, _ = read(directory)
    except (OSError, DataCorrupted, ObjectNotInPrerequisiteState):
        return None
    return card


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One writer at a time per directory (an advisory lock on ``DIR/.lock``)."""
    import fcntl

    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def install(directory: str | os.PathLike[str], card: Mapping[str, Any], data: bytes) -> bool:
    """Make the pair ``card``/``data`` the current one of ``directory`` (the layout kept by
    ``pyml pull``); False when it already was. The pair is verified first; the model before
    is kept (a reader may be loading it), older ones deleted."""
    root = Path(directory)
    check_card(dict(card))
    verify(card, data)
    root.mkdir(parents=True, exist_ok=True)
    versions = root / VERSIONS
    versions.mkdir(exist_ok=True)
    name = f"{card['model_id']}-{card['sha256'][:16]}"
    with _locked(root):
        current = root / CURRENT
        before = os.readlink(current) if current.is_symlink() else None
        target = f"{VERSIONS}/{name}"
        whole = installed(versions / name) == dict(card)
        if before == target and whole and _links_ok(root):
            return False
        if not whole:
            staging = Path(tempfile.mkdtemp(prefix=".new-", dir=versions))
            os.chmod(staging, 0o755)  # readable by the device's other users, as the files
            write_atomic(staging / MODEL, data)
            write_atomic(staging / CARD, card_bytes(card))
            shutil.rmtree(versions / name, ignore_errors=True)
            os.rename(staging, versions / name)
            _fsync_dir(versions)
        _symlink_over(target, current)
        for link, file in ((root / CARD, CARD), (root / MODEL, MODEL)):
            if os.path.islink(link) and os.readlink(link) == f"{CURRENT}/{file}":
                continue
            _symlink_over(f"{CURRENT}/{file}", link)
        _fsync_dir(root)
        keep = {name, Path(before).name if before else name}
        for entry in versions.iterdir():
            if entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)
    return True


def _links_ok(root: Path) -> bool:
    return all(
        os.path.islink(root / file) and os.readlink(root / file) == f"{CURRENT}/{file}"
        for file in (CARD, MODEL)
    )


def _symlink_over(target: str, link: Path) -> None:
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)


# ---------------------------------------------------------------------------
# Predictor
# ---------------------------------------------------------------------------


class _Input(NamedTuple):
    name: str
    kind: str  # "double", "float", "string" or "int64"
    base: str | None  # an array column's element "x[3]": "x" ...
    position: int  # ... and 2 (from 0)
    dtype: Any  # numpy's


class _Loaded(NamedTuple):
    card: dict[str, Any]
    session: Any
    inputs: tuple[_Input, ...]
    outputs: tuple[str, ...]
    key: tuple[int, ...] | None


_ELEMENT = re.compile(r"(.+)\[([1-9][0-9]*)\]")
_KINDS = {
    "tensor(double)": "double",
    "tensor(float)": "float",
    "tensor(string)": "string",
    "tensor(int64)": "int64",
}


class Predictor:
    """Predictions from the model at ``path``: a directory kept by ``pyml pull``, a directory
    holding ``model.onnx`` + ``model.json``, or a ``.onnx`` file with its card beside it.

    Rows are mappings of column name to value (the training columns; an array column's
    elements either as ``"x[1]"``, ``"x[2]"``... or as ``"x"``: a sequence). ``None`` is
    NULL. One onnxruntime session, one thread. Thread-safe.
    """

    def __init__(self, path: str | os.PathLike[str], *, threads: int = 1) -> None:
        self.path = Path(path)
        self._threads = threads
        self._lock = threading.Lock()
        self._card_file = str(
            self.path / CARD if self.path.is_dir() else self.path.with_suffix(".json")
        )
        self._refused: tuple[int, ...] | None = None
        self.last_error: Exception | None = None
        """Why the latest changed copy was refused (None once a copy loads)."""
        for attempt in range(3):  # a plain pair being rewritten: its card changes last
            key = self._key()
            try:
                self._loaded = self._load(key)
                break
            except DataCorrupted:
                if attempt == 2 or self._key() == key:
                    raise

    # -- loading -------------------------------------------------------------

    def _key(self) -> tuple[int, ...] | None:
        try:
            st = os.stat(self._card_file)  # follows the links of the pull layout
        except OSError:
            return None
        return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)

    def _load(self, key: tuple[int, ...] | None) -> _Loaded:
        import onnxruntime

        card, data = read(self.path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        try:
            session = onnxruntime.InferenceSession(
                data, options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - onnxruntime's errors have no common class
            raise DataCorrupted(
                f"model {card['model_id']} cannot be loaded by onnxruntime",
                detail=f"{str(exc).splitlines()[0][:300]}.",
            ) from None
        inputs = []
        for node, spec in zip(session.get_inputs(), card["inputs"], strict=False):
            kind = _KINDS.get(node.type)
            if node.name != spec["name"] or kind is None:
                raise DataCorrupted(
                    f"model {card['model_id']} does not match its card",
                    detail=f'The graph\'s input "{node.name}" ({node.type}) is not the '
                    f'card\'s "{spec["name"]}".',
                )
            element = _ELEMENT.fullmatch(node.name)
            base, index = (element[1], int(element[2]) - 1) if element else (None, 0)
            dtype = {"double": np.float64, "float": np.float32, "int64": np.int64}.get(kind, object)
            inputs.append(_Input(node.name, kind, base, index, dtype))
        if len(inputs) != len(card["inputs"]) or len(inputs) != len(session.get_inputs()):
            raise DataCorrupted(
                f"model {card['model_id']} does not match its card",
                detail=f"The graph has {len(session.get_inputs())} inputs; the card "
                f"{len(card['inputs'])}.",
            )
        outputs = tuple(node.name for node in session.get_outputs())
        return _Loaded(card, session, tuple(inputs), outputs, key)

    def _current(self) -> _Loaded:
        """The loaded model, reloaded first when the card on disk changed."""
        loaded = self._loaded
        key = self._key()
        if key == loaded.key or key == self._refused or key is None:
            return loaded
        with self._lock:
            loaded = self._loaded
            if key in (loaded.key, self._refused):
                return loaded
            try:
                self._loaded = loaded = self._load(key)
                self._refused = None
                self.last_error = None
            except (OSError, ValueError, DataCorrupted, ObjectNotInPrerequisiteState) as exc:
                # mid-swap, or a copy that does not verify: keep serving the model before
                self._refused = key
                self.last_error = exc
                log.warning("%s: kept model %s: %s", self.path, loaded.card["model_id"], exc)
        return loaded

    def reload(self) -> bool:
        """Look for a new copy now; True when the model changed."""
        before = self._loaded
        return self._current() is not before

    @property
    def card(self) -> dict[str, Any]:
        """The card of the model in use."""
        return self._current().card

    @property
    def model_id(self) -> int:
        return int(self.card["model_id"])

    @property
    def task(self) -> str:
        return str(self.card["task"])

    @property
    def columns(self) -> list[str]:
        """The model's inputs, in training order."""
        return [spec.name for spec in self._current().inputs]

    # -- predictions ---------------------------------------------------------

    def predict(self, row: Mapping[str, Any]) -> float:
        """What ``pyml.predict`` gives for ``row``: the value (regression), the class as a
        number (classification; true = 1), the cluster (clustering)."""
        return self.predict_many([row])[0]

    def predict_many(
        self, rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]
    ) -> list[float]:
        """:meth:`predict` of many rows at once: a list of rows, or a mapping of column name
        to a sequence of values (one per row)."""
        loaded = self._current()
        task = loaded.card["task"]
        if task == "decomposition":
            raise InvalidParameterValue(
                f"model {loaded.card['model_id']} is a decomposition model",
                hint="Use decompose() to get the components of a row.",
            )
        if task == "classification":
            classes = loaded.card["classes"]
            if any(isinstance(c, str) for c in classes):
                raise InvalidParameterValue(
                    f"model {loaded.card['model_id']} has text class labels",
                    hint="Use predict_label() to get the label, or predict_proba().",
                )
            lookup = [float(c) for c in classes]
            return [lookup[i] for i in self._labels(loaded, rows)]
        outputs = self._run(loaded, rows)
        name = "label" if task == "clustering" else "variable"
        values = outputs.get(name, next(iter(outputs.values())))
        return [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]

    def predict_label(self, row: Mapping[str, Any]) -> str:
        """What ``pyml.predict_label`` gives for ``row``: the class as text."""
        loaded = self._current()
        self._classification(loaded, "labels")
        classes = loaded.card["classes"]
        return label_text(classes[self._labels(loaded, [row])[0]])

    def predict_proba(self, row: Mapping[str, Any]) -> list[float]:
        """What ``pyml.predict_proba`` gives for ``row``: one probability per class, in the
        order of the card's ``classes``."""
        loaded = self._current()
        self._classification(loaded, "classes")
        if loaded.card.get("probabilities") is False:  # scores, not probabilities
            raise FeatureNotSupported(
                f'algorithm "{loaded.card.get("algorithm")}" does not give class probabilities',
                hint="Use predict() or predict_label().",
            )
        outputs = self._run(loaded, [row])
        proba = outputs.get("probabilities", list(outputs.values())[-1])
        return [float(p) for p in np.asarray(proba, dtype=np.float64)[0]]

    def decompose(self, row: Mapping[str, Any]) -> list[float]:
        """What ``pyml.decompose`` gives for ``row`` (decomposition models)."""
        loaded = self._current()
        if loaded.card["task"] != "decomposition":
            raise ObjectNotInPrerequisiteState(
                f"model {loaded.card['model_id']} is a {loaded.card['task']} model, not a "
                "decomposition one"
            )
        values = self._run(loaded, [row])
        return [float(v) for v in np.asarray(next(iter(values.values())), np.float64)[0]]

    # -- internals -----------------------------------------------------------

    @staticmethod
    def _classification(loaded: _Loaded, what: str) -> None:
        if loaded.card["task"] != "classification":
            raise InvalidParameterValue(
                f"model {loaded.card['model_id']} is a {loaded.card['task']} model, which has "
                f"no {what}",
                hint="Use predict().",
            )

    def _labels(
        self, loaded: _Loaded, rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]
    ) -> list[int]:
        outputs = self._run(loaded, rows)
        label = outputs.get("label", next(iter(outputs.values())))
        return [int(i) for i in np.asarray(label).reshape(-1)]

    def _run(
        self, loaded: _Loaded, rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]
    ) -> dict[str, np.ndarray]:
        if not isinstance(rows, Mapping) and len(rows) == 1:  # one row: the short way
            outputs = loaded.session.run(None, _feeds(loaded, rows[0]))
            return dict(zip(loaded.outputs, outputs, strict=True))
        if isinstance(rows, Mapping):
            columns = [_column_of(rows, spec, loaded) for spec in loaded.inputs]
        else:
            columns = [[_value(row, spec, loaded) for row in rows] for spec in loaded.inputs]
        n = len(columns[0]) if columns else len(rows)
        feeds = {}
        for spec, values in zip(loaded.inputs, columns, strict=True):
            if len(values) != n:
                raise InvalidParameterValue(
                    f'column "{spec.name}" has {len(values)} values; the first one has {n}'
                )
            feeds[spec.name] = _array(spec, values).reshape(-1, 1)
        if n == 0:
            return {name: np.empty((0,)) for name in loaded.outputs}
        return dict(zip(loaded.outputs, loaded.session.run(None, feeds), strict=True))


def _feeds(loaded: _Loaded, row: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The graph's inputs for one row."""
    feeds = {}
    for spec in loaded.inputs:
        value = row[spec.name] if spec.name in row else _value(row, spec, loaded)
        if spec.kind == "string":
            feeds[spec.name] = np.array([[text(value)]], dtype=object)
        elif spec.kind == "int64":
            feeds[spec.name] = _array(spec, [value]).reshape(1, 1)
        else:
            feeds[spec.name] = np.array([[_number(spec, value)]], dtype=spec.dtype)
    return feeds


def _number(spec: _Input, value: Any) -> float:
    if value is None:
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataException(f'feature "{spec.name}" must be a number, got {value!r}') from None
    if math.isinf(number):
        raise InvalidParameterValue(f'feature "{spec.name}" must not be infinite')
    return number


def _missing(name: str, loaded: _Loaded) -> MissingColumn:
    return MissingColumn(
        f'row has no column "{name}"',
        detail=f"Model {loaded.card['model_id']} takes "
        + ", ".join(f'"{spec.name}"' for spec in loaded.inputs)
        + ".",
        hint="Pass None for a NULL.",
    )


def _element(values: Any, spec: _Input, loaded: _Loaded) -> Any:
    flat = np.asarray(values, dtype=object).reshape(-1)
    if spec.position >= len(flat):
        raise InvalidParameterValue(
            f'column "{spec.base}" has {len(flat)} elements; model '
            f'{loaded.card["model_id"]} takes "{spec.name}"'
        )
    return flat[spec.position]


def _value(row: Mapping[str, Any], spec: _Input, loaded: _Loaded) -> Any:
    if spec.name in row:
        return row[spec.name]
    if spec.base is not None and spec.base in row:
        return _element(row[spec.base], spec, loaded)
    raise _missing(spec.name, loaded)


def _column_of(columns: Mapping[str, Sequence[Any]], spec: _Input, loaded: _Loaded) -> Any:
    name = spec.name if spec.name in columns or spec.base is None else spec.base
    if name not in columns:
        raise _missing(spec.name, loaded)
    values = columns[name]
    if isinstance(values, str | bytes) or not hasattr(values, "__len__"):
        raise InvalidParameterValue(
            f'column "{name}" must be a sequence of values, one per row, got {values!r}',
            hint="Pass a list of rows, or a mapping of column name to values; "
            "predict() takes one row.",
        )
    if name == spec.name:
        return values
    return [_element(v, spec, loaded) for v in values]


def _array(spec: _Input, values: Any) -> np.ndarray:
    """One input's values as the graph takes them: NULL numbers as NaN, NULL text as ""."""
    if spec.kind == "string":
        return np.array([text(v) for v in values], dtype=object)
    if spec.kind == "int64":
        if any(v is None for v in values):
            raise DataException(f'feature "{spec.name}" must not be NULL')
        return np.asarray(values, dtype=np.int64)
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        bad = next(v for v in values if not _is_number(v))
        raise DataException(f'feature "{spec.name}" must be a number, got {bad!r}') from None
    if np.isinf(array).any():
        raise InvalidParameterValue(f'feature "{spec.name}" must not be infinite')
    return array if spec.kind == "double" else array.astype(np.float32)


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return value is None
    return True


def text(value: Any) -> str:
    """A value of a text (category) input as PostgreSQL prints it; NULL is ""."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def label_text(value: Any) -> str:
    """A class label as ``pyml.predict_label`` gives it: true/false, 2 rather than 2.0."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


__all__ = ["MissingColumn", "Predictor", "check_card", "install", "read", "verify", "write_pair"]
