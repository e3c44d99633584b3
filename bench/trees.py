"""pyml's tree kernel against LightGBM's predictor: ``python -m bench.trees [--write]``.

One LightGBM regression model (100 trees, 31 leaves, 10 features, trained here on 300,000
rows with a fixed seed, 1% NaN), loaded as the database loads it (its text through pyml's
checks, :mod:`pyml.core._trees`) and as LightGBM loads it (``pyml.core._lgbm.Booster``
without the kernel: ``LGBM_BoosterPredictForMat`` and the single-row fast predictor). In the
same process on the same rows, best of ``--repeats``:

- batches of 10,000, 100,000 and 1,000,000 rows (every core), without NaN and with 1% of
  the values NaN (a block of rows with a NaN takes the kernel's longer decisions), by the
  kernel and by the kernel walking every row (its scorer off);
- one row at a time, the online path (a prepared row predictor), on 1,000 different rows
  in turn, and on one row repeated (what a microbenchmark that repeats one row shows:
  LightGBM's branches then always predict right).

Every answer is checked equal, to the bit. No database. Prints markdown; ``--write`` also
replaces its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from bench.config import BenchError
from bench.phases import write_section

HEADING = "## pyml's tree kernel against LightGBM's predictor (issue 19)"
FEATURES = 10


def model_text() -> bytes:
    import lightgbm

    rng = np.random.default_rng(19)
    X = rng.normal(size=(300_000, FEATURES))
    y = X @ rng.normal(size=FEATURES) + np.sin(X[:, 0]) + rng.normal(size=len(X)) * 0.1
    X[rng.random(X.shape) < 0.01] = np.nan
    params = {"objective": "regression", "num_leaves": 31, "verbose": -1, "seed": 19}
    booster = lightgbm.train(params, lightgbm.Dataset(X, y), 100)
    return booster.model_to_string().encode()


def best(call: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - t0)
    return min(times), result


def measure(repeats: int) -> list[tuple[str, float, float | None, float]]:
    from pyml.core import _trees, _validate
    from pyml.core._lgbm import Booster
    from pyml.core.artifacts import _load_lightgbm

    text = model_text()
    kernel = _load_lightgbm(text)
    if kernel.forest is None:
        raise BenchError("pyml's tree kernel is not built or does not serve this model")
    lightgbm = Booster(text)  # no kernel: LightGBM's predictor
    # the kernel walking every row's trees (no scorer for the rows without NaN)
    walked = _trees.forest(_validate.lightgbm_text(text), scorer=False)
    assert walked is not None and kernel.forest.scorer is not None
    rng = np.random.default_rng(20)
    rows: list[tuple[str, float, float | None, float]] = []
    for n in (10_000, 100_000, 1_000_000):
        for missing in (0.0, 0.01):
            X = rng.normal(size=(n, FEATURES))
            X[rng.random(X.shape) < missing] = np.nan
            theirs_s, theirs = best(partial(lightgbm.predict, X), repeats)
            walked_s, walks = best(partial(walked.predict, X), repeats)
            mine_s, mine = best(partial(kernel.predict, X), repeats)
            if not (np.array_equal(mine, theirs) and np.array_equal(walks, theirs)):
                raise BenchError(f"{n} rows: the kernel and LightGBM differ")
            what = f"{n:,} rows, one call, {'1% NaN' if missing else 'no NaN'} (ms)"
            rows.append((what, theirs_s * 1e3, walked_s * 1e3, mine_s * 1e3))
    singles = [list(r) for r in rng.normal(size=(1000, FEATURES))]
    theirs_row = lightgbm.row_predictor()
    mine_row = kernel.row_predictor()
    if [mine_row(r) for r in singles] != [theirs_row(r) for r in singles]:
        raise BenchError("one row: the kernel and LightGBM differ")

    def varied(predict: Callable[[Any], Any]) -> None:
        for _ in range(20):
            for r in singles:
                predict(r)

    def repeated(predict: Callable[[Any], Any]) -> None:
        r = singles[0]
        for _ in range(20_000):
            predict(r)

    for label, loop in (("1,000 different rows", varied), ("one row repeated", repeated)):
        theirs_s, _ = best(partial(loop, theirs_row), repeats)
        mine_s, _ = best(partial(loop, mine_row), repeats)
        what = f"one row per call, {label} (µs a call)"
        rows.append((what, theirs_s / 20e3 * 1e6, None, mine_s / 20e3 * 1e6))
    return rows


def markdown(rows: list[tuple[str, float, float | None, float]], command: str) -> str:
    load = os.getloadavg()[0]
    lines = [
        HEADING,
        "",
        f"`{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        f" ({os.cpu_count()} cores, load {load:.1f}). One LightGBM model (100 trees, 31 leaves,"
        " 10 features), the same rows, best of each; answers equal to the bit. See"
        ' `bench/trees.py`. "Walking": the kernel with every row walked tree by tree (eight'
        " rows' walks interleaved, each tree in its depth's steps); pyml's kernel scores four"
        " rows at a time split by split instead (QuickScorer: each tree's leaves a bit each,"
        " the splits of each feature in ascending order of threshold, each one a row goes"
        " right of clearing the leaves left of it, the row's leaf the lowest bit left; the"
        " rows are the lanes of vectors, AVX where the CPU has it; a NaN goes right of the"
        " splits that send it right). One row per call is walked, eight trees at a time.",
        "",
        "| what | LightGBM | pyml, walking | pyml's kernel | x LightGBM |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, theirs, walking, mine in rows:
        walk = "" if walking is None else f"{walking:.3f}"
        lines.append(f"| {label} | {theirs:.3f} | {walk} | {mine:.3f} | {theirs / mine:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="replace the section of RESULTS.md")
    args = parser.parse_args(argv)
    command = "python -m bench.trees " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(measure(args.repeats), command.strip())
    print(text)
    if args.write:
        write_section(text, HEADING)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
