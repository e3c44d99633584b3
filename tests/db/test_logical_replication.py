"""Logical replication of the registry (docs/replication.md), run as the recipe says.

The publisher is the module's database, the subscriber another copy of the template on the
same server (the local cluster runs with wal_level = logical): the subscription uses a slot
created beforehand, as the recipe says for one server. The publication is read from
docs/replication.md, so the documented recipe is the tested one. The subscription and every
slot of the publisher's database are dropped at the end, failed or not.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from pytest_postgresql.janitor import DatabaseJanitor

from pyml.client.cluster import SUPERUSER, Cluster

ROOT = Path(__file__).resolve().parents[2]
ROLE = "pyml_tester"
ROW = [0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02]  # a diabetes-like row
FIRST_OWN_ID = 1_000_000_000_000_000
WAIT = 60.0  # seconds: the longest an apply may take here (2 shared cores)
SUBSCRIPTION = "pyml_registry"


def publication_sql() -> str:
    """The CREATE PUBLICATION statement of docs/replication.md."""
    found = re.search(
        r"^CREATE PUBLICATION pyml_registry\b.*?;$",
        (ROOT / "docs" / "replication.md").read_text(),
        re.S | re.M,
    )
    assert found, "docs/replication.md has no CREATE PUBLICATION pyml_registry statement"
    return found.group(0)


def one(conn: psycopg.Connection, query: Any, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def wait_for(what: str, check: Callable[[], Any]) -> Any:
    """Poll ``check`` until it returns something true; fail after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"not applied within {WAIT:.0f} s: {what}")
        time.sleep(0.1)


