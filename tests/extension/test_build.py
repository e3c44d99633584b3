"""extension/ is built from sql/ and agrees with the package version (no database)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pyml

ROOT = Path(__file__).resolve().parents[2]


def _control() -> dict[str, str]:
    settings = {}
    for line in (ROOT / "extension" / "pyml.control").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip().strip("'")
    return settings


def test_extension_scripts_are_in_sync_with_sql() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "sql" / "build.py"), "--check"],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert proc.returncode == 0, f"sql/build.py --check failed:\n{proc.stdout}{proc.stderr}"


def test_versions_agree() -> None:
    with open(ROOT / "pyproject.toml", "rb") as f:
        project_version = tomllib.load(f)["project"]["version"]
    control = _control()
    assert control["default_version"] == pyml.__version__ == project_version


def test_install_script_of_the_default_version_exists() -> None:
    version = _control()["default_version"]
    script = ROOT / "extension" / f"pyml--{version}.sql"
    assert script.is_file()
    assert re.search(r"^-- source: sql/head\.sql$", script.read_text(), re.MULTILINE)


def test_control_file() -> None:
    control = _control()
    assert control["requires"] == "plpython3u"
    assert control["schema"] == "pyml"
    assert control["relocatable"] == "false"
