"""The dbt package (integrations/dbt) and its example project (examples/dbt), run for real:
dbt-core and dbt-postgres (in their own virtual environment, ``make dbt-setup``) against the
test server, as the non-superuser test role.

A pyml_model trains on its first build, then only when the fingerprint of its training rows or
its configuration changed; scoring models ref() it; the drift test fails on drifted rows.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "dbt"
PACKAGE = ROOT / "integrations" / "dbt"
DBT_VENV = ROOT / ".venv-dbt"
SCHEMA = "pyml_example"
PRICE = f"{SCHEMA}.house_price_model"  # the projects: <schema>.<model> by default
SEGMENT = f"{SCHEMA}.house_segment_model"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def dbt_executable() -> Path:
    """dbt from .venv-dbt, built by ``make dbt-setup`` (which ``make test`` runs first; here it
    is a no-op then, and builds or updates the venv when pytest runs alone)."""
    made = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "dbt-setup"], capture_output=True, text=True
    )
    if made.returncode != 0:
        reason = f"make dbt-setup failed:\n{made.stdout[-2000:]}\n{made.stderr[-2000:]}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return DBT_VENV / "bin" / "dbt"


@dataclass
class Run:
    returncode: int
    output: str
    results: dict[str, dict[str, Any]]  # by node name: status, message, failures

    def status(self, name: str) -> str:
        return str(self.results[name]["status"])

    def message(self, name: str) -> str:
        return str(self.results[name]["message"])


class Project:
    """A copy of the example project, its package installed from this checkout."""

    def __init__(self, path: Path, executable: Path, env: dict[str, str]) -> None:
        self.path, self.executable, self.env = path, executable, env

    def dbt(self, *args: str) -> Run:
        done = subprocess.run(
            [str(self.executable), *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        results: dict[str, dict[str, Any]] = {}
        run_results = self.path / "target" / "run_results.json"
        if args[0] != "deps" and run_results.exists():
            for result in json.loads(run_results.read_text())["results"]:
                results[result["unique_id"].split(".")[2]] = result
        return Run(done.returncode, done.stdout + done.stderr, results)

    def build(self, *args: str) -> Run:
        return self.dbt("build", *args)

    def read_seed(self, name: str) -> list[dict[str, str]]:
        with open(self.path / "seeds" / f"{name}.csv", newline="") as source:
            return list(csv.DictReader(source))

    def write_seed(self, name: str, rows: list[dict[str, str]]) -> None:
        with open(self.path / "seeds" / f"{name}.csv", "w", newline="") as out:
            writer = csv.DictWriter(out, list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)

    def edit(self, relative: str, old: str, new: str) -> None:
        path = self.path / relative
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))


@pytest.fixture(scope="module")
def project(
    dbt_executable: Path, url: str, admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Project]:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        database = admin.info.dbname
        admin.execute(
            sql.SQL("GRANT CREATE ON DATABASE {} TO pyml_tester").format(sql.Identifier(database))
        )
    path = tmp_path_factory.mktemp("dbt") / "project"
    shutil.copytree(
        EXAMPLE,
        path,
        ignore=shutil.ignore_patterns("target", "dbt_packages", "logs", "package-lock.yml"),
    )
    (path / "packages.yml").write_text(f"packages:\n  - local: {PACKAGE}\n")
    info = conninfo_to_dict(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DBT_"))}
    env.update(
        PGHOST=str(info["host"]),
        PGPORT=str(info["port"]),
        PGUSER=str(info["user"]),
        PGDATABASE=str(info["dbname"]),
        PYML_DBT_SCHEMA=SCHEMA,
        DBT_PROFILES_DIR=str(path),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        DO_NOT_TRACK="1",
        DBT_USE_COLORS="false",
    )
    project = Project(path, dbt_executable, env)
    deps = project.dbt("deps")
    assert deps.returncode == 0, deps.output
    yield project


def model_counts(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute(
        "SELECT p.name, count(*) FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
        " GROUP BY p.name"
    ).fetchall()
    return {name: count for name, count in rows}


def scored(conn: psycopg.Connection) -> dict[int, tuple[int, Any]]:
    """The incremental model's rows: id -> (model_id, scored_at)."""
    rows = conn.execute(
        "SELECT id, model_id, scored_at FROM pyml_example.house_price_scores_incremental"
    ).fetchall()
    return {key: (model, at) for key, model, at in rows}


def live(conn: psycopg.Connection, project: str) -> int:
    row = conn.execute("SELECT pyml.deployed_model(%s)", (project,)).fetchone()
    assert row is not None and row[0] is not None
    return int(row[0])


