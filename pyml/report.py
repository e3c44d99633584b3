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
import base64
import datetime
import html
import importlib.util
import io
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import psycopg
from psycopg.rows import class_row

if TYPE_CHECKING:
    from matplotlib.axes import Axes

URL_HELP = "database URL (default: $PYML_URL, else the local server's database pyml)"
DEFAULT_LAST = 50
TOP_FEATURES = 8  # features named in the legend (by highest PSI); the others are drawn in grey
FEATURE_COLOURS = ["tab:orange", "tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:pink",
                   "tab:olive", "tab:cyan"]

# How each deployment strategy is drawn on the timeline: (marker, colour).
STRATEGY_STYLE = {
    "new_score": ("o", "tab:blue"),
    "best_score": ("^", "tab:green"),
    "most_recent": ("s", "tab:purple"),
    "rollback": ("<", "tab:orange"),
    "specific": ("D", "tab:brown"),
    "retrain": ("*", "tab:red"),
}
DECISIONS = {
    "stable": "no feature drifted",
    "drifted": "drift found; retraining is off",
    "deployed": "drift found; the retrained model scored higher and was deployed",
    "kept": "drift found; the retrained model did not score higher, the live model was kept",
    "failed": "drift found; retraining failed",
}


class Project(NamedTuple):
    id: int
    name: str
    task: str


class Monitor(NamedTuple):
    relation_name: str
    every: str
    psi_threshold: float
    retrain: bool
    last_round_at: datetime.datetime | None


class Round(NamedTuple):
    """One row of ``pyml.drift_reports``."""

    id: int
    created_at: datetime.datetime
    model_id: int
    relation_name: str | None
    row_count: int
    psi_threshold: float
    features: list[dict[str, Any]]
    drifted: bool
    retrained: bool
    deployed: bool
    new_model_id: int | None
    decision: str
    metric: str | None
    old_score: float | None
    new_score: float | None
    holdout_rows: int | None
    detail: str | None


class Deployment(NamedTuple):
    """One row of ``pyml.deployments`` with its model's algorithm and key metric."""

    id: int
    created_at: datetime.datetime
    model_id: int
    strategy: str
    created_by: str
    algorithm: str
    score: Any  # models.metrics -> key metric (jsonb: usually a number)


class History(NamedTuple):
    """Everything the report shows."""

    project: Project
    monitor: Monitor | None
    rounds: list[Round]  # the last ``--last`` rounds, oldest first
    total_rounds: int
    deployments: list[Deployment]  # every deployment, oldest first


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``report`` subcommand to an ``argparse`` subparsers object."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "report", help="write a report of a project's monitoring history (HTML or PNG)",
        description="Write a report of a project's monitoring history: drift per feature "
        "over the rounds, decisions and deployments (one HTML file, or the figure as PNG).")
    parser.add_argument("project", help="the project to report on")
    parser.add_argument("--url", help=URL_HELP)
    parser.add_argument("--output", "-o", metavar="PATH", type=Path,
                        help="where to write (default: <project>-report.html); "
                        "a path ending in .png gets the figure only")
    parser.add_argument("--last", type=_positive_int, default=DEFAULT_LAST, metavar="N",
                        help=f"monitoring rounds shown (default: {DEFAULT_LAST})")
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
        print("pyml: error: pyml report needs matplotlib (pip install matplotlib)",
              file=sys.stderr)
        return 1
    try:
        history = read_history(url, args.project, args.last)
    except psycopg.Error as exc:
        print(f"pyml: error: {exc}".rstrip(), file=sys.stderr)
        return 1
    if history is None:
        print(f'pyml: error: project "{args.project}" does not exist', file=sys.stderr)
        return 1
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


# ---------------------------------------------------------------------------
# Reading (one read-only snapshot; every value bound)
# ---------------------------------------------------------------------------

_ROUNDS = """
SELECT id, created_at, model_id, relation_name, row_count, psi_threshold, features, drifted,
       retrained, deployed, new_model_id, decision, metric, old_score, new_score,
       holdout_rows, detail
FROM pyml.drift_reports
WHERE project_id = %s
ORDER BY id DESC
LIMIT %s
"""

