-- ============================================================================
-- Prediction: online (one row per call), set queries, batches and batch jobs.
-- Arrays of any number type are accepted; multi-dimensional arrays are flattened.
-- ============================================================================

CREATE FUNCTION pyml._predict_row(
    project_name text,                            -- the project
    features json,                                -- to_json of the row: names and values, in column order
    row_type oid                                  -- the row's type, to read real columns exactly
) RETURNS real
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_row(plpy, GD, project_name, features, row_type)
$$;
COMMENT ON FUNCTION pyml._predict_row(text, json, oid) IS
    'Internal: predict of a row passed as JSON';

CREATE FUNCTION pyml.predict(
    project_name text,                            -- the project: its live model is used
    "row" anyelement                              -- a table row or ROW(...) of features
) RETURNS real
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pyml._predict_row(project_name, pg_catalog.to_json("row"), pg_catalog.pg_typeof("row")::oid)
$$;
COMMENT ON FUNCTION pyml.predict(text, anyelement) IS
    'Predicts one row with the live model of a project: a value, or the class label as a number (from a row: mixed column types)';

CREATE FUNCTION pyml.predict(
    project_name text,                            -- the project: its live model is used
    features real[]                               -- the features, in training column order
) RETURNS real
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict(text, real[]) IS
    'Predicts one row with the live model of a project: a value, or the class label as a number';

CREATE FUNCTION pyml.predict(
    project_name text,                            -- the project: its live model is used
    features double precision[]                   -- the features, in training column order
) RETURNS real
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict(text, double precision[]) IS
    'Predicts one row with the live model of a project: a value, or the class label as a number';

CREATE FUNCTION pyml.predict(
    project_name text,                            -- the project: its live model is used
    features smallint[]                           -- the features, in training column order
) RETURNS real
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict(text, smallint[]) IS
    'Predicts one row with the live model of a project: a value, or the class label as a number';

CREATE FUNCTION pyml.predict(
    project_name text,                            -- the project: its live model is used
    features integer[]                            -- the features, in training column order
) RETURNS real
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict(text, integer[]) IS
    'Predicts one row with the live model of a project: a value, or the class label as a number';

CREATE FUNCTION pyml.predict(
    project_name text,                            -- the project: its live model is used
    features bigint[]                             -- the features, in training column order
) RETURNS real
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict(text, bigint[]) IS
    'Predicts one row with the live model of a project: a value, or the class label as a number';

CREATE FUNCTION pyml.predict(
    project_name text,                            -- the project: its live model is used
    features numeric[]                            -- the features, in training column order
) RETURNS real
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict(text, numeric[]) IS
    'Predicts one row with the live model of a project: a value, or the class label as a number';

CREATE FUNCTION pyml.predict(
    project_name text,                            -- the project: its live model is used
    features boolean[]                            -- the features, in training column order
) RETURNS real
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict(text, boolean[]) IS
    'Predicts one row with the live model of a project: a value, or the class label as a number';

CREATE FUNCTION pyml._predict_row(
    model_id bigint,                              -- the model
    features json,                                -- to_json of the row: names and values, in column order
    row_type oid                                  -- the row's type, to read real columns exactly
) RETURNS real
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_row(plpy, GD, model_id, features, row_type)
$$;
COMMENT ON FUNCTION pyml._predict_row(bigint, json, oid) IS
    'Internal: predict of a row passed as JSON';

CREATE FUNCTION pyml.predict(
    model_id bigint,                              -- a model by id, deployed or not
    "row" anyelement                              -- a table row or ROW(...) of features
) RETURNS real
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pyml._predict_row(model_id, pg_catalog.to_json("row"), pg_catalog.pg_typeof("row")::oid)
$$;
COMMENT ON FUNCTION pyml.predict(bigint, anyelement) IS
    'Predicts one row with a given model: a value, or the class label as a number (from a row: mixed column types)';

CREATE FUNCTION pyml.predict(
    model_id bigint,                              -- a model by id, deployed or not
    features real[]                               -- the features, in training column order
) RETURNS real
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict(bigint, real[]) IS
    'Predicts one row with a given model: a value, or the class label as a number';

