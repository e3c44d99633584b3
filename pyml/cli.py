"""The ``pyml`` command: manage the embedded local server (``up``, ``down``, ``status``)."""

from __future__ import annotations

import argparse
import json
import sys

from pyml._cluster import Cluster, ClusterError


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyml", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="create (first time) and start the local server; print its URI")
    commands.add_parser("down", help="stop the local server")
    status = commands.add_parser("status", help="show the local server (exit 3 when stopped)")
    status.add_argument("--json", action="store_true", help="print as JSON")
    uri = commands.add_parser("uri", help="print the connection string")
    uri.add_argument("dbname", nargs="?", default="pyml")
    return parser


HANDLERS = {"up": _up, "down": _down, "status": _status, "uri": _uri}


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
