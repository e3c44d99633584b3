-- ============================================================================
-- Monitoring: drift reports are history, like deployments (never changed), and
-- a change of prediction logging is announced to the sessions' caches (pyml._board).
-- ============================================================================

CREATE TRIGGER drift_reports_immutable BEFORE UPDATE ON pyml.drift_reports
    FOR EACH ROW EXECUTE FUNCTION pyml._refuse_update();

CREATE TRIGGER prediction_logging_announce AFTER INSERT OR UPDATE OR DELETE
    ON pyml.prediction_logging FOR EACH ROW EXECUTE FUNCTION pyml._announce();
