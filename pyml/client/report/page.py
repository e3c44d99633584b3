"""The report as one self-contained HTML page (the figure embedded as a base64 PNG)."""

from __future__ import annotations

import base64
import datetime
import html
import math
from typing import Any

from pyml.client.report.history import History, Round, is_prediction, key_metric, number

DECISIONS = {
    "stable": "no feature drifted",
    "drifted": "drift found; retraining is off",
    "deployed": "drift found; the retrained model scored higher and was deployed",
    "kept": "drift found; the retrained model did not score higher, the live model was kept",
    "failed": "drift found; retraining failed",
}


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
            f"retrain {'on' if monitor.retrain else 'off'}"
        )
    generated = datetime.datetime.now(datetime.UTC).isoformat(sep=" ", timespec="seconds")
    items.append(f"generated {_e(generated)}")
    return " · ".join(items)


def _latest(history: History) -> str:
    if not history.rounds:
        call = f"pyml.check({_sql_literal(history.project.name)})"
        return (
            f'<p class="note">No monitoring round has run yet: run one with '
            f"<code>{_e(call)}</code>, or schedule rounds with <code>pyml.monitor</code>."
            "</p>"
        )
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
        summary.append(
            (
                "Score on the fresh holdout",
                _scores(report) + (f" ({report.holdout_rows} rows)" if report.holdout_rows else ""),
            )
        )
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
    order = sorted(
        features,
        key=lambda f: (
            not any(m.get("drifted") for m in features[f].values()),
            -_sortable(features[f].get("psi", {}).get("value")),
        ),
    )
    head = (
        "<tr><th>Feature</th><th>PSI</th><th>KS / JS</th><th>Threshold (PSI, KS / JS)"
        "</th><th>Drifted</th></tr>"
    )
    rows = []
    for name in order:
        metrics = features[name]
        psi, other = metrics.get("psi", {}), metrics.get("ks") or metrics.get("js") or {}
        drifted = any(m.get("drifted") for m in metrics.values())
        label = f"{name} (predictions)" if is_prediction(name) else name
        row_class = ' class="drifted"' if drifted else ""
        rows.append(
            f"<tr{row_class}><td>{_e(label)}</td>"
            f'<td class="num">{_e(_fmt(psi.get("value")))}</td>'
            f'<td class="num">{_e(_metric_value(other))}</td>'
            f'<td class="num">{_e(_fmt(psi.get("threshold")))}, '
            f"{_e(_fmt(other.get('threshold')))}</td>"
            f"<td>{'yes' if drifted else 'no'}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _figure(history: History, png: bytes) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    alt = f"PSI per feature and deployments of project {history.project.name}"
    caption = (
        "Top: the PSI of each feature in each round (the model's predictions in black, "
        "the threshold dashed). Bottom: the live model over time, one marker per "
        "deployment by strategy (retrain: red star)."
    )
    return (
        f'<figure><img src="data:image/png;base64,{encoded}" alt="{_e(alt)}">'
        f'<figcaption class="note">{_e(caption)}</figcaption></figure>'
    )


def _rounds_table(history: History) -> str:
    if not history.rounds:
        return '<p class="note">No monitoring round has run yet.</p>'
    shown = len(history.rounds)
    note = (
        f"All {shown} rounds"
        if shown == history.total_rounds
        else f"The last {shown} of {history.total_rounds} rounds"
    ) + ", newest first."
    head = (
        "<tr><th>Time</th><th>Model checked</th><th>Rows</th><th>Drifted features</th>"
        "<th>Decision</th><th>Metric: old → new score</th><th>New model</th></tr>"
    )
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
            f"<td>{_e(_scores(report) if report.metric else '–')}</td><td>{new}</td></tr>"
        )
    return f'<p class="note">{_e(note)}</p><table>{head}{"".join(rows)}</table>'


def _deployments_table(history: History) -> str:
    if not history.deployments:
        return '<p class="note">No model has been deployed.</p>'
    metric = key_metric().get(history.project.task, "score")
    head = (
        f"<tr><th>Time</th><th>Model</th><th>Algorithm</th><th>Strategy</th>"
        f"<th>{_e(metric)} (test rows)</th><th>By</th></tr>"
    )
    rows = [
        f"<tr><td>{_e(_time(d.created_at))}</td><td>#{d.model_id}</td>"
        f"<td>{_e(d.algorithm)}</td><td>{_e(d.strategy)}</td>"
        f'<td class="num">{_e(_fmt(d.score))}</td><td>{_e(d.created_by)}</td></tr>'
        for d in reversed(history.deployments)
    ]
    return (
        '<p class="note">Newest first; the first row is the live model.</p>'
        f"<table>{head}{''.join(rows)}</table>"
    )


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
    x = number(value)
    if math.isnan(x):
        return "–"
    return f"{x:.4g}" if abs(x) >= 1e6 else f"{x:.4f}"


def _sortable(value: Any) -> float:
    x = number(value)
    return x if math.isfinite(x) else -math.inf


def _time(when: datetime.datetime) -> str:
    return when.isoformat(sep=" ", timespec="seconds")


def _sql_literal(text: str) -> str:
    """A SQL string literal, for a statement shown to the reader (never executed here)."""
    return "'" + text.replace("'", "''") + "'"
