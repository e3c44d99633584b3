"""Training in a child process of the backend: cancellable, bounded in memory, harmless.

The fit runs in a process forked by the backend (pyml.server._isolate). These tests look at it from
outside through /proc (the tests run on the server's machine): the backend's children while
and after it fits, and what a kill of the backend leaves.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql

ENDLESS = '{"n_estimators": 100000000}'  # LightGBM on 200 rows: splits never run out


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (zombies included)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def gone(pid: int, seconds: float = 5) -> bool:
    """Whether process ``pid`` ends (or is a zombie) within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def wait_for_child(backend: int, seconds: float = 30) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = children(backend)
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"backend {backend} started no fitting process in {seconds}s")


def train_sql(
    project: str, relation: str, algorithm: str, hyperparams: str = "{}", task: str = "regression"
) -> tuple[str, tuple[Any, ...]]:
    return (
        "SELECT * FROM pyml.train(%s, %s, %s, 'y', %s, hyperparams => %s::jsonb)",
        (project, task, relation, algorithm, hyperparams),
    )


@pytest.fixture(scope="module")
def rows(admin_url: str) -> str:
    """200 rows of 5 random features and a noisy target, readable by the test role."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("SELECT setseed(0.5)")
        admin.execute(
            "CREATE TABLE public.iso_rows AS SELECT random() AS a, random() AS b,"
            " random() AS c, random() AS d, random() AS e FROM generate_series(1, 200)"
        )
        admin.execute("ALTER TABLE public.iso_rows ADD COLUMN y float8")
        admin.execute("UPDATE public.iso_rows SET y = 3 * a - 2 * b + random()")
        admin.execute(
            "CREATE TABLE public.iso_large AS SELECT random() AS a, random() AS b,"
            " random() AS c, random() AS y FROM generate_series(1, 6400)"
        )
        admin.execute("GRANT SELECT ON public.iso_rows, public.iso_large TO pyml_tester")
    return "public.iso_rows"


@pytest.fixture
def sentinel(connect: Callable[..., psycopg.Connection]) -> Iterator[psycopg.Connection]:
    """A session opened before the test, which must still work after it."""
    session = connect()
    session.execute("SELECT 1")
    yield session
    assert session.execute("SELECT 42").fetchone() == (42,)


def primary(error: psycopg.Error) -> str:
    """The primary message, without PL/Python's prefix."""
    return error.diag.message_primary or ""


def warm_up(session: psycopg.Connection, relation: str) -> None:
    """Load pyml and LightGBM in the session (a first call imports them)."""
    session.execute(*train_sql("iso warm-up", relation, "lightgbm", '{"n_estimators": 2}'))


def still_works(session: psycopg.Connection, project: str, relation: str) -> None:
    """The session that failed trains and predicts normally, and its backend has no child."""
    backend = session.execute("SELECT pg_backend_pid()").fetchone()[0]
    assert children(backend) == []
    project = f"{project} after"  # (a project of other inputs keeps its live model)
    session.execute(*train_sql(project, relation, "linear"))
    (value,) = session.execute(
        "SELECT pyml.predict(%s, ARRAY[0.5, 0.5, 0.5, 0.5, 0.5]::float8[])", (project,)
    ).fetchone()
    assert np.isfinite(value)
    assert children(backend) == []


@pytest.mark.slow
def test_statement_timeout_stops_an_endless_fit(
    connect: Callable[..., psycopg.Connection], rows: str, sentinel: psycopg.Connection
) -> None:
    session = connect()
    backend = session.execute("SELECT pg_backend_pid()").fetchone()[0]
    warm_up(session, rows)
    session.execute("SET statement_timeout = '2s'")
    started = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled):
        session.execute(*train_sql("iso timeout", rows, "lightgbm", ENDLESS))
    assert time.monotonic() - started < 4
    assert children(backend) == []
    session.execute("RESET statement_timeout")
    still_works(session, "iso timeout", rows)


@pytest.mark.slow
def test_pg_cancel_backend_stops_an_endless_fit(
    connect: Callable[..., psycopg.Connection],
    admin_url: str,
    rows: str,
    sentinel: psycopg.Connection,
) -> None:
    session = connect()
    backend = session.execute("SELECT pg_backend_pid()").fetchone()[0]
    warm_up(session, rows)
    outcome: list[BaseException | None] = []

    def fit() -> None:
        try:
            session.execute(*train_sql("iso cancel", rows, "lightgbm", ENDLESS))
            outcome.append(None)
        except BaseException as exc:  # checked below
            outcome.append(exc)

    thread = threading.Thread(target=fit)
    thread.start()
    child = wait_for_child(backend)
    time.sleep(0.5)  # well inside LightGBM's native code
    with psycopg.connect(admin_url, autocommit=True) as admin:
        cancelled = time.monotonic()
        assert admin.execute("SELECT pg_cancel_backend(%s)", (backend,)).fetchone() == (True,)
    thread.join(30)
    assert not thread.is_alive()
    assert time.monotonic() - cancelled < 2
    assert isinstance(outcome[0], psycopg.errors.QueryCanceled)
    assert gone(child, 1) and children(backend) == []
    still_works(session, "iso cancel", rows)


