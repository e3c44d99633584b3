"""``pyml train-distributed``: LightGBM trained on a Dask cluster, registered as a normal model.

For training data too large for one machine. The client (this module):

1. opens one connection, starts a REPEATABLE READ transaction and exports its snapshot
   (``pg_export_snapshot()``); one query gives the row count and the key column's
   percentiles, which cut the relation into key ranges (partitions);
2. has each partition read by a Dask worker (:mod:`._work`), which connects itself, adopts
   the snapshot (``SET TRANSACTION SNAPSHOT``) and reads its range; the exporting
   transaction stays open until every worker has read, then ends;
3. splits the rows as ``pyml.train`` does (:func:`split`, over the rows in key order), fits
   ``lightgbm.dask.DaskLGBMRegressor`` or ``DaskLGBMClassifier`` on the training rows where
   they lie, and computes on the test rows (brought to the client) the metrics ``pyml.train``
   records (:func:`pyml.core.metrics.evaluate`);
4. records the snapshot's statistics (:func:`pyml.core.statistics.describe_numeric` and
   ``describe_categorical``, computed per partition and combined: see :func:`_numeric`) and a
   fingerprint, and registers the model with ``pyml.import_model`` (a bundle,
   :mod:`pyml.core.bundle`), with a lineage that names the cluster.

The rows never pass through the client, except the test rows and, for a stratified split of
classes, one class index per row.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pyml.client.distributed._run import Run, key_of, module, one, relation_of, task_of
from pyml.core import algorithms, params
from pyml.core.registry import jsonable
from pyml.errors import FeatureNotSupported, InvalidParameterValue, PymlError

__all__ = ["DistributedResult", "add_parser", "run", "train"]


@dataclass
class DistributedResult:
    """What ``train`` did: the registered model and how it was trained."""

    project: str
    task: str
    model_id: int
    deployed: bool
    rows: int
    partitions: int
    snapshot: str  # the exported snapshot every worker read under
    scheduler: str
    metrics: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------


def train(
    project_name: str,
    task: str | None = None,
    relation_name: str | None = None,
    y_column_name: str | Sequence[str] | None = None,
    hyperparams: dict[str, Any] | str | None = None,
    test_size: float = 0.25,
    test_sampling: str = "stratified",
    *,
    url: str,
    scheduler: str | None = None,
    workers: int = 2,
    partitions: int | None = None,
    key: str | None = None,
    deploy: bool = True,
) -> DistributedResult:
    """Train LightGBM on a Dask cluster over ``relation_name`` and register the model in the
    database at ``url`` (``pyml.import_model``; deployed unless ``deploy`` is false).

    The arguments mirror ``pyml.train`` (algorithm ``lightgbm``); ``scheduler`` is a Dask
    scheduler's address (``tcp://host:8786``), else a ``LocalCluster`` of ``workers``
    processes is started; ``partitions`` (default: one per worker) key ranges of column
    ``key`` (default: the relation's one-column primary key, an integer) are read, each by
    one worker. The workers connect to ``url`` themselves.
    """
    started = time.perf_counter()
    params.non_empty("project_name", project_name)
    relation_arg = params.non_empty("relation_name", relation_name)
    labels = [y_column_name] if isinstance(y_column_name, str) else list(y_column_name or [])
    if len(labels) != 1:
        raise InvalidParameterValue(
            f'"y_column_name" must name one label column, got {len(labels)}',
            hint="LightGBM learns one target; train one model per label column.",
        )
    test_size = params.test_size(test_size)
    params.one_of("test_sampling", test_sampling, params.TEST_SAMPLINGS)
    params.optional_one_of("task", task, ("regression", "classification"))
    if workers < 1 or (partitions is not None and partitions < 1):
        raise InvalidParameterValue(
            f'"{"workers" if workers < 1 else "partitions"}" must be at least 1, got '
            f"{workers if workers < 1 else partitions}"
        )
    hyper = params.json_object("hyperparams", hyperparams)
    _require_dask()

    with psycopg.connect(url, connect_timeout=30) as conn:
        # The snapshot is the transaction's first statement's: every read below sees it.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        task = task_of(conn, project_name, task)
        used = algorithms.resolve("lightgbm", task).make(hyper).get_params()  # checked first
        relation = relation_of(conn, relation_arg)
        run = Run(conn, relation, labels[0], task, key_of(conn, relation, key))
        with _cluster(scheduler, workers) as (client, address, local):
            info = client.scheduler_info()["workers"]
            run.client = client
            snapshot = one(conn.execute("SELECT pg_catalog.pg_export_snapshot()"))
            bounds = run.bounds(partitions or len(info))
            run.read(url, snapshot, bounds)
            conn.commit()  # every worker has read: the exported snapshot may go
            load_time = time.perf_counter() - started
            fit = run.fit(used, test_size, test_sampling)
        fit.cluster = {
            "scheduler": address,
            "local_cluster": local,
            "workers": sorted(info),
            "threads": {name: worker["nthreads"] for name, worker in sorted(info.items())},
            "snapshot": snapshot,
        }
        bundle = run.bundle(project_name, fit, load_time, started)
        from pyml.core import bundle as _bundle

        model_id = one(
            conn.execute(
                "SELECT pyml.import_model(%s, %s, %s)",
                (_bundle.dumps(bundle), project_name, deploy),
            )
        )
        conn.commit()
    return DistributedResult(
        project_name,
        task,
        int(model_id),
        deploy,
        run.rows,
        len(bounds),
        snapshot,
        address,
        bundle["model"]["metrics"],
    )


def _require_dask() -> None:
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
        import lightgbm.dask  # noqa: F401
    except ImportError as exc:
        raise FeatureNotSupported(
            f'training on a Dask cluster needs the Python package "{exc.name}", '
            "which is not installed",
            hint="Install pyml with its dask extra: pip install 'pyml[dask]'",
        ) from exc


@contextmanager
def _cluster(scheduler: str | None, workers: int) -> Iterator[tuple[Any, str, bool]]:
    """A Dask client: of the scheduler at ``scheduler``, else of a LocalCluster of
    ``workers`` processes (one thread each: LightGBM's network is one per process)."""
    distributed = module("distributed")
    Client, LocalCluster = distributed.Client, distributed.LocalCluster
    if scheduler:
        with Client(scheduler, timeout="30s") as client:
            yield client, scheduler, False
        return
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client, str(cluster.scheduler_address), True


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------

URL_HELP = "database URL (default: $PYML_URL, else the local server's database pyml)"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``train-distributed`` subcommand to an ``argparse`` subparsers object."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "train-distributed",
        help="train LightGBM on a Dask cluster and register the model",
        description="Train LightGBM (lightgbm.dask) on a Dask cluster over RELATION, each "
        "worker reading its own key ranges under one exported snapshot, and register the "
        "model with pyml.import_model (deployed unless --no-deploy). Needs pyml[dask].",
    )
    parser.add_argument("project", help="the project (created with --task when new)")
    parser.add_argument("relation", help="the training relation (a table or view)")
    parser.add_argument("label", help="the label column (y_column_name)")
    parser.add_argument("--task", choices=("regression", "classification"))
    parser.add_argument(
        "--hyperparams", default="{}", metavar="JSON", help="LightGBM parameters, a JSON object"
    )
    parser.add_argument("--test-size", type=float, default=0.25)
    parser.add_argument("--test-sampling", choices=params.TEST_SAMPLINGS, default="stratified")
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a Dask scheduler (tcp://host:8786); default: a LocalCluster on this machine",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="LocalCluster worker processes (default 2)"
    )
    parser.add_argument(
        "--partitions", type=int, help="key ranges to read (default: one per worker)"
    )
    parser.add_argument(
        "--key",
        metavar="COLUMN",
        help="integer column to partition by (default: the one-column primary key)",
    )
    parser.add_argument("--no-deploy", action="store_true", help="register without deploying")
    parser.add_argument("--url", help=URL_HELP)
    return parser


def run(url: str, args: argparse.Namespace) -> int:
    """``pyml train-distributed``: 0 and a line of JSON (the result) on stdout, else 1 with
    the error (message, DETAIL, HINT) on stderr."""
    from pyml.client.export import describe

    try:
        result = train(
            args.project,
            args.task,
            args.relation,
            args.label,
            args.hyperparams,
            args.test_size,
            args.test_sampling,
            url=url,
            scheduler=args.scheduler,
            workers=args.workers,
            partitions=args.partitions,
            key=args.key,
            deploy=not args.no_deploy,
        )
    except (psycopg.Error, PymlError, ValueError) as exc:
        print(f"pyml: error: {describe(exc)}", file=sys.stderr)
        return 1
    print(json.dumps(jsonable(result.__dict__)))
    return 0
