-- ============================================================================
-- Deployments announce themselves to the backends' model caches (pyml._board):
-- whatever adds or removes a deployment row, every session notices.
-- ============================================================================

CREATE FUNCTION pyml._announce() RETURNS trigger
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].announce(plpy, GD, TD)
$$;
COMMENT ON FUNCTION pyml._announce() IS
    'Trigger: tells the sessions of this server that a deployment was added or removed, or that a project''s prediction logging changed';

CREATE TRIGGER deployments_announce AFTER INSERT OR DELETE ON pyml.deployments
    FOR EACH ROW EXECUTE FUNCTION pyml._announce();
