-- ============================================================================
-- Data and management
-- ============================================================================

CREATE TYPE pyml.dataset_result AS (table_name text, "rows" bigint);
COMMENT ON TYPE pyml.dataset_result IS 'One row returned by pyml.load_dataset';
COMMENT ON COLUMN pyml.dataset_result.table_name IS 'The table created: pyml.<dataset name>';
COMMENT ON COLUMN pyml.dataset_result."rows" IS 'Rows loaded into it';

CREATE FUNCTION pyml.load_dataset(
    source text,                                  -- breast_cancer | diabetes | digits | iris | linnerud | wine
    subset text DEFAULT NULL,                     -- accepted for compatibility; must be NULL
    "limit" bigint DEFAULT NULL,                  -- load at most this many rows
    kwargs jsonb DEFAULT '{}'                     -- accepted for compatibility; must be empty
) RETURNS SETOF pyml.dataset_result
LANGUAGE plpyml
VOLATILE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].load_dataset(plpy, GD, source, subset, limit, kwargs)
$$;
COMMENT ON FUNCTION pyml.load_dataset(text, text, bigint, jsonb) IS
    'Creates pyml.<source> from a dataset shipped with scikit-learn (offline), with pgml column names';

CREATE FUNCTION pyml.delete_model(
    model_id bigint,                              -- the model to delete
    force boolean DEFAULT false                   -- also when it is the live model
) RETURNS void
LANGUAGE plpyml
VOLATILE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].delete_model(plpy, GD, model_id, force)
$$;
COMMENT ON FUNCTION pyml.delete_model(bigint, boolean) IS
    'Deletes a model and its artifacts and deployments; refuses the live model unless forced';

CREATE FUNCTION pyml.delete_project(
    project_name text,                            -- the project to delete
    force boolean DEFAULT false                   -- also when a model is live
) RETURNS void
LANGUAGE plpyml
VOLATILE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].delete_project(plpy, GD, project_name, force)
$$;
COMMENT ON FUNCTION pyml.delete_project(text, boolean) IS
    'Deletes a project with all its models; refuses when a model is live unless forced';
