"""ONNX models (``pyml.files`` format ``onnx``), checked before onnxruntime parses them.

The check reads the protobuf wire format itself: importing the ``onnx`` package takes most of
a second (its ``ml_dtypes`` extension), which a session's first prediction cannot pay. It
walks the model, its graph, the graph's nodes and initializers, and the subgraphs of the
operators that have one (``Scan``), and refuses (XX001):

- anything that is not well-formed protobuf where it reads (a varint running past the end, a
  length past its message, a wire type ONNX never uses);
- an operator domain other than ``ai.onnx`` / ``ai.onnx.ml``, in the imports or a node, and an
  operator not in :data:`OPERATORS` (the operators pyml's converters emit: a custom or
  contrib operator would reach native code nobody here has checked);
- model-local functions and training information;
- tensors whose data lives outside the file (``data_location = EXTERNAL`` or
  ``external_data``): onnxruntime would open a path named by the bytes.

It does not check the attributes of ordinary operators (a tree ensemble's node arrays):
onnxruntime checks those when it builds its kernels, and refuses an inconsistent graph with
an error rather than a crash. :func:`pyml.core.onnxpart.validate` adds ``onnx.checker``
at training time, where the import is paid anyway.
"""

from __future__ import annotations

from collections.abc import Iterator

from pyml.errors import DataCorrupted

MAX_BYTES = 512 * 1024 * 1024  # a bound on what onnxruntime is asked to parse
DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
# What skl2onnx / onnxmltools emit for the algorithms and preprocessing pyml converts
# (tests/unit/test_onnx.py checks every converted model against it).
OPERATORS = frozenset(
    {
        "Abs", "Add", "ArgMax", "ArgMin", "Cast", "Concat", "ConstantOfShape", "CumSum", "Div",
        "Einsum", "Equal", "Erf", "Exp", "Flatten", "Gather", "GatherElements", "Gemm",
        "Identity", "IsNaN", "Less", "MatMul", "Max", "Min", "Mul", "Neg", "Not", "Pow",
        "Reciprocal", "ReduceMean", "ReduceSum", "ReduceSumSquare", "Reshape", "Scan", "Shape",
        "Sigmoid", "Softmax", "Sqrt", "Squeeze", "Sub", "Sum", "TopK", "Transpose", "Unsqueeze",
        "Where",
        # ai.onnx.ml
        "ArrayFeatureExtractor", "Imputer", "LabelEncoder", "LinearClassifier",
        "LinearRegressor", "Normalizer", "OneHotEncoder", "SVMClassifier", "SVMRegressor",
        "Scaler", "TreeEnsembleClassifier", "TreeEnsembleRegressor", "ZipMap",
    }
)  # fmt: skip
WITH_SUBGRAPHS = frozenset({"Scan"})

# field numbers of onnx.proto (stable since ONNX 1.0)
_MODEL_OPSET, _MODEL_GRAPH, _MODEL_TRAINING, _MODEL_FUNCTIONS = 8, 7, 20, 25
_OPSET_DOMAIN = 1
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE = 1, 5, 15
_NODE_OP_TYPE, _NODE_ATTRIBUTE, _NODE_DOMAIN, _NODE_NAME = 4, 5, 7, 3
_ATTR_G, _ATTR_GRAPHS = 6, 11
_TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION, _TENSOR_NAME = 13, 14, 8
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_MAX_NESTING = 8  # subgraphs within subgraphs


def onnx_model(data: bytes, max_bytes: int = MAX_BYTES) -> None:
    """Refuse (XX001) ONNX bytes onnxruntime should not parse; see the module's doc."""
    if len(data) > max_bytes:
        raise _refuse(f"It has {len(data)} bytes; the bound is {max_bytes}.")
    view = memoryview(data)
    graphs = 0
    for field, value in _fields(view, 0, len(view)):
        if field == _MODEL_OPSET:
            domain = _text(view, value, _OPSET_DOMAIN)
            if domain not in DOMAINS:
                raise _refuse(f'It imports operator domain "{domain}".')
        elif field == _MODEL_GRAPH:
            graphs += 1
            _graph(view, _span(value), 0)
        elif field == _MODEL_FUNCTIONS:
            raise _refuse("It defines functions.")
        elif field == _MODEL_TRAINING:
            raise _refuse("It has training information.")
    if graphs != 1:
        raise _refuse("It has no graph." if not graphs else "It has more than one graph.")


