-- ============================================================================
-- Explanation (which features matter, why a model predicted what it did) and
-- decomposition.
-- ============================================================================

CREATE FUNCTION pyml.feature_importance(
    project_name text                             -- the project: its live model is explained
) RETURNS TABLE(feature text, importance real)
LANGUAGE plpyml
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].feature_importance(plpy, GD, project_name)
$$;
COMMENT ON FUNCTION pyml.feature_importance(text) IS
    'Importance of each feature of the live model: gain (LightGBM), impurity (trees), |coefficient| (linear), else permutation importance on the test split';

CREATE FUNCTION pyml._explain(
    project_name text,                            -- the project (or NULL with model_id)
    model_id bigint,                              -- the model (or NULL with project_name)
    features json,                                -- to_json of an array of numbers or of a row
    features_type oid                             -- its type, to read real values exactly
) RETURNS TABLE(feature text, contribution real)
LANGUAGE plpyml
STABLE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].explain(plpy, GD, project_name if model_id is None else model_id, features, features_type)
$$;
COMMENT ON FUNCTION pyml._explain(text, bigint, json, oid) IS
    'Internal: pyml.explain of an array or a row passed as JSON';

CREATE FUNCTION pyml.explain(
    project_name text,                            -- the project: its live model is explained
    features anyelement                           -- an array of numbers, or a table row or ROW(...)
) RETURNS TABLE(feature text, contribution real)
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM pyml._explain(project_name, NULL, pg_catalog.to_json(features),
                                pg_catalog.pg_typeof(features)::oid)
$$;
COMMENT ON FUNCTION pyml.explain(text, anyelement) IS
    'Contribution of each feature to one prediction of the live model; with the __bias__ row they sum to the raw prediction';

CREATE FUNCTION pyml.explain(
    model_id bigint,                              -- the model to explain
    features anyelement                           -- an array of numbers, or a table row or ROW(...)
) RETURNS TABLE(feature text, contribution real)
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM pyml._explain(NULL, model_id, pg_catalog.to_json(features),
                                pg_catalog.pg_typeof(features)::oid)
$$;
COMMENT ON FUNCTION pyml.explain(bigint, anyelement) IS
    'Contribution of each feature to one prediction of a model by id; with the __bias__ row they sum to the raw prediction';

CREATE FUNCTION pyml.decompose(
    project_name text,                            -- a decomposition project (pca): its live model
    vector real[]                                 -- the features, in training column order
) RETURNS real[]
LANGUAGE plpyml
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].decompose(plpy, GD, project_name, vector)
$$;
COMMENT ON FUNCTION pyml.decompose(text, real[]) IS
    'The components of a vector by the live model of a decomposition project (pca)';
