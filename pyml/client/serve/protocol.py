"""The Open Inference Protocol (KServe V2 / Triton REST) over a pyml model: request tensors
into the model's inputs, predictions into response tensors. No I/O here.

- Inputs by name, one tensor per model input (``[n]`` or ``[n, 1]``; an array column as one
  tensor ``[n, k]`` named after the column), BYTES for text (category) columns; or ONE
  numeric tensor ``[n, features]`` (any name) for a model whose inputs are all numbers.
  JSON ``data`` flat or nested, ``null`` for NULL (imputed where the model imputes, refused
  where SQL refuses it); or Triton's binary tensor extension (``binary_data_size``, the
  ``Inference-Header-Content-Length`` header), which ``tritonclient`` uses by default.
- Outputs: ``predict`` (regression values, cluster, class label: FP64 for numeric labels,
  BYTES for text ones) and, for classifiers with probabilities, ``predict_proba`` ``[n,
  classes]`` (the labels in its ``parameters.classes``, JSON text); ``decompose`` for a
  decomposition model. The request's ``outputs`` choose some, and ``binary_data`` the
  binary form.
- Errors are :class:`ProtocolError` (the HTTP status and a message; PymlError messages
  as SQL shows them).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from pyml.core.model import Model, label_text
from pyml.errors import FeatureNotSupported, PymlError

if TYPE_CHECKING:
    import numpy as np

NUMBER_TYPES = {
    "BOOL": "|b1",
    "UINT8": "|u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "|i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
SERVED_FORMATS = ("lightgbm-text",)  # native formats served without an ONNX part
MANY_ROWS = 100_000  # rows in one request at most


class ProtocolError(Exception):
    """A request the service refuses: ``status`` (400, 404, ...) and a message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def refusal(exc: PymlError) -> ProtocolError:
    """A PymlError as the protocol's 400: the message, then DETAIL and HINT as SQL has them."""
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    for extra in (getattr(exc, "detail", None), getattr(exc, "hint", None)):
        if extra:
            text += f" ({extra.rstrip('.')})"
    return ProtocolError(400, text)


