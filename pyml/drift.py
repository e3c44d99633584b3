"""Statistics of data distributions, in pure numpy (no database access).

At training time :func:`describe_numeric` and :func:`describe_categorical`
summarise each column of the training rows; they are stored with the snapshot
so that later drift checks never re-read the training data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

QUANTILES = tuple(round(q, 2) for q in np.linspace(0.0, 1.0, 11))
HISTOGRAM_BINS = 10
# Inner quantiles come from an evenly strided sample of at most this many values (rank
# error ~0.3 %, ample for decile bins); min, max and every other statistic use every value.
QUANTILE_SAMPLE = 100_000


def describe_numeric(values: np.ndarray) -> dict[str, Any]:
    """Count, nulls (NaN), mean, std, min, max, deciles and a histogram of ``values``."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    present = flat[~np.isnan(flat)]
    stats: dict[str, Any] = {"count": int(flat.size), "nulls": int(flat.size - present.size)}
    if present.size == 0:
        return stats
    counts, edges = np.histogram(present, bins=HISTOGRAM_BINS)
    sample = present[:: -(-present.size // QUANTILE_SAMPLE)]
    quantiles = [float(q) for q in np.quantile(sample, QUANTILES)]
    quantiles[0], quantiles[-1] = float(present.min()), float(present.max())
    stats.update(
        mean=float(present.mean()),
        std=float(present.std()),
        min=float(present.min()),
        max=float(present.max()),
        quantiles=quantiles,
        histogram={"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    )
    return stats


def describe_categorical(values: Sequence[Any]) -> dict[str, Any]:
    """Count, nulls and per-category counts (as text) of ``values``."""
    counts = Counter("NULL" if v is None else _label_text(v) for v in values)
    nulls = counts.pop("NULL", 0)
    return {
        "count": len(values),
        "nulls": nulls,
        "categories": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def _label_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