def log_since(path: Path, offset: int) -> str:
    """The server log written after ``offset`` bytes."""
    with open(path, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def train(conn: psycopg.Connection, project: str, algorithm: str, deploy: bool = True) -> int:
    conn.execute(
        "SELECT * FROM pyml.train(%s, task => 'regression', relation_name => 'pyml.diabetes',"
        " y_column_name => 'target', algorithm => %s, automatic_deploy => false)",
        (project, algorithm),
    )
    model_id = int(
        one(
            conn,
            "SELECT max(m.id) FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
            " WHERE p.name = %s",
            (project,),
        )
    )
    if deploy:
        conn.execute("SELECT * FROM pyml.deploy(%s::bigint)", (model_id,))
    return model_id


def predict(conn: psycopg.Connection, target: str | int) -> float:
    cast = "text" if isinstance(target, str) else "bigint"
    return float(
        one(
            conn,
            sql.SQL("SELECT pyml.predict(%s::{}, %s::real[])").format(sql.SQL(cast)),
            (target, ROW),
        )
    )


def live(conn: psycopg.Connection, project: str) -> int | None:
    row = conn.execute(
        "SELECT d.model_id FROM pyml.deployments d JOIN pyml.projects p ON p.id = d.project_id"
        " WHERE p.name = %s ORDER BY d.id DESC LIMIT 1",
        (project,),
    ).fetchone()
    return None if row is None else int(row[0])


def registry_rows(conn: psycopg.Connection, project: str) -> dict[str, Any]:
    """Everything the registry holds about a project, to compare before and after."""
    return {
        "project": conn.execute(
            "SELECT id, name, task, owner, created_at, updated_at FROM pyml.projects"
            " WHERE name = %s",
            (project,),
        ).fetchall(),
        "models": conn.execute(
            "SELECT m.id, m.snapshot_id, m.algorithm, m.metrics::text, m.created_at"
            " FROM pyml.models m JOIN pyml.projects p ON p.id = m.project_id"
            " WHERE p.name = %s ORDER BY m.id",
            (project,),
        ).fetchall(),
        "snapshots": conn.execute(
            "SELECT s.id, s.data_fingerprint, s.created_by FROM pyml.snapshots s"
            " WHERE s.id IN (SELECT m.snapshot_id FROM pyml.models m JOIN pyml.projects p"
            " ON p.id = m.project_id WHERE p.name = %s) ORDER BY s.id",
            (project,),
        ).fetchall(),
        "files": conn.execute(
            "SELECT f.model_id, f.part, f.sha256 FROM pyml.files f"
            " JOIN pyml.models m ON m.id = f.model_id JOIN pyml.projects p ON p.id = m.project_id"
            " WHERE p.name = %s ORDER BY 1, 2",
            (project,),
        ).fetchall(),
        "deployments": conn.execute(
            "SELECT d.id, d.model_id, d.strategy FROM pyml.deployments d"
            " JOIN pyml.projects p ON p.id = d.project_id WHERE p.name = %s ORDER BY d.id",
            (project,),
        ).fetchall(),
    }


# ---------------------------------------------------------------------------
# Publisher, subscriber, subscription
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def subscriber_db(cluster: Cluster, template: str) -> Iterator[str]:
    name = f"{template.replace('template', 'subscriber')}"
    janitor = DatabaseJanitor(
        user=SUPERUSER,
        host="127.0.0.1",
        port=cluster.port,
        dbname=name,
        template_dbname=template,
    )
    janitor.init()
    try:
        yield name
    finally:
        # Should the subscription's own teardown have failed: a database with a subscription
        # cannot be dropped.
        with psycopg.connect(cluster.uri(name), autocommit=True) as conn:
            _drop_subscription_only(conn)
        janitor.drop()


@pytest.fixture(scope="module")
def pub(admin_url: str) -> Iterator[psycopg.Connection]:
    """Superuser session on the publisher."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        yield conn


@pytest.fixture(scope="module")
def sub_admin(cluster: Cluster, subscriber_db: str) -> Iterator[psycopg.Connection]:
    """Superuser session on the subscriber."""
    with psycopg.connect(cluster.uri(subscriber_db), autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        yield conn


@pytest.fixture(scope="module")
def sub_url(cluster: Cluster, subscriber_db: str) -> str:
    """The test role on the subscriber."""
    return f"postgresql://{ROLE}@127.0.0.1:{cluster.port}/{subscriber_db}"


@pytest.fixture(scope="module")
def trainer(url: str) -> Iterator[psycopg.Connection]:
    """The test role on the publisher: it trains and deploys the published projects."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        yield conn


@pytest.fixture(scope="module")
def subscription(
    cluster: Cluster,
    database: str,
    pub: psycopg.Connection,
    sub_admin: psycopg.Connection,
    trainer: psycopg.Connection,
) -> Iterator[str]:
    """The recipe: a first published project, the publication, the subscriber's own id range,
    a slot and the subscription; the initial copy done. Dropped at the end, slots included."""
    train(trainer, "published", "linear")
    # The publisher's own grants and prediction logging, which must not travel.
    trainer.execute("SELECT pyml.grant('published', 'pg_monitor', 'predict')")
    trainer.execute("SELECT pyml.log_predictions('published', 0.5)")
    slot = f"pyml_sub_{database}"[:63]
    try:
        pub.execute(publication_sql())
        assert one(sub_admin, "SELECT pyml.own_ids()") == FIRST_OWN_ID
        pub.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        conninfo = f"host=127.0.0.1 port={cluster.port} user={SUPERUSER} dbname={database}"
        sub_admin.execute(
            sql.SQL(
                "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION pyml_registry"
                " WITH (create_slot = false, slot_name = {})"
            ).format(sql.Identifier(SUBSCRIPTION), sql.Literal(conninfo), sql.Literal(slot))
        )
        wait_for(
            "the initial copy of the five tables",
            lambda: one(
                sub_admin,
                "SELECT count(*) FILTER (WHERE srsubstate = 'r') = 5 FROM pg_subscription_rel",
            ),
        )
        yield slot
    finally:
        _drop_subscription(pub, sub_admin, database)


def _drop_subscription_only(sub: psycopg.Connection) -> None:
    """Drop the subscriber's subscription (if any) without touching the publisher's slot."""
    if sub.execute(
        "SELECT 1 FROM pg_subscription WHERE subname = %s"
        " AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (SUBSCRIPTION,),
    ).fetchone():
        name = sql.Identifier(SUBSCRIPTION)
        sub.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(name))
        sub.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(name))
        sub.execute(sql.SQL("DROP SUBSCRIPTION {}").format(name))


def _drop_subscription(pub: psycopg.Connection, sub: psycopg.Connection, database: str) -> None:
    """Drop the subscription without asking the publisher, then every slot of the publisher's
    database (the subscription's and any table-copy slot left behind), once inactive."""
    _drop_subscription_only(sub)
    deadline = time.monotonic() + WAIT
    while True:
        slots = pub.execute(
            "SELECT slot_name, active FROM pg_replication_slots WHERE database = %s", (database,)
        ).fetchall()
        for slot, active in slots:
            if not active:
                pub.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        if not any(active for _, active in slots) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    pub.execute("DROP PUBLICATION IF EXISTS pyml_registry")
    left = pub.execute(
        "SELECT slot_name, active, active_pid FROM pg_replication_slots WHERE database = %s",
        (database,),
    ).fetchall()
    assert left == [], "a replication slot of the test was left on the server"


