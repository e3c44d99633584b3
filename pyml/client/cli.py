"""The ``pyml`` command: manage the embedded local server (``up``, ``down``, ``status``, ``uri``),
serve streams (``worker`` scores async streams, ``listen`` prints predictions), monitor
(``monitor`` runs due rounds without pg_cron, ``report`` writes a project's history), take
models out of the database (``export`` writes one as ONNX with its card, or as a bundle that
``import`` registers in another database; ``pull`` keeps an edge device's copy of a project's
live model current) and serve them over HTTP (``serve``: the Open
Inference Protocol, see :mod:`pyml.client.serve`), and train on a Dask cluster
(``train-distributed``: :mod:`pyml.client.distributed`)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

from pyml.client.cluster import Cluster, ClusterError


def _up(cluster: Cluster, args: argparse.Namespace) -> int:
    uri = cluster.up()
    print(f"pyml: server running (data {cluster.data}, log {cluster.log})", file=sys.stderr)
    print(uri)
    return 0


def _down(cluster: Cluster, args: argparse.Namespace) -> int:
    stopped = cluster.down()
    print("pyml: server stopped" if stopped else "pyml: server was not running")
    return 0


def _status(cluster: Cluster, args: argparse.Namespace) -> int:
    info = cluster.status()
    if args.json:
        print(json.dumps(info))
    else:
        for key, value in info.items():
            print(f"{key:15} {value}")
    return 0 if info["running"] else 3


def _uri(cluster: Cluster, args: argparse.Namespace) -> int:
    print(cluster.uri(args.dbname))
    return 0


def _url(args: argparse.Namespace, cluster: Cluster) -> str:
    return str(args.url or os.environ.get("PYML_URL") or cluster.uri())


def _stop_on_sigterm() -> None:
    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def _listen(cluster: Cluster, args: argparse.Namespace) -> int:
    """Print one JSON line per prediction; ack each batch once it is written out."""
    from pyml.client.consumer import Consumer

    _stop_on_sigterm()
    printed = 0
    idle_since = time.monotonic()
    try:
        with Consumer(
            _url(args, cluster),
            args.project,
            args.consumer,
            source=args.source,
            batch_size=args.batch_size,
        ) as consumer:
            while args.max_events is None or printed < args.max_events:
                wait = 1.0 if args.idle_exit is None else min(1.0, args.idle_exit)
                events = consumer.read(timeout=wait)
                if not events:
                    if (
                        args.idle_exit is not None
                        and time.monotonic() - idle_since >= args.idle_exit
                    ):
                        break
                    continue
                idle_since = time.monotonic()
                if args.max_events is not None:
                    events = events[: args.max_events - printed]
                for event in events:
                    line = event._asdict()
                    line["scored_at"] = event.scored_at.isoformat()
                    line = {"stream": consumer.stream_id, **line}
                    sys.stdout.write(json.dumps(line) + "\n")
                sys.stdout.flush()
                consumer.ack(events[-1])
                printed += len(events)
    except LookupError as exc:
        print(f"pyml: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def _worker(cluster: Cluster, args: argparse.Namespace) -> int:
    """Score the queued rows of async streams as they come; prune acknowledged events."""
    import psycopg

    _stop_on_sigterm()
    url = _url(args, cluster)
    last_prune = 0.0
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("LISTEN pyml_work")
            print(f"pyml: worker running on {conn.info.dbname}", file=sys.stderr, flush=True)
            while True:
                conn.execute("CALL pyml.stream_work(%s, %s)", (args.stream, args.batch_size))
                if args.once or time.monotonic() - last_prune >= args.prune_every:
                    pruned = conn.execute("SELECT pyml.stream_prune()").fetchone()[0]  # type: ignore[index]
                    if pruned:
                        print(
                            f"pyml: pruned {pruned} acknowledged events",
                            file=sys.stderr,
                            flush=True,
                        )
                    last_prune = time.monotonic()
                if args.once:
                    return 0
                for _ in conn.notifies(timeout=1.0, stop_after=1):
                    pass
    except KeyboardInterrupt:
        return 0
    except psycopg.Error as exc:
        print(f"pyml: error: {exc}".rstrip(), file=sys.stderr)
        return 1


def _monitor(cluster: Cluster, args: argparse.Namespace) -> int:
    """Run the due monitoring rounds now and then (the scheduler when pg_cron is absent)."""
    import psycopg

    _stop_on_sigterm()
    url = _url(args, cluster)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            print(
                f"pyml: monitoring {conn.info.dbname}, every {args.poll:g}s",
                file=sys.stderr,
                flush=True,
            )
            while True:
                cur = conn.execute("SELECT * FROM pyml.run_monitors()")
                names = [c.name for c in cur.description or []]
                for row in cur.fetchall():
                    print(json.dumps(dict(zip(names, row, strict=True))), flush=True)
                if args.once:
                    return 0
                time.sleep(args.poll)
    except KeyboardInterrupt:
        return 0
    except psycopg.Error as exc:
        print(f"pyml: error: {exc}".rstrip(), file=sys.stderr)
        return 1


def _serve(cluster: Cluster, args: argparse.Namespace) -> int:
    """The model service, until SIGTERM or Ctrl-C."""
    import logging

    from pyml.client import serve

    logging.basicConfig(level=logging.INFO, format="pyml serve: %(levelname)s %(message)s")
    token = None
    if args.token_file is not None:
        try:
            with open(args.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            print(f"pyml: error: cannot read the token file: {exc}", file=sys.stderr)
            return 1
        if not token:
            print(f"pyml: error: the token file {args.token_file} is empty", file=sys.stderr)
            return 1
    print(
        f"pyml: serving on http://{args.host}:{args.port} ({args.workers} worker"
        f"{'s' if args.workers > 1 else ''})",
        file=sys.stderr,
        flush=True,
    )
    return serve.run(
        args.host,
        args.port,
        args.workers,
        url=_url(args, cluster),
        projects=args.project or None,
        token=token,
        max_body=int(args.max_body_mb * 1024 * 1024),
        access_log=not args.no_access_log,
        log_predictions=not args.no_prediction_log,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyml", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="create (first time) and start the local server; print its URI")
    commands.add_parser("down", help="stop the local server")
    status = commands.add_parser("status", help="show the local server (exit 3 when stopped)")
    status.add_argument("--json", action="store_true", help="print as JSON")
    uri = commands.add_parser("uri", help="print the connection string")
    uri.add_argument("dbname", nargs="?", default="pyml")
    url_help = "database URL (default: $PYML_URL, else the local server's database pyml)"
    listen = commands.add_parser(
        "listen", help="print the predictions of a project's stream, one JSON line each"
    )
    listen.add_argument("project", help="the project whose stream to read")
    listen.add_argument("--consumer", required=True, help="consumer name (keeps its position)")
    listen.add_argument("--source", help="the streamed relation, when the project has several")
    listen.add_argument("--url", help=url_help)
    listen.add_argument("--batch-size", type=int, default=1000)
    listen.add_argument("--max-events", type=int, help="stop after printing this many")
    listen.add_argument(
        "--idle-exit", type=float, metavar="SECONDS", help="stop after this long without events"
    )
    worker = commands.add_parser("worker", help="score the queued rows of async streams")
    worker.add_argument("--url", help=url_help)
    worker.add_argument("--stream", type=int, help="only this stream (default: every one)")
    worker.add_argument("--batch-size", type=int, default=1000, help="rows per transaction")
    worker.add_argument(
        "--prune-every",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="delete acknowledged events this often",
    )
    worker.add_argument("--once", action="store_true", help="score what is queued, then exit")
    monitor = commands.add_parser(
        "monitor", help="run the monitoring rounds that are due (when pg_cron is not installed)"
    )
    monitor.add_argument("--url", help=url_help)
    monitor.add_argument(
        "--poll",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how often to look for due rounds",
    )
    monitor.add_argument("--once", action="store_true", help="run the due rounds, then exit")
    serve = commands.add_parser(
        "serve", help="serve the live models over HTTP (Open Inference Protocol, KServe V2)"
    )
    serve.add_argument("--url", help=url_help)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument("--workers", type=int, default=1, help="processes (one per core)")
    serve.add_argument(
        "--project",
        action="append",
        help="serve only this project, loaded at start (repeatable; default: every project "
        "the role may predict, loaded on first use)",
    )
    serve.add_argument(
        "--token-file", help="require 'Authorization: Bearer TOKEN', TOKEN read from this file"
    )
    serve.add_argument(
        "--max-body-mb", type=float, default=8.0, help="largest request body, in MiB"
    )
    serve.add_argument("--no-access-log", action="store_true", help="no JSON line per request")
    serve.add_argument(
        "--no-prediction-log",
        action="store_true",
        help="do not write sampled calls to the prediction log (pyml.log_predictions)",
    )
    from pyml.client import distributed, export, importing, pull, report

    report.add_parser(commands)
    export.add_parser(commands)
    importing.add_parser(commands)
    pull.add_parser(commands)
    distributed.add_parser(commands)
    return parser


def _report(cluster: Cluster, args: argparse.Namespace) -> int:
    from pyml.client import report

    return report.run(_url(args, cluster), args)


def _export(cluster: Cluster, args: argparse.Namespace) -> int:
    from pyml.client import export

    return export.run(_url(args, cluster), args)


def _import(cluster: Cluster, args: argparse.Namespace) -> int:
    from pyml.client import importing

    return importing.run(_url(args, cluster), args)


def _pull(cluster: Cluster, args: argparse.Namespace) -> int:
    """Keep a directory holding a project's live model (stops cleanly on SIGTERM/SIGINT)."""
    from pyml.client import pull

    _stop_on_sigterm()
    return pull.run(_url(args, cluster), args)


def _train_distributed(cluster: Cluster, args: argparse.Namespace) -> int:
    from pyml.client import distributed

    return distributed.run(_url(args, cluster), args)


HANDLERS = {
    "up": _up,
    "down": _down,
    "status": _status,
    "uri": _uri,
    "listen": _listen,
    "worker": _worker,
    "monitor": _monitor,
    "report": _report,
    "export": _export,
    "import": _import,
    "pull": _pull,
    "serve": _serve,
    "train-distributed": _train_distributed,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cluster = Cluster.for_checkout()
    try:
        return HANDLERS[args.command](cluster, args)
    except ClusterError as exc:
        print(f"pyml: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
