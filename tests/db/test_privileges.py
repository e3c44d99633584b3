"""Privileges: owners, pyml.grant / pyml.revoke, row-level security (API.md section 11).

Every API function is called by every kind of role, and direct SELECT / INSERT / UPDATE /
DELETE is tried on every registry table:

- ``priv_owner`` creates the projects (it owns them);
- ``priv_predict``, ``priv_train``, ``priv_deploy``, ``priv_admin`` hold one privilege each,
  granted by the owner; ``priv_member`` holds ``predict`` through its group ``priv_group``;
- ``priv_none`` may use pyml (and read the data) but holds nothing on the projects;
- ``priv_public`` is a fresh role with nothing but what PUBLIC has.

A call a role may make succeeds (or fails for a reason that is not a privilege); any other
is 42501, naming the project and the privilege.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pyml.client.cluster import Cluster

ROW = [0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02]
IRIS = [5.1, 3.5, 1.4, 0.2]
FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
OWNER = "priv_owner"
GRANTED = {
    "priv_predict": "predict",
    "priv_train": "train",
    "priv_deploy": "deploy",
    "priv_admin": "admin",
}
ROLES = [OWNER, *GRANTED, "priv_member", "priv_none", "priv_public"]
REG, CLS, PCA = "priv reg", "priv cls", "priv pca"
# Every registry table, with a column to try an UPDATE of.
REGISTRY = {
    "projects": "name",
    "_grants": "grantee",
    "snapshots": "row_count",
    "models": "status",
    "files": "format",
    "deployments": "strategy",
    "stream_definitions": "channel",
    "stream_events": "prediction",
    "stream_queue": "new_row",
    "stream_consumers": "consumer",
    "monitors": "retrain",
    "drift_reports": "decision",
    "prediction_logging": "sample_rate",
    "logged_predictions": "prediction",
    "prediction_spool": "collected",
}


def holds(role: str, privilege: str | None) -> bool:
    """What the rules of pyml.privileges give ``role`` in this world."""
    if privilege is None or role in (OWNER, "priv_admin"):
        return True
    given = {
        "priv_predict": {"predict"},
        "priv_train": {"train", "predict"},
        "priv_deploy": {"deploy", "predict"},
        "priv_member": {"predict"},
    }
    return privilege in given.get(role, set())


def one(conn: psycopg.Connection, query: Any, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def with_notices(conn: psycopg.Connection, query: str, params: Any = ()) -> tuple[Any, list[str]]:
    """The first row of ``query`` and the NOTICEs it sent."""
    notices: list[str] = []

    def handler(diagnostic: psycopg.errors.Diagnostic) -> None:
        notices.append(str(diagnostic.message_primary))

    conn.add_notice_handler(handler)
    conn.execute("SET client_min_messages = notice")
    try:
        return conn.execute(query, params).fetchone(), notices
    finally:
        conn.execute("SET client_min_messages = warning")
        conn.remove_notice_handler(handler)


@dataclass
class World:
    sessions: dict[str, psycopg.Connection]
    admin: psycopg.Connection
    models: dict[str, int]  # project -> its live model id
    stream_id: int
    url: Callable[[str], str]


@pytest.fixture(scope="module")
def world(cluster: Cluster, database: str, admin_url: str) -> Iterator[World]:
    admin = psycopg.connect(admin_url, autocommit=True)
    admin.execute("SET client_min_messages = warning")
    for role in [*ROLES, "priv_group", "priv_dummy"]:
        if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            try:
                admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
            except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
                pass  # made meanwhile by a parallel run
    admin.execute("GRANT priv_group TO priv_member")
    users = sql.SQL(", ").join(sql.Identifier(r) for r in ROLES if r != "priv_public")
    admin.execute(sql.SQL("GRANT CREATE, USAGE ON SCHEMA public TO {}").format(users))
    # The data: readable by every role but priv_public, owned by the owner.
    for table, source in (("priv_rows", "pyml.diabetes"), ("priv_iris", "pyml.iris")):
        admin.execute(
            sql.SQL("CREATE TABLE {} AS SELECT * FROM {}").format(
                sql.Identifier(table), sql.SQL(source)
            )
        )
        admin.execute(sql.SQL("ALTER TABLE {} OWNER TO priv_owner").format(sql.Identifier(table)))
        admin.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(table), users))
    admin.execute(
        "CREATE TABLE priv_keyed AS SELECT row_number() OVER () AS id, * FROM pyml.diabetes"
    )  # what predict_into scores, one row per key
    admin.execute(sql.SQL("GRANT SELECT ON priv_keyed TO {}").format(users))
    admin.execute("CREATE TABLE priv_open AS SELECT * FROM pyml.diabetes")
    admin.execute("GRANT SELECT ON priv_open TO PUBLIC")
    columns = ", ".join(f"{f} real" for f in FEATURES)
    admin.execute(f"CREATE TABLE priv_src (id bigint PRIMARY KEY, {columns})")
    admin.execute("ALTER TABLE priv_src OWNER TO priv_owner")
    admin.execute(sql.SQL("GRANT SELECT, INSERT ON priv_src TO {}").format(users))
    for role in ROLES:  # a table each role may stream (it owns it)
        admin.execute(
            sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, {})").format(
                sql.Identifier(f"src_{role}"), sql.SQL(columns)
            )
        )
        admin.execute(
            sql.SQL("ALTER TABLE {} OWNER TO {}").format(
                sql.Identifier(f"src_{role}"), sql.Identifier(role)
            )
        )

    def url(role: str) -> str:
        return f"postgresql://{role}@127.0.0.1:{cluster.port}/{database}"

    sessions = {role: psycopg.connect(url(role), autocommit=True) for role in ROLES}
    for conn in sessions.values():
        conn.execute("SET client_min_messages = warning")
    owner = sessions[OWNER]
    owner.execute("SELECT * FROM pyml.train(%s, 'regression', 'priv_rows', 'target')", (REG,))
    owner.execute(
        "SELECT * FROM pyml.train(%s, 'classification', 'priv_iris', 'target',"
        " 'lightgbm', '{\"n_estimators\": 5}')",
        (CLS,),
    )
    owner.execute(
        "SELECT * FROM pyml.train(%s, 'decomposition', 'priv_open',"
        " algorithm => 'pca', hyperparams => '{\"n_components\": 2}')",
        (PCA,),
    )
    for role, privilege in GRANTED.items():
        for project in (REG, CLS, PCA):
            owner.execute("SELECT pyml.grant(%s, %s, %s)", (project, role, privilege))
    for project in (REG, CLS, PCA):
        owner.execute("SELECT pyml.grant(%s, 'priv_group', 'predict')", (project,))
    models = {p: one(owner, "SELECT pyml.deployed_model(%s)", (p,)) for p in (REG, CLS, PCA)}
    stream_id = one(owner, "SELECT pyml.stream(%s, 'priv_src')", (REG,))
    owner.execute("INSERT INTO priv_src SELECT 1, " + ", ".join(["%s"] * 10), ROW)
    yield World(sessions, admin, models, stream_id, url)
    for conn in sessions.values():
        conn.close()
    admin.close()


# ---------------------------------------------------------------------------
# Every API function x every role
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    name: str
    privilege: str | None  # on the project; None: no project privilege needed
    run: Callable[[World, psycopg.Connection, str], Any]
    allowed_errors: tuple[type[psycopg.Error], ...] = ()  # outcomes that are not refusals


def _sql(
    query: str, params: Callable[[World, str], Any] | tuple[Any, ...] = ()
) -> Callable[[World, psycopg.Connection, str], Any]:
    def run(world: World, conn: psycopg.Connection, role: str) -> Any:
        values = params(world, role) if callable(params) else params
        return conn.execute(query, values).fetchall()

    return run


def _fresh_model(world: World, role: str) -> int:
    """A model of REG that only this call will use (trained by the owner, not deployed)."""
    owner = world.sessions[OWNER]
    owner.execute("SELECT * FROM pyml.train(%s, automatic_deploy => false)", (REG,))
    return int(
        one(
            owner,
            "SELECT max(m.id) FROM pyml.models m JOIN pyml.projects p"
            " ON p.id = m.project_id WHERE p.name = %s",
            (REG,),
        )
    )


def _throwaway_project(world: World, role: str) -> str:
    """A project granted like the others, that only this call will use."""
    name = f"priv throwaway {role}"
    owner = world.sessions[OWNER]
    owner.execute("SELECT * FROM pyml.train(%s, 'regression', 'priv_rows', 'target')", (name,))
    for grantee, privilege in [*GRANTED.items(), ("priv_group", "predict")]:
        owner.execute("SELECT pyml.grant(%s, %s, %s)", (name, grantee, privilege))
    return name


def _bundle(world: World, role: str) -> bytes:
    """The bundle of REG's model (exported by the owner)."""
    (data,) = (
        world.sessions[OWNER]
        .execute("SELECT pyml.export(%s::bigint, format => 'pyml')", (world.models[REG],))
        .fetchone()
    )
    return bytes(data)


