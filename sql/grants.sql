-- ============================================================================
-- Privileges. Every role may use pyml (schema USAGE, EXECUTE on its functions,
-- PostgreSQL's default): what it may do to a project is decided per project by
-- pyml (owner and pyml.grant, checked in every function). Registry tables are
-- readable row by row (row-level security, sql/wiring/006_privileges.sql) and
-- written by nobody but pyml's functions (through pyml._registry_write) and
-- superusers.
-- To keep pyml to some roles only: REVOKE USAGE ON SCHEMA pyml FROM PUBLIC and
-- GRANT it to them (see the README, Security).
-- ============================================================================

GRANT USAGE ON SCHEMA pyml TO PUBLIC;
GRANT SELECT ON pyml.projects, pyml._grants, pyml.snapshots, pyml.models, pyml.files,
    pyml.deployments, pyml.stream_definitions, pyml.stream_events, pyml.stream_queue,
    pyml.stream_consumers, pyml.monitors, pyml.drift_reports, pyml.prediction_logging,
    pyml.logged_predictions TO PUBLIC;
GRANT SELECT ON pyml.overview, pyml.trained_models, pyml.deployed_models, pyml.streams,
    pyml.prediction_log, pyml.project_privileges TO PUBLIC;
-- Trigger and event-trigger functions are called by PostgreSQL, not by roles.
REVOKE EXECUTE ON FUNCTION pyml._refuse_update(), pyml._announce(), pyml._deploy_notify(),
    pyml._stream_source_dropped(), pyml._stream_partition_added(),
    pyml._replicated_row_check(), pyml._own_row_check() FROM PUBLIC;
