"""What the benchmark runs: sizes, durations, models. Full mode by default, quick for iteration."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
DATABASE = "pyml_bench"
PG_BIN = Path(os.environ.get("PYML_PG_BIN", "/usr/lib/postgresql/15/bin"))
QUICK_ENV = "PYML_BENCH_QUICK"

# Features are uniform in [0, 1): pgbench draws its random feature values the same way.
FEATURE_SCALE = 1_000_000


class BenchError(RuntimeError):
    """The benchmark could not run, or what it measured is wrong (results disagree)."""


@dataclass(frozen=True)
class ModelSpec:
    """One model trained with pyml.train and measured against its raw-library equivalent."""

    key: str  # short name in results
    project: str
    table: str  # the data table: id, f1..fk, label
    features: int
    algorithm: str
    hyperparams: dict[str, object]
    label: str  # human description

    @property
    def train_view(self) -> str:
        return f"{self.table}_train"

    @property
    def feature_list(self) -> str:
        return ", ".join(f"f{i}" for i in range(1, self.features + 1))


LGBM = ModelSpec(
    "lgbm",
    "bench_lgbm",
    "t10",
    10,
    "lightgbm",
    {"n_estimators": 100, "num_leaves": 31},
    "LightGBM, 10 features (n_estimators 100, num_leaves 31)",
)
# Sized to train in ~15 s on 2 cores: each tree sees a bootstrap sample of 25% of the rows.
RF = ModelSpec(
    "rf",
    "bench_rf",
    "t10",
    10,
    "random_forest",
    {"n_estimators": 20, "max_depth": 10, "max_samples": 0.25, "n_jobs": 2},
    "random forest, 10 features (n_estimators 20, max_depth 10, max_samples 0.25, n_jobs 2)",
)
LGBM50 = ModelSpec(
    "lgbm50",
    "bench_lgbm50",
    "t50",
    50,
    "lightgbm",
    {"n_estimators": 100, "num_leaves": 31},
    "LightGBM, 50 features (n_estimators 100, num_leaves 31)",
)
MODELS = (LGBM, RF, LGBM50)
TEST_SIZE = 0.25  # pyml.train's default; test_sampling 'last' so the training rows are known


@dataclass(frozen=True)
class Settings:
    quick: bool
    rows: int  # rows of t10 and t50
    memory_rows: int  # rows scored by predict_into while the backend's RSS is sampled
    latency_seconds: float  # measured window of each single-client pgbench run
    throughput_seconds: float  # measured window of each multi-client run
    warmup_seconds: float  # discarded after every client has made its first (cold) call
    calls: int  # psycopg / HTTP single-client loop length
    cold_sessions: int
    rf_set_rows: int  # the random forest predicts one row in ~10 ms: set query on a prefix
    batch_chunk: int  # rows per pyml.predict_batch call
    train_repeats: int = 1  # pyml.train and the raw fit each run this many times; best kept
    sample_rows: int = 1000  # rows compared across every path (correctness)
    clients: tuple[int, ...] = (4, 16)
    threads: int = 2  # pgbench -j
    http_workers: int = 2  # uvicorn --workers: one per core, as a user would deploy it
    tolerance: float = 1e-5  # relative, float32 results against float64 ones
    # streaming: single-row inserts (pgbench window), multi-row statements of stream_batch_rows,
    # end-to-end runs of stream_seconds at stream_rate inserts a second, then with idle listeners
    stream_insert_seconds: float = 4.5
    stream_statements: int = 20
    stream_batch_rows: int = 1000
    stream_rate: int = 1000
    stream_seconds: float = 2.0  # per configuration; the Consumer and polling alternate in
    stream_rounds: int = 2  # this many runs each
    stream_idle_listeners: tuple[int, ...] = (1, 10, 100)
    extra: dict[str, object] = field(default_factory=dict)


def settings(quick: bool) -> Settings:
    if quick:
        return Settings(
            quick=True,
            rows=100_000,
            memory_rows=1_000_000,
            latency_seconds=1.5,
            throughput_seconds=1.5,
            warmup_seconds=0.3,
            calls=1000,
            cold_sessions=3,
            rf_set_rows=100,
            batch_chunk=50_000,
        )
    return Settings(
        quick=False,
        rows=1_000_000,
        memory_rows=10_000_000,
        latency_seconds=10,
        throughput_seconds=10,
        warmup_seconds=1.0,
        calls=5000,
        cold_sessions=10,
        rf_set_rows=1000,
        batch_chunk=100_000,
        train_repeats=2,
        stream_insert_seconds=30,
        stream_statements=100,
        stream_seconds=10,
        stream_rounds=4,
    )


def quick_from_env() -> bool:
    return os.environ.get(QUICK_ENV, "").strip().lower() not in ("", "0", "false", "no")