@pytest.fixture(scope="module")
def reader(
    subscription: str, sub_admin: psycopg.Connection, sub_url: str
) -> Iterator[psycopg.Connection]:
    """A session of the test role on the subscriber, opened once and kept: it serves the
    published project from its cache all along (step 5 of the recipe gave it the right)."""
    sub_admin.execute("SELECT pyml.grant('published', %s, 'predict')", (ROLE,))
    with psycopg.connect(sub_url, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        yield conn


@pytest.fixture(scope="module")
def local_project(subscription: str, sub_url: str) -> int:
    """A project of the subscriber's own, trained by the test role there; its live model."""
    with psycopg.connect(sub_url, autocommit=True) as own:
        own.execute("SET client_min_messages = warning")
        return train(own, "local", "linear")


def hold(sub_admin: psycopg.Connection) -> None:
    """Stop applying (the publisher's changes wait in the slot)."""
    sub_admin.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(sql.Identifier(SUBSCRIPTION)))
    wait_for(
        "the apply worker to stop",
        lambda: one(
            sub_admin,
            "SELECT count(*) = 0 FROM pg_stat_subscription WHERE subname = %s AND pid IS NOT NULL",
            (SUBSCRIPTION,),
        ),
    )


def release(sub_admin: psycopg.Connection) -> None:
    sub_admin.execute(sql.SQL("ALTER SUBSCRIPTION {} ENABLE").format(sql.Identifier(SUBSCRIPTION)))


def wait_live(sub: psycopg.Connection, project: str, model_id: int | None) -> None:
    wait_for(f"project {project!r} live model {model_id}", lambda: live(sub, project) == model_id)


# ---------------------------------------------------------------------------
# Serving what the publisher deploys
# ---------------------------------------------------------------------------


def test_initial_copy_serves_the_published_model(
    trainer: psycopg.Connection, reader: psycopg.Connection, sub_admin: psycopg.Connection
) -> None:
    model_id = live(trainer, "published")
    assert model_id is not None
    assert live(reader, "published") == model_id
    assert predict(reader, "published") == predict(trainer, "published")
    # Roles are not replicated: the project belongs, on the subscriber, to the role that
    # applies the changes (the subscription's owner), and so does its snapshot.
    assert one(trainer, "SELECT owner FROM pyml.projects WHERE name = 'published'") == ROLE
    assert one(sub_admin, "SELECT owner FROM pyml.projects WHERE name = 'published'") == SUPERUSER
    assert (
        one(
            sub_admin,
            "SELECT s.created_by FROM pyml.snapshots s JOIN pyml.models m ON m.snapshot_id = s.id"
            " WHERE m.id = %s",
            (model_id,),
        )
        == SUPERUSER
    )
    # Nothing of the publisher's privileges or prediction logging comes along: the one grant
    # on the subscriber is its own (the reader's).
    assert sub_admin.execute(
        "SELECT grantee, granted_by FROM pyml.project_privileges WHERE project = 'published'"
    ).fetchall() == [(ROLE, SUPERUSER)]
    assert one(sub_admin, "SELECT count(*) FROM pyml.prediction_logging") == 0


# Publisher and subscriber share one server here, so the publisher's own note on the board
# (its deployments_announce) already moves the subscriber's sessions to look the live model up
# again. Each test therefore holds the subscription while the publisher acts and lets the
# reading session serve in between: it sees the publisher's note before the change is applied
# (and caches the old model again), so only an announcement made by the apply can move it.


def test_running_session_follows_a_deployment(
    sub_admin: psycopg.Connection, trainer: psycopg.Connection, reader: psycopg.Connection
) -> None:
    before = predict(reader, "published")
    hold(sub_admin)
    model_id = train(trainer, "published", "ridge")
    wanted = predict(trainer, "published")
    assert wanted != before  # the two models answer differently: the switch is visible
    assert predict(reader, "published") == before  # not applied yet
    release(sub_admin)
    wait_live(reader, "published", model_id)
    assert predict(reader, "published") == wanted
    assert predict(reader, model_id) == wanted