_DEPLOYMENTS = """
SELECT d.id, d.created_at, d.model_id, d.strategy, d.created_by, m.algorithm,
       m.metrics -> %s AS score
FROM pyml.deployments d
JOIN pyml.models m ON m.id = d.model_id
WHERE d.project_id = %s
ORDER BY d.id
"""


def read_history(url: str, project_name: str, last: int) -> History | None:
    """The project's rounds and deployments, or None when there is no such project."""
    with psycopg.connect(url, application_name="pyml report") as conn:
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        project = conn.cursor(row_factory=class_row(Project)).execute(
            "SELECT id, name, task FROM pyml.projects WHERE name = %s", (project_name,)
        ).fetchone()
        if project is None:
            return None
        monitor = conn.cursor(row_factory=class_row(Monitor)).execute(
            "SELECT relation_name, every::text AS every, psi_threshold, retrain, last_round_at"
            " FROM pyml.monitors WHERE project_id = %s", (project.id,)
        ).fetchone()
        rounds = conn.cursor(row_factory=class_row(Round)).execute(
            _ROUNDS, (project.id, last)).fetchall()
        (total,) = conn.execute(
            "SELECT count(*) FROM pyml.drift_reports WHERE project_id = %s", (project.id,)
        ).fetchone() or (0,)
        deployments = conn.cursor(row_factory=class_row(Deployment)).execute(
            _DEPLOYMENTS, (_key_metric().get(project.task, ""), project.id)).fetchall()
    return History(project, monitor, rounds[::-1], int(total), deployments)


# ---------------------------------------------------------------------------
# Figure
# ---------------------------------------------------------------------------