CREATE FUNCTION pyml.predict(
    model_id bigint,                              -- a model by id, deployed or not
    features double precision[]                   -- the features, in training column order
) RETURNS real
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict(bigint, double precision[]) IS
    'Predicts one row with a given model: a value, or the class label as a number';

CREATE FUNCTION pyml.predict(
    model_id bigint,                              -- a model by id, deployed or not
    features smallint[]                           -- the features, in training column order
) RETURNS real
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict(bigint, smallint[]) IS
    'Predicts one row with a given model: a value, or the class label as a number';

CREATE FUNCTION pyml.predict(
    model_id bigint,                              -- a model by id, deployed or not
    features integer[]                            -- the features, in training column order
) RETURNS real
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict(bigint, integer[]) IS
    'Predicts one row with a given model: a value, or the class label as a number';

CREATE FUNCTION pyml.predict(
    model_id bigint,                              -- a model by id, deployed or not
    features bigint[]                             -- the features, in training column order
) RETURNS real
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict(bigint, bigint[]) IS
    'Predicts one row with a given model: a value, or the class label as a number';

CREATE FUNCTION pyml.predict(
    model_id bigint,                              -- a model by id, deployed or not
    features numeric[]                            -- the features, in training column order
) RETURNS real
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict(bigint, numeric[]) IS
    'Predicts one row with a given model: a value, or the class label as a number';

CREATE FUNCTION pyml.predict(
    model_id bigint,                              -- a model by id, deployed or not
    features boolean[]                            -- the features, in training column order
) RETURNS real
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict(bigint, boolean[]) IS
    'Predicts one row with a given model: a value, or the class label as a number';

CREATE FUNCTION pyml._predict_label_row(
    project_name text,                            -- the project
    features json,                                -- to_json of the row: names and values, in column order
    row_type oid                                  -- the row's type, to read real columns exactly
) RETURNS text
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_label_row(plpy, GD, project_name, features, row_type)
$$;
COMMENT ON FUNCTION pyml._predict_label_row(text, json, oid) IS
    'Internal: predict_label of a row passed as JSON';

CREATE FUNCTION pyml.predict_label(
    project_name text,                            -- the project: its live model is used
    "row" anyelement                              -- a table row or ROW(...) of features
) RETURNS text
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pyml._predict_label_row(project_name, pg_catalog.to_json("row"), pg_catalog.pg_typeof("row")::oid)
$$;
COMMENT ON FUNCTION pyml.predict_label(text, anyelement) IS
    'Predicts the class label of one row with the live model of a project (from a row: mixed column types)';

