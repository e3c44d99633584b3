"""The report's figure: the PSI of every feature over the rounds, above the deployments."""

from __future__ import annotations

import datetime
import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from pyml.client.report.history import Deployment, History, Round, is_prediction, number

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from numpy.typing import ArrayLike

TOP_FEATURES = 8  # features named in the legend (by highest PSI); the others are drawn in grey
FEATURE_COLOURS = [
    "tab:orange",
    "tab:blue",
    "tab:green",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:cyan",
]

# How each deployment strategy is drawn on the timeline: (marker, colour).
STRATEGY_STYLE = {
    "new_score": ("o", "tab:blue"),
    "best_score": ("^", "tab:green"),
    "most_recent": ("s", "tab:purple"),
    "rollback": ("<", "tab:orange"),
    "specific": ("D", "tab:brown"),
    "retrain": ("*", "tab:red"),
}


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
        times += [
            d.created_at
            for d in history.deployments
            if d.created_at >= history.rounds[0].created_at
        ]
    if not times:
        now = datetime.datetime.now(datetime.UTC)
        return now - datetime.timedelta(hours=1), now
    start, end = min(times), max(times)
    margin = max((end - start) * 0.04, datetime.timedelta(seconds=30))
    return start - margin, end + margin


def _deployments_in(
    deployments: Sequence[Deployment], start: datetime.datetime
) -> list[Deployment]:
    """The deployments after ``start``, after the one live at ``start`` (if any)."""
    before = [d for d in deployments if d.created_at < start]
    return before[-1:] + [d for d in deployments if d.created_at >= start]


def _plot_drift(
    ax: Axes, rounds: Sequence[Round], start: datetime.datetime, end: datetime.datetime
) -> None:
    ax.set_title(
        "Population stability index (PSI) per feature, by monitoring round",
        loc="left",
        fontsize="medium",
    )
    if not rounds:
        _empty(ax, "No monitoring round has run yet.")
        return
    times = [r.created_at for r in rounds]
    series = _psi_series(rounds)
    named = _named_features(series)
    for feature in filter(is_prediction, series):
        ax.plot(
            _dates(times),
            series[feature],
            color="black",
            linewidth=2.6,
            marker="D",
            zorder=4,
            label=_plain(f"{feature} (the model's predictions)"),
        )
    for feature, colour in zip(named, FEATURE_COLOURS, strict=False):
        ax.plot(
            _dates(times),
            series[feature],
            color=colour,
            linewidth=1.4,
            marker="o",
            markersize=4,
            zorder=3,
            label=_plain(feature),
        )
    others = [f for f in series if f not in named and not is_prediction(f)]
    for feature in others:
        ax.plot(_dates(times), series[feature], color="0.75", linewidth=0.9, marker=".", zorder=2)
    if others:
        ax.plot(
            [],
            [],
            color="0.75",
            linewidth=0.9,
            marker=".",
            label=f"{len(others)} other feature{'s' if len(others) > 1 else ''}",
        )
    thresholds = [r.psi_threshold for r in rounds]
    ax.plot(
        _dates([start, *times[1:], end]),
        [thresholds[0], *thresholds],
        linestyle="--",
        color="tab:red",
        drawstyle="steps-post",
        linewidth=1.2,
        label="PSI threshold",
    )
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
            values[i] = number(item.get("value"))
    return series


def _named_features(series: dict[str, list[float]]) -> list[str]:
    """The features named in the legend, highest first: those with the highest PSI in any
    round shown."""

    def highest(values: list[float]) -> float:
        return max((v for v in values if math.isfinite(v)), default=-math.inf)

    ranked = sorted(
        (f for f in series if not is_prediction(f)), key=lambda f: highest(series[f]), reverse=True
    )
    return ranked[:TOP_FEATURES]


def _plot_deployments(
    ax: Axes, deployments: Sequence[Deployment], start: datetime.datetime, end: datetime.datetime
) -> None:
    """The live model over time (a step line) with one marker per deployment."""
    ax.set_title("Deployments: the live model over time", loc="left", fontsize="medium")
    if not deployments:
        _empty(ax, "No model has been deployed.")
        return
    times = [max(d.created_at, start) for d in deployments]
    ids = [d.model_id for d in deployments]
    ax.plot(
        _dates([*times, end]), [*ids, ids[-1]], drawstyle="steps-post", color="0.4", linewidth=1.5
    )
    for strategy, (marker, colour) in STRATEGY_STYLE.items():
        shown = [d for d in deployments if d.strategy == strategy and d.created_at >= start]
        if shown:
            retrain = strategy == "retrain"
            ax.scatter(
                _dates([d.created_at for d in shown]),
                [d.model_id for d in shown],
                marker=marker,
                color=colour,
                s=160 if retrain else 60,
                zorder=3,
                edgecolors="black" if retrain else "none",
                label=strategy,
            )
    for when, model_id in zip(times, ids, strict=True):
        ax.annotate(
            f"#{model_id}",
            (when, model_id),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize="small",
        )
    distinct = sorted(set(ids))
    ax.set_yticks(distinct if len(distinct) <= 12 else distinct[:: len(distinct) // 12 + 1])
    low, high = distinct[0], distinct[-1]
    pad = max((high - low) * 0.25, 0.6)
    ax.set_ylim(low - pad, high + pad)
    ax.set_ylabel("model id")
    ax.grid(True, axis="x", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize="small",
            frameon=False,
            title="strategy",
            title_fontsize="small",
        )


def _dates(values: list[datetime.datetime]) -> ArrayLike:
    """Datetimes as x values: matplotlib converts them (its date units), but its type stubs take
    only numbers. The list itself is what is plotted."""
    return cast("ArrayLike", values)


def _format_time_axis(ax: Axes, start: datetime.datetime, end: datetime.datetime) -> None:
    import matplotlib.dates as mdates

    # the date locator and formatter have no annotations in matplotlib's stubs
    locator = mdates.AutoDateLocator(tz=start.tzinfo)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator, tz=start.tzinfo)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_formatter(formatter)
    ax.set_xlim(start, end)  # type: ignore[arg-type]  # datetimes, as in _dates


def _empty(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="0.4")
    ax.set_yticks([])


def _plain(text: str) -> str:
    """Text matplotlib shows as written (``$`` would start mathtext)."""
    return text.replace("$", r"\$")