@pytest.mark.slow
def test_memory_limit_is_53200(
    connect: Callable[..., psycopg.Connection], rows: str, sentinel: psycopg.Connection
) -> None:
    """Kernel ridge regression needs an n x n kernel matrix: 4,800 training rows, 184 MB."""
    session = connect()
    session.execute("SET pyml.train_memory_limit = '150MB'")
    with pytest.raises(psycopg.errors.OutOfMemory) as caught:
        session.execute(*train_sql("iso memory", "public.iso_large", "kernel_ridge"))
    diag = caught.value.diag
    assert diag.sqlstate == "53200"
    assert primary(caught.value) == (
        'training used more memory than "pyml.train_memory_limit" allows (150 MB)'
    )
    assert "could not allocate memory" in (diag.message_detail or "")
    assert "pyml.train_memory_limit" in (diag.message_hint or "")
    # the same fit with room enough
    session.execute("SET pyml.train_memory_limit = '2GB'")
    session.execute(*train_sql("iso memory", "public.iso_large", "kernel_ridge"))
    session.execute("RESET pyml.train_memory_limit")
    still_works(session, "iso memory", rows)


def test_absurd_hyperparameter_is_refused_before_reading(
    connect: Callable[..., psycopg.Connection], rows: str, sentinel: psycopg.Connection
) -> None:
    session = connect()
    warm_up(session, rows)  # a session's first call imports the libraries
    session.execute("SET client_min_messages = notice")
    notices: list[str] = []
    session.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    for algorithm in ("lightgbm", "random_forest"):
        started = time.monotonic()
        with pytest.raises(psycopg.errors.InvalidParameterValue) as caught:
            session.execute(*train_sql("iso absurd", rows, algorithm, '{"n_estimators": 1e20}'))
        assert time.monotonic() - started < 2
        assert primary(caught.value).startswith(
            f'hyperparameter "n_estimators" of algorithm "{algorithm}" must be an integer in '
            "the range ["
        )
    # a candidate of a search is checked the same way
    with pytest.raises(psycopg.errors.InvalidParameterValue, match='"num_leaves"'):
        session.execute(
            "SELECT * FROM pyml.train('iso absurd', 'regression', %s, 'y', 'lightgbm',"
            " search => 'grid', search_params => '{\"num_leaves\": [7, 1]}')",
            (rows,),
        )
    assert not [n for n in notices if n.startswith("pyml: loaded")]  # no row was read
    still_works(session, "iso absurd", rows)


def test_invalid_memory_limit_is_22023(
    connect: Callable[..., psycopg.Connection], rows: str
) -> None:
    session = connect()
    session.execute("SET pyml.train_memory_limit = 'lots'")
    with pytest.raises(psycopg.errors.InvalidParameterValue) as caught:
        session.execute(*train_sql("iso setting", rows, "linear"))
    assert primary(caught.value) == ('invalid value for setting "pyml.train_memory_limit": "lots"')


