"""Pure steps of a distributed training, over what the partitions answer: the split (the
same as pyml.train's), the fingerprint, and statistics combined from the partitions' (equal to
pyml.core.statistics over all rows at once, but for the rounding of the mean and the standard
deviation)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from pyml.client.distributed import _work
from pyml.core import algorithms
from pyml.core import statistics as stats

SEED = algorithms.DEFAULT_SEED
FINGERPRINT_SCHEME = "pyml-dask-1"


def fingerprint(names: Sequence[str], digests: Sequence[bytes], regression: bool) -> str:
    """The data fingerprint of the partitions: sha256 over the scheme, the column names and
    each partition's digest (:func:`._work.digest`), in key order."""
    h = hashlib.sha256(FINGERPRINT_SCHEME.encode())
    for name in names:
        h.update(b"\0" + name.encode())
    h.update(b"\0regression" if regression else b"\0classes")
    for d in digests:
        h.update(d)
    return h.hexdigest()


def numeric(client: Any, prepared: list[Any], numeric: list[int]) -> list[dict[str, Any]]:
    """:func:`pyml.core.statistics.describe_numeric` of each numeric column's training rows,
    in three rounds over the partitions: moments; histogram, squared deviations and the
    strided sample (the same values the function samples from all rows); decile bins.

    Equal to describing all rows at once, except for the rounding of the mean and the
    standard deviation (partial sums added, rather than one pairwise sum: ~1e-15 relative).
    """
    first = client.gather([client.submit(_work.moments, p, numeric) for p in prepared])
    asks: list[dict[str, Any]] = []
    totals: list[tuple[int, int]] = []
    for j in range(len(numeric)):
        parts = [f[j] for f in first]
        present = sum(p["present"] for p in parts)
        count = sum(p["count"] for p in parts)
        totals.append((count, present))
        if not present:
            asks.append({"edges": None, "mean": 0.0, "step": 1, "start": 0})
            continue
        low = min(p["min"] for p in parts if p["min"] is not None)
        high = max(p["max"] for p in parts if p["max"] is not None)
        step = -(-present // stats.QUANTILE_SAMPLE)
        asks.append(
            {
                "edges": histogram_edges(low, high),
                "mean": math.fsum(p["sum"] for p in parts) / present,
                "step": step,
                "low": low,
                "high": high,
                "starts": _starts([p["present"] for p in parts], step),
            }
        )
    second = client.gather(
        [
            client.submit(
                _work.spread,
                p,
                numeric,
                [{**a, "start": a["starts"][i] if "starts" in a else 0} for a in asks],
            )
            for i, p in enumerate(prepared)
        ]
    )
    described: list[dict[str, Any]] = []
    edges_all: list[Any] = []
    for j, ask in enumerate(asks):
        count, present = totals[j]
        result: dict[str, Any] = {"count": count, "nulls": count - present}
        if not present:
            described.append(result)
            edges_all.append(None)
            continue
        counts = sum(s[j]["counts"] for s in second if s[j]["counts"] is not None)
        sample = np.concatenate([s[j]["sample"] for s in second])
        quantiles = [float(q) for q in np.quantile(sample, stats.QUANTILES)]
        quantiles[0], quantiles[-1] = ask["low"], ask["high"]
        percentiles = np.quantile(sample, np.linspace(0.0, 1.0, stats.PERCENTILES))
        percentiles[0], percentiles[-1] = quantiles[0], quantiles[-1]
        edges = np.unique(quantiles[1:-1])
        squares = math.fsum(s[j]["squares"] for s in second)
        result.update(
            mean=float(ask["mean"]),
            std=float(math.sqrt(squares / present)),
            min=float(ask["low"]),
            max=float(ask["high"]),
            quantiles=quantiles,
            histogram={
                "edges": [float(e) for e in ask["edges"]],
                "counts": [int(c) for c in counts],
            },
            bins={"edges": edges.tolist(), "counts": None},
            percentiles=percentiles.tolist(),
        )
        described.append(result)
        edges_all.append(edges.tolist())
    third = client.gather([client.submit(_work.bins, p, numeric, edges_all) for p in prepared])
    for j, result in enumerate(described):
        if "bins" in result:
            result["bins"]["counts"] = [int(c) for c in sum(t[j] for t in third)]
    return described


def histogram_edges(low: float, high: float) -> np.ndarray:
    """The edges of the histogram :func:`pyml.core.statistics.describe_numeric` makes of
    values from ``low`` to ``high``: numpy's ten equal bins, or (a range too narrow for them,
    near 2**62) its distinct edges, or the one bin [v, v] (``_work.spread`` counts every value
    in a bin whose edges are equal)."""
    try:
        return np.histogram_bin_edges(np.array([low, high]), bins=stats.HISTOGRAM_BINS)
    except ValueError:  # numpy: "Too many bins for data range"
        edges = np.unique(np.linspace(low, high, stats.HISTOGRAM_BINS + 1))
        return edges if edges.size >= 2 else np.array([low, high])


def _starts(presents: list[int], step: int) -> list[int]:
    """Where each partition's share of the strided sample ``values[::step]`` starts."""
    starts, before = [], 0
    for count in presents:
        starts.append((-before) % step)
        before += count
    return starts


def categories(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`pyml.core.statistics.describe_categorical` of all partitions, from each one's."""
    from collections import Counter

    counts: Counter[str] = Counter()
    for part in parts:
        counts.update(part["categories"])
    return {
        "count": sum(p["count"] for p in parts),
        "nulls": sum(p["nulls"] for p in parts),
        "categories": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def baseline(model: Any, X: np.ndarray) -> dict[str, Any] | None:
    """The distribution of the model's predictions on the test rows (pyml.train's
    ``prediction_baseline``: what drift checks compare live predictions with)."""
    if not len(X):
        return None
    if model.task == "classification":
        return stats.describe_categorical(model.predict_label(X))
    return stats.describe_numeric(model.predict(X))