class Served:
    """A registry model as the protocol shows it: inputs, outputs, and prediction."""

    def __init__(self, model: Model):
        self.model = model
        self.id: int = model.stored_id
        self.project = model.project
        self.project_id = model.project_id
        names = list(model.feature_names)
        rules = model.rules
        self.text = [bool(rules and rules[j].category) for j in range(len(names))]
        self.names = names
        self.index = {name: j for j, name in enumerate(names)}
        # array columns: a tensor [n, k] named after the column fills its k inputs
        self.arrays: dict[str, list[int]] = {}
        for j, name in enumerate(names):
            column, bracket, _ = name.partition("[")
            if bracket and name.endswith("]"):
                self.arrays.setdefault(column, []).append(j)
        self.numeric = not any(self.text)
        task = model.task
        classes = model.classes or []
        self.labels = [label_text(c) for c in classes]
        self.text_labels = (
            task == "classification" and bool(classes) and isinstance(classes[0], str)
        )
        self.probabilities = task == "classification" and self._has_probabilities()
        if task == "decomposition":
            self.outputs = {"decompose": "FP64"}
        else:
            self.outputs = {"predict": "BYTES" if self.text_labels else "FP64"}
            if self.probabilities:
                self.outputs["predict_proba"] = "FP64"

    def _has_probabilities(self) -> bool:
        model = self.model
        if model.serves_onnx:
            return bool(model.runtime.probabilities)
        return model.format == "lightgbm-text"

    # -- metadata ------------------------------------------------------------------

    def metadata(self, versions: Sequence[int]) -> dict[str, Any]:
        """``GET /v2/models/{project}``: inputs, outputs, versions (model ids)."""
        inputs = [
            {"name": name, "datatype": "BYTES" if text else "FP64", "shape": [-1, 1]}
            for name, text in zip(self.names, self.text, strict=True)
        ]
        outputs: list[dict[str, Any]] = []
        for name, datatype in self.outputs.items():
            shape = [-1] if name == "predict" else [-1, -1]
            if name == "predict_proba":
                shape = [-1, len(self.labels)]
            outputs.append({"name": name, "datatype": datatype, "shape": shape})
        return {
            "name": self.project,
            "versions": [str(v) for v in versions],
            "platform": "pyml",
            "inputs": inputs,
            "outputs": outputs,
            "parameters": {
                "model_id": self.id,
                "task": self.model.task,
                "algorithm": self.model.algorithm,
                "classes": self.labels if self.model.task == "classification" else None,
                "features_tensor": self.numeric,  # one FP64 [n, features] tensor is accepted
            },
        }

    # -- requests ------------------------------------------------------------------

    def inputs(self, tensors: list[dict[str, Any]], binary: list[bytes | None]) -> np.ndarray:
        """The model's input rows from the request's tensors (``binary[i]``: the bytes of
        tensor ``i`` when sent in binary form)."""
        import numpy as np

        if not tensors:
            raise ProtocolError(400, 'the request has no "inputs"')
        k = len(self.names)
        first = tensors[0]
        if len(tensors) == 1 and first.get("name") not in self.index:
            shape = _shape(first)
            if len(shape) == 2 and shape[1] == k and first.get("name") not in self.arrays:
                if not self.numeric:
                    raise ProtocolError(
                        400,
                        f'model {self.id} of "{self.project}" has text inputs: send one tensor '
                        "per input (BYTES for "
                        + ", ".join(
                            f'"{n}"' for n, t in zip(self.names, self.text, strict=True) if t
                        )
                        + ")",
                    )
                values = _values(first, binary[0], shape)
                return self._numbers(values, shape[0])
            if len(shape) == 2 and first.get("name") not in self.arrays:
                raise ProtocolError(
                    400,
                    f'input "{first.get("name")}" has shape {shape}: model {self.id} of '
                    f'"{self.project}" takes {k} features, as one tensor [n, {k}] or one '
                    "tensor per input (" + ", ".join(f'"{n}"' for n in self.names[:20]) + ")",
                )
        n: int | None = None
        columns: list[Any] = [None] * k
        for i, tensor in enumerate(tensors):
            name = tensor.get("name")
            if not isinstance(name, str):
                raise ProtocolError(400, f'input {i + 1} has no "name"')
            if name in self.index:
                targets = [self.index[name]]
            elif name in self.arrays:
                targets = self.arrays[name]
            else:
                raise ProtocolError(
                    400,
                    f'unknown input "{name}": model {self.id} of "{self.project}" takes '
                    + ", ".join(f'"{n}"' for n in self.names),
                )
            shape = _shape(tensor)
            rows = shape[0] if shape else 0
            width = 1 if len(shape) == 1 else math.prod(shape[1:])
            if len(shape) not in (1, 2) or width != len(targets):
                want = "[n]" if len(targets) == 1 else f"[n, {len(targets)}]"
                raise ProtocolError(
                    400, f'input "{name}" has shape {shape}, expected {want} (or [n, 1])'
                )
            if n is None:
                n = rows
            elif rows != n:
                raise ProtocolError(400, f'input "{name}" has {rows} rows, others have {n}')
            text = self.text[targets[0]]
            values = _values(tensor, binary[i], shape, text=text)
            for offset, j in enumerate(targets):
                columns[j] = values[offset :: len(targets)] if len(targets) > 1 else values
        missing = [self.names[j] for j in range(k) if columns[j] is None]
        if missing:
            raise ProtocolError(
                400, "missing input " + ", ".join(f'"{name}"' for name in missing[:10])
            )
        rows = n or 0
        if self.numeric:
            matrix = np.empty((rows, k), dtype=np.float64)
            for j, column in enumerate(columns):
                matrix[:, j] = _floats(column, self.names[j])
            return self._numbers(matrix.ravel(), rows)
        X = np.empty((rows, k), dtype=object)
        for j, column in enumerate(columns):
            if self.text[j]:
                X[:, j] = [_category(v) for v in _as_list(column)]
            else:
                X[:, j] = _floats(column, self.names[j]).tolist()
        return X

    def _numbers(self, values: Any, rows: int) -> np.ndarray:
        """Rows of numbers, checked as SQL checks an array of features."""
        import numpy as np

        from pyml.core.model import features_from_batch

        model = self.model
        k = len(self.names)
        if rows == 0:
            return np.empty((0, k), dtype=np.float64)
        try:
            if model.has_preprocessing:
                array = np.asarray(values, dtype=np.float64).reshape(rows, k)
                model.check_inputs(array)
                return array
            flat = _as_list(values) if not isinstance(values, np.ndarray) else values
            return features_from_batch(flat, k, self.names)
        except PymlError as exc:
            raise refusal(exc) from None
        except (TypeError, ValueError):
            raise ProtocolError(400, "the input data must be numbers") from None

    # -- prediction ----------------------------------------------------------------

    def predict(self, X: np.ndarray, wanted: Sequence[str] | None) -> dict[str, np.ndarray]:
        """The outputs named in ``wanted`` (None: every output) for input rows ``X``."""
        import numpy as np

        names = list(self.outputs) if not wanted else list(wanted)
        for name in names:
            if name not in self.outputs:
                raise ProtocolError(
                    400,
                    f'unknown output "{name}": model {self.id} of "{self.project}" has '
                    + ", ".join(f'"{n}"' for n in self.outputs),
                )
        model = self.model
        result: dict[str, np.ndarray] = {}
        try:
            for name in names:
                if not len(X):
                    width = len(self.labels) if name == "predict_proba" else 0
                    shape = (0, width) if name != "predict" else (0,)
                    result[name] = np.empty(shape, dtype=object if self.text_labels else float)
                elif name == "decompose":
                    result[name] = model.decompose(X)
                elif name == "predict_proba":
                    result[name] = model.predict_proba(X)
                elif self.text_labels:
                    result[name] = np.asarray(model.predict_label(X), dtype=object)
                else:
                    result[name] = np.asarray(model.predict(X), dtype=np.float64)
        except FeatureNotSupported as exc:
            raise ProtocolError(400, str(exc.args[0])) from None
        except PymlError as exc:
            raise refusal(exc) from None
        return result