def test_the_server_limit_wins_over_a_larger_session_value(admin_url: str, rows: str) -> None:
    """The server configuration's value (pg_file_settings, read by privileged roles) is the
    most a session gets; a smaller session value applies."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("SET pyml.train_memory_limit = '150MB'")  # ALTER SYSTEM needs it known
        admin.execute("ALTER SYSTEM SET pyml.train_memory_limit = '150MB'")
        admin.execute("SELECT pg_reload_conf()")
        try:
            with psycopg.connect(admin_url, autocommit=True) as session:
                notices: list[str] = []
                session.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
                session.execute("SET pyml.train_memory_limit = '4GB'")
                with pytest.raises(psycopg.errors.OutOfMemory, match=r"\(150 MB\)"):
                    session.execute(*train_sql("iso server", "public.iso_large", "kernel_ridge"))
                assert (
                    'pyml: setting "pyml.train_memory_limit" of this session (4 GB) is '
                    "above the server's limit; using 150 MB"
                ) in notices
                session.execute("SET pyml.train_memory_limit = '100MB'")
                with pytest.raises(psycopg.errors.OutOfMemory, match=r"\(100 MB\)"):
                    session.execute(*train_sql("iso server", "public.iso_large", "kernel_ridge"))
        finally:
            admin.execute("ALTER SYSTEM RESET pyml.train_memory_limit")
            admin.execute("SELECT pg_reload_conf()")


def test_process_based_n_jobs_run_on_threads(conn: psycopg.Connection) -> None:
    """joblib's default backend starts worker processes (bagging, theil_sen, mean_shift...),
    which in a backend cannot even start; in the fitting process joblib uses threads."""
    conn.execute(
        "SELECT * FROM pyml.train('iso jobs', 'regression', 'pyml.diabetes', 'target',"
        " 'bagging', hyperparams => '{\"n_jobs\": 2, \"n_estimators\": 4}')"
    )
    (n_jobs,) = conn.execute(
        "SELECT m.hyperparams->'n_jobs' FROM pyml.models m JOIN pyml.projects p"
        " ON p.id = m.project_id WHERE p.name = 'iso jobs'"
    ).fetchone()
    assert n_jobs == 2


@pytest.mark.slow
def test_search_progress_arrives_while_fitting(connect: Callable[..., psycopg.Connection]) -> None:
    session = connect()
    session.execute("SET client_min_messages = notice")
    arrivals: list[tuple[float, str]] = []
    session.add_notice_handler(
        lambda d: arrivals.append((time.monotonic(), d.message_primary or ""))
    )
    session.execute(
        "SELECT * FROM pyml.train('iso search', 'classification', 'pyml.digits', 'target',"
        " 'random_forest', search => 'grid',"
        " search_params => '{\"n_estimators\": [10, 40, 80, 120]}', search_args => '{\"cv\": 3}')"
    )
    ended = time.monotonic()
    progress = [(t, n) for t, n in arrivals if "search candidate" in n]
    assert [n.split(":")[1].split()[-1] for _, n in progress] == ["1/4", "2/4", "3/4", "4/4"]
    assert ended - progress[0][0] > 0.5  # relayed as it happens, not at the end


def test_results_are_those_of_an_in_process_fit(conn: psycopg.Connection) -> None:
    """The stored LightGBM model is byte for byte what the same fit gives in this process,
    and its metrics are those of that model on the test rows."""
    from lightgbm import LGBMRegressor
    from sklearn.metrics import r2_score

    conn.execute(
        "SELECT * FROM pyml.train('iso same', 'regression', 'pyml.diabetes', 'target',"
        " 'lightgbm', hyperparams => '{\"n_estimators\": 30}', test_size => 0.25,"
        " test_sampling => 'last')"
    )
    hyperparams, metrics, data = conn.execute(
        "SELECT m.hyperparams, m.metrics, f.data FROM pyml.models m"
        " JOIN pyml.projects p ON p.id = m.project_id JOIN pyml.files f ON f.model_id = m.id"
        " WHERE p.name = 'iso same'"
    ).fetchone()
    columns = [
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'pyml.diabetes'::regclass"
            " AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
        )
    ]
    features = [c for c in columns if c != "target"]
    query = sql.SQL("SELECT {}, target::float8 FROM pyml.diabetes").format(
        sql.SQL(", ").join(sql.SQL("{}::float8").format(sql.Identifier(c)) for c in features)
    )
    table = np.array(conn.execute(query).fetchall(), dtype=np.float64)
    X, y = table[:, :-1], table[:, -1]
    n_train = len(X) - int(round(0.25 * len(X)))
    here = LGBMRegressor(**hyperparams).fit(X[:n_train], y[:n_train])
    assert bytes(data) == here.booster_.model_to_string().encode()
    assert metrics["r2"] == pytest.approx(
        r2_score(y[n_train:], here.predict(X[n_train:])), rel=1e-12
    )


@pytest.mark.slow
def test_a_killed_backend_leaves_no_orphan(
    cluster: Any, admin_url: str, url: str, rows: str
) -> None:
    """kill -9 of a backend in the middle of a fit: the fitting process dies with it (an
    orphan would keep PostgreSQL's shared memory attached), the server restarts, and new
    sessions work. Last in the module: the crash restart ends every session."""
    session = psycopg.connect(url, autocommit=True)
    backend = session.execute("SELECT pg_backend_pid()").fetchone()[0]
    outcome: list[BaseException | None] = []

    def fit() -> None:
        try:
            session.execute(*train_sql("iso killed", rows, "lightgbm", ENDLESS))
            outcome.append(None)
        except BaseException as exc:  # checked below
            outcome.append(exc)

    thread = threading.Thread(target=fit)
    thread.start()
    try:
        child = wait_for_child(backend)
        time.sleep(0.5)
        os.kill(backend, signal.SIGKILL)
        assert gone(child, 5), "the fitting process outlived its backend"
        thread.join(30)
        assert isinstance(outcome[0], psycopg.OperationalError)
    finally:
        session.close()
    # The postmaster restarts after the crash. The client sees the killed session's socket
    # close before the postmaster has noticed: a session opened in between is ended by the
    # restart too, so a session counts once its work is done.
    deadline = time.monotonic() + 60
    while True:
        try:
            with psycopg.connect(url, autocommit=True) as fresh:
                fresh.execute(*train_sql("iso killed", rows, "linear"))
                (value,) = fresh.execute(
                    "SELECT pyml.predict('iso killed', ARRAY[0.5, 0.5, 0.5, 0.5, 0.5]::float8[])"
                ).fetchone()
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    assert np.isfinite(value)