def figure_png(history: History) -> bytes:
    """The figure as PNG: PSI per feature over time (top), the deployments (bottom)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 7), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    drift_ax, deploy_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.3])
    fig.suptitle(_plain(f"pyml monitoring: {history.project.name} ({history.project.task})"))
    start, end = _window(history)
    _plot_drift(drift_ax, history.rounds, start, end)
    _plot_deployments(deploy_ax, _deployments_in(history.deployments, start), start, end)
    _format_time_axis(deploy_ax, start, end)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _window(history: History) -> tuple[datetime.datetime, datetime.datetime]:
    """The time span drawn, margins included: the rounds shown, and the deployments since
    the first of them (every deployment when every round is shown)."""
    times = [r.created_at for r in history.rounds]
    if not history.rounds or len(history.rounds) == history.total_rounds:
        times += [d.created_at for d in history.deployments]
    else:
        times += [d.created_at for d in history.deployments
                  if d.created_at >= history.rounds[0].created_at]
    if not times:
        now = datetime.datetime.now(datetime.UTC)
        return now - datetime.timedelta(hours=1), now
    start, end = min(times), max(times)
    margin = max((end - start) * 0.04, datetime.timedelta(seconds=30))
    return start - margin, end + margin


def _deployments_in(deployments: Sequence[Deployment], start: datetime.datetime
                    ) -> list[Deployment]:
    """The deployments after ``start``, after the one live at ``start`` (if any)."""
    before = [d for d in deployments if d.created_at < start]
    return before[-1:] + [d for d in deployments if d.created_at >= start]


def _plot_drift(ax: Axes, rounds: Sequence[Round], start: datetime.datetime,
                end: datetime.datetime) -> None:
    ax.set_title("Population stability index (PSI) per feature, by monitoring round",
                 loc="left", fontsize="medium")
    if not rounds:
        _empty(ax, "No monitoring round has run yet.")
        return
    times = [r.created_at for r in rounds]
    series = _psi_series(rounds)
    named = _named_features(series)
    for feature in filter(_is_prediction, series):
        ax.plot(times, series[feature], color="black", linewidth=2.6, marker="D", zorder=4,
                label=_plain(f"{feature} (the model's predictions)"))
    for feature, colour in zip(named, FEATURE_COLOURS, strict=False):
        ax.plot(times, series[feature], color=colour, linewidth=1.4, marker="o", markersize=4,
                zorder=3, label=_plain(feature))
    others = [f for f in series if f not in named and not _is_prediction(f)]
    for feature in others:
        ax.plot(times, series[feature], color="0.75", linewidth=0.9, marker=".", zorder=2)
    if others:
        ax.plot([], [], color="0.75", linewidth=0.9, marker=".",
                label=f"{len(others)} other feature{'s' if len(others) > 1 else ''}")
    thresholds = [r.psi_threshold for r in rounds]
    ax.plot([start, *times[1:], end], [thresholds[0], *thresholds], linestyle="--",
            color="tab:red", drawstyle="steps-post", linewidth=1.2, label="PSI threshold")
    _psi_scale(ax, [v for vs in series.values() for v in vs], min(thresholds))
    ax.set_ylabel("PSI")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)


def _psi_scale(ax: Axes, values: list[float], threshold: float) -> None:
    """Linear, or linear up to the threshold and logarithmic above it when values go far
    beyond it (a shifted feature easily reaches a PSI of 5); ticks as plain numbers."""
    from matplotlib.ticker import FuncFormatter

    top = max([threshold, *(v for v in values if math.isfinite(v))])
    if top > 10 * threshold:
        ax.set_yscale("symlog", linthresh=threshold)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def _psi_series(rounds: Sequence[Round]) -> dict[str, list[float]]:
    """Feature -> its PSI in each round (NaN where a round did not measure it)."""
    series: dict[str, list[float]] = {}
    for i, report in enumerate(rounds):
        for item in report.features:
            if item.get("metric") != "psi":
                continue
            values = series.setdefault(str(item.get("feature")), [math.nan] * len(rounds))
            values[i] = _number(item.get("value"))
    return series


def _named_features(series: dict[str, list[float]]) -> list[str]:
    """The features named in the legend, highest first: those with the highest PSI in any
    round shown."""
    def highest(values: list[float]) -> float:
        return max((v for v in values if math.isfinite(v)), default=-math.inf)

    ranked = sorted((f for f in series if not _is_prediction(f)),
                    key=lambda f: highest(series[f]), reverse=True)
    return ranked[:TOP_FEATURES]


def _plot_deployments(ax: Axes, deployments: Sequence[Deployment], start: datetime.datetime,
                      end: datetime.datetime) -> None:
    """The live model over time (a step line) with one marker per deployment."""
    ax.set_title("Deployments: the live model over time", loc="left", fontsize="medium")
    if not deployments:
        _empty(ax, "No model has been deployed.")
        return
    times = [max(d.created_at, start) for d in deployments]
    ids = [d.model_id for d in deployments]
    ax.plot([*times, end], [*ids, ids[-1]], drawstyle="steps-post", color="0.4", linewidth=1.5)
    for strategy, (marker, colour) in STRATEGY_STYLE.items():
        shown = [d for d in deployments if d.strategy == strategy and d.created_at >= start]
        if shown:
            retrain = strategy == "retrain"
            ax.scatter([d.created_at for d in shown], [d.model_id for d in shown],
                       marker=marker, color=colour, s=160 if retrain else 60, zorder=3,
                       edgecolors="black" if retrain else "none", label=strategy)
    for when, model_id in zip(times, ids, strict=True):
        ax.annotate(f"#{model_id}", (when, model_id), textcoords="offset points",
                    xytext=(6, 6), fontsize="small")
    distinct = sorted(set(ids))
    ax.set_yticks(distinct if len(distinct) <= 12 else distinct[:: len(distinct) // 12 + 1])
    low, high = distinct[0], distinct[-1]
    pad = max((high - low) * 0.25, 0.6)
    ax.set_ylim(low - pad, high + pad)
    ax.set_ylabel("model id")
    ax.grid(True, axis="x", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small",
                  frameon=False, title="strategy", title_fontsize="small")


def _format_time_axis(ax: Axes, start: datetime.datetime, end: datetime.datetime) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(tz=start.tzinfo)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=start.tzinfo))
    ax.set_xlim(start, end)  # type: ignore[arg-type]


def _empty(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center",
            color="0.4")
    ax.set_yticks([])


def _plain(text: str) -> str:
    """Text matplotlib shows as written (``$`` would start mathtext)."""
    return text.replace("$", r"\$")


# ---------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222;
       padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
.meta, .note { color: #555; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.drifted td { background: #fff1f0; }
.decision { font-weight: 600; padding: 0.05em 0.4em; border-radius: 0.3em; }
.d-stable { background: #e6f4ea; } .d-deployed { background: #e3eefc; }
.d-drifted, .d-kept { background: #fff4e0; } .d-failed { background: #fde2e1; }
img { max-width: 100%; height: auto; }
"""


