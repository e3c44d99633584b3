"""``pyml report PROJECT``: a project's monitoring history, written for people.

One self-contained HTML file (or, for a path ending in ``.png``, the figure
alone): the latest monitoring round, a figure of the PSI of every feature over
the rounds above the deployment history, then a table of every round and of
every deployment. The report only reads: one read-only, repeatable-read
transaction over ``pyml.drift_reports``, ``pyml.deployments``, ``pyml.models``,
``pyml.monitors`` and ``pyml.projects``. matplotlib draws the figure (Agg, no
display needed).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import psycopg

from pyml.client.report.history import read_history

URL_HELP = "database URL (default: $PYML_URL, else the local server's database pyml)"
DEFAULT_LAST = 50


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand to an ``argparse`` subparsers object."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "report",
        help="write a report of a project's monitoring history (HTML or PNG)",
        description="Write a report of a project's monitoring history: drift per feature "
        "over the rounds, decisions and deployments (one HTML file, or the figure as PNG).",
    )
    parser.add_argument("project", help="the project to report on")
    parser.add_argument("--url", help=URL_HELP)
    parser.add_argument(
        "--output",
        "-o",
        metavar="PATH",
        type=Path,
        help="where to write (default: <project>-report.html); "
        "a path ending in .png gets the figure only",
    )
    parser.add_argument(
        "--last",
        type=_positive_int,
        default=DEFAULT_LAST,
        metavar="N",
        help=f"monitoring rounds shown (default: {DEFAULT_LAST})",
    )
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def run(url: str, args: argparse.Namespace) -> int:
    """Write the report of ``args.project``; print its path. Returns the exit status."""
    if importlib.util.find_spec("matplotlib") is None:
        print("pyml: error: pyml report needs matplotlib (pip install matplotlib)", file=sys.stderr)
        return 1
    try:
        history = read_history(url, args.project, args.last)
    except psycopg.Error as exc:
        print(f"pyml: error: {exc}".rstrip(), file=sys.stderr)
        return 1
    if history is None:
        print(f'pyml: error: project "{args.project}" does not exist', file=sys.stderr)
        return 1
    from pyml.client.report.figure import figure_png
    from pyml.client.report.page import render_html

    path = Path(args.output) if args.output else default_output(args.project)
    png = figure_png(history)
    data = png if path.suffix.lower() == ".png" else render_html(history, png).encode()
    try:
        path.write_bytes(data)
    except OSError as exc:
        print(f'pyml: error: cannot write "{path}": {exc.strerror}', file=sys.stderr)
        return 1
    print(path)
    return 0


def default_output(project: str) -> Path:
    """``<project>-report.html`` in the current directory, the name made safe for a file."""
    stem = re.sub(r"[^\w.-]+", "_", project).strip("._") or "project"
    return Path(f"{stem}-report.html")
