-- ============================================================================
-- Model as a service (pyml serve): the calls it answers outside the database
-- enter the prediction log like SQL's, so pyml.drift and the monitoring rounds
-- see them.
-- ============================================================================

CREATE FUNCTION pyml.log_served(
    model_id bigint,                              -- the model that answered
    calls jsonb                                   -- [[features, prediction, epoch seconds], ...]
) RETURNS bigint
LANGUAGE plpyml
VOLATILE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].log_served(plpy, GD, model_id, calls)
$$;
COMMENT ON FUNCTION pyml.log_served(bigint, jsonb) IS
    'Logs calls a model answered outside the database (pyml serve) in the prediction log, when the project''s calls are logged; needs predict on its project; returns the rows logged';
