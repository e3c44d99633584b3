-- ============================================================================
-- Export and import: a model as one ONNX graph (model and preprocessing) and its
-- card, for a consumer outside the database: an edge device (pyml pull), a web
-- page, a model service; or as a bundle (format 'pyml': the whole model, its
-- files, catalog rows and snapshot statistics) that pyml.import_model registers
-- in another database. Models leave the database and still give the same answers.
-- ============================================================================

CREATE FUNCTION pyml.export(
    project_name text,                            -- the project: its live model is exported
    format text DEFAULT 'onnx'                    -- 'onnx', or 'pyml' (a bundle)
) RETURNS bytea
LANGUAGE plpyml
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].export(plpy, GD, project_name, format)
$$;
COMMENT ON FUNCTION pyml.export(text, text) IS
    'The live model of a project with its preprocessing as one ONNX graph (inputs named after the training columns; 0A000 when it has none, saying why), or with format ''pyml'' as a bundle for pyml.import_model';

CREATE FUNCTION pyml.export(
    model_id bigint,                              -- the model
    format text DEFAULT 'onnx'                    -- 'onnx', or 'pyml' (a bundle)
) RETURNS bytea
LANGUAGE plpyml
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].export(plpy, GD, model_id, format)
$$;
COMMENT ON FUNCTION pyml.export(bigint, text) IS
    'A model with its preprocessing as one ONNX graph (inputs named after the training columns; 0A000 when it has none, saying why), or with format ''pyml'' as a bundle for pyml.import_model';

CREATE FUNCTION pyml.import_model(
    bundle bytea,                                 -- what pyml.export(..., format => 'pyml') gave
    project_name text DEFAULT NULL,               -- the project (NULL: the bundle's)
    deploy boolean DEFAULT true                   -- deploy it (strategy 'specific')
) RETURNS bigint
LANGUAGE plpyml
VOLATILE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].import_model(plpy, GD, bundle, project_name, deploy)
$$;
COMMENT ON FUNCTION pyml.import_model(bytea, text, boolean) IS
    'Registers the model of a bundle (pyml.export format ''pyml'') as a new model, checked and loaded first (22023 malformed, XX001 a file that fails its checks); creates the project (owned by the caller) or needs train on it, and deploy to deploy it; returns the new model id';

CREATE FUNCTION pyml.model_card(
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
return GD["pyml"].model_card(plpy, GD, model_id)
$$;
COMMENT ON FUNCTION pyml.model_card(bigint) IS
    'What a consumer of pyml.export needs: model id, project, task, input names and types, outputs, classes, sha256 of the exported bytes, parity with the original, pyml version';

CREATE FUNCTION pyml.model_card(
    project_name text                             -- the project: its live model's card
) RETURNS jsonb
LANGUAGE plpyml
STABLE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].model_card(plpy, GD, project_name)
$$;
COMMENT ON FUNCTION pyml.model_card(text) IS
    'The card of the live model of a project (see pyml.model_card(bigint))';
