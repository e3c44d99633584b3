-- ============================================================================
-- Privileges: every project has an owner (pyml.projects.owner, the role that
-- created it) and per-project grants of 'predict', 'train', 'deploy', 'admin'
-- (pyml.grant / pyml.revoke). The owner, its members and superusers hold every
-- privilege; 'train', 'deploy' and 'admin' include 'predict'; 'admin' includes all.
--
-- Nobody but superusers writes these tables directly: pyml's functions check
-- the caller's privilege, then write through pyml._registry_write() (SECURITY
-- DEFINER). Reading is open to every role, row by row: row-level security shows
-- a role only the rows of the projects it holds a privilege on. Roles are kept
-- by name, like created_by: a dump restores on another cluster with the same
-- role names.
-- ============================================================================

CREATE TABLE pyml._grants (
    project_id bigint NOT NULL CONSTRAINT fk__grants_project_id_projects
        REFERENCES pyml.projects (id) ON DELETE CASCADE,
    grantee text NOT NULL,
    privilege text NOT NULL CONSTRAINT ck__grants_privilege
        CHECK (privilege IN ('predict', 'train', 'deploy', 'admin')),
    granted_by text NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    CONSTRAINT pk__grants PRIMARY KEY (project_id, grantee, privilege)
);
COMMENT ON TABLE pyml._grants IS
    'Privileges granted on projects (pyml.grant); read them through pyml.project_privileges';
SELECT pg_catalog.pg_extension_config_dump('pyml._grants', '');

-- The projects on which the current role holds a privilege. Row-level security
-- policies use it as an uncorrelated subquery, evaluated once per query.
CREATE FUNCTION pyml._projects_with(privilege text) RETURNS SETOF bigint
LANGUAGE sql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.id FROM pyml.projects p
     WHERE EXISTS (SELECT FROM pg_catalog.pg_roles r
                    WHERE r.rolname = CURRENT_USER AND r.rolsuper)
        OR EXISTS (SELECT FROM pg_catalog.pg_roles r
                    WHERE r.rolname = p.owner
                      AND pg_catalog.pg_has_role(r.oid, 'USAGE'))
        OR EXISTS (SELECT FROM pyml._grants g
                     JOIN pg_catalog.pg_roles r ON r.rolname = g.grantee
                    WHERE g.project_id = p.id
                      AND (g.privilege = $1
                           OR g.privilege = 'admin'
                           OR $1 = 'predict')
                      AND pg_catalog.pg_has_role(r.oid, 'USAGE'))
$$;
COMMENT ON FUNCTION pyml._projects_with(text) IS
    'Internal: the ids of the projects on which the current role holds a privilege';

CREATE FUNCTION pyml._has_privilege(project_id bigint, privilege text) RETURNS boolean
LANGUAGE sql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT $1 IN (SELECT pyml._projects_with($2))
$$;
COMMENT ON FUNCTION pyml._has_privilege(bigint, text) IS
    'Internal: whether the current role holds a privilege on a project';

-- A change of privileges (or of a project's owner) is announced like a
-- deployment: serving sessions check the caller's rights again at their next call.
CREATE TRIGGER grants_announce AFTER INSERT OR UPDATE OR DELETE ON pyml._grants
    FOR EACH ROW EXECUTE FUNCTION pyml._announce();
CREATE TRIGGER projects_owner_announce AFTER UPDATE OF owner ON pyml.projects
    FOR EACH ROW EXECUTE FUNCTION pyml._announce();

-- ----------------------------------------------------------------------------
-- Row-level security. Only SELECT is granted (sql/grants.sql), so only SELECT
-- policies exist; the tables' owner (the extension's, a superuser) is not
-- subject to them, which is how pyml's own functions see every row after their
-- explicit privilege checks.
-- ----------------------------------------------------------------------------

ALTER TABLE pyml.models ENABLE ROW LEVEL SECURITY;
CREATE POLICY models_of_my_projects ON pyml.models FOR SELECT
    USING (project_id IN (SELECT pyml._projects_with('predict')));