def unservable(model_id: int, project: str, fmt: str) -> ProtocolError:
    return ProtocolError(
        501,
        f'model {model_id} of "{project}" cannot be served: it has no ONNX form and its '
        f'format "{fmt}" is not served natively (only LightGBM is); use pyml.predict in SQL',
    )


# ---------------------------------------------------------------------------
# Reading a request
# ---------------------------------------------------------------------------


def parse(body: bytes, header_length: int | None) -> tuple[dict[str, Any], list[bytes | None]]:
    """The request's JSON and, for each input, its binary bytes (or None)."""
    if header_length is not None:
        if not 0 < header_length <= len(body):
            raise ProtocolError(400, "Inference-Header-Content-Length is out of range")
        head, rest = body[:header_length], memoryview(body)[header_length:]
    else:
        head, rest = body, memoryview(b"")
    try:
        request = orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise ProtocolError(400, "the request body must be a JSON object")
    tensors = request.get("inputs")
    if not isinstance(tensors, list) or not all(isinstance(t, dict) for t in tensors):
        raise ProtocolError(400, '"inputs" must be a list of tensors')
    binary: list[bytes | None] = []
    offset = 0
    for tensor in tensors:
        parameters = tensor.get("parameters") or {}
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is None:
            binary.append(None)
            continue
        if not isinstance(size, int) or size < 0 or offset + size > len(rest):
            raise ProtocolError(400, f'input "{tensor.get("name")}": bad "binary_data_size"')
        binary.append(bytes(rest[offset : offset + size]))
        offset += size
    if offset != len(rest):
        raise ProtocolError(400, "the binary data is longer than the inputs say")
    return request, binary


def wanted_outputs(request: dict[str, Any]) -> tuple[list[str] | None, set[str]]:
    """The outputs asked for (None: all) and those asked in binary form."""
    outputs = request.get("outputs")
    parameters = request.get("parameters")
    every_binary = isinstance(parameters, dict) and parameters.get("binary_data_output") is True
    if outputs is None:
        return None, {"*"} if every_binary else set()
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise ProtocolError(400, '"outputs" must be a list of {"name": ...}')
    binary = {
        o["name"]
        for o in outputs
        if every_binary
        or (isinstance(o.get("parameters"), dict) and o["parameters"].get("binary_data"))
    }
    return [o["name"] for o in outputs], binary


def _shape(tensor: dict[str, Any]) -> list[int]:
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise ProtocolError(
            400, f'input "{tensor.get("name")}": "shape" must be a list of sizes, got {shape}'
        )
    if shape[0] > MANY_ROWS:
        raise ProtocolError(400, f"at most {MANY_ROWS} rows per request, got {shape[0]}")
    return shape