def test_running_session_follows_a_rollback(
    sub_admin: psycopg.Connection, trainer: psycopg.Connection, reader: psycopg.Connection
) -> None:
    before = predict(reader, "published")
    hold(sub_admin)
    (model_id,) = trainer.execute(
        "SELECT model_id FROM pyml.deploy('published', 'rollback')"
    ).fetchone() or (None,)
    assert model_id is not None
    wanted = predict(trainer, "published")
    assert wanted != before
    assert predict(reader, "published") == before
    release(sub_admin)
    wait_live(reader, "published", model_id)
    assert predict(reader, "published") == wanted


def test_deleting_the_live_model_on_the_publisher(
    trainer: psycopg.Connection, reader: psycopg.Connection, sub_admin: psycopg.Connection
) -> None:
    gone = train(trainer, "published", "lasso")
    wait_live(reader, "published", gone)
    served = predict(reader, "published")
    hold(sub_admin)
    trainer.execute("SELECT pyml.delete_model(%s, force => true)", (gone,))
    after = live(trainer, "published")
    assert after is not None and after != gone
    wanted = predict(trainer, "published")
    assert wanted != served
    assert predict(reader, "published") == served
    release(sub_admin)
    wait_live(reader, "published", after)
    assert predict(reader, "published") == wanted
    for table in ("models", "files", "deployments"):
        column = "id" if table == "models" else "model_id"
        assert (
            one(
                sub_admin,
                sql.SQL("SELECT count(*) FROM pyml.{} WHERE {} = %s").format(
                    sql.Identifier(table), sql.Identifier(column)
                ),
                (gone,),
            )
            == 0
        )
    with pytest.raises(psycopg.errors.UndefinedObject):
        predict(reader, gone)


def test_the_announcement_is_what_moves_a_running_session(
    trainer: psycopg.Connection, reader: psycopg.Connection, sub_admin: psycopg.Connection
) -> None:
    """Control: with deployments_announce left at its default (not fired during apply), the
    deployment is applied but the running session keeps serving the old model."""
    served = predict(reader, "published")
    sub_admin.execute("ALTER TABLE pyml.deployments ENABLE TRIGGER deployments_announce")
    try:
        hold(sub_admin)
        model_id = train(trainer, "published", "ridge")
        assert predict(trainer, "published") != served
        assert predict(reader, "published") == served
        release(sub_admin)
        wait_live(reader, "published", model_id)
        assert predict(reader, "published") == served  # stale: nobody told the session
    finally:
        sub_admin.execute("ALTER TABLE pyml.deployments ENABLE ALWAYS TRIGGER deployments_announce")
        release(sub_admin)
    # The next applied deployment is announced again, and the session catches up (the
    # publisher's note makes it look up what was applied meanwhile: the stale model's successor).
    hold(sub_admin)
    stale = model_id
    (model_id,) = trainer.execute(
        "SELECT model_id FROM pyml.deploy('published', 'rollback')"
    ).fetchone() or (None,)
    assert predict(reader, "published") == predict(reader, stale)
    release(sub_admin)
    wait_live(reader, "published", model_id)
    assert predict(reader, "published") == predict(trainer, "published")


def test_pull_and_serve_hear_applied_deployments(
    trainer: psycopg.Connection, sub_url: str, reader: psycopg.Connection
) -> None:
    """NOTIFY pyml_deploy is sent by the apply too (deployments_notify is ALWAYS)."""
    with psycopg.connect(sub_url, autocommit=True) as listener:
        listener.execute("LISTEN pyml_deploy")
        model_id = train(trainer, "published", "linear")
        heard = [json.loads(n.payload) for n in listener.notifies(timeout=WAIT, stop_after=1)]
    assert heard and heard[0]["model_id"] == model_id and heard[0]["op"] == "INSERT"
    wait_live(reader, "published", model_id)


