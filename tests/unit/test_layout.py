"""Where code runs, checked: the package's map (``pyml/__init__.py``) as import rules.

- ``pyml.server``: reached from SQL, runs inside PostgreSQL: never imports psycopg or the client.
- ``pyml.client``: runs in a user's process: never imports the server's modules.
- ``pyml.core``: pure code both use: no database at all (no psycopg, no server, no client).
- ``plpy`` is never imported: the boundary (``pyml.server._sqlapi``) is handed it by the stubs.
- A module whose name starts with ``_`` is private to its subpackage: imported only from inside
  it (tests may import anything).
- ``pyml.edge``: the device runtime: the standard library, numpy, onnxruntime and
  ``pyml.errors``, nothing else (a device installs only those).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pyml"
AREAS = ("server", "client", "core")
EDGE = "pyml.edge"
EDGE_IMPORTS = frozenset({"numpy", "onnxruntime"})  # besides the standard library


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, module: str, is_package: bool) -> set[str]:
    """Every module ``source`` imports, at any depth (function-local imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            if is_package_name(base):  # `from pyml.core import artifacts`: the modules named
                found.update(f"{base}.{alias.name}" for alias in node.names)
            else:
                found.add(base)
    return found


def is_package_name(name: str) -> bool:
    return name.split(".")[0] == "pyml" and ROOT.joinpath(*name.split(".")).is_dir()


def area(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in AREAS else None


def problems(module: str, imported: set[str]) -> list[str]:
    """The rules of the map that ``module`` breaks by importing ``imported``."""
    where = area(module)
    found = []
    for name in sorted(imported):
        root = name.split(".")[0]
        if module == EDGE:
            if not (
                root in sys.stdlib_module_names
                or root in EDGE_IMPORTS
                or name in ("pyml", "pyml.errors")
            ):
                found.append(f"{module} (the device runtime) imports {name}")
            continue
        target = area(name) if root == "pyml" else None
        if root == "plpy":
            found.append(f"{module} imports plpy (the boundary is handed it)")
        elif root == "psycopg" and where in ("server", "core"):
            found.append(f"{module} ({where}) imports psycopg")
        elif target == "client" and where in ("server", "core"):
            found.append(f"{module} ({where}) imports the client module {name}")
        elif target == "server" and where in ("client", "core"):
            found.append(f"{module} ({where}) imports the server module {name}")
        elif target and target != where and any(p.startswith("_") for p in name.split(".")[2:]):
            found.append(f"{module} imports {name}, private to pyml.{target}")
    return found


def package_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", package_modules(), ids=lambda p: module_name(p))
def test_module_follows_the_map(path: Path) -> None:
    module = module_name(path)
    imported = imports(path.read_text(), module, path.name == "__init__.py")
    assert problems(module, imported) == []


def test_every_module_has_a_place() -> None:
    """Only the package's shared roots and the device runtime sit beside the three areas."""
    top = {p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert top == {"__init__.py", "errors.py", "edge.py", *AREAS}


def test_the_stubs_reach_only_the_boundary() -> None:
    """SQL reaches Python through one module: the bootstrap imports it, no stub imports pyml."""
    sources = "\n".join(p.read_text() for p in sorted((ROOT / "sql").rglob("*.sql")))
    found = re.findall(r"^\s*(?:from|import) (pyml[\w.]*)(?: import (\w+))?", sources, re.M)
    assert found == [("pyml.server", "_sqlapi")]


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("pyml.server.batch", "import psycopg", "pyml.server.batch (server) imports psycopg"),
        (
            "pyml.core.model",
            "def f():\n    from pyml.server import store",
            "pyml.core.model (core) imports the server module pyml.server.store",
        ),
        (
            "pyml.client.cli",
            "from pyml.server._db import Db",
            "pyml.client.cli (client) imports the server module pyml.server._db",
        ),
        (
            "pyml.server.training",
            "from pyml.core._lgbm import Booster",
            "pyml.server.training imports pyml.core._lgbm, private to pyml.core",
        ),
        ("pyml.server.store", "from .._db import Db", None),
        ("pyml.edge", "import psycopg", "pyml.edge (the device runtime) imports psycopg"),
        (
            "pyml.edge",
            "def f():\n    from pyml.core import onnxpart",
            "pyml.edge (the device runtime) imports pyml.core.onnxpart",
        ),
        ("pyml.edge", "import sklearn.base", "pyml.edge (the device runtime) imports sklearn.base"),
        ("pyml.edge", "import os, numpy, onnxruntime\nfrom pyml.errors import DataCorrupted", None),
        (
            "pyml.core.artifacts",
            "import plpy",
            "pyml.core.artifacts imports plpy (the boundary is handed it)",
        ),
    ],
)
def test_the_rules_catch_what_they_forbid(module: str, source: str, expected: str | None) -> None:
    """The checker itself: each rule reports a breach (and a relative import resolves)."""
    found = problems(module, imports(source, module, module == "pyml.server.store"))
    assert found == ([expected] if expected else [])
