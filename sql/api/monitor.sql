-- ============================================================================
-- Monitoring: drift, monitoring rounds, the prediction log
-- ============================================================================

CREATE FUNCTION pyml.drift(
    project_name text,                            -- the project
    relation_name text DEFAULT NULL,              -- new rows; NULL: the logged calls of the recent window
    model_id bigint DEFAULT NULL,                 -- the model compared (default: the live one)
    caller_search_path text DEFAULT pg_catalog.current_setting('search_path') -- how relation names resolve (leave it)
) RETURNS TABLE(feature text, metric text, value float8, threshold float8, drifted boolean)
LANGUAGE plpyml
STABLE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].drift(plpy, GD, project_name, relation_name, model_id, caller_search_path)
$$;
COMMENT ON FUNCTION pyml.drift(text, text, bigint, text) IS
    'Drift of new rows (or of the logged calls of the recent window) from the training rows of a model: PSI on the training deciles and KS for numbers, PSI and Jensen-Shannon for categories, and the same for the predictions (__prediction__)';

CREATE FUNCTION pyml.monitor(
    project_name text,                            -- the project
    relation_name text,                           -- where new rows (with labels) arrive
    every interval DEFAULT '1 hour',              -- how often a round runs
    psi_threshold real DEFAULT 0.2,               -- a feature whose PSI exceeds this drifted
    retrain boolean DEFAULT true,                 -- on drift, train a candidate and deploy it if better
    caller_search_path text DEFAULT pg_catalog.current_setting('search_path') -- how relation names resolve (leave it)
) RETURNS bigint
LANGUAGE plpyml
VOLATILE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].monitor(plpy, GD, project_name, relation_name, every, psi_threshold, retrain, caller_search_path)
$$;
COMMENT ON FUNCTION pyml.monitor(text, text, interval, real, boolean, text) IS
    'Monitors a project: a round (pyml.check) runs on every interval, when pyml.run_monitors() runs (pg_cron''s job, or `pyml monitor`); returns the monitor id';

CREATE FUNCTION pyml.unmonitor(
    project_name text                             -- the project
) RETURNS boolean
LANGUAGE plpyml
VOLATILE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].unmonitor(plpy, GD, project_name)
$$;
COMMENT ON FUNCTION pyml.unmonitor(text) IS
    'Stops the scheduled rounds of a project (its reports stay); false when it had no monitor';

CREATE FUNCTION pyml.check(
    project_name text                             -- the project
) RETURNS TABLE(drifted boolean, retrained boolean, deployed boolean, old_model_id bigint,
                new_model_id bigint, report_id bigint)
LANGUAGE plpyml
VOLATILE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].check(plpy, GD, project_name)
$$;
COMMENT ON FUNCTION pyml.check(text) IS
    'Runs one monitoring round now: drift report; on drift, retrains with the live model''s settings, deploys the candidate only if better on the same fresh holdout; NOTIFY pyml_monitor';

CREATE FUNCTION pyml.run_monitors()
RETURNS TABLE(project text, drifted boolean, retrained boolean, deployed boolean,
              old_model_id bigint, new_model_id bigint, report_id bigint, error text)
LANGUAGE plpyml
VOLATILE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].run_monitors(plpy, GD)
$$;
COMMENT ON FUNCTION pyml.run_monitors() IS
    'Runs the due rounds of the monitors whose role the current role can become, each as that role (what pg_cron and `pyml monitor` call), after collecting the prediction log';

CREATE FUNCTION pyml.log_predictions(
    project_name text,                            -- the project
    sample_rate real DEFAULT 1.0                  -- the share of calls logged (0 stops logging)
) RETURNS void
LANGUAGE plpyml
VOLATILE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].log_predictions(plpy, GD, project_name, sample_rate)
$$;
COMMENT ON FUNCTION pyml.log_predictions(text, real) IS
    'From now on a sampled share of the project''s predict calls is logged in pyml.prediction_log (also when the caller''s transaction rolls back or is read-only)';

CREATE FUNCTION pyml.collect_predictions()
RETURNS bigint
LANGUAGE plpyml
VOLATILE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].collect_predictions(plpy, GD)
$$;
COMMENT ON FUNCTION pyml.collect_predictions() IS
    'Moves the spooled prediction log into pyml.logged_predictions; returns the rows moved';

CREATE FUNCTION pyml._spooled_predictions()
RETURNS SETOF text
LANGUAGE plpyml
STABLE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].spooled_predictions(plpy, GD)
$$;
COMMENT ON FUNCTION pyml._spooled_predictions() IS
    'The logged calls not collected yet: one JSON line each (for pyml.prediction_log)';

CREATE VIEW pyml.prediction_log WITH (security_invoker = true) AS
    SELECT l.project_id, l.model_id, l.features, l.prediction, l.logged_at
    FROM pyml.logged_predictions l
    UNION ALL
    SELECT (j.l ->> 0)::int8, (j.l ->> 1)::int8, j.l -> 2, j.l -> 3,
           pg_catalog.to_timestamp((j.l ->> 4)::float8)
    FROM pyml._spooled_predictions() AS s(line), LATERAL (SELECT s.line::jsonb AS l) j
    WHERE EXISTS (SELECT FROM pyml.projects p WHERE p.id = (j.l ->> 0)::int8);
COMMENT ON VIEW pyml.prediction_log IS
    'Logged predict calls (pyml.log_predictions): model, features, prediction, time; collected or still spooled';
COMMENT ON COLUMN pyml.prediction_log.project_id IS 'The project (pyml.projects.id)';
COMMENT ON COLUMN pyml.prediction_log.model_id IS 'The model that predicted';
COMMENT ON COLUMN pyml.prediction_log.features IS
    'The inputs: an array, or an object by column name (a row)';
COMMENT ON COLUMN pyml.prediction_log.prediction IS
    'What the call returned: a number, a label, or an array';
COMMENT ON COLUMN pyml.prediction_log.logged_at IS 'When the call was made';