def _graph(view: memoryview, span: tuple[int, int], depth: int) -> None:
    if depth > _MAX_NESTING:
        raise _refuse(f"Its subgraphs nest more than {_MAX_NESTING} deep.")
    for field, value in _fields(view, *span):
        if field == _GRAPH_NODE:
            _node(view, _span(value), depth)
        elif field == _GRAPH_INITIALIZER:
            _tensor(view, _span(value))
        elif field == _GRAPH_SPARSE:
            for inner, tensor in _fields(view, *_span(value)):
                if inner in (_SPARSE_VALUES, _SPARSE_INDICES):
                    _tensor(view, _span(tensor))


def _node(view: memoryview, span: tuple[int, int], depth: int) -> None:
    op_type = domain = name = ""
    attributes = []
    for field, value in _fields(view, *span):
        if field == _NODE_OP_TYPE:
            op_type = _decode(view, value)
        elif field == _NODE_DOMAIN:
            domain = _decode(view, value)
        elif field == _NODE_NAME:
            name = _decode(view, value)
        elif field == _NODE_ATTRIBUTE:
            attributes.append(_span(value))
    if domain not in DOMAINS:
        raise _refuse(f'Node "{name}" has operator domain "{domain}".')
    if op_type not in OPERATORS:
        raise _refuse(f'Node "{name}" has operator "{op_type}", which pyml does not run.')
    if op_type in WITH_SUBGRAPHS:
        for attribute in attributes:
            for field, value in _fields(view, *attribute):
                if field in (_ATTR_G, _ATTR_GRAPHS):
                    _graph(view, _span(value), depth + 1)


def _tensor(view: memoryview, span: tuple[int, int]) -> None:
    name = ""
    for field, value in _fields(view, *span):
        if field == _TENSOR_NAME:
            name = _decode(view, value)
        elif field == _TENSOR_EXTERNAL_DATA or (field == _TENSOR_DATA_LOCATION and value != 0):
            raise _refuse(f'Tensor "{name}" refers to external data.')


# -- the wire format -----------------------------------------------------------------


def _fields(view: memoryview, start: int, end: int) -> Iterator[tuple[int, int | tuple[int, int]]]:
    """(field number, value) of a message: a varint's value, or a length-delimited field's
    (start, end); fixed-width fields are skipped."""
    i = start
    while i < end:
        key, i = _varint(view, i, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise _refuse(f"It does not parse: field number 0 at byte {i}.")
        if wire == 0:
            value, i = _varint(view, i, end)
            yield field, value
        elif wire == 2:
            size, i = _varint(view, i, end)
            if size > end - i:
                raise _refuse(f"It does not parse: a field runs past its message at byte {i}.")
            yield field, (i, i + size)
            i += size
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            if i > end:
                raise _refuse("It does not parse: a fixed-width field runs past its message.")
        else:
            raise _refuse(f"It does not parse: wire type {wire} at byte {i}.")


def _varint(view: memoryview, i: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= end or shift > 63:
            raise _refuse(f"It does not parse: a malformed varint at byte {i}.")
        byte = view[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def _span(value: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(value, int):
        raise _refuse("It does not parse: a message field holds a number.")
    return value


def _decode(view: memoryview, value: int | tuple[int, int]) -> str:
    start, end = _span(value)
    try:
        return bytes(view[start:end]).decode()
    except UnicodeDecodeError:
        raise _refuse(f"It does not parse: text that is not UTF-8 at byte {start}.") from None


def _text(view: memoryview, value: int | tuple[int, int], field_number: int) -> str:
    """A text field of a message (the empty string when absent)."""
    for field, inner in _fields(view, *_span(value)):
        if field == field_number:
            return _decode(view, inner)
    return ""


def _refuse(detail: str) -> DataCorrupted:
    return DataCorrupted('model artifact is not a valid "onnx" file', detail=detail)