def render_html(history: History, png: bytes) -> str:
    """The whole report as one HTML document (the figure embedded as base64 PNG)."""
    project = history.project
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>pyml report: {_e(project.name)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Monitoring report: {_e(project.name)}</h1>",
        f'<p class="meta">{_header(history)}</p>',
        "<h2>Latest round</h2>",
        _latest(history),
        "<h2>Drift and deployments over time</h2>",
        _figure(history, png),
        "<h2>Monitoring rounds</h2>",
        _rounds_table(history),
        "<h2>Deployments</h2>",
        _deployments_table(history),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _header(history: History) -> str:
    project, monitor = history.project, history.monitor
    items = [f"Project <strong>{_e(project.name)}</strong>", f"task {_e(project.task)}"]
    if history.deployments:
        live = history.deployments[-1]
        items.append(f"live model #{live.model_id} ({_e(live.algorithm)})")
    if monitor is None:
        items.append("no scheduled monitor")
    else:
        items.append(
            f"monitored: relation {_e(monitor.relation_name)} every {_e(monitor.every)}, "
            f"PSI threshold {_e(_fmt(monitor.psi_threshold))}, "
            f"retrain {'on' if monitor.retrain else 'off'}")
    generated = datetime.datetime.now(datetime.UTC).isoformat(sep=" ", timespec="seconds")
    items.append(f"generated {_e(generated)}")
    return " · ".join(items)


def _latest(history: History) -> str:
    if not history.rounds:
        call = f"pyml.check({_sql_literal(history.project.name)})"
        return (f'<p class="note">No monitoring round has run yet: run one with '
                f"<code>{_e(call)}</code>, or schedule rounds with <code>pyml.monitor</code>."
                "</p>")
    report = history.rounds[-1]
    summary = [
        ("Time", _time(report.created_at)),
        ("Model checked", f"#{report.model_id}"),
        ("Rows compared", f"{report.row_count} of {report.relation_name or 'the logged calls'}"),
        ("PSI threshold", _fmt(report.psi_threshold)),
        ("Drifted features", ", ".join(_drifted(report)) or "none"),
        ("Decision", f"{report.decision}: {DECISIONS.get(report.decision, '')}"),
    ]
    if report.metric:
        summary.append(("Score on the fresh holdout", _scores(report)
                        + (f" ({report.holdout_rows} rows)" if report.holdout_rows else "")))
    if report.new_model_id is not None:
        summary.append(("Retrained model", f"#{report.new_model_id}"))
    if report.detail:
        summary.append(("Detail", report.detail))
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in summary)
    return f"<table>{rows}</table>\n{_features_table(report)}"


def _features_table(report: Round) -> str:
    """Each feature of the round: its PSI and its KS (numbers) or Jensen-Shannon (categories)
    statistic, against their thresholds; drifted features first."""
    features: dict[str, dict[str, dict[str, Any]]] = {}
    for item in report.features:
        features.setdefault(str(item.get("feature")), {})[str(item.get("metric"))] = item
    order = sorted(features, key=lambda f: (
        not any(m.get("drifted") for m in features[f].values()),
        -_sortable(features[f].get("psi", {}).get("value"))))
    head = ("<tr><th>Feature</th><th>PSI</th><th>KS / JS</th><th>Threshold (PSI, KS / JS)"
            "</th><th>Drifted</th></tr>")
    rows = []
    for name in order:
        metrics = features[name]
        psi, other = metrics.get("psi", {}), metrics.get("ks") or metrics.get("js") or {}
        drifted = any(m.get("drifted") for m in metrics.values())
        label = f"{name} (predictions)" if _is_prediction(name) else name
        row_class = ' class="drifted"' if drifted else ""
        rows.append(
            f"<tr{row_class}><td>{_e(label)}</td>"
            f'<td class="num">{_e(_fmt(psi.get("value")))}</td>'
            f'<td class="num">{_e(_metric_value(other))}</td>'
            f'<td class="num">{_e(_fmt(psi.get("threshold")))}, '
            f'{_e(_fmt(other.get("threshold")))}</td>'
            f'<td>{"yes" if drifted else "no"}</td></tr>')
    return f"<table>{head}{''.join(rows)}</table>"


