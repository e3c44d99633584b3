-- ============================================================================
-- Logical replication of the registry (docs/replication.md). A subscription
-- applies changes with session_replication_role = replica: triggers left at
-- their default (ENABLE, "origin") do not fire then. Those that must:
-- ============================================================================

-- A deployment applied by a subscription is announced like a local one: the
-- subscriber's serving sessions (pyml._board) and its pyml pull / pyml serve
-- (NOTIFY pyml_deploy) follow the publisher's deployments.
ALTER TABLE pyml.deployments ENABLE ALWAYS TRIGGER deployments_announce;
ALTER TABLE pyml.deployments ENABLE ALWAYS TRIGGER deployments_notify;

-- Replicated rows stay out of the subscriber's own ids and names (pyml.own_ids); only
-- during apply (initial copy included).
CREATE TRIGGER projects_replicated BEFORE INSERT OR UPDATE OR DELETE ON pyml.projects
    FOR EACH ROW EXECUTE FUNCTION pyml._replicated_row_check();
CREATE TRIGGER snapshots_replicated BEFORE INSERT OR UPDATE OR DELETE ON pyml.snapshots
    FOR EACH ROW EXECUTE FUNCTION pyml._replicated_row_check();
CREATE TRIGGER models_replicated BEFORE INSERT OR UPDATE OR DELETE ON pyml.models
    FOR EACH ROW EXECUTE FUNCTION pyml._replicated_row_check();
CREATE TRIGGER files_replicated BEFORE INSERT OR UPDATE OR DELETE ON pyml.files
    FOR EACH ROW EXECUTE FUNCTION pyml._replicated_row_check();
CREATE TRIGGER deployments_replicated BEFORE INSERT OR UPDATE OR DELETE ON pyml.deployments
    FOR EACH ROW EXECUTE FUNCTION pyml._replicated_row_check();
ALTER TABLE pyml.projects ENABLE REPLICA TRIGGER projects_replicated;
ALTER TABLE pyml.snapshots ENABLE REPLICA TRIGGER snapshots_replicated;
ALTER TABLE pyml.models ENABLE REPLICA TRIGGER models_replicated;
ALTER TABLE pyml.files ENABLE REPLICA TRIGGER files_replicated;
ALTER TABLE pyml.deployments ENABLE REPLICA TRIGGER deployments_replicated;

-- ... and the subscriber trains and deploys only its own projects (local writes only).
CREATE TRIGGER models_own_project BEFORE INSERT ON pyml.models
    FOR EACH ROW EXECUTE FUNCTION pyml._own_row_check();
CREATE TRIGGER deployments_own_project BEFORE INSERT ON pyml.deployments
    FOR EACH ROW EXECUTE FUNCTION pyml._own_row_check();

-- Left at their default, on purpose (they do not fire during apply):
-- * models_immutable, files_immutable, deployments_immutable: the publisher enforced them
--   when it wrote the change; the subscriber mirrors it (a model's one update, in_progress
--   to successful, arrives as an UPDATE).
-- * grants_announce, projects_owner_announce, prediction_logging_announce: pyml._grants,
--   projects.owner and pyml.prediction_logging are not replicated.
-- * stream triggers on users' relations: a stream scores its own database's writes.
