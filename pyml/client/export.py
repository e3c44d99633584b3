"""``pyml export PROJECT|--model ID -o FILE``: a model's ONNX graph and its card, as files;
with ``--format pyml``, the model's bundle (:mod:`pyml.core.bundle`) as one file, for
``pyml import`` into another database.

Reads the card first (``pyml.model_card``: of the project's live model, or of the model
given), then the graph of the model the card names (``pyml.export(model_id)``), so the two
are of one model even when a deployment commits in between. The graph's size and sha256
are checked against the card and the graph validated (:func:`pyml.core.onnxpart.validate`)
before anything is written; then ``FILE`` (the graph) and ``FILE`` with suffix ``.json``
(the card), each through a temporary file in the same directory and a rename
(:func:`pyml.edge.write_pair`). :func:`fetch` is shared with ``pyml pull``. A bundle is
checked (:func:`pyml.core.bundle.loads`) before it is written, the same way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import psycopg

from pyml import edge
from pyml.errors import PymlError

URL_HELP = "database URL (default: $PYML_URL, else the local server's database pyml)"


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``export`` subcommand to an ``argparse`` subparsers object."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "export",
        help="write a model's ONNX graph and its card (FILE and FILE with suffix .json), "
        "or its bundle (--format pyml)",
        description="Write a model (the live model of PROJECT, or --model ID) as one ONNX "
        "graph with its preprocessing, and its card beside it (-o model.onnx writes "
        "model.onnx and model.json). pyml.edge.Predictor reads the pair. With --format pyml, "
        "write the whole model as one bundle file instead, which pyml import registers in "
        "another database.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("project", nargs="?", help="the project whose live model to export")
    which.add_argument("--model", type=int, metavar="ID", help="the model to export")
    parser.add_argument(
        "--output", "-o", type=Path, required=True, metavar="FILE", help="where to write the graph"
    )
    parser.add_argument(
        "--format",
        choices=("onnx", "pyml"),
        default="onnx",
        help="onnx: the graph and its card (default); pyml: a bundle for pyml import",
    )
    parser.add_argument("--url", help=URL_HELP)
    return parser


def fetch(
    conn: psycopg.Connection[Any], project: str | None = None, model_id: int | None = None
) -> tuple[dict[str, Any], bytes]:
    """The card and graph of ``project``'s live model (or of model ``model_id``), checked:
    the card well formed, the graph's size and sha256 the card's, the graph valid ONNX."""
    from pyml.core import onnxpart

    if model_id is not None:
        row = conn.execute("SELECT pyml.model_card(%s::bigint)", (model_id,)).fetchone()
    else:
        row = conn.execute("SELECT pyml.model_card(%s::text)", (project,)).fetchone()
    card = edge.check_card(row[0] if row else None)
    row = conn.execute("SELECT pyml.export(%s::bigint)", (card["model_id"],)).fetchone()
    data = bytes(row[0]) if row and row[0] is not None else b""
    edge.verify(card, data)
    onnxpart.validate(data)
    return card, data


def fetch_bundle(
    conn: psycopg.Connection[Any], project: str | None = None, model_id: int | None = None
) -> tuple[dict[str, Any], bytes]:
    """The bundle of ``project``'s live model (or of model ``model_id``), checked
    (:func:`pyml.core.bundle.loads`): the document and its bytes."""
    from pyml.core import bundle

    if model_id is not None:
        row = conn.execute("SELECT pyml.export(%s::bigint, 'pyml')", (model_id,)).fetchone()
    else:
        row = conn.execute("SELECT pyml.export(%s::text, 'pyml')", (project,)).fetchone()
    data = bytes(row[0]) if row and row[0] is not None else b""
    return bundle.loads(data), data


def describe(exc: BaseException) -> str:
    """An error as lines for stderr: the message, then DETAIL and HINT when there are."""
    if isinstance(exc, psycopg.Error):
        diag = exc.diag
        message = diag.message_primary or str(exc).strip()
        detail, hint = diag.message_detail, diag.message_hint
    elif isinstance(exc, PymlError):
        message, detail, hint = exc.message, exc.detail, exc.hint
    else:
        message, detail, hint = str(exc), None, None
    lines = [message]
    lines += [f"DETAIL:  {detail}"] if detail else []
    lines += [f"HINT:  {hint}"] if hint else []
    return "\n".join(lines)


def run(url: str, args: argparse.Namespace) -> int:
    """``pyml export``: 0 when both files are written, else 1 with the reason on stderr."""
    output: Path = args.output
    if getattr(args, "format", "onnx") == "pyml":
        return _run_bundle(url, args)
    if output.suffix == ".json":
        print(
            f'pyml: error: output file "{output}" must not end in ".json" (the card is '
            "written there)",
            file=sys.stderr,
        )
        return 1
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            card, data = fetch(conn, args.project, args.model)
        card_path = edge.write_pair(output, card, data)
    except (psycopg.Error, PymlError, OSError) as exc:
        print(f"pyml: error: {describe(exc)}", file=sys.stderr)
        return 1
    print(
        f'pyml: model {card["model_id"]} of project "{card.get("project")}" written to '
        f"{output} ({len(data)} bytes, sha256 {card['sha256'][:12]}), its card to {card_path}",
        file=sys.stderr,
    )
    return 0


def _run_bundle(url: str, args: argparse.Namespace) -> int:
    """``pyml export --format pyml``: the bundle, checked, written through a temporary file
    and a rename."""
    import hashlib

    output: Path = args.output
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            document, data = fetch_bundle(conn, args.project, args.model)
        edge.write_atomic(output, data)
    except (psycopg.Error, PymlError, OSError) as exc:
        print(f"pyml: error: {describe(exc)}", file=sys.stderr)
        return 1
    print(
        f"pyml: model {document['source'].get('model_id')} of project "
        f'"{document["project"]["name"]}" written to {output} as a bundle ({len(data)} bytes, '
        f"sha256 {hashlib.sha256(data).hexdigest()[:12]})",
        file=sys.stderr,
    )
    return 0
