"""``pyml import FILE [--project NAME] [--no-deploy]``: register a model bundle (written by
``pyml export --format pyml`` in another database) in this one, through
``pyml.import_model``.

The file is checked here first (:func:`pyml.core.bundle.loads`: a file that is not a bundle
is refused before it is sent); the server checks it again and loads every file before it
writes anything. Prints the new model's id on stdout, what happened on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import psycopg

from pyml.client.export import URL_HELP, describe
from pyml.errors import PymlError


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``import`` subcommand to an ``argparse`` subparsers object."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "import",
        help="register a model bundle (pyml export --format pyml) in this database",
        description="Register the model of a bundle file, written by pyml export --format "
        "pyml in another database, as a new model here (pyml.import_model), and deploy it "
        "unless --no-deploy. Prints the new model's id.",
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="the bundle file")
    parser.add_argument(
        "--project", metavar="NAME", help="import into this project (default: the bundle's)"
    )
    parser.add_argument(
        "--no-deploy", action="store_true", help="register the model without deploying it"
    )
    parser.add_argument("--url", help=URL_HELP)
    return parser


def import_bundle(
    conn: psycopg.Connection[Any], data: bytes, project: str | None = None, deploy: bool = True
) -> int:
    """``pyml.import_model``: the new model's id (committed with ``conn``'s transaction)."""
    row = conn.execute(
        "SELECT pyml.import_model(%s::bytea, %s::text, %s::boolean)", (data, project, deploy)
    ).fetchone()
    assert row is not None
    return int(row[0])


def run(url: str, args: argparse.Namespace) -> int:
    """``pyml import``: 0 when the model is registered (and deployed), else 1 with the
    reason on stderr."""
    from pyml.core import bundle

    deploy = not args.no_deploy
    try:
        data = args.file.read_bytes()
        document = bundle.loads(data)
        with psycopg.connect(url, connect_timeout=10) as conn:
            model_id = import_bundle(conn, data, args.project, deploy)
    except (psycopg.Error, PymlError, OSError) as exc:
        print(f"pyml: error: {describe(exc)}", file=sys.stderr)
        return 1
    project = args.project if args.project is not None else document["project"]["name"]
    source = document["source"]
    origin = f'project "{document["project"]["name"]}"'
    if source.get("model_id") is not None:
        origin = f"model {source['model_id']} of {origin}"
    if source.get("database"):
        origin += f' in database "{source["database"]}"'
    print(
        f'pyml: model {model_id} of project "{project}" imported from {args.file} ({origin}), '
        + ("deployed" if deploy else "not deployed"),
        file=sys.stderr,
    )
    print(model_id)
    return 0
