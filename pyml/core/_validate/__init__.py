"""Structural checks of model artifacts, run before native code reads them.

Native model code trusts its input. LightGBM's text loader reads a tree until the next
``=`` or newline (past the end of a file cut short), splits the text at the offsets in
``tree_sizes``, aborts the whole process when a tree fails to parse (the error is thrown on
an OpenMP thread), and its prediction code indexes features, children, category bitsets and
linear coefficients with the stored numbers, unchecked. scikit-learn's Cython trees,
histogram-gradient-boosting predictors and KD/ball trees do the same, and so do XGBoost's
loader (it follows ``parents``) and predictor (children, split features, category bitsets).
Inside PostgreSQL any of these is a crashed backend, and a restart of every session.

So every artifact is checked here first, against what the native code assumes, and refused
with :class:`~pyml.errors.DataCorrupted` (XX001) and a detail naming the place:

- :func:`lightgbm_text` reads LightGBM's text format completely (header, every tree, the
  sections after the trees) without importing lightgbm. It is strict: pyml stores only what
  LightGBM 4's ``model_to_string`` writes, so anything else is refused, even when LightGBM
  would load it.
- :func:`xgboost_json` reads XGBoost's JSON model (gbtree, DART or linear boosters) without
  importing xgboost: every tree one binary tree rooted at node 0 with its right child next to
  its left (the predictor assumes it), parents consistent, split features in range,
  categorical splits consistent, tree_info within the output groups. Also strict: what
  XGBoost writes, less what pyml never makes (multi-target trees, string categories).
- :func:`onnx_model` reads an ONNX model's protobuf without importing onnx: operator domains
  and operators allowed, no functions, no external data, subgraphs included.
- :func:`sklearn_object` walks a loaded scikit-learn object graph (pipelines, ensembles,
  multi-output wrappers, column transformers: any attribute, list, tuple, dict or object
  array) and checks the native structures in it.

Checks run once per model load, not per prediction.
"""

from pyml.core._validate._common import LIGHTGBM, MAX_DEPTH, MAX_LEAVES, SKOPS
from pyml.core._validate._lightgbm import lightgbm_text
from pyml.core._validate._onnx import onnx_model
from pyml.core._validate._sklearn import sklearn_object
from pyml.core._validate._xgboost import XGBOOST, xgboost_json

__all__ = [
    "LIGHTGBM",
    "MAX_DEPTH",
    "MAX_LEAVES",
    "SKOPS",
    "XGBOOST",
    "lightgbm_text",
    "onnx_model",
    "sklearn_object",
    "xgboost_json",
]
