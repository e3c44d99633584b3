"""What the figures were measured on."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

import psycopg

from bench.config import ROOT

PACKAGES = (
    "numpy",
    "lightgbm",
    "scikit-learn",
    "skops",
    "psycopg",
    "fastapi",
    "uvicorn",
    "httpx",
    "pydantic",
)


def _cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _ram_gb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _git() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "pyml", "sql", "extension"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return head + (" (pyml/, sql/ or extension/ modified)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def describe(conn: psycopg.Connection) -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    server_version = conn.execute("SHOW server_version").fetchone()[0]
    settings = {
        name: conn.execute(f"SHOW {name}").fetchone()[0]
        for name in (
            "shared_buffers",
            "work_mem",
            "jit",
            "max_parallel_workers_per_gather",
            "synchronize_seqscans",
        )
    }
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": round(_ram_gb(), 1),
        "kernel": platform.release(),
        "postgresql": server_version,
        "postgresql_settings": settings,
        "pyml": conn.execute("SELECT pyml.version()").fetchone()[0],
        "python": sys.version.split()[0],
        "packages": versions,
        "git": _git(),
    }
