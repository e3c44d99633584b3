"""Statistics of data distributions and drift between them, in pure numpy (no database).

At training time :func:`describe_numeric` and :func:`describe_categorical`
summarise each column of the training rows; they are stored with the snapshot
so that later drift checks never re-read the training data. A check compares
new values with such a summary: :func:`numeric_drift` (PSI on the training
deciles and the Kolmogorov-Smirnov statistic) and :func:`categorical_drift`
(PSI and the Jensen-Shannon distance).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

# The name a drift report gives the model's predictions (``__prediction__[j]``: target j of a
# joint model), compared like one more feature.
PREDICTION = "__prediction__"
QUANTILES = tuple(round(q, 2) for q in np.linspace(0.0, 1.0, 11))
HISTOGRAM_BINS = 10
# Inner quantiles come from an evenly strided sample of at most this many values (rank
# error ~0.3 %, ample for decile bins); min, max and every other statistic use every value.
QUANTILE_SAMPLE = 100_000
PERCENTILES = 101  # the training CDF the KS statistic is measured against (1 % steps)

# A feature drifted when its statistic exceeds these (PSI: pyml.monitor's psi_threshold).
PSI_THRESHOLD = 0.2
KS_THRESHOLD = 0.1
JS_THRESHOLD = 0.1
_EMPTY_SHARE = 1e-4  # a bin empty on one side counts as this share (PSI stays finite)


def describe_numeric(values: np.ndarray) -> dict[str, Any]:
    """Count, nulls (NaN), mean, std, min, max, deciles and a histogram of ``values``."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    missing = np.isnan(flat)
    present = flat[~missing] if missing.any() else flat  # (no copy of a column without NULL)
    stats: dict[str, Any] = {"count": int(flat.size), "nulls": int(flat.size - present.size)}
    if present.size == 0:
        return stats
    lo, hi = present.min(), present.max()
    counts, histogram_edges = _histogram(present, lo, hi)
    sample = present[:: -(-present.size // QUANTILE_SAMPLE)]
    # one partition of the sample for both (each quantile depends only on the sample's order
    # statistics, not on the others asked for with it)
    both = np.quantile(sample, np.concatenate([QUANTILES, np.linspace(0.0, 1.0, PERCENTILES)]))
    quantiles = [float(q) for q in both[: len(QUANTILES)]]
    quantiles[0], quantiles[-1] = float(lo), float(hi)
    percentiles = both[len(QUANTILES) :]
    percentiles[0], percentiles[-1] = quantiles[0], quantiles[-1]
    edges = np.unique(quantiles[1:-1])  # the decile bins: (-inf, e1], (e1, e2], ..., (ek, inf)
    stats.update(
        mean=float(present.mean()),
        std=float(present.std()),
        min=float(lo),
        max=float(hi),
        quantiles=quantiles,
        histogram={
            "edges": [float(e) for e in histogram_edges],
            "counts": [int(c) for c in counts],
        },
        bins={"edges": edges.tolist(), "counts": _bin_counts(edges, present).tolist()},
        percentiles=percentiles.tolist(),
    )
    return stats


def _histogram(present: np.ndarray, lo: Any, hi: Any) -> tuple[np.ndarray, np.ndarray]:
    """HISTOGRAM_BINS equal bins from min to max (``lo``, ``hi``: what numpy would find): the
    counts and edges of ``np.histogram(present, HISTOGRAM_BINS, range=(lo, hi))``, counted
    with one comparison per inner edge (numpy's arithmetic indices, corrected against the
    edges, give the same counts in six times as long); fewer bins when the range holds
    fewer distinct float64 edges (values near 2**62 three apart), one bin [v, v] when all
    values are one."""
    first, last = (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)  # numpy's outer edges
    with np.errstate(over="ignore", invalid="ignore"):
        edges = np.linspace(first, last, HISTOGRAM_BINS + 1)
    if not np.isfinite(edges).all():  # max - min overflows (numpy has no bins then)
        share = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
        edges = first * (1.0 - share) + last * share
    if not (edges[:-1] < edges[1:]).all():  # numpy: "Too many bins for data range"
        edges = np.unique(np.linspace(float(lo), float(hi), HISTOGRAM_BINS + 1))
        if edges.size < 2:
            return np.array([present.size]), np.array([float(lo), float(hi)])
    # bins [e0, e1), [e1, e2), ..., [e(k-1), ek], every value in [e0, ek]
    at_least = [np.count_nonzero(present >= edge) for edge in edges[1:-1]]
    return -np.diff(np.array([present.size, *at_least, 0], dtype=np.int64)), edges


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


# ---------------------------------------------------------------------------
# Drift of new values from a training summary
# ---------------------------------------------------------------------------


def _bin_counts(edges: np.ndarray, present: np.ndarray) -> np.ndarray:
    """How many of ``present`` fall in each bin (-inf, e1], (e1, e2], ..., (ek, inf) of the
    sorted distinct ``edges``: what ``bincount(searchsorted(edges, present, "left"))`` gives,
    from one comparison per edge (a few edges: ten times faster than a search per value)."""
    at_most = [np.count_nonzero(present <= edge) for edge in edges]
    return np.diff(np.array([0, *at_most, present.size], dtype=np.int64))


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.sum() == 0 or a.sum() == 0:
        return 0.0
    e = np.maximum(e / e.sum(), _EMPTY_SHARE)
    a = np.maximum(a / a.sum(), _EMPTY_SHARE)
    return float(np.sum((a - e) * np.log(a / e)))


def jensen_shannon(expected: np.ndarray, actual: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two count vectors."""
    from scipy.spatial.distance import jensenshannon

    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.sum() == 0 or a.sum() == 0:
        return 0.0
    return float(jensenshannon(e, a, base=2.0))


def training_cdf(percentiles: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The training CDF at ``x``, from its percentiles: right-continuous, so an atom (a
    repeated value) counts at its value, and linear between distinct percentiles."""
    p = percentiles
    steps = p.size - 1
    r = np.searchsorted(p, x, side="right")
    j = np.clip(r - 1, 0, steps - 1)
    width = p[j + 1] - p[j]
    inside = (r >= 1) & (r <= steps) & (width > 0)
    frac = np.where(inside, (x - p[j]) / np.where(width > 0, width, 1.0), 0.0)
    cdf = np.where(r >= 1, (r - 1 + frac) / steps, 0.0)
    return np.clip(np.where(r > steps, 1.0, cdf), 0.0, 1.0)


def ks_statistic(percentiles: Sequence[float], present: np.ndarray) -> float:
    """Kolmogorov-Smirnov statistic: the largest gap between the training CDF (from its
    percentiles) and the empirical CDF of ``present``, on both sides of every jump."""
    p = np.asarray(percentiles, dtype=np.float64)
    if p.size < 2 or present.size == 0:
        return 0.0
    new = np.sort(present[:: -(-present.size // (2 * QUANTILE_SAMPLE))])
    grid = np.union1d(p, np.unique(new))
    points = np.concatenate([grid, np.nextafter(grid, -np.inf)])
    ecdf = np.searchsorted(new, points, side="right") / new.size
    return float(np.max(np.abs(ecdf - training_cdf(p, points))))


def numeric_drift(baseline: dict[str, Any], values: np.ndarray) -> tuple[float, float]:
    """(PSI, KS) of ``values`` (NaN = NULL) against a :func:`describe_numeric` summary.
    NULLs are a PSI bin of their own."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    present = flat[~np.isnan(flat)]
    bins = baseline.get("bins")
    if bins is None:  # no value at training time: only the share of NULLs can move
        expected = np.array([0, baseline.get("nulls", 0)])
        return psi(expected, np.array([present.size, flat.size - present.size])), 0.0
    edges = np.asarray(bins["edges"], dtype=np.float64)
    expected = np.append(np.asarray(bins["counts"], dtype=np.float64), baseline.get("nulls", 0))
    actual = np.append(_bin_counts(edges, present), flat.size - present.size)
    return psi(expected, actual), ks_statistic(baseline.get("percentiles", []), present)


def categorical_drift(baseline: dict[str, Any], values: Sequence[Any]) -> tuple[float, float]:
    """(PSI, Jensen-Shannon distance) of category ``values`` (None = NULL) against a
    :func:`describe_categorical` summary. NULL and every category seen on either side are
    bins; a category never seen in training is drift."""
    now = describe_categorical(values)
    train_counts = {**baseline.get("categories", {}), "\x00NULL": baseline.get("nulls", 0)}
    now_counts = {**now["categories"], "\x00NULL": now["nulls"]}
    keys = sorted(set(train_counts) | set(now_counts))
    expected = np.array([train_counts.get(k, 0) for k in keys], dtype=np.float64)
    actual = np.array([now_counts.get(k, 0) for k in keys], dtype=np.float64)
    return psi(expected, actual), jensen_shannon(expected, actual)
