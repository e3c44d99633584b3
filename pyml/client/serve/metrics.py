"""``/metrics``: Prometheus text for one service process (with ``--workers N``, each worker
counts its own requests; the ``worker`` label tells them apart)."""

from __future__ import annotations

import bisect
import os
from collections import defaultdict

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.worker = str(os.getpid())
        self.requests: defaultdict[tuple[str, str, int], int] = defaultdict(int)
        self.errors: defaultdict[tuple[str, int], int] = defaultdict(int)
        self.buckets: defaultdict[str, list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self.sums: defaultdict[str, float] = defaultdict(float)
        self.counts: defaultdict[str, int] = defaultdict(int)
        self.rows: defaultdict[str, int] = defaultdict(int)
        self.models: dict[str, int] = {}
        self.logged = 0
        self.log_dropped = 0

    def observe(self, route: str, project: str, status: int, seconds: float, rows: int) -> None:
        self.requests[(route, project, status)] += 1
        if status >= 400:
            self.errors[(project, status)] += 1
        else:
            self.rows[project] += rows
        i = bisect.bisect_left(BUCKETS, seconds)
        if i < len(BUCKETS):
            self.buckets[route][i] += 1
        self.sums[route] += seconds
        self.counts[route] += 1

    def text(self) -> str:
        w = f'worker="{self.worker}"'
        out = [
            "# HELP pyml_serve_requests_total Requests answered, by route, model and status.",
            "# TYPE pyml_serve_requests_total counter",
        ]
        for (route, project, status), n in sorted(self.requests.items()):
            out.append(
                f'pyml_serve_requests_total{{{w},route="{route}",model="{_esc(project)}",'
                f'status="{status}"}} {n}'
            )
        out += [
            "# HELP pyml_serve_errors_total Requests refused or failed, by model and status.",
            "# TYPE pyml_serve_errors_total counter",
        ]
        for (project, status), n in sorted(self.errors.items()):
            out.append(
                f'pyml_serve_errors_total{{{w},model="{_esc(project)}",status="{status}"}} {n}'
            )
        out += [
            "# HELP pyml_serve_rows_total Rows predicted, by model.",
            "# TYPE pyml_serve_rows_total counter",
        ]
        for project, n in sorted(self.rows.items()):
            out.append(f'pyml_serve_rows_total{{{w},model="{_esc(project)}"}} {n}')
        out += [
            "# HELP pyml_serve_request_seconds Time to answer a request, by route.",
            "# TYPE pyml_serve_request_seconds histogram",
        ]
        for route in sorted(self.counts):
            total = 0
            for bound, n in zip(BUCKETS, self.buckets[route], strict=True):
                total += n
                out.append(
                    f'pyml_serve_request_seconds_bucket{{{w},route="{route}",le="{bound}"}} {total}'
                )
            out.append(
                f'pyml_serve_request_seconds_bucket{{{w},route="{route}",le="+Inf"}} '
                f"{self.counts[route]}"
            )
            out.append(f'pyml_serve_request_seconds_sum{{{w},route="{route}"}} {self.sums[route]}')
            out.append(
                f'pyml_serve_request_seconds_count{{{w},route="{route}"}} {self.counts[route]}'
            )
        out += [
            "# HELP pyml_serve_model_id The id of the live model served, by project.",
            "# TYPE pyml_serve_model_id gauge",
        ]
        for project, model_id in sorted(self.models.items()):
            out.append(f'pyml_serve_model_id{{{w},model="{_esc(project)}"}} {model_id}')
        out += [
            "# HELP pyml_serve_logged_total Predictions written to the prediction log.",
            "# TYPE pyml_serve_logged_total counter",
            f"pyml_serve_logged_total{{{w}}} {self.logged}",
            "# HELP pyml_serve_log_dropped_total Sampled predictions dropped (log queue full).",
            "# TYPE pyml_serve_log_dropped_total counter",
            f"pyml_serve_log_dropped_total{{{w}}} {self.log_dropped}",
        ]
        return "\n".join(out) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
