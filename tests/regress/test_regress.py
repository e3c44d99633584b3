"""pg_regress golden files: ``tests/regress/sql/<area>.sql`` against ``expected/<area>.out``.

The same run as ``make installcheck``: every area in sorted order, in one fresh database
(model ids are deterministic within it), against the local server with the extension.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pyml.client.cluster import PG_BIN, SUPERUSER, Cluster

HERE = Path(__file__).resolve().parent
AREAS = sorted(path.stem for path in (HERE / "sql").glob("*.sql"))
HEADER = "\\set SHOW_CONTEXT never\nSET client_min_messages = warning;\n"


def pg_regress() -> Path:
    """The server's pg_regress: ``<pgxs>/src/makefiles/pgxs.mk`` -> ``<pgxs>/src/test/regress``."""
    pgxs = subprocess.run(
        [str(PG_BIN / "pg_config"), "--pgxs"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return Path(pgxs).parent.parent / "test" / "regress" / "pg_regress"


@pytest.fixture
def regress_database(cluster: Cluster) -> Iterator[str]:
    """A database name for pg_regress, which creates it (fresh); dropped afterwards."""
    name = f"pyml_regress_{os.getpid()}"
    yield name
    with psycopg.connect(cluster.uri("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def test_every_area_has_its_golden_file() -> None:
    public_areas = {
        "classification",
        "deploy",
        "digits",
        "errors",
        "explain",
        "joint",
        "monitoring",
        "preprocessing",
        "regression",
        "streaming",
        # PostgresML's classic-ML examples, one workflow each
        "pgml_binary_classification",
        "pgml_clustering",
        "pgml_decomposition",
        "pgml_image_classification",
        "pgml_joint_regression",
        "pgml_multi_classification",
        "pgml_preprocessing",
        "pgml_regression",
    }
    assert public_areas <= set(AREAS)
    assert sorted(path.stem for path in (HERE / "expected").glob("*.out")) == AREAS


@pytest.mark.parametrize("area", AREAS)
def test_golden_file_header(area: str) -> None:
    """Each script hides PL/Python context lines and notices (timings) before anything else."""
    assert (HERE / "sql" / f"{area}.sql").read_text().startswith(HEADER)
    assert (HERE / "expected" / f"{area}.out").read_text().startswith(HEADER)


@pytest.mark.slow
def test_pg_regress(cluster: Cluster, regress_database: str, tmp_path: Path) -> None:
    binary = pg_regress()
    assert binary.is_file(), f"pg_regress not found at {binary}"
    argv = [
        str(binary),
        f"--bindir={PG_BIN}",
        "--host=127.0.0.1",
        f"--port={cluster.port}",
        f"--user={SUPERUSER}",
        f"--inputdir={HERE}",
        f"--outputdir={tmp_path}",
        # CREATE EXTENSION IF NOT EXISTS without CASCADE: the dependency first.
        "--load-extension=plpython3u",
        "--load-extension=pyml",
        f"--dbname={regress_database}",
        *AREAS,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
    diffs = tmp_path / "regression.diffs"
    report = proc.stdout + proc.stderr
    if diffs.exists():
        report += "\n" + diffs.read_text()
    assert proc.returncode == 0, report
    for area in AREAS:  # each area ran and passed
        assert re.search(rf"^test {area} +\.\.\. ok ", proc.stdout, re.MULTILINE), report
    assert f"All {len(AREAS)} tests passed." in proc.stdout, report
