-- ============================================================================
-- Deployment: append-only history; the live model is the latest deployment
-- ============================================================================

CREATE TYPE pyml.deploy_result AS (project text, strategy text, algorithm text, model_id bigint);
COMMENT ON TYPE pyml.deploy_result IS 'One row returned by pyml.deploy';
COMMENT ON COLUMN pyml.deploy_result.project IS 'Project name';
COMMENT ON COLUMN pyml.deploy_result.strategy IS
    '''best_score'', ''most_recent'', ''rollback'' or ''specific'' (by model id)';
COMMENT ON COLUMN pyml.deploy_result.algorithm IS 'The deployed model''s algorithm';
COMMENT ON COLUMN pyml.deploy_result.model_id IS 'The model now live (pyml.models.id)';

CREATE FUNCTION pyml.deploy(
    project_name text,                            -- the project
    strategy text DEFAULT 'best_score',           -- best_score | most_recent | rollback
    algorithm text DEFAULT NULL                   -- only consider models of this algorithm
) RETURNS SETOF pyml.deploy_result
LANGUAGE plpyml
VOLATILE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].deploy(plpy, GD, project_name, strategy, algorithm)
$$;
COMMENT ON FUNCTION pyml.deploy(text, text, text) IS
    'Deploys the model of a project chosen by a strategy';

CREATE FUNCTION pyml.deploy(
    model_id bigint                               -- the model to deploy
) RETURNS SETOF pyml.deploy_result
LANGUAGE plpyml
VOLATILE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].deploy_model(plpy, GD, model_id)
$$;
COMMENT ON FUNCTION pyml.deploy(bigint) IS
    'Deploys one model by id (strategy specific)';

CREATE FUNCTION pyml.deployed_model(
    project_name text,                            -- the project
    at timestamptz DEFAULT now()                  -- the moment asked about
) RETURNS bigint
LANGUAGE plpyml
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].deployed_model(plpy, GD, project_name, at)
$$;
COMMENT ON FUNCTION pyml.deployed_model(text, timestamp with time zone) IS
    'The id of the model that was live in a project at a given time (NULL before the first deployment)';

CREATE FUNCTION pyml.lineage(
    model_id bigint                               -- the model
) RETURNS jsonb
LANGUAGE plpyml
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].lineage(plpy, GD, model_id)
$$;
COMMENT ON FUNCTION pyml.lineage(bigint) IS
    'Where a model comes from and where it went: project, snapshot (relation, rows, fingerprint, statistics), algorithm, hyperparameters, preprocessing, metrics, artifacts, versions, who trained it, and every deployment of it (by whom, when, until when)';

CREATE FUNCTION pyml._deploy_notify() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d pyml.deployments;
BEGIN
    IF TG_OP = 'DELETE' THEN d := OLD; ELSE d := NEW; END IF;
    PERFORM pg_notify('pyml_deploy', json_build_object(
        'op', TG_OP, 'project_id', d.project_id, 'model_id', d.model_id,
        'deployment_id', d.id)::text);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION pyml._deploy_notify() IS
    'Internal: NOTIFY pyml_deploy (JSON: op, project_id, model_id, deployment_id) when a deployment is added or removed, at commit; pyml pull and pyml serve wait on it';
