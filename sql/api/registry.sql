-- ============================================================================
-- The registry's trigger functions (attached in sql/wiring/): history is
-- immutable, and changes that serving sessions cache are announced to them.
-- ============================================================================

-- A trained model is never rewritten, a deployment or a drift report never
-- changed. Rows go away only with their model or project (pyml.delete_*).
CREATE FUNCTION pyml._refuse_update() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_TABLE_NAME = 'models' THEN
        IF OLD.status = 'in_progress' THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'rows of "pyml.%" cannot be changed', TG_TABLE_NAME
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = CASE TG_TABLE_NAME
                  WHEN 'drift_reports' THEN 'Monitoring rounds are history: run pyml.check again instead.'
                  ELSE 'Models and deployments are history: train or deploy again instead.'
              END;
END
$$;
COMMENT ON FUNCTION pyml._refuse_update() IS
    'Trigger: keeps trained models and deployments immutable';

-- Whatever adds or removes a deployment row (or changes a project's prediction
-- logging, privileges or owner), every session's model cache notices (pyml._board).
CREATE FUNCTION pyml._announce() RETURNS trigger
LANGUAGE plpyml
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].announce(plpy, GD, TD)
$$;
COMMENT ON FUNCTION pyml._announce() IS
    'Trigger: tells the sessions of this server that a deployment was added or removed, or that a project''s prediction logging changed';