CALLS = [
    Call("predict", "predict", _sql("SELECT pyml.predict(%s, %s::real[])", (REG, ROW))),
    Call(
        "predict by id",
        "predict",
        _sql("SELECT pyml.predict(%s::bigint, %s::real[])", lambda w, r: (w.models[REG], ROW)),
    ),
    Call(
        "predict row",
        "predict",
        _sql("SELECT pyml.predict(%s, ROW(" + ", ".join(["%s::real"] * 10) + "))", (REG, *ROW)),
    ),
    Call(
        "predict_label", "predict", _sql("SELECT pyml.predict_label(%s, %s::real[])", (CLS, IRIS))
    ),
    Call(
        "predict_proba", "predict", _sql("SELECT pyml.predict_proba(%s, %s::real[])", (CLS, IRIS))
    ),
    Call(
        "predict_proba_labels",
        "predict",
        _sql("SELECT * FROM pyml.predict_proba_labels(%s, %s::real[])", (CLS, IRIS)),
    ),
    Call(
        "predict_proba_jsonb",
        "predict",
        _sql(
            "SELECT pyml.predict_proba_jsonb(%s::bigint, ROW(5.1::real, 3.5::real, 1.4::real,"
            " 0.2::real))",
            lambda w, r: (w.models[CLS],),
        ),
    ),
    Call("predict_joint", "predict", _sql("SELECT pyml.predict_joint(%s, %s::real[])", (REG, ROW))),
    Call(
        "predict_batch",
        "predict",
        _sql("SELECT * FROM pyml.predict_batch(%s, %s::real[])", (REG, ROW * 3)),
    ),
    Call(
        "predict_into",
        "predict",
        _sql(
            "SELECT pyml.predict_into(%s, 'priv_keyed', %s, 'id')", lambda w, r: (REG, f"into_{r}")
        ),
    ),
    Call(
        "decompose", "predict", _sql("SELECT pyml.decompose(%s, %s::real[])", (PCA, [*ROW, 150.0]))
    ),  # priv_open: target included
    Call("explain", "predict", _sql("SELECT * FROM pyml.explain(%s, %s::real[])", (CLS, IRIS))),
    Call(
        "feature_importance", "predict", _sql("SELECT * FROM pyml.feature_importance(%s)", (CLS,))
    ),
    Call("lineage", "predict", _sql("SELECT pyml.lineage(%s)", lambda w, r: (w.models[REG],))),
    Call("deployed_model", "predict", _sql("SELECT pyml.deployed_model(%s)", (REG,))),
    Call(
        "drift of a relation", "predict", _sql("SELECT * FROM pyml.drift(%s, 'priv_rows')", (REG,))
    ),
    Call(
        "drift of the logged calls",
        "admin",
        _sql("SELECT * FROM pyml.drift(%s)", (REG,)),
        allowed_errors=(psycopg.errors.DataException,),
    ),  # none logged
    Call(
        "train",
        "train",
        _sql(
            "SELECT * FROM pyml.train(%s, relation_name => 'priv_rows', y_column_name => 'target',"
            " automatic_deploy => false)",
            (REG,),
        ),
    ),
    Call(
        "train_joint",
        "train",
        _sql(
            "SELECT * FROM pyml.train_joint(%s, relation_name => 'priv_rows',"
            " y_column_name => ARRAY['target'], automatic_deploy => false)",
            (REG,),
        ),
    ),
    Call(
        "train of the last snapshot",
        "train",
        _sql(
            "SELECT * FROM pyml.train(%s, algorithm => 'ridge', automatic_deploy => false)", (REG,)
        ),
    ),
    Call(
        "export bundle",
        "predict",
        _sql("SELECT length(pyml.export(%s::bigint, 'pyml'))", lambda w, r: (w.models[REG],)),
    ),
    Call(
        "import_model",
        "train",
        _sql(
            "SELECT pyml.import_model(%s, %s, deploy => false)", lambda w, r: (_bundle(w, r), REG)
        ),
    ),
    Call("deploy", "deploy", _sql("SELECT * FROM pyml.deploy(%s, 'best_score')", (REG,))),
    Call(
        "deploy by id",
        "deploy",
        _sql("SELECT * FROM pyml.deploy(%s::bigint)", lambda w, r: (w.models[REG],)),
    ),
    Call("grant", "admin", _sql("SELECT pyml.grant(%s, 'priv_dummy', 'predict')", (REG,))),
    Call("revoke", "admin", _sql("SELECT pyml.revoke(%s, 'priv_dummy', 'predict')", (REG,))),
    Call(
        "delete_model",
        "admin",
        lambda w, c, r: c.execute("SELECT pyml.delete_model(%s)", (_fresh_model(w, r),)),
    ),
    Call(
        "delete_project",
        "admin",
        lambda w, c, r: c.execute(
            "SELECT pyml.delete_project(%s, force => true)", (_throwaway_project(w, r),)
        ),
    ),
    Call("log_predictions", "admin", _sql("SELECT pyml.log_predictions(%s, 0)", (REG,))),
    Call("monitor", "admin", _sql("SELECT pyml.monitor(%s, 'priv_rows', '1 day')", (REG,))),
    Call("check", "admin", _sql("SELECT * FROM pyml.check(%s)", (REG,))),
    Call("unmonitor", "admin", _sql("SELECT pyml.unmonitor(%s)", (REG,))),
    Call("stream", "admin", _sql("SELECT pyml.stream(%s, %s)", lambda w, r: (REG, f"src_{r}"))),
    Call(
        "unstream",
        "admin",
        _sql("SELECT pyml.unstream(%s, %s)", lambda w, r: (REG, f"src_{r}")),
        allowed_errors=(psycopg.errors.UndefinedObject,),
    ),  # when stream was refused
    Call(
        "stream_read",
        "predict",
        _sql("SELECT * FROM pyml.stream_read(%s, %s)", lambda w, r: (w.stream_id, r)),
    ),
    Call(
        "stream_ack",
        "predict",
        lambda w, c, r: c.execute(
            "SELECT pyml.stream_ack(%s, %s, %s)",
            (
                w.stream_id,
                r,
                one(
                    w.sessions[OWNER],
                    "SELECT max(event_id) FROM pyml.stream_events WHERE stream_id = %s",
                    (w.stream_id,),
                ),
            ),
        ),
    ),
    # No project privilege: maintenance and functions of no project.
    Call("version", None, _sql("SELECT pyml.version()")),
    Call("snapshot", None, _sql("SELECT * FROM pyml.snapshot('priv_open', 'target')")),
    Call(
        "new project",
        None,
        _sql(
            "SELECT * FROM pyml.train(%s, 'regression', 'priv_open', 'target')",
            lambda w, r: (f"priv own {r}",),
        ),
    ),
    Call(
        "import_model into a new project",
        None,
        _sql(
            "SELECT pyml.import_model(%s, %s)",
            lambda w, r: (_bundle(w, r), f"priv imported {r}"),
        ),
    ),
    Call(
        "load_dataset",
        None,
        _sql("SELECT * FROM pyml.load_dataset('wine')"),
        allowed_errors=(psycopg.errors.InsufficientPrivilege,),
    ),  # another role's table
    Call("collect_predictions", None, _sql("SELECT pyml.collect_predictions()")),
    Call("run_monitors", None, _sql("SELECT * FROM pyml.run_monitors()")),
    Call("stream_prune", None, _sql("SELECT pyml.stream_prune()")),
    Call("stream_work", None, lambda w, c, r: c.execute("CALL pyml.stream_work()")),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("call", CALLS, ids=[c.name for c in CALLS])
def test_every_function_checks_the_callers_privilege(world: World, call: Call, role: str) -> None:
    conn = world.sessions[role]
    if holds(role, call.privilege):
        try:
            call.run(world, conn, role)
        except call.allowed_errors as exc:
            if isinstance(exc, psycopg.errors.InsufficientPrivilege):  # not a project's
                assert "belongs to role" in str(exc.diag.message_detail)
        return
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
        call.run(world, conn, role)
    message = str(info.value.diag.message_primary)
    assert "permission denied for project" in message, message
    assert f'"{call.privilege}" privilege' in str(info.value.diag.message_detail)


def test_an_unprivileged_stream_needs_the_trigger_privilege(world: World) -> None:
    """An admin of the project still needs the TRIGGER privilege on the relation."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table"):
        world.sessions["priv_admin"].execute("SELECT pyml.stream(%s, 'priv_rows')", (REG,))


def test_a_consumer_needs_select_on_the_source(world: World) -> None:
    world.admin.execute("REVOKE SELECT ON priv_src FROM priv_predict")
    try:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="priv_src"):
            world.sessions["priv_predict"].execute(
                "SELECT * FROM pyml.stream_read(%s, 'c')", (world.stream_id,)
            )
    finally:
        world.admin.execute("GRANT SELECT ON priv_src TO priv_predict")


def test_the_registry_gate_refuses_direct_calls(world: World) -> None:
    for gate in ("_registry_read", "_registry_write"):
        for role in ("priv_none", OWNER):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="internal"):
                world.sessions[role].execute(f"SELECT pyml.{gate}()")


# ---------------------------------------------------------------------------
# Direct access to the registry tables
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("table", REGISTRY)
def test_nobody_writes_registry_tables_directly(world: World, table: str, role: str) -> None:
    """Not even a project's owner: registry rows are written by pyml's functions only."""
    conn = world.sessions[role]
    name = sql.Identifier("pyml", table)
    column = sql.Identifier(REGISTRY[table])
    for statement in (
        sql.SQL("INSERT INTO {} DEFAULT VALUES").format(name),
        sql.SQL("UPDATE {} SET {} = {}").format(name, column, column),
        sql.SQL("DELETE FROM {}").format(name),
        sql.SQL("TRUNCATE {}").format(name),
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            conn.execute(statement)


def _rows_of(conn: psycopg.Connection, table: str, world: World) -> int:
    """How many rows of ``table`` about the granted projects ``conn`` sees (the ids are
    read by a superuser, so that each table's own policy is what is tested)."""
    admin = world.admin
    projects = [
        r[0]
        for r in admin.execute(
            "SELECT id FROM pyml.projects WHERE name = ANY(%s)", ([REG, CLS, PCA],)
        ).fetchall()
    ]
    models = [
        r[0]
        for r in admin.execute(
            "SELECT id FROM pyml.models WHERE project_id = ANY(%s)", (projects,)
        ).fetchall()
    ]
    snapshots = [
        r[0]
        for r in admin.execute(
            "SELECT snapshot_id FROM pyml.models WHERE id = ANY(%s)", (models,)
        ).fetchall()
    ]
    streams = [
        r[0]
        for r in admin.execute(
            "SELECT id FROM pyml.stream_definitions WHERE project_id = ANY(%s)", (projects,)
        ).fetchall()
    ]
    column, ids = {
        "files": ("model_id", models),
        "models": ("project_id", projects),
        "snapshots": ("id", snapshots),
        "stream_definitions": ("id", streams),
        "stream_events": ("stream_id", streams),
        "stream_consumers": ("stream_id", streams),
        "stream_queue": ("stream_id", streams),
    }.get(table, ("project_id", projects))
    return int(
        one(
            conn,
            sql.SQL("SELECT count(*) FROM {} WHERE {} = ANY(%s)").format(
                sql.Identifier("pyml", table), sql.Identifier(column)
            ),
            (ids,),
        )
    )


def test_row_level_security(world: World) -> None:
    """Artifacts, snapshots (statistics), deployments, outboxes: a role with no privilege
    on a project sees none of its rows; a granted role sees them; projects and grants are
    public like PostgreSQL's catalogs."""
    owner = world.sessions[OWNER]
    insert = "INSERT INTO priv_src SELECT max(id) + 1, {} FROM priv_src"
    owner.execute(
        sql.SQL(insert).format(sql.SQL(", ").join([sql.Placeholder()] * 10)), ROW
    )  # an event nobody acked yet
    owner.execute("SELECT * FROM pyml.stream_read(%s, 'rls')", (world.stream_id,))
    for table in (
        "models",
        "files",
        "snapshots",
        "deployments",
        "stream_definitions",
        "stream_events",
        "stream_consumers",
    ):
        seen = {role: _rows_of(world.sessions[role], table, world) for role in ROLES}
        assert seen[OWNER] > 0, table
        assert seen["priv_predict"] == seen["priv_member"] == seen[OWNER], (table, seen)
        assert seen["priv_none"] == seen["priv_public"] == 0, (table, seen)
    none = world.sessions["priv_none"]
    for view in ("overview", "trained_models", "deployed_models", "streams", "project_privileges"):
        query = sql.SQL("SELECT project FROM {}").format(sql.Identifier("pyml", view))
        names = {r[0] for r in none.execute(query).fetchall()}
        assert not names & {REG, CLS, PCA}, (view, names)
        assert REG in {r[0] for r in owner.execute(query).fetchall()}, view
    # what the issue reported: the knn-style artifact bytes of another role's model
    assert (
        none.execute(
            "SELECT data FROM pyml.files WHERE model_id = %s", (world.models[REG],)
        ).fetchall()
        == []
    )
    public = world.sessions["priv_public"]
    assert (
        public.execute(
            "SELECT columns FROM pyml.snapshots WHERE created_by <> current_user"
        ).fetchall()
        == []
    )
    assert one(public, "SELECT count(*) FROM pyml.projects WHERE name = %s", (REG,)) == 1


def test_the_prediction_log_is_for_admins(world: World) -> None:
    owner = world.sessions[OWNER]
    owner.execute("SELECT pyml.log_predictions(%s, 1.0)", (REG,))
    try:
        caller = world.sessions["priv_predict"]
        for _ in range(3):
            caller.execute("SELECT pyml.predict(%s, %s::real[])", (REG, ROW))
        logged = (
            "SELECT count(*) FROM pyml.prediction_log l JOIN pyml.projects p"
            " ON p.id = l.project_id WHERE p.name = %s"
        )
        assert one(owner, logged, (REG,)) >= 3
        assert one(world.sessions["priv_admin"], logged, (REG,)) >= 3
        for role in ("priv_predict", "priv_train", "priv_none", "priv_public"):
            assert one(world.sessions[role], logged, (REG,)) == 0, role
        owner.execute("SELECT pyml.collect_predictions()")
        assert one(owner, logged, (REG,)) >= 3
        assert one(world.sessions["priv_predict"], logged, (REG,)) == 0
    finally:
        owner.execute("SELECT pyml.log_predictions(%s, 0)", (REG,))


# ---------------------------------------------------------------------------
# Serving sessions follow grants and revokes
# ---------------------------------------------------------------------------


def _predicts(conn: psycopg.Connection) -> bool:
    try:
        conn.execute("SELECT pyml.predict(%s, %s::real[])", (REG, ROW))
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


def test_a_revoke_is_seen_by_a_serving_session_at_its_next_call(world: World) -> None:
    serving = psycopg.connect(world.url("priv_predict"), autocommit=True)
    try:
        for _ in range(5):  # warm: the online fast path
            assert _predicts(serving)
        owner = world.sessions[OWNER]
        owner.execute("SELECT pyml.revoke(%s, 'priv_predict', 'predict')", (REG,))
        assert not _predicts(serving)
        owner.execute("SELECT pyml.grant(%s, 'priv_predict', 'predict')", (REG,))
        assert _predicts(serving)
        # A revoke not committed yet, then rolled back, changes nothing for others.
        with owner.transaction():
            owner.execute("SELECT pyml.revoke(%s, 'priv_predict', 'predict')", (REG,))
            assert _predicts(serving)
            raise psycopg.Rollback()
        assert _predicts(serving)
    finally:
        serving.close()


def _reads(conn: psycopg.Connection, stream_id: int) -> bool:
    try:
        conn.execute("SELECT * FROM pyml.stream_read(%s, 'revoked')", (stream_id,)).fetchall()
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


def test_a_revoke_is_seen_by_a_consumer_at_its_next_read(world: World) -> None:
    """stream_read remembers the project's privilege as serving does: a pyml.revoke, and a
    REVOKE of SELECT on the streamed table, are seen by the next read of an open session."""
    consumer = psycopg.connect(world.url("priv_predict"), autocommit=True)
    owner = world.sessions[OWNER]
    try:
        for _ in range(3):  # remembered
            assert _reads(consumer, world.stream_id)
        owner.execute("SELECT pyml.revoke(%s, 'priv_predict', 'predict')", (REG,))
        assert not _reads(consumer, world.stream_id)
        owner.execute("SELECT pyml.grant(%s, 'priv_predict', 'predict')", (REG,))
        assert _reads(consumer, world.stream_id)
        world.admin.execute("REVOKE SELECT ON priv_src FROM priv_predict")
        try:
            assert not _reads(consumer, world.stream_id)
        finally:
            world.admin.execute("GRANT SELECT ON priv_src TO priv_predict")
        assert _reads(consumer, world.stream_id)
    finally:
        consumer.close()


def test_role_membership_changes_are_seen_within_a_second(world: World) -> None:
    serving = psycopg.connect(world.url("priv_member"), autocommit=True)
    try:
        for _ in range(5):
            assert _predicts(serving)
        world.admin.execute("REVOKE priv_group FROM priv_member")
        started = time.monotonic()
        while _predicts(serving):
            assert time.monotonic() - started < 5, "membership revoke not seen"
            time.sleep(0.05)
        world.admin.execute("GRANT priv_group TO priv_member")
        while not _predicts(serving):
            assert time.monotonic() - started < 10, "membership grant not seen"
            time.sleep(0.05)
    finally:
        world.admin.execute("GRANT priv_group TO priv_member")
        serving.close()


def test_set_role_in_one_session_uses_each_roles_rights(world: World) -> None:
    """A pooled connection that switches roles (SET ROLE) never lends one role's cached
    rights to another."""
    world.admin.execute("GRANT priv_predict, priv_none TO priv_group")
    pooled = psycopg.connect(world.url("priv_member"), autocommit=True)
    try:
        pooled.execute("SET ROLE priv_predict")
        for _ in range(3):
            assert _predicts(pooled)
        pooled.execute("SET ROLE priv_none")
        assert not _predicts(pooled)
        pooled.execute("SET ROLE priv_predict")
        assert _predicts(pooled)
    finally:
        pooled.close()
        world.admin.execute("REVOKE priv_predict, priv_none FROM priv_group")


# ---------------------------------------------------------------------------
# What the issue reported
# ---------------------------------------------------------------------------


def test_another_role_cannot_retrain_a_project(world: World) -> None:
    """app2 retrained app's project on its own table, which auto-deployed and broke app's
    predict: now it is 42501, and app's predictions go on."""
    none = world.sessions["priv_none"]
    none.execute("CREATE TABLE IF NOT EXISTS priv_other AS SELECT age, bmi, target FROM priv_open")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        none.execute(
            "SELECT * FROM pyml.train(%s, relation_name => 'priv_other',"
            " y_column_name => 'target')",
            (REG,),
        )
    assert _predicts(world.sessions[OWNER])


def test_automatic_deploys_keep_the_live_models_inputs(world: World) -> None:
    """A better model with other inputs is kept, not deployed, with a NOTICE."""
    owner = world.sessions[OWNER]
    owner.execute(
        "CREATE TABLE IF NOT EXISTS priv_fewer AS SELECT age, sex, bmi, bp, s1, s2,"
        " s3, s4, s5, target FROM priv_rows"
    )
    live = one(owner, "SELECT pyml.deployed_model(%s)", (REG,))
    row, notices = with_notices(
        owner,
        "SELECT deployed FROM pyml.train(%s, relation_name => 'priv_fewer',"
        " y_column_name => 'target', algorithm => 'lightgbm')",
        (REG,),
    )
    assert row == (False,)
    assert any("its features differ from the live model's" in n for n in notices), notices
    assert one(owner, "SELECT pyml.deployed_model(%s)", (REG,)) == live
    assert _predicts(owner)


def test_a_trainer_without_deploy_keeps_its_model_with_a_notice(world: World) -> None:
    trainer = world.sessions["priv_train"]
    row, notices = with_notices(
        trainer,
        "SELECT deployed FROM pyml.train(%s, relation_name => 'priv_rows',"
        " y_column_name => 'target', algorithm => 'lightgbm')",
        (REG,),
    )
    assert row == (False,)
    assert any('does not have the "deploy" privilege' in n for n in notices), notices
    model = one(
        trainer,
        "SELECT max(m.id) FROM pyml.models m JOIN pyml.projects p"
        " ON p.id = m.project_id WHERE p.name = %s",
        (REG,),
    )
    assert (
        one(trainer, "SELECT created_by FROM pyml.models WHERE id = %s", (model,)) == "priv_train"
    )


def test_who_did_what_is_the_caller_not_the_extension_owner(world: World) -> None:
    owner = world.sessions[OWNER]
    deployer = world.sessions["priv_deploy"]
    (_, _, _, model_id) = deployer.execute(
        "SELECT * FROM pyml.deploy(%s, 'most_recent')", (REG,)
    ).fetchone()
    lineage = json.loads(json.dumps(one(owner, "SELECT pyml.lineage(%s)", (model_id,))))
    assert lineage["deployments"][-1]["deployed_by"] == "priv_deploy"
    assert one(owner, "SELECT owner FROM pyml.projects WHERE name = %s", (REG,)) == OWNER
    assert (
        one(
            owner,
            "SELECT granted_by FROM pyml.project_privileges WHERE project = %s"
            " AND grantee = 'priv_admin'",
            (REG,),
        )
        == OWNER
    )


def test_the_owner_keeps_its_privileges(world: World) -> None:
    _, notices = with_notices(
        world.sessions["priv_admin"], "SELECT pyml.revoke(%s, %s, 'admin')", (REG, OWNER)
    )
    assert any("owns project" in n for n in notices), notices
    assert _predicts(world.sessions[OWNER])


def test_a_dataset_table_is_replaced_only_by_its_owner(world: World) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="pyml.iris"):
        world.sessions["priv_none"].execute("SELECT * FROM pyml.load_dataset('iris')")
    assert one(world.admin, "SELECT count(*) FROM pyml.iris") == 150


def test_bad_grants(world: World) -> None:
    owner = world.sessions[OWNER]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="privilege"):
        owner.execute("SELECT pyml.grant(%s, 'priv_dummy', 'select')", (REG,))
    with pytest.raises(psycopg.errors.UndefinedObject):
        owner.execute("SELECT pyml.grant(%s, 'no_such_role_xyz', 'predict')", (REG,))
    with pytest.raises(psycopg.errors.UndefinedObject):
        owner.execute("SELECT pyml.grant('no such project', 'priv_dummy', 'predict')")