def test_deleting_a_project_on_the_publisher(
    trainer: psycopg.Connection, sub_admin: psycopg.Connection, reader: psycopg.Connection
) -> None:
    model_id = train(trainer, "short_lived", "linear")
    wait_live(sub_admin, "short_lived", model_id)
    project_id = one(sub_admin, "SELECT id FROM pyml.projects WHERE name = 'short_lived'")
    # The subscriber's own rows about the replicated project: a grant, prediction logging.
    sub_admin.execute("SELECT pyml.grant('short_lived', %s, 'predict')", (ROLE,))
    sub_admin.execute("SELECT pyml.log_predictions('short_lived', 1.0)")
    trainer.execute("SELECT pyml.delete_project('short_lived', force => true)")
    wait_for(
        "the project's deletion",
        lambda: one(
            sub_admin, "SELECT count(*) = 0 FROM pyml.projects WHERE id = %s", (project_id,)
        ),
    )
    # Nothing is left that pointed at it: the publisher's rows went row by row, the
    # subscriber's own with them (the foreign keys' cascades do not run during apply).
    for table in ("models", "deployments", "_grants", "prediction_logging"):
        assert (
            one(
                sub_admin,
                sql.SQL("SELECT count(*) FROM pyml.{} WHERE project_id = %s").format(
                    sql.Identifier(table)
                ),
                (project_id,),
            )
            == 0
        )
    assert one(sub_admin, "SELECT count(*) FROM pyml.files WHERE model_id = %s", (model_id,)) == 0
    assert (
        one(
            sub_admin,
            "SELECT count(*) FROM pyml.snapshots s"
            " WHERE NOT EXISTS (SELECT FROM pyml.models m WHERE m.snapshot_id = s.id)",
        )
        == 0
    )


# ---------------------------------------------------------------------------
# The subscriber's own projects
# ---------------------------------------------------------------------------


def test_own_project_is_kept_apart_and_intact(
    trainer: psycopg.Connection,
    reader: psycopg.Connection,
    sub_url: str,
    sub_admin: psycopg.Connection,
    local_project: int,
) -> None:
    with psycopg.connect(sub_url, autocommit=True) as own:
        own.execute("SET client_min_messages = warning")
        second = train(own, "local", "ridge")
        own.execute("SELECT * FROM pyml.deploy(%s::bigint)", (local_project,))
        before = registry_rows(sub_admin, "local")
        answer = predict(own, "local")
        # Its rows have ids of its own range, and it belongs to the role that trained it.
        assert local_project >= FIRST_OWN_ID and second > local_project
        project_id, owner = before["project"][0][0], before["project"][0][3]
        assert project_id >= FIRST_OWN_ID and owner == ROLE
        assert all(d[0] >= FIRST_OWN_ID for d in before["deployments"])
        assert all(s[0] >= FIRST_OWN_ID and s[2] == ROLE for s in before["snapshots"])
        # The publisher goes on: new models, deployments, a rollback, a deletion.
        published = train(trainer, "published", "lasso")
        trainer.execute("SELECT * FROM pyml.deploy('published', 'rollback')")
        trainer.execute("SELECT pyml.delete_model(%s, force => true)", (published,))
        train(trainer, "published_too", "linear")
        wait_for(
            "the second published project",
            lambda: live(sub_admin, "published_too") == live(trainer, "published_too"),
        )
        wait_live(reader, "published", live(trainer, "published"))
        assert registry_rows(sub_admin, "local") == before
        assert predict(own, "local") == answer
        assert live(sub_admin, "local") == local_project


def test_a_replicated_project_is_not_trained_or_deployed_on_the_subscriber(
    reader: psycopg.Connection, sub_admin: psycopg.Connection
) -> None:
    before = registry_rows(sub_admin, "published")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as excinfo:
        train(sub_admin, "published", "linear", deploy=False)
    assert excinfo.value.diag.message_primary == (
        'project "published" is replicated from another database'
    )
    model_id = before["models"][0][0]
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        sub_admin.execute("SELECT * FROM pyml.deploy(%s::bigint)", (model_id,))
    assert registry_rows(sub_admin, "published") == before