def _values(
    tensor: dict[str, Any], binary: bytes | None, shape: list[int], text: bool = False
) -> Any:
    """The tensor's values, flat: a numpy array (numbers) or a list (text, or JSON with
    nulls)."""
    import numpy as np

    name = tensor.get("name")
    datatype = tensor.get("datatype")
    count = math.prod(shape)
    if datatype == "BYTES":
        if not text:
            raise ProtocolError(
                400, f'input "{name}" is a number: send a numeric datatype, not BYTES'
            )
    elif datatype not in NUMBER_TYPES:
        raise ProtocolError(
            400, f'input "{name}": unknown datatype {datatype!r} (expected FP64, FP32, INT64, ...)'
        )
    if binary is not None:
        if datatype == "BYTES":
            values: Any = _bytes_elements(binary, name)
        else:
            dtype = np.dtype(NUMBER_TYPES[str(datatype)])
            if len(binary) != count * dtype.itemsize:
                raise ProtocolError(
                    400, f'input "{name}": {len(binary)} bytes of binary data for shape {shape}'
                )
            values = np.frombuffer(binary, dtype=dtype)
    else:
        data = tensor.get("data")
        if not isinstance(data, list):
            raise ProtocolError(400, f'input "{name}" has no "data" (a list)')
        values = _flatten(data) if data and isinstance(data[0], list) else data
    if len(values) != count:
        raise ProtocolError(
            400, f'input "{name}" has {len(values)} values for shape {shape} ({count} expected)'
        )
    if datatype == "BYTES":
        return [v.decode() if isinstance(v, bytes) else v for v in values]
    if not isinstance(values, np.ndarray):
        for v in values:
            if not (v is None or (isinstance(v, int | float))):
                raise ProtocolError(
                    400, f'input "{name}" is {datatype}, but holds {type(v).__name__} {v!r}'
                )
        if text:  # a category column given as numbers: compared as text, like SQL does
            return values
    return values


def _bytes_elements(data: bytes, name: Any) -> list[bytes]:
    """Triton's BYTES binary form: each element as a 4-byte little-endian length, then
    its bytes."""
    values, offset = [], 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise ProtocolError(400, f'input "{name}": truncated BYTES binary data')
        (size,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if offset + size > len(data):
            raise ProtocolError(400, f'input "{name}": truncated BYTES binary data')
        values.append(data[offset : offset + size])
        offset += size
    return values


def _flatten(data: list[Any]) -> list[Any]:
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _as_list(values: Any) -> list[Any]:
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _floats(values: Any, name: str) -> np.ndarray:
    """A column of numbers (None: NaN)."""
    import numpy as np

    if isinstance(values, np.ndarray):
        return values.astype(np.float64)
    try:
        return np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise ProtocolError(400, f'input "{name}" must hold numbers') from None


def _category(value: Any) -> str | None:
    from pyml.core.preprocess import category_text

    return category_text(value)


# ---------------------------------------------------------------------------
# Writing a response
# ---------------------------------------------------------------------------


def response(
    served: Served,
    request: dict[str, Any],
    outputs: dict[str, np.ndarray],
    binary: set[str],
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when some outputs are binary."""
    import numpy as np

    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, values in outputs.items():
        datatype = served.outputs[name]
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(values.shape)}
        if name == "predict_proba":
            tensor["parameters"] = {"classes": orjson.dumps(served.labels).decode()}
        if "*" in binary or name in binary:
            if datatype == "BYTES":
                blob = b"".join(
                    struct.pack("<I", len(b)) + b for b in (str(v).encode() for v in values.ravel())
                )
            else:
                blob = np.ascontiguousarray(values, dtype="<f8").tobytes()
            tensor.setdefault("parameters", {})["binary_data_size"] = len(blob)
            blobs.append(blob)
        else:
            tensor["data"] = values.ravel().tolist()
        tensors.append(tensor)
    body: dict[str, Any] = {
        "model_name": served.project,
        "model_version": str(served.id),
        "outputs": tensors,
    }
    if isinstance(request.get("id"), str):
        body["id"] = request["id"]
    head = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return head, None
    return head + b"".join(blobs), len(head)