def test_builds_train_only_when_the_data_or_the_config_changed(
    project: Project, conn: psycopg.Connection
) -> None:
    # 1. The first build trains both models, scores with them and passes every test.
    first = project.build()
    assert first.returncode == 0, first.output
    assert model_counts(conn) == {PRICE: 1, SEGMENT: 1}
    assert first.message("house_price_model").startswith("TRAINED model ")
    assert "NOTICE:  pyml: loaded 2000 rows x 4 features" in first.output  # training's NOTICEs
    assert first.status("pyml_no_drift_new_houses_ref_house_price_model_") == "pass"
    price_model = live(conn, PRICE)
    n, nulls, mean = conn.execute(
        "SELECT count(*), count(*) - count(predicted_price), avg(predicted_price)"
        " FROM pyml_example.house_scores"
    ).fetchone() or (0, 0, 0)
    assert (n, nulls) == (600, 0) and 100_000 < mean < 300_000
    before = scored(conn)
    assert len(before) == 600 and {m for m, _ in before.values()} == {price_model}
    record = conn.execute(
        "SELECT model_id, project, data_fingerprint, deployed FROM pyml_example.house_price_model"
    ).fetchall()
    fingerprint = conn.execute(
        "SELECT s.data_fingerprint FROM pyml.models m JOIN pyml.snapshots s"
        " ON s.id = m.snapshot_id WHERE m.id = %s",
        (price_model,),
    ).fetchone()
    assert fingerprint is not None
    assert record == [(price_model, PRICE, fingerprint[0], True)]

    # 2. Nothing changed: the second build trains nothing, scores nothing again, still passes.
    second = project.build()
    assert second.returncode == 0, second.output
    assert model_counts(conn) == {PRICE: 1, SEGMENT: 1}
    assert second.message("house_price_model") == f"UNCHANGED model {price_model}"
    assert "data and configuration unchanged" in second.output
    assert all(r["status"] in ("success", "pass") for r in second.results.values())
    assert scored(conn) == before

    # 3. A new configuration retrains that model only; new rows alone are scored.
    project.edit("models/training/house_segment_model.sql", "'num_leaves': 7", "'num_leaves': 15")
    houses = project.read_seed("new_houses")
    project.write_seed(
        "new_houses",
        [*houses, *({**row, "id": str(5000 + i)} for i, row in enumerate(houses[:20]))],
    )
    third = project.build()
    assert third.returncode == 0, third.output
    assert model_counts(conn) == {PRICE: 1, SEGMENT: 2}
    assert "the configuration changed" in third.output
    after = scored(conn)
    assert len(after) == 620
    assert {k: v for k, v in after.items() if k < 5000} == before

    # 4. New training rows retrain the model that reads them; the other model's SELECT does
    # not read the changed column, so its fingerprint (and model) stay. A deployed retraining
    # has every row scored again, by the new model.
    rows = project.read_seed("houses")
    project.write_seed(
        "houses", [{**row, "price": str(int(row["price"]) * 11 // 10)} for row in rows]
    )
    fourth = project.build()
    assert fourth.returncode == 0, fourth.output
    assert model_counts(conn) == {PRICE: 2, SEGMENT: 2}
    assert "the data changed" in fourth.output
    new_model = live(conn, PRICE)
    assert new_model != price_model
    assert {m for m, _ in scored(conn).values()} == {new_model}
    history = conn.execute(
        "SELECT model_id, deployed FROM pyml_example.house_price_model ORDER BY trained_at"
    ).fetchall()
    assert history == [(price_model, True), (new_model, True)]


# More no_drift tests of new_houses (after its own in models/schema.yml): only a feature that
# does not drift, and thresholds no value reaches.
DRIFT_TEST = """      - pyml.no_drift:
          arguments:
            pyml_model: ref('house_price_model')
"""
MORE_DRIFT_TESTS = """      - pyml.no_drift:
          name: drift_of_age_only
          arguments:
            pyml_model: ref('house_price_model')
            features: [age]
            include_prediction: false
      - pyml.no_drift:
          name: drift_over_loose_thresholds
          arguments:
            pyml_model: ref('house_price_model')
            thresholds: {psi: 100, ks: 100, js: 100}
"""


def test_the_drift_test_fails_on_drifted_rows(project: Project, conn: psycopg.Connection) -> None:
    houses = project.read_seed("new_houses")
    project.write_seed(
        "new_houses", [{**row, "size": str(round(float(row["size"]) * 1.6, 1))} for row in houses]
    )
    project.edit("models/schema.yml", DRIFT_TEST, DRIFT_TEST + MORE_DRIFT_TESTS)
    run = project.build("--select", "+house_price_model", "new_houses")
    assert run.returncode == 1, run.output
    drift = run.results["pyml_no_drift_new_houses_ref_house_price_model_"]
    assert drift["status"] == "fail" and drift["failures"] > 0
    assert run.status("drift_of_age_only") == "pass", run.output
    assert run.status("drift_over_loose_thresholds") == "pass", run.output
    drifted = {
        feature
        for (feature,) in conn.execute(
            "SELECT feature FROM pyml.drift(%s, 'pyml_example.new_houses') WHERE drifted", (PRICE,)
        )
    }
    assert "size" in drifted and "age" not in drifted
