-- ============================================================================
-- History is immutable: a trained model is never rewritten, a deployment never
-- changed. Rows go away only with their model or project (pyml.delete_*).
-- Run once at install; never edited after release (add a new file instead).
-- ============================================================================

CREATE TRIGGER models_immutable BEFORE UPDATE ON pyml.models
    FOR EACH ROW EXECUTE FUNCTION pyml._refuse_update();
CREATE TRIGGER files_immutable BEFORE UPDATE ON pyml.files
    FOR EACH ROW EXECUTE FUNCTION pyml._refuse_update();
CREATE TRIGGER deployments_immutable BEFORE UPDATE ON pyml.deployments
    FOR EACH ROW EXECUTE FUNCTION pyml._refuse_update();