ALTER TABLE pyml.files ENABLE ROW LEVEL SECURITY;
CREATE POLICY files_of_my_models ON pyml.files FOR SELECT
    USING (model_id IN (SELECT m.id FROM pyml.models m));

ALTER TABLE pyml.deployments ENABLE ROW LEVEL SECURITY;
CREATE POLICY deployments_of_my_projects ON pyml.deployments FOR SELECT
    USING (project_id IN (SELECT pyml._projects_with('predict')));

-- A snapshot: seen by the role that took it, and through the models trained on it.
ALTER TABLE pyml.snapshots ENABLE ROW LEVEL SECURITY;
CREATE POLICY snapshots_i_took_or_use ON pyml.snapshots FOR SELECT
    USING (EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = snapshots.created_by
                      AND pg_catalog.pg_has_role(r.oid, 'USAGE'))
           OR id IN (SELECT m.snapshot_id FROM pyml.models m));

ALTER TABLE pyml.monitors ENABLE ROW LEVEL SECURITY;
CREATE POLICY monitors_of_my_projects ON pyml.monitors FOR SELECT
    USING (project_id IN (SELECT pyml._projects_with('predict')));

ALTER TABLE pyml.drift_reports ENABLE ROW LEVEL SECURITY;
CREATE POLICY drift_reports_of_my_projects ON pyml.drift_reports FOR SELECT
    USING (project_id IN (SELECT pyml._projects_with('predict')));

ALTER TABLE pyml.prediction_logging ENABLE ROW LEVEL SECURITY;
CREATE POLICY prediction_logging_of_my_projects ON pyml.prediction_logging FOR SELECT
    USING (project_id IN (SELECT pyml._projects_with('predict')));

-- Logged calls hold other callers' features: the project's admins only.
ALTER TABLE pyml.logged_predictions ENABLE ROW LEVEL SECURITY;
CREATE POLICY logged_predictions_of_projects_i_administer ON pyml.logged_predictions
    FOR SELECT USING (project_id IN (SELECT pyml._projects_with('admin')));

ALTER TABLE pyml.prediction_spool ENABLE ROW LEVEL SECURITY;  -- no policy: no rows

ALTER TABLE pyml.stream_definitions ENABLE ROW LEVEL SECURITY;
CREATE POLICY streams_of_my_projects ON pyml.stream_definitions FOR SELECT
    USING (project_id IN (SELECT pyml._projects_with('predict')));

-- The outbox, the queue and consumer positions hold keys and predictions of the
-- source's rows (the queue: the rows themselves): readable with a privilege on
-- the project AND the right to read the source relation.
ALTER TABLE pyml.stream_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY stream_events_i_may_read ON pyml.stream_events FOR SELECT
    USING (stream_id IN (SELECT s.id FROM pyml.stream_definitions s
                          WHERE pg_catalog.has_table_privilege(s.source_relation, 'SELECT')));

ALTER TABLE pyml.stream_queue ENABLE ROW LEVEL SECURITY;
CREATE POLICY stream_queue_i_may_read ON pyml.stream_queue FOR SELECT
    USING (stream_id IN (SELECT s.id FROM pyml.stream_definitions s
                          WHERE pg_catalog.has_table_privilege(s.source_relation, 'SELECT')));

ALTER TABLE pyml.stream_consumers ENABLE ROW LEVEL SECURITY;
CREATE POLICY stream_consumers_i_may_read ON pyml.stream_consumers FOR SELECT
    USING (stream_id IN (SELECT s.id FROM pyml.stream_definitions s
                          WHERE pg_catalog.has_table_privilege(s.source_relation, 'SELECT')));

CREATE VIEW pyml.project_privileges WITH (security_invoker = true) AS
SELECT p.name AS project, g.grantee, g.privilege, g.granted_by, g.granted_at
FROM pyml._grants g
JOIN pyml.projects p ON p.id = g.project_id
WHERE g.project_id IN (SELECT pyml._projects_with('predict'));
COMMENT ON VIEW pyml.project_privileges IS
    'Privileges granted on the projects the current role can see (their owners hold all)';
