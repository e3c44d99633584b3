-- ============================================================================
-- Privileges. Reading the registry is open to every role; training, deploying
-- and deleting need write privileges, granted by an administrator:
--   GRANT CREATE ON SCHEMA pyml TO app;
--   GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pyml TO app;
--   GRANT USAGE ON ALL SEQUENCES IN SCHEMA pyml TO app;
-- ============================================================================

GRANT USAGE ON SCHEMA pyml TO PUBLIC;
GRANT SELECT ON pyml.projects, pyml.snapshots, pyml.models, pyml.files, pyml.deployments,
    pyml.overview, pyml.trained_models, pyml.deployed_models TO PUBLIC;
-- Which relations are streamed is public like the registry; the outbox (predictions on
-- your data), the queue (copies of source rows) and consumer positions are not.
GRANT SELECT ON pyml.stream_definitions, pyml.streams TO PUBLIC;
REVOKE EXECUTE ON FUNCTION pyml._refuse_update(), pyml._announce(),
    pyml._stream_source_dropped(), pyml._stream_partition_added() FROM PUBLIC;
-- Monitoring settings and reports are public like the registry; the prediction log
-- (features of live calls) is not: GRANT SELECT ON pyml.prediction_log and EXECUTE ON
-- FUNCTION pyml._spooled_predictions() to the roles that monitor.
GRANT SELECT ON pyml.monitors, pyml.drift_reports, pyml.prediction_logging TO PUBLIC;
REVOKE EXECUTE ON FUNCTION pyml._spooled_predictions() FROM PUBLIC;
