-- ============================================================================
-- Deployments announce themselves to the backends' model caches (pyml._board):
-- whatever adds or removes a deployment row, every session notices.
-- ============================================================================

CREATE TRIGGER deployments_announce AFTER INSERT OR DELETE ON pyml.deployments
    FOR EACH ROW EXECUTE FUNCTION pyml._announce();
