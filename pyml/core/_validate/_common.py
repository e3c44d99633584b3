"""What the checks of every format share: the finding, its error, how values are shown."""

from __future__ import annotations

from pyml.errors import DataCorrupted

LIGHTGBM = "lightgbm-text"
SKOPS = "skops"

MAX_LEAVES = 131_072  # LightGBM's own bound on num_leaves
# LightGBM computes contributions (TreeSHAP) and leaf depths recursively, one C stack frame
# per level: a deep enough chain of splits overflows the stack. Trained trees are far
# shallower than this.
MAX_DEPTH = 5_000
INT32_MAX = 2**31 - 1


class Invalid(Exception):
    """A finding; its text is the DETAIL of the DataCorrupted raised for it."""


def refuse(fmt: str, exc: Invalid) -> DataCorrupted:
    return DataCorrupted(f'model artifact is not a valid "{fmt}" file', detail=str(exc))


def show(value: bytes | str, limit: int = 40) -> str:
    """A value for a message: quoted, shortened, non-printable bytes escaped."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if len(text) > limit:
        text = text[:limit] + "..."
    return '"' + text.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
