"""Drift statistics (pure numpy) and the prediction spool (files only)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import ks_2samp

from pyml.core import statistics as drift
from pyml.server import _spool


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_psi_of_identical_counts_is_zero_and_grows_with_the_shift() -> None:
    assert drift.psi(np.array([10, 20, 30]), np.array([1, 2, 3])) == pytest.approx(0.0)
    small = drift.psi(np.array([25, 25, 25, 25]), np.array([30, 25, 25, 20]))
    large = drift.psi(np.array([25, 25, 25, 25]), np.array([70, 10, 10, 10]))
    # by hand: sum((a - e) * ln(a / e))
    expected = sum((a - 0.25) * np.log(a / 0.25) for a in (0.3, 0.25, 0.25, 0.2))
    assert small == pytest.approx(expected)
    assert 0 < small < large
    assert np.isfinite(drift.psi(np.array([10, 0]), np.array([0, 10])))  # empty bins


@pytest.mark.parametrize("shift", [0.0, 0.2, 1.0])
def test_ks_against_the_training_percentiles_matches_scipy(
    rng: np.random.Generator, shift: float
) -> None:
    train = rng.normal(size=50_000)
    new = rng.normal(loc=shift, size=3_000)
    summary = drift.describe_numeric(train)
    _, ks = drift.numeric_drift(summary, new)
    assert ks == pytest.approx(ks_2samp(train, new).statistic, abs=0.012)


def test_ks_of_discrete_values_counts_atoms_at_their_value(rng: np.random.Generator) -> None:
    train = rng.integers(0, 5, size=20_000).astype(float)
    same = rng.integers(0, 5, size=4_000).astype(float)
    moved = rng.integers(1, 6, size=4_000).astype(float)
    summary = drift.describe_numeric(train)
    psi_same, ks_same = drift.numeric_drift(summary, same)
    psi_moved, ks_moved = drift.numeric_drift(summary, moved)
    assert ks_same == pytest.approx(ks_2samp(train, same).statistic, abs=0.012)
    assert ks_moved == pytest.approx(ks_2samp(train, moved).statistic, abs=0.012)
    assert psi_same < 0.01 < drift.PSI_THRESHOLD < psi_moved


def test_nulls_are_a_bin_of_their_own(rng: np.random.Generator) -> None:
    train = rng.normal(size=10_000)
    train[:1000] = np.nan  # 10 % NULL at training time
    summary = drift.describe_numeric(train)
    assert summary["nulls"] == 1000 and sum(summary["bins"]["counts"]) == 9000
    like = rng.normal(size=5_000)
    like[:500] = np.nan
    many = rng.normal(size=5_000)
    many[:2500] = np.nan
    assert drift.numeric_drift(summary, like)[0] < 0.01
    assert drift.numeric_drift(summary, many)[0] > drift.PSI_THRESHOLD


def test_categories_psi_and_jensen_shannon(rng: np.random.Generator) -> None:
    summary = drift.describe_categorical(list(rng.choice(["a", "b", "c"], size=9_000)))
    same = list(rng.choice(["a", "b", "c"], size=3_000))
    psi, js = drift.categorical_drift(summary, same)
    assert psi < 0.01 and js < 0.03
    unseen = ["d"] * 1_000 + same[:2_000]  # a category never seen in training
    psi, js = drift.categorical_drift(summary, unseen)
    assert psi > drift.PSI_THRESHOLD and js > drift.JS_THRESHOLD
    assert drift.categorical_drift(summary, ["a"] * 10)[1] <= 1.0


def test_spool_lines_are_read_whole_and_collectable_once_closed(tmp_path: Path) -> None:
    spool = _spool.Spool(42, str(tmp_path))
    spool.append(1, 7, [1.5, None], 3.25)
    spool.append(1, 7, {"city": "Lyon"}, "yes")
    [(name, path)] = list(_spool.files(42, str(tmp_path)))
    assert name.startswith("42-") and list(_spool.files(43, str(tmp_path))) == []
    lines, end = _spool.read_lines(path, 0)
    assert [line.split(",")[:2] for line in lines] == [["[1", "7"], ["[1", "7"]]
    assert '{"city":"Lyon"},"yes"' in lines[1]
    # A line being written (no newline yet) is left for later.
    with open(path, "ab") as f:
        f.write(b"[1,7,[2.0],")
    assert _spool.read_lines(path, end) == ([], end)
    assert not _spool.abandoned(path)  # the session still has it open
    spool.close()
    assert _spool.abandoned(path)


def test_spool_skips_what_json_cannot_hold(tmp_path: Path) -> None:
    spool = _spool.Spool(1, str(tmp_path))
    logger = _spool.Logger(spool, project_id=3, rate=1.0)
    logger(5, [float("nan")], 1.0)  # NaN is not JSON: not logged, no error
    logger(5, [1.0], 2.0)
    [(_, path)] = list(_spool.files(1, str(tmp_path)))
    assert len(_spool.read_lines(path, 0)[0]) == 1
    never = _spool.Logger(_spool.Spool(2, str(tmp_path)), project_id=3, rate=0.0)
    for _ in range(100):
        never(5, [1.0], 2.0)
    assert list(_spool.files(2, str(tmp_path))) == []
    assert os.listdir(tmp_path) == [os.path.basename(path)]


@pytest.mark.parametrize("start", [2.0**62, -(2.0**62)])
def test_statistics_of_huge_values_in_a_narrow_range(start: float) -> None:
    """numpy cannot make 10 finite bins between 2**62 and 2**62 + 2997: fewer bins then."""
    values = start + np.arange(0, 3000, 3, dtype=np.float64)
    stats = drift.describe_numeric(values)
    assert sum(stats["histogram"]["counts"]) == values.size
    assert stats["min"] == values.min() and stats["max"] == values.max()
    single = drift.describe_numeric(np.full(5, start))
    assert single["histogram"]["counts"] == [5]


@pytest.mark.parametrize(
    "values",
    [
        np.arange(1000, dtype=np.float64) % 7,  # values on the edges
        np.random.default_rng(5).normal(size=20_000),
        np.array([3.0]),
        np.array([-0.0, 0.0, 1.0, -1.0, 2.0]),
    ],
)
def test_bin_counts_are_those_of_a_search_per_value(values: np.ndarray) -> None:
    edges = np.unique(np.quantile(values, np.linspace(0.1, 0.9, 9)))
    searched = np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1)
    assert drift._bin_counts(edges, values).tolist() == searched.tolist()
    assert drift._bin_counts(np.array([]), values).tolist() == [values.size]


def test_describe_numeric_as_numpy_computes_each_statistic(rng: np.random.Generator) -> None:
    """The shortcuts (no copy without NULL, min and max once, one quantile partition for the
    deciles and the percentiles) give what each numpy function gives on its own."""
    values = np.where(rng.random(300_000) < 0.05, np.nan, rng.normal(size=300_000))
    present = values[~np.isnan(values)]
    sample = present[:: -(-present.size // drift.QUANTILE_SAMPLE)]
    stats = drift.describe_numeric(values)
    assert stats["nulls"] == int(np.isnan(values).sum()) and stats["count"] == values.size
    assert (stats["min"], stats["max"]) == (float(present.min()), float(present.max()))
    assert (stats["mean"], stats["std"]) == (float(present.mean()), float(present.std()))
    deciles = np.quantile(sample, drift.QUANTILES)
    assert stats["quantiles"][1:-1] == deciles[1:-1].tolist()
    percentiles = np.quantile(sample, np.linspace(0.0, 1.0, drift.PERCENTILES))
    assert stats["percentiles"][1:-1] == percentiles[1:-1].tolist()
    counts, edges = np.histogram(present, bins=drift.HISTOGRAM_BINS)
    assert stats["histogram"] == {"edges": edges.tolist(), "counts": counts.tolist()}
    assert sum(stats["bins"]["counts"]) == present.size


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(7).normal(size=50_000),
        np.random.default_rng(8).random(30_001) * 1e-300,  # subnormal steps
        np.random.default_rng(9).integers(-5, 6, size=10_000).astype(np.float64),
        np.arange(1001, dtype=np.float64) / 1000,  # values on every edge
        np.linspace(-1.0, 1.0, 21),
        np.array([3.0]),
        np.full(7, -2.5),
        np.array([-0.0, 0.0, 1.0, -1.0, 2.0]),
        np.array([1e308, -1e308, 0.0, 5e307]),  # a range numpy's arithmetic overflows
        np.exp(np.random.default_rng(10).normal(scale=30, size=5_000)),
    ],
)
def test_histogram_counts_are_numpys(values: np.ndarray) -> None:
    """The histogram counted by comparisons with the edges is numpy's, edges and counts;
    where max - min overflows (numpy refuses), still ten equal bins from min to max."""
    counts, edges = drift._histogram(values, values.min(), values.max())
    searched = np.bincount(  # the definition: [e0, e1), ..., [e9, e10]
        np.minimum(np.searchsorted(edges, values, side="right") - 1, edges.size - 2),
        minlength=edges.size - 1,
    )
    assert counts.tolist() == searched.tolist() and edges.size == drift.HISTOGRAM_BINS + 1
    assert (edges[0], edges[-1]) == (values.min(), values.max()) or values.min() == values.max()
    with np.errstate(over="ignore"):
        overflows = not np.isfinite(values.max() - values.min())
    if overflows:
        np.testing.assert_allclose(np.diff(edges), (values.max() / 10 - values.min() / 10))
    else:
        expected_counts, expected_edges = np.histogram(
            values, bins=drift.HISTOGRAM_BINS, range=(values.min(), values.max())
        )
        assert edges.tolist() == expected_edges.tolist()
        assert counts.tolist() == expected_counts.tolist()