CREATE FUNCTION pyml.predict_label(
    project_name text,                            -- the project: its live model is used
    features real[]                               -- the features, in training column order
) RETURNS text
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_label(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict_label(text, real[]) IS
    'Predicts the class label of one row with the live model of a project';

CREATE FUNCTION pyml.predict_label(
    project_name text,                            -- the project: its live model is used
    features double precision[]                   -- the features, in training column order
) RETURNS text
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_label(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict_label(text, double precision[]) IS
    'Predicts the class label of one row with the live model of a project';

CREATE FUNCTION pyml.predict_label(
    project_name text,                            -- the project: its live model is used
    features smallint[]                           -- the features, in training column order
) RETURNS text
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_label(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict_label(text, smallint[]) IS
    'Predicts the class label of one row with the live model of a project';

CREATE FUNCTION pyml.predict_label(
    project_name text,                            -- the project: its live model is used
    features integer[]                            -- the features, in training column order
) RETURNS text
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_label(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict_label(text, integer[]) IS
    'Predicts the class label of one row with the live model of a project';

CREATE FUNCTION pyml.predict_label(
    project_name text,                            -- the project: its live model is used
    features bigint[]                             -- the features, in training column order
) RETURNS text
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_label(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict_label(text, bigint[]) IS
    'Predicts the class label of one row with the live model of a project';

CREATE FUNCTION pyml.predict_label(
    project_name text,                            -- the project: its live model is used
    features numeric[]                            -- the features, in training column order
) RETURNS text
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_label(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict_label(text, numeric[]) IS
    'Predicts the class label of one row with the live model of a project';

CREATE FUNCTION pyml.predict_label(
    project_name text,                            -- the project: its live model is used
    features boolean[]                            -- the features, in training column order
) RETURNS text
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_label(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict_label(text, boolean[]) IS
    'Predicts the class label of one row with the live model of a project';

CREATE FUNCTION pyml._predict_label_row(
    model_id bigint,                              -- the model
    features json,                                -- to_json of the row: names and values, in column order
    row_type oid                                  -- the row's type, to read real columns exactly
) RETURNS text
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_label_row(plpy, GD, model_id, features, row_type)
$$;
COMMENT ON FUNCTION pyml._predict_label_row(bigint, json, oid) IS
    'Internal: predict_label of a row passed as JSON';

CREATE FUNCTION pyml.predict_label(
    model_id bigint,                              -- a model by id, deployed or not
    "row" anyelement                              -- a table row or ROW(...) of features
) RETURNS text
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pyml._predict_label_row(model_id, pg_catalog.to_json("row"), pg_catalog.pg_typeof("row")::oid)
$$;
COMMENT ON FUNCTION pyml.predict_label(bigint, anyelement) IS
    'Predicts the class label of one row with a given model (from a row: mixed column types)';

CREATE FUNCTION pyml.predict_label(
    model_id bigint,                              -- a model by id, deployed or not
    features real[]                               -- the features, in training column order
) RETURNS text
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_label(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict_label(bigint, real[]) IS
    'Predicts the class label of one row with a given model';

CREATE FUNCTION pyml.predict_label(
    model_id bigint,                              -- a model by id, deployed or not
    features double precision[]                   -- the features, in training column order
) RETURNS text
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_label(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict_label(bigint, double precision[]) IS
    'Predicts the class label of one row with a given model';

CREATE FUNCTION pyml.predict_label(
    model_id bigint,                              -- a model by id, deployed or not
    features smallint[]                           -- the features, in training column order
) RETURNS text
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_label(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict_label(bigint, smallint[]) IS
    'Predicts the class label of one row with a given model';

CREATE FUNCTION pyml.predict_label(
    model_id bigint,                              -- a model by id, deployed or not
    features integer[]                            -- the features, in training column order
) RETURNS text
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_label(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict_label(bigint, integer[]) IS
    'Predicts the class label of one row with a given model';

CREATE FUNCTION pyml.predict_label(
    model_id bigint,                              -- a model by id, deployed or not
    features bigint[]                             -- the features, in training column order
) RETURNS text
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_label(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict_label(bigint, bigint[]) IS
    'Predicts the class label of one row with a given model';

CREATE FUNCTION pyml.predict_label(
    model_id bigint,                              -- a model by id, deployed or not
    features numeric[]                            -- the features, in training column order
) RETURNS text
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_label(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict_label(bigint, numeric[]) IS
    'Predicts the class label of one row with a given model';

CREATE FUNCTION pyml.predict_label(
    model_id bigint,                              -- a model by id, deployed or not
    features boolean[]                            -- the features, in training column order
) RETURNS text
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_label(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict_label(bigint, boolean[]) IS
    'Predicts the class label of one row with a given model';

CREATE FUNCTION pyml._predict_proba_row(
    project_name text,                            -- the project
    features json,                                -- to_json of the row: names and values, in column order
    row_type oid                                  -- the row's type, to read real columns exactly
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_proba_row(plpy, GD, project_name, features, row_type)
$$;
COMMENT ON FUNCTION pyml._predict_proba_row(text, json, oid) IS
    'Internal: predict_proba of a row passed as JSON';

CREATE FUNCTION pyml.predict_proba(
    project_name text,                            -- the project: its live model is used
    "row" anyelement                              -- a table row or ROW(...) of features
) RETURNS real[]
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pyml._predict_proba_row(project_name, pg_catalog.to_json("row"), pg_catalog.pg_typeof("row")::oid)
$$;
COMMENT ON FUNCTION pyml.predict_proba(text, anyelement) IS
    'Class probabilities of one row (in pyml.models.classes order) with the live model of a project (from a row: mixed column types)';

CREATE FUNCTION pyml.predict_proba(
    project_name text,                            -- the project: its live model is used
    features real[]                               -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_proba(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict_proba(text, real[]) IS
    'Class probabilities of one row (in pyml.models.classes order) with the live model of a project';

CREATE FUNCTION pyml.predict_proba(
    project_name text,                            -- the project: its live model is used
    features double precision[]                   -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_proba(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict_proba(text, double precision[]) IS
    'Class probabilities of one row (in pyml.models.classes order) with the live model of a project';

CREATE FUNCTION pyml.predict_proba(
    project_name text,                            -- the project: its live model is used
    features smallint[]                           -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_proba(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict_proba(text, smallint[]) IS
    'Class probabilities of one row (in pyml.models.classes order) with the live model of a project';

CREATE FUNCTION pyml.predict_proba(
    project_name text,                            -- the project: its live model is used
    features integer[]                            -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_proba(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict_proba(text, integer[]) IS
    'Class probabilities of one row (in pyml.models.classes order) with the live model of a project';

CREATE FUNCTION pyml.predict_proba(
    project_name text,                            -- the project: its live model is used
    features bigint[]                             -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_proba(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict_proba(text, bigint[]) IS
    'Class probabilities of one row (in pyml.models.classes order) with the live model of a project';

CREATE FUNCTION pyml.predict_proba(
    project_name text,                            -- the project: its live model is used
    features numeric[]                            -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_proba(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict_proba(text, numeric[]) IS
    'Class probabilities of one row (in pyml.models.classes order) with the live model of a project';

CREATE FUNCTION pyml.predict_proba(
    project_name text,                            -- the project: its live model is used
    features boolean[]                            -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_proba(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict_proba(text, boolean[]) IS
    'Class probabilities of one row (in pyml.models.classes order) with the live model of a project';

CREATE FUNCTION pyml._predict_proba_row(
    model_id bigint,                              -- the model
    features json,                                -- to_json of the row: names and values, in column order
    row_type oid                                  -- the row's type, to read real columns exactly
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_proba_row(plpy, GD, model_id, features, row_type)
$$;
COMMENT ON FUNCTION pyml._predict_proba_row(bigint, json, oid) IS
    'Internal: predict_proba of a row passed as JSON';

CREATE FUNCTION pyml.predict_proba(
    model_id bigint,                              -- a model by id, deployed or not
    "row" anyelement                              -- a table row or ROW(...) of features
) RETURNS real[]
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pyml._predict_proba_row(model_id, pg_catalog.to_json("row"), pg_catalog.pg_typeof("row")::oid)
$$;
COMMENT ON FUNCTION pyml.predict_proba(bigint, anyelement) IS
    'Class probabilities of one row (in pyml.models.classes order) with a given model (from a row: mixed column types)';

CREATE FUNCTION pyml.predict_proba(
    model_id bigint,                              -- a model by id, deployed or not
    features real[]                               -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_proba(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict_proba(bigint, real[]) IS
    'Class probabilities of one row (in pyml.models.classes order) with a given model';

CREATE FUNCTION pyml.predict_proba(
    model_id bigint,                              -- a model by id, deployed or not
    features double precision[]                   -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_proba(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict_proba(bigint, double precision[]) IS
    'Class probabilities of one row (in pyml.models.classes order) with a given model';

CREATE FUNCTION pyml.predict_proba(
    model_id bigint,                              -- a model by id, deployed or not
    features smallint[]                           -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_proba(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict_proba(bigint, smallint[]) IS
    'Class probabilities of one row (in pyml.models.classes order) with a given model';

CREATE FUNCTION pyml.predict_proba(
    model_id bigint,                              -- a model by id, deployed or not
    features integer[]                            -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_proba(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict_proba(bigint, integer[]) IS
    'Class probabilities of one row (in pyml.models.classes order) with a given model';

CREATE FUNCTION pyml.predict_proba(
    model_id bigint,                              -- a model by id, deployed or not
    features bigint[]                             -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_proba(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict_proba(bigint, bigint[]) IS
    'Class probabilities of one row (in pyml.models.classes order) with a given model';

CREATE FUNCTION pyml.predict_proba(
    model_id bigint,                              -- a model by id, deployed or not
    features numeric[]                            -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_proba(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict_proba(bigint, numeric[]) IS
    'Class probabilities of one row (in pyml.models.classes order) with a given model';

CREATE FUNCTION pyml.predict_proba(
    model_id bigint,                              -- a model by id, deployed or not
    features boolean[]                            -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_proba(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict_proba(bigint, boolean[]) IS
    'Class probabilities of one row (in pyml.models.classes order) with a given model';

CREATE FUNCTION pyml.predict_joint(
    project_name text,                            -- the project: its live model is used
    features real[]                               -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_joint(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict_joint(text, real[]) IS
    'Predicts every target of a joint (multi-target) model for one row, live model of a project';

CREATE FUNCTION pyml.predict_joint(
    project_name text,                            -- the project: its live model is used
    features double precision[]                   -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_joint(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict_joint(text, double precision[]) IS
    'Predicts every target of a joint (multi-target) model for one row, live model of a project';

CREATE FUNCTION pyml.predict_joint(
    project_name text,                            -- the project: its live model is used
    features smallint[]                           -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_joint(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict_joint(text, smallint[]) IS
    'Predicts every target of a joint (multi-target) model for one row, live model of a project';

CREATE FUNCTION pyml.predict_joint(
    project_name text,                            -- the project: its live model is used
    features integer[]                            -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_joint(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict_joint(text, integer[]) IS
    'Predicts every target of a joint (multi-target) model for one row, live model of a project';

CREATE FUNCTION pyml.predict_joint(
    project_name text,                            -- the project: its live model is used
    features bigint[]                             -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_joint(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict_joint(text, bigint[]) IS
    'Predicts every target of a joint (multi-target) model for one row, live model of a project';

CREATE FUNCTION pyml.predict_joint(
    project_name text,                            -- the project: its live model is used
    features numeric[]                            -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_joint(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict_joint(text, numeric[]) IS
    'Predicts every target of a joint (multi-target) model for one row, live model of a project';

CREATE FUNCTION pyml.predict_joint(
    project_name text,                            -- the project: its live model is used
    features boolean[]                            -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_joint(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml.predict_joint(text, boolean[]) IS
    'Predicts every target of a joint (multi-target) model for one row, live model of a project';

CREATE FUNCTION pyml.predict_joint(
    model_id bigint,                              -- a model by id, deployed or not
    features real[]                               -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_joint(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict_joint(bigint, real[]) IS
    'Predicts every target of a joint (multi-target) model for one row, given model';

CREATE FUNCTION pyml.predict_joint(
    model_id bigint,                              -- a model by id, deployed or not
    features double precision[]                   -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_joint(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict_joint(bigint, double precision[]) IS
    'Predicts every target of a joint (multi-target) model for one row, given model';

CREATE FUNCTION pyml.predict_joint(
    model_id bigint,                              -- a model by id, deployed or not
    features smallint[]                           -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_joint(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict_joint(bigint, smallint[]) IS
    'Predicts every target of a joint (multi-target) model for one row, given model';

CREATE FUNCTION pyml.predict_joint(
    model_id bigint,                              -- a model by id, deployed or not
    features integer[]                            -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_joint(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict_joint(bigint, integer[]) IS
    'Predicts every target of a joint (multi-target) model for one row, given model';

CREATE FUNCTION pyml.predict_joint(
    model_id bigint,                              -- a model by id, deployed or not
    features bigint[]                             -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_joint(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict_joint(bigint, bigint[]) IS
    'Predicts every target of a joint (multi-target) model for one row, given model';

CREATE FUNCTION pyml.predict_joint(
    model_id bigint,                              -- a model by id, deployed or not
    features numeric[]                            -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_joint(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict_joint(bigint, numeric[]) IS
    'Predicts every target of a joint (multi-target) model for one row, given model';

CREATE FUNCTION pyml.predict_joint(
    model_id bigint,                              -- a model by id, deployed or not
    features boolean[]                            -- the features, in training column order
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_joint(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml.predict_joint(bigint, boolean[]) IS
    'Predicts every target of a joint (multi-target) model for one row, given model';

CREATE FUNCTION pyml._predict_batch(
    project_name text,                            -- the project or model
    features bytea                                -- array_send of the float8[] features
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_batch(plpy, GD, project_name, features)
$$;
COMMENT ON FUNCTION pyml._predict_batch(text, bytea) IS
    'Internal: predict_batch of features in binary array format';

CREATE FUNCTION pyml.predict_batch(
    project_name text,                            -- the project: its live model is used
    features real[]                               -- n rows x k features, flattened
) RETURNS SETOF real
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.unnest(pyml._predict_batch(project_name, pg_catalog.array_send(features::float8[])))
$$;
COMMENT ON FUNCTION pyml.predict_batch(text, real[]) IS
    'Predicts n rows given as one flattened array of n x k features, live model of a project';

CREATE FUNCTION pyml.predict_batch(
    project_name text,                            -- the project: its live model is used
    features double precision[]                   -- n rows x k features, flattened
) RETURNS SETOF real
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.unnest(pyml._predict_batch(project_name, pg_catalog.array_send(features::float8[])))
$$;
COMMENT ON FUNCTION pyml.predict_batch(text, double precision[]) IS
    'Predicts n rows given as one flattened array of n x k features, live model of a project';

CREATE FUNCTION pyml.predict_batch(
    project_name text,                            -- the project: its live model is used
    features smallint[]                           -- n rows x k features, flattened
) RETURNS SETOF real
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.unnest(pyml._predict_batch(project_name, pg_catalog.array_send(features::float8[])))
$$;
COMMENT ON FUNCTION pyml.predict_batch(text, smallint[]) IS
    'Predicts n rows given as one flattened array of n x k features, live model of a project';

CREATE FUNCTION pyml.predict_batch(
    project_name text,                            -- the project: its live model is used
    features integer[]                            -- n rows x k features, flattened
) RETURNS SETOF real
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.unnest(pyml._predict_batch(project_name, pg_catalog.array_send(features::float8[])))
$$;
COMMENT ON FUNCTION pyml.predict_batch(text, integer[]) IS
    'Predicts n rows given as one flattened array of n x k features, live model of a project';

CREATE FUNCTION pyml.predict_batch(
    project_name text,                            -- the project: its live model is used
    features bigint[]                             -- n rows x k features, flattened
) RETURNS SETOF real
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.unnest(pyml._predict_batch(project_name, pg_catalog.array_send(features::float8[])))
$$;
COMMENT ON FUNCTION pyml.predict_batch(text, bigint[]) IS
    'Predicts n rows given as one flattened array of n x k features, live model of a project';

CREATE FUNCTION pyml.predict_batch(
    project_name text,                            -- the project: its live model is used
    features numeric[]                            -- n rows x k features, flattened
) RETURNS SETOF real
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.unnest(pyml._predict_batch(project_name, pg_catalog.array_send(features::float8[])))
$$;
COMMENT ON FUNCTION pyml.predict_batch(text, numeric[]) IS
    'Predicts n rows given as one flattened array of n x k features, live model of a project';

CREATE FUNCTION pyml.predict_batch(
    project_name text,                            -- the project: its live model is used
    features boolean[]                            -- n rows x k features, flattened
) RETURNS SETOF real
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.unnest(pyml._predict_batch(project_name, pg_catalog.array_send(features::int4[]::float8[])))
$$;
COMMENT ON FUNCTION pyml.predict_batch(text, boolean[]) IS
    'Predicts n rows given as one flattened array of n x k features, live model of a project';

CREATE FUNCTION pyml._predict_batch(
    model_id bigint,                              -- the project or model
    features bytea                                -- array_send of the float8[] features
) RETURNS real[]
LANGUAGE plpython3u
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_batch(plpy, GD, model_id, features)
$$;
COMMENT ON FUNCTION pyml._predict_batch(bigint, bytea) IS
    'Internal: predict_batch of features in binary array format';

CREATE FUNCTION pyml.predict_batch(
    model_id bigint,                              -- a model by id, deployed or not
    features real[]                               -- n rows x k features, flattened
) RETURNS SETOF real
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.unnest(pyml._predict_batch(model_id, pg_catalog.array_send(features::float8[])))
$$;
COMMENT ON FUNCTION pyml.predict_batch(bigint, real[]) IS
    'Predicts n rows given as one flattened array of n x k features, given model';

CREATE FUNCTION pyml.predict_batch(
    model_id bigint,                              -- a model by id, deployed or not
    features double precision[]                   -- n rows x k features, flattened
) RETURNS SETOF real
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.unnest(pyml._predict_batch(model_id, pg_catalog.array_send(features::float8[])))
$$;
COMMENT ON FUNCTION pyml.predict_batch(bigint, double precision[]) IS
    'Predicts n rows given as one flattened array of n x k features, given model';

CREATE FUNCTION pyml.predict_batch(
    model_id bigint,                              -- a model by id, deployed or not
    features smallint[]                           -- n rows x k features, flattened
) RETURNS SETOF real
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.unnest(pyml._predict_batch(model_id, pg_catalog.array_send(features::float8[])))
$$;
COMMENT ON FUNCTION pyml.predict_batch(bigint, smallint[]) IS
    'Predicts n rows given as one flattened array of n x k features, given model';

CREATE FUNCTION pyml.predict_batch(
    model_id bigint,                              -- a model by id, deployed or not
    features integer[]                            -- n rows x k features, flattened
) RETURNS SETOF real
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.unnest(pyml._predict_batch(model_id, pg_catalog.array_send(features::float8[])))
$$;
COMMENT ON FUNCTION pyml.predict_batch(bigint, integer[]) IS
    'Predicts n rows given as one flattened array of n x k features, given model';

CREATE FUNCTION pyml.predict_batch(
    model_id bigint,                              -- a model by id, deployed or not
    features bigint[]                             -- n rows x k features, flattened
) RETURNS SETOF real
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.unnest(pyml._predict_batch(model_id, pg_catalog.array_send(features::float8[])))
$$;
COMMENT ON FUNCTION pyml.predict_batch(bigint, bigint[]) IS
    'Predicts n rows given as one flattened array of n x k features, given model';

CREATE FUNCTION pyml.predict_batch(
    model_id bigint,                              -- a model by id, deployed or not
    features numeric[]                            -- n rows x k features, flattened
) RETURNS SETOF real
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.unnest(pyml._predict_batch(model_id, pg_catalog.array_send(features::float8[])))
$$;
COMMENT ON FUNCTION pyml.predict_batch(bigint, numeric[]) IS
    'Predicts n rows given as one flattened array of n x k features, given model';

CREATE FUNCTION pyml.predict_batch(
    model_id bigint,                              -- a model by id, deployed or not
    features boolean[]                            -- n rows x k features, flattened
) RETURNS SETOF real
LANGUAGE sql
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.unnest(pyml._predict_batch(model_id, pg_catalog.array_send(features::int4[]::float8[])))
$$;
COMMENT ON FUNCTION pyml.predict_batch(bigint, boolean[]) IS
    'Predicts n rows given as one flattened array of n x k features, given model';

CREATE FUNCTION pyml.predict_into(
    project_name text,                            -- the project: its live model is used
    source_relation text,                         -- table or view with the feature columns
    target_table text,                            -- where predictions go (created if missing)
    key_column text DEFAULT 'id',                 -- identifies rows of source_relation
    caller_search_path text DEFAULT pg_catalog.current_setting('search_path') -- how relation names resolve (leave it)
) RETURNS bigint
LANGUAGE plpython3u
VOLATILE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].predict_into(plpy, GD, project_name, source_relation, target_table, key_column, caller_search_path)
$$;
COMMENT ON FUNCTION pyml.predict_into(text, text, text, text, text) IS
    'Scores every row of a relation with the live model into a table (key, prediction, model_id, scored_at), one row per key: created with a primary key if missing, else the rows of the keys scored are replaced; returns the row count';
