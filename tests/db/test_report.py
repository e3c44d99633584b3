"""``pyml report``: a project's monitoring history as HTML (figure embedded) or PNG."""

from __future__ import annotations

import argparse
import base64
import re
import struct
from pathlib import Path

import psycopg
import pytest

from pyml.client import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PROJECT = "report diabetes"


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pyml")
    report.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["report", *argv])


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def monitored(conn: psycopg.Connection) -> str:
    """A regression project whose new rows drifted (bmi shifted): a first round retrains and
    deploys, a second finds the retrained model stable."""
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'regression', 'pyml.diabetes', 'target', 'linear')",
        (PROJECT,),
    )
    conn.execute("CREATE TABLE report_shifted AS SELECT * FROM pyml.diabetes")
    conn.execute("UPDATE report_shifted SET bmi = bmi + 0.1")
    conn.execute("SELECT pyml.monitor(%s, 'report_shifted', '1 hour')", (PROJECT,))
    conn.execute("SELECT * FROM pyml.check(%s)", (PROJECT,))
    conn.execute("SELECT * FROM pyml.check(%s)", (PROJECT,))
    return PROJECT


def _rounds(conn: psycopg.Connection, project: str) -> list[tuple[str, list[str]]]:
    """(decision, drifted features) of each round, oldest first."""
    return [
        (decision, drifted or [])
        for decision, drifted in conn.execute(
            "SELECT r.decision, array_agg(DISTINCT f ->> 'feature')"
            "       FILTER (WHERE (f ->> 'drifted')::boolean)"
            " FROM pyml.drift_reports r JOIN pyml.projects p ON p.id = r.project_id,"
            "      jsonb_array_elements(r.features) f"
            " WHERE p.name = %s GROUP BY r.id, r.decision ORDER BY r.id",
            (project,),
        )
    ]


def _strategies(conn: psycopg.Connection, project: str) -> list[str]:
    return [
        s
        for (s,) in conn.execute(
            "SELECT d.strategy FROM pyml.deployments d JOIN pyml.projects p ON p.id = d.project_id"
            " WHERE p.name = %s ORDER BY d.id",
            (project,),
        )
    ]


def test_html_report_shows_rounds_and_deployments(
    conn: psycopg.Connection,
    url: str,
    monitored: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rounds = _rounds(conn, monitored)
    assert [decision for decision, _ in rounds] == ["deployed", "stable"]
    assert "bmi" in rounds[0][1]
    assert _strategies(conn, monitored) == ["new_score", "retrain"]

    path = tmp_path / "report.html"
    assert report.run(url, _args(monitored, "-o", str(path))) == 0
    assert capsys.readouterr().out == f"{path}\n"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert f"Monitoring report: {monitored}</h1>" in text
    assert "task regression" in text
    for feature in rounds[0][1]:
        assert f"<td>{feature}" in text  # in the latest-round table or the rounds table
    assert "bmi (psi, ks)" in text  # the drifted feature, with the metrics over threshold
    assert "__prediction__" in text
    for decision in ("deployed", "stable"):
        assert f'class="decision d-{decision}">{decision}</span>' in text
    assert "Decision</th><td>stable: no feature drifted" in text  # the latest round
    old, new = conn.execute(
        "SELECT old_score, new_score FROM pyml.drift_reports WHERE decision = 'deployed'"
        " AND project_id = (SELECT id FROM pyml.projects WHERE name = %s)",
        (monitored,),
    ).fetchone()
    assert new > old
    assert f"r2 {old:.4f} → {new:.4f}" in text
    for strategy in ("new_score", "retrain"):
        assert f"<td>{strategy}</td>" in text
    assert "All 2 rounds, newest first." in text

    # Self-contained: the only image is the embedded PNG; nothing is fetched.
    assert not re.search(r'(?:src|href)="(?!data:)', text)
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 1
    assert _png_size(base64.b64decode(images[0])) == (1100, 700)


def test_last_limits_the_rounds_shown(url: str, monitored: str, tmp_path: Path) -> None:
    path = tmp_path / "last.html"
    assert report.run(url, _args(monitored, "--last", "1", "-o", str(path))) == 0
    text = path.read_text(encoding="utf-8")
    assert "The last 1 of 2 rounds, newest first." in text
    assert 'class="decision d-stable"' in text
    assert 'class="decision d-deployed"' not in text
    assert "<td>retrain</td>" in text  # every deployment is still listed


def test_png_output_is_the_figure_only(
    url: str, monitored: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "drift.PNG"
    assert report.run(url, _args(monitored, "--output", str(path))) == 0
    assert capsys.readouterr().out == f"{path}\n"
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert _png_size(data) == (1100, 700)
    assert len(data) > 20_000  # two panels of lines, labels and legends, not a blank image


def test_unknown_project(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert report.run(url, _args("no such project")) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == 'pyml: error: project "no such project" does not exist\n'
    assert list(tmp_path.iterdir()) == []


def test_project_without_rounds_is_escaped(
    conn: psycopg.Connection,
    url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = "<b>x</b> & 'y'"
    conn.execute(
        "SELECT * FROM pyml.train(%s, 'regression', 'pyml.diabetes', 'target', 'linear')", (name,)
    )
    monkeypatch.chdir(tmp_path)
    assert report.run(url, _args(name)) == 0
    written = capsys.readouterr().out.strip()
    assert written == "b_x_b_y-report.html"  # the default name, made safe for a file
    text = (tmp_path / written).read_text(encoding="utf-8")
    assert "<b>" not in text and "'y'" not in text
    assert "Monitoring report: &lt;b&gt;x&lt;/b&gt; &amp; &#x27;y&#x27;</h1>" in text
    assert "No monitoring round has run yet" in text
    assert "<td>new_score</td>" in text
    assert "data:image/png;base64," in text


def test_last_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _args("p", "--last", "0")
    assert "must be a positive integer, got 0" in capsys.readouterr().err


def test_connection_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = "postgresql://nobody@127.0.0.1:1/nothing?connect_timeout=2"
    assert report.run(bad, _args("p", "-o", str(tmp_path / "r.html"))) == 1
    assert capsys.readouterr().err.startswith("pyml: error: ")
    assert list(tmp_path.iterdir()) == []
