-- ============================================================================
-- Training: snapshot a relation, fit, evaluate, store the model, maybe deploy
-- ============================================================================

CREATE TYPE pyml.train_result AS (project text, task text, algorithm text, deployed boolean);
COMMENT ON TYPE pyml.train_result IS 'One row returned by pyml.train';
COMMENT ON COLUMN pyml.train_result.project IS 'Project name';
COMMENT ON COLUMN pyml.train_result.task IS
    '''regression'', ''classification'', ''clustering'' or ''decomposition''';
COMMENT ON COLUMN pyml.train_result.algorithm IS 'The algorithm trained';
COMMENT ON COLUMN pyml.train_result.deployed IS 'Whether the new model was deployed (is live)';

CREATE TYPE pyml.snapshot_result AS (relation text, y_column_name text);
COMMENT ON TYPE pyml.snapshot_result IS 'One row returned by pyml.snapshot';
COMMENT ON COLUMN pyml.snapshot_result.relation IS 'The copy of the rows: pyml.snapshot_<id>';
COMMENT ON COLUMN pyml.snapshot_result.y_column_name IS 'The label column';

CREATE FUNCTION pyml.train(
    project_name text,                            -- the project: created on its first training
    task text DEFAULT NULL,                       -- regression | classification (first call only)
    relation_name text DEFAULT NULL,              -- table or view to train on; NULL: last snapshot
    y_column_name text DEFAULT NULL,              -- the label column
    algorithm text DEFAULT NULL,                  -- NULL: the task's default (linear, kmeans, pca)
    hyperparams jsonb DEFAULT '{}',               -- estimator parameters, checked by name
    search text DEFAULT NULL,                     -- NULL | grid | random
    search_params jsonb DEFAULT '{}',             -- {"param": [values, ...]}
    search_args jsonb DEFAULT '{}',               -- {"n_iter": 10, "cv": 5}
    test_size real DEFAULT 0.25,                  -- fraction in (0, 1), or a row count when > 1
    test_sampling text DEFAULT 'stratified',      -- random | last | stratified (by label)
    runtime text DEFAULT NULL,                    -- NULL or python; rust is accepted, python used
    automatic_deploy boolean DEFAULT true,        -- deploy when better than the live model
    materialize_snapshot boolean DEFAULT false,   -- copy the training rows into pyml.snapshot_<id>
    preprocess jsonb DEFAULT '{}',                -- {"col": {"encode", "impute", "scale"}}
    caller_search_path text DEFAULT pg_catalog.current_setting('search_path') -- how relation names resolve (leave it)
) RETURNS SETOF pyml.train_result
LANGUAGE plpyml
VOLATILE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
-- reproducible row order: a synchronized scan would start where another scan is
SET synchronize_seqscans = off
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].train(plpy, GD, project_name, task, relation_name, y_column_name, algorithm, hyperparams, search, search_params, search_args, test_size, test_sampling, runtime, automatic_deploy, materialize_snapshot, preprocess, caller_search_path)
$$;
COMMENT ON FUNCTION pyml.train(text, text, text, text, text, jsonb, text, jsonb, jsonb, real, text, text, boolean, boolean, jsonb, text) IS
    'Trains a model on a relation, stores it as a versioned row and deploys it when it beats the live model';

CREATE FUNCTION pyml.train_joint(
    project_name text,                            -- the project: created on its first training
    task text DEFAULT NULL,                       -- regression | classification (first call only)
    relation_name text DEFAULT NULL,              -- table or view to train on; NULL: last snapshot
    y_column_name text[] DEFAULT NULL,            -- the label columns (regression)
    algorithm text DEFAULT NULL,                  -- NULL: the task's default (linear, kmeans, pca)
    hyperparams jsonb DEFAULT '{}',               -- estimator parameters, checked by name
    search text DEFAULT NULL,                     -- NULL | grid | random
    search_params jsonb DEFAULT '{}',             -- {"param": [values, ...]}
    search_args jsonb DEFAULT '{}',               -- {"n_iter": 10, "cv": 5}
    test_size real DEFAULT 0.25,                  -- fraction in (0, 1), or a row count when > 1
    test_sampling text DEFAULT 'stratified',      -- random | last | stratified (by label)
    runtime text DEFAULT NULL,                    -- NULL or python; rust is accepted, python used
    automatic_deploy boolean DEFAULT true,        -- deploy when better than the live model
    materialize_snapshot boolean DEFAULT false,   -- copy the training rows into pyml.snapshot_<id>
    preprocess jsonb DEFAULT '{}',                -- {"col": {"encode", "impute", "scale"}}
    caller_search_path text DEFAULT pg_catalog.current_setting('search_path') -- how relation names resolve (leave it)
) RETURNS SETOF pyml.train_result
LANGUAGE plpyml
VOLATILE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
-- reproducible row order: a synchronized scan would start where another scan is
SET synchronize_seqscans = off
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].train(plpy, GD, project_name, task, relation_name, y_column_name, algorithm, hyperparams, search, search_params, search_args, test_size, test_sampling, runtime, automatic_deploy, materialize_snapshot, preprocess, caller_search_path)
$$;
COMMENT ON FUNCTION pyml.train_joint(text, text, text, text[], text, jsonb, text, jsonb, jsonb, real, text, text, boolean, boolean, jsonb, text) IS
    'Trains a multi-target regression model (one prediction per label column)';

CREATE FUNCTION pyml.snapshot(
    relation_name text,                           -- table or view to snapshot
    y_column_name text,                           -- the label column
    test_size real DEFAULT 0.25,                  -- fraction in (0, 1), or a row count when > 1
    test_sampling text DEFAULT 'stratified',      -- random | last | stratified (by label)
    preprocess jsonb DEFAULT '{}',                -- {"col": {"encode", "impute", "scale"}}
    caller_search_path text DEFAULT pg_catalog.current_setting('search_path') -- how relation names resolve (leave it)
) RETURNS SETOF pyml.snapshot_result
LANGUAGE plpyml
VOLATILE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
-- reproducible row order: a synchronized scan would start where another scan is
SET synchronize_seqscans = off
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].snapshot(plpy, GD, relation_name, y_column_name, test_size, test_sampling, preprocess, caller_search_path)
$$;
COMMENT ON FUNCTION pyml.snapshot(text, text, real, text, jsonb, text) IS
    'Copies a relation into pyml.snapshot_<id> with its column statistics, for later training';

CREATE FUNCTION pyml.fingerprint(
    relation_name text,                           -- table or view, resolved as pyml.train resolves it
    y_column_name text[] DEFAULT NULL,            -- the label column(s), as pyml.train would get them
    task text DEFAULT NULL,                       -- classification labels are read as classes
    preprocess jsonb DEFAULT '{}',                -- columns encoded as categories are read as text
    caller_search_path text DEFAULT pg_catalog.current_setting('search_path') -- how relation names resolve (leave it)
) RETURNS text
LANGUAGE plpyml
STABLE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
-- the same row order as pyml.train reads
SET synchronize_seqscans = off
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].fingerprint(plpy, GD, relation_name, y_column_name, task, preprocess, caller_search_path)
$$;
COMMENT ON FUNCTION pyml.fingerprint(text, text[], text, jsonb, text) IS
    'The data fingerprint pyml.train would record for a relation now (pyml.snapshots.data_fingerprint), without training: tells whether the training data changed';
