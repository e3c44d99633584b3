-- ============================================================================
-- Deployments announce themselves to the backends' model caches (pyml._board):
-- whatever adds or removes a deployment row, every session notices.
-- ============================================================================

CREATE TRIGGER deployments_announce AFTER INSERT OR DELETE ON pyml.deployments
    FOR EACH ROW EXECUTE FUNCTION pyml._announce();

-- ... and so does every process outside the database that follows deployments (pyml pull,
-- pyml serve): NOTIFY pyml_deploy, delivered at commit.
CREATE TRIGGER deployments_notify AFTER INSERT OR DELETE ON pyml.deployments
    FOR EACH ROW EXECUTE FUNCTION pyml._deploy_notify();