def test_a_name_collision_stops_replication_without_overwriting(
    cluster: Cluster,
    trainer: psycopg.Connection,
    reader: psycopg.Connection,
    sub_url: str,
    sub_admin: psycopg.Connection,
) -> None:
    with psycopg.connect(sub_url, autocommit=True) as own:
        own.execute("SET client_min_messages = warning")
        own_model = train(own, "clash", "linear")
        before = registry_rows(sub_admin, "clash")
        answer = predict(own, "clash")
        log_start = cluster.log.stat().st_size
        errors = int(
            one(
                sub_admin,
                "SELECT apply_error_count FROM pg_stat_subscription_stats WHERE subname = %s",
                (SUBSCRIPTION,),
            )
        )
        theirs = train(trainer, "clash", "ridge")
        message = 'project "clash" of the publisher has the name of a project of this database'
        wait_for(
            "the apply worker's error",
            lambda: (
                message in log_since(cluster.log, log_start)
                and one(
                    sub_admin,
                    "SELECT apply_error_count FROM pg_stat_subscription_stats WHERE subname = %s",
                    (SUBSCRIPTION,),
                )
                > errors
            ),
        )
        assert registry_rows(sub_admin, "clash") == before
        assert predict(own, "clash") == answer
        # Once the subscriber's project is gone, the stopped changes are applied, in order.
        own.execute("SELECT pyml.delete_project('clash', force => true)")
        assert own_model not in [m[0] for m in registry_rows(sub_admin, "clash")["models"]]
    wait_live(sub_admin, "clash", theirs)
    assert one(sub_admin, "SELECT owner FROM pyml.projects WHERE name = 'clash'") == SUPERUSER
    # ... and what the publisher did meanwhile follows.
    model_id = train(trainer, "published", "linear")
    wait_live(reader, "published", model_id)
    assert predict(reader, "published") == predict(trainer, "published")


# ---------------------------------------------------------------------------
# The checks themselves, without a subscription: a superuser may act as the apply does
# (session_replication_role = replica fires the same triggers).
# ---------------------------------------------------------------------------


def test_no_row_is_applied_without_an_id_range_of_its_own(
    pub: psycopg.Connection, trainer: psycopg.Connection
) -> None:
    """The publisher's database never called pyml.own_ids: as a subscriber it takes nothing."""
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as excinfo:
        with pub.transaction():
            pub.execute("SET LOCAL session_replication_role = replica")
            pub.execute("INSERT INTO pyml.projects (id, name, task) VALUES (42, 'x', 'regression')")
    assert excinfo.value.diag.message_primary == (
        'cannot apply replicated rows of "pyml.projects": this database has no id range of its own'
    )
    assert "pyml.own_ids()" in (excinfo.value.diag.message_hint or "")


def test_replicated_rows_stay_out_of_the_own_range(
    sub_admin: psycopg.Connection, local_project: int
) -> None:
    own_project = one(
        sub_admin, "SELECT project_id FROM pyml.models WHERE id = %s", (local_project,)
    )
    cases = [
        (
            "INSERT INTO pyml.projects (id, name, task) VALUES (%s, 'x', 'regression')",
            (FIRST_OWN_ID + 10**9,),
        ),
        ("UPDATE pyml.projects SET updated_at = now() WHERE id = %s", (own_project,)),
        ("DELETE FROM pyml.deployments WHERE project_id = %s", (own_project,)),
    ]
    for statement, params in cases:
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as excinfo:
            with sub_admin.transaction():
                sub_admin.execute("SET LOCAL session_replication_role = replica")
                sub_admin.execute(statement, params)
        assert "has an id of this database's own range" in excinfo.value.diag.message_primary


def test_own_ids_refusals(
    pub: psycopg.Connection,
    trainer: psycopg.Connection,
    sub_admin: psycopg.Connection,
    local_project: int,
) -> None:
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as excinfo:
        pub.execute("SELECT pyml.own_ids()")  # it has projects of its own
    assert excinfo.value.diag.message_primary.startswith(
        "pyml.projects already holds rows of this database"
    )
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        trainer.execute("SELECT pyml.own_ids(10000000000000000)")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        pub.execute("SELECT pyml.own_ids(1)")
    # The subscriber holds rows of its own range: the range cannot move under them.
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        sub_admin.execute("SELECT pyml.own_ids(10000000000000000)")
    assert one(sub_admin, "SELECT pyml._first_own_id('models')") == FIRST_OWN_ID


def test_new_local_clusters_can_publish(pub: psycopg.Connection, tmp_path: Path) -> None:
    assert one(pub, "SHOW wal_level") == "logical"
    # An older cluster gets the setting once (pyml up then restarts it); a wal_level the
    # user wrote is left alone.
    cluster = Cluster(root=tmp_path, state=tmp_path, venv=tmp_path)
    cluster.data.mkdir()
    conf = cluster.data / "postgresql.auto.conf"
    conf.write_text("port = 5999\n")
    assert cluster._enable_logical() is True
    assert conf.read_text() == "port = 5999\nwal_level = logical\n"
    assert cluster._enable_logical() is False
    conf.write_text("wal_level = replica\n")
    assert cluster._enable_logical() is False
    assert conf.read_text() == "wal_level = replica\n"
