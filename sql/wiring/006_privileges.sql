-- ============================================================================
-- Privileges (see sql/schema/006_privileges.sql): changes are announced to the
-- serving sessions, and row-level security shows each role its projects' rows.
-- ============================================================================

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