def _figure(history: History, png: bytes) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    alt = f"PSI per feature and deployments of project {history.project.name}"
    caption = ("Top: the PSI of each feature in each round (the model's predictions in black, "
               "the threshold dashed). Bottom: the live model over time, one marker per "
               "deployment by strategy (retrain: red star).")
    return (f'<figure><img src="data:image/png;base64,{encoded}" alt="{_e(alt)}">'
            f"<figcaption class=\"note\">{_e(caption)}</figcaption></figure>")


def _rounds_table(history: History) -> str:
    if not history.rounds:
        return '<p class="note">No monitoring round has run yet.</p>'
    shown = len(history.rounds)
    note = (f"All {shown} rounds" if shown == history.total_rounds
            else f"The last {shown} of {history.total_rounds} rounds") + ", newest first."
    head = ("<tr><th>Time</th><th>Model checked</th><th>Rows</th><th>Drifted features</th>"
            "<th>Decision</th><th>Metric: old → new score</th><th>New model</th></tr>")
    rows = []
    for report in reversed(history.rounds):
        new = f"#{report.new_model_id}" if report.new_model_id is not None else "–"
        decision = _e(report.decision)
        if report.detail:
            decision += f'<br><span class="note">{_e(report.detail)}</span>'
        rows.append(
            f"<tr><td>{_e(_time(report.created_at))}</td><td>#{report.model_id}</td>"
            f'<td class="num">{report.row_count}</td>'
            f"<td>{_e(', '.join(_drifted(report)) or '–')}</td>"
            f'<td><span class="decision d-{_e(report.decision)}">{decision}</span></td>'
            f"<td>{_e(_scores(report) if report.metric else '–')}</td><td>{new}</td></tr>")
    return f'<p class="note">{_e(note)}</p><table>{head}{"".join(rows)}</table>'


def _deployments_table(history: History) -> str:
    if not history.deployments:
        return '<p class="note">No model has been deployed.</p>'
    metric = _key_metric().get(history.project.task, "score")
    head = (f"<tr><th>Time</th><th>Model</th><th>Algorithm</th><th>Strategy</th>"
            f"<th>{_e(metric)} (test rows)</th><th>By</th></tr>")
    rows = [
        f"<tr><td>{_e(_time(d.created_at))}</td><td>#{d.model_id}</td>"
        f"<td>{_e(d.algorithm)}</td><td>{_e(d.strategy)}</td>"
        f'<td class="num">{_e(_fmt(d.score))}</td><td>{_e(d.created_by)}</td></tr>'
        for d in reversed(history.deployments)
    ]
    return ('<p class="note">Newest first; the first row is the live model.</p>'
            f"<table>{head}{''.join(rows)}</table>")


# ---------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _drifted(report: Round) -> list[str]:
    """The round's drifted features, each with the metrics over their threshold."""
    metrics: dict[str, list[str]] = {}
    for item in report.features:
        if item.get("drifted"):
            metrics.setdefault(str(item.get("feature")), []).append(str(item.get("metric")))
    return [f"{name} ({', '.join(found)})" for name, found in metrics.items()]


def _scores(report: Round) -> str:
    return f"{report.metric} {_fmt(report.old_score)} → {_fmt(report.new_score)}"


def _metric_value(item: dict[str, Any]) -> str:
    return f"{item['metric']} {_fmt(item.get('value'))}" if item else "–"


def _fmt(value: Any) -> str:
    number = _number(value)
    if math.isnan(number):
        return "–"
    return f"{number:.4g}" if abs(number) >= 1e6 else f"{number:.4f}"


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _sortable(value: Any) -> float:
    number = _number(value)
    return number if math.isfinite(number) else -math.inf


def _time(when: datetime.datetime) -> str:
    return when.isoformat(sep=" ", timespec="seconds")


def _is_prediction(feature: str) -> bool:
    from pyml.monitor import PREDICTION

    return feature == PREDICTION or feature.startswith(f"{PREDICTION}[")


def _key_metric() -> dict[str, str]:
    from pyml.train import KEY_METRIC  # imported when used: `pyml --help` stays quick

    return KEY_METRIC


def _sql_literal(text: str) -> str:
    """A SQL string literal, for a statement shown to the reader (never executed here)."""
    return "'" + text.replace("'", "''") + "'"
