"""How ``pyml.train`` splits rows into training and test rows: one function, used in the
server and by clients that train elsewhere (``pyml train-distributed``), so both pick the
same test rows from the same rows in the same order."""

from __future__ import annotations

import numpy as np

from pyml.core import algorithms
from pyml.errors import InvalidParameterValue

SEED = algorithms.DEFAULT_SEED


def split(
    n: int, test_size: float, sampling: str, stratify: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row indices; reproducible (fixed seed)."""
    from sklearn.model_selection import train_test_split

    n_test = int(round(test_size * n)) if test_size < 1 else int(test_size)
    if n_test < 1 or n_test >= n:
        raise InvalidParameterValue(
            f'"test_size" of {test_size:g} leaves no {"test" if n_test < 1 else "training"} rows',
            detail=f"The data has {n} rows.",
        )
    rows = np.arange(n)
    if sampling == "last":
        return rows[: n - n_test], rows[n - n_test :]
    if sampling == "stratified" and stratify is not None:
        _, counts = np.unique(stratify, return_counts=True)
        if counts.min() >= 2 and n_test >= len(counts) and n - n_test >= len(counts):
            train, test = train_test_split(
                rows, test_size=n_test, random_state=SEED, stratify=stratify
            )
            return np.sort(train), np.sort(test)
    train, test = train_test_split(rows, test_size=n_test, random_state=SEED, shuffle=True)
    return np.sort(train), np.sort(test)


def take(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``values[rows]`` for sorted distinct row indices (what :func:`split` returns): a view,
    not a copy, when they are one run of rows (test_sampling 'last'). Read it only."""
    if rows.size and int(rows[-1]) - int(rows[0]) == rows.size - 1:
        return values[int(rows[0]) : int(rows[-1]) + 1]
    taken: np.ndarray = values[rows]
    return taken
