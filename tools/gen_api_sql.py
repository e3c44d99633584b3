# Generator of sql/api/predict.sql, whose ~100 overloads differ only in argument types:
#     python3 tools/gen_api_sql.py sql/api
# The other files in sql/api/ are written by hand.
BOOT = '''if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")'''
def fn(name, args, returns, body_call, vol, extra="", comment="", strict=False, parallel="UNSAFE", argsig=None):
    norm = []
    for i, a in enumerate(args):
        code, sep, note = a.partition("--")
        code = code.rstrip().rstrip(",")
        comma = "," if i < len(args) - 1 else ""
        norm.append((f"    {code}{comma}".ljust(49) + " " + (f"-- {note.strip()}" if sep else "")).rstrip())
    argtxt = "\n".join(norm)
    attrs = [f"LANGUAGE plpython3u", vol]
    if strict: attrs.append("STRICT")
    attrs.append(f"PARALLEL {parallel}")
    attrs.append("SET search_path = pg_catalog, pg_temp")
    out = f"CREATE FUNCTION pyml.{name}(\n{argtxt}\n) RETURNS {returns}\n" + "\n".join(attrs) + f"\nAS $$\n{BOOT}\nreturn GD[\"pyml\"].{body_call}\n$$;\n"
    sig = argsig
    out += f"COMMENT ON FUNCTION pyml.{name}({sig}) IS\n    '{comment}';\n"
    return out

def argsig(args):
    sig=[]
    for a in args:
        a = a.split("--")[0].strip().rstrip(",")
        a = a.split(" DEFAULT ")[0]
        parts = a.split()
        sig.append(" ".join(parts[1:]))
    return ", ".join(sig)

files = {}
# Evaluated in the caller's context, before the function's own SET search_path applies:
# relation names resolve like any SQL name in the caller's session (see sql/api/train.sql).
CALLER = "caller_search_path text DEFAULT pg_catalog.current_setting('search_path') -- how relation names resolve (leave it)"
# ---------------- boot / version
# ---------------- predict
ARRAYS = ["real[]", "double precision[]", "smallint[]", "integer[]", "bigint[]", "numeric[]", "boolean[]"]
def predict_block(name, pyname, returns, comment_proj, comment_id, arrays=ARRAYS, row=True, setof=False):
    out = []
    keys = [("project_name text", "project_name", comment_proj), ("model_id bigint", "model_id", comment_id)]
    for keyarg, keyname, comment in keys:
        if row:
            out.append(row_block(name, pyname, returns, keyarg, keyname, comment))
        for t in arrays:
            argname = "row" if t == "anyelement" else "features"
            desc = "a table row or ROW(...) of features" if t == "anyelement" else "the features, in training column order"
            sqlname = '"row"' if argname == "row" else argname
            args = [f"{keyarg} -- {'the project: its live model is used' if keyname == 'project_name' else 'a model by id, deployed or not'}",
                    f"{sqlname} {t} -- {desc}"]
            out.append(fn(name, args, returns, f"{pyname}(plpy, GD, {keyname}, {argname})", "STABLE", strict=True,
                          parallel=PREDICT_PARALLEL, comment=comment, argsig=f"{keyarg.split()[1]}, {t}"))
    return "\n".join(out)

# PL/Python runs every plpy.execute in a subtransaction, and parallel mode (leader included)
# forbids them: a predict that looks up the live model cannot run under a Gather.
PREDICT_PARALLEL = "UNSAFE"


def row_block(name, pyname, returns, keyarg, keyname, comment):
    keytype = keyarg.split()[1]
    internal = fn(f"_{name}_row", [f"{keyarg} -- {'the project' if keyname == 'project_name' else 'the model'}",
                                    "features json -- to_json of the row: names and values, in column order",
                                    "row_type oid -- the row's type, to read real columns exactly"],
                  returns, f"{pyname}_row(plpy, GD, {keyname}, features, row_type)", "STABLE", strict=True,
                  parallel=PREDICT_PARALLEL, comment=f"Internal: {name} of a row passed as JSON", argsig=f"{keytype}, json, oid")
    wrapper_args = f"    {keyarg},".ljust(50) + "-- " + ("the project: its live model is used" if keyname == "project_name" else "a model by id, deployed or not") + "\n" + \
        '    "row" anyelement'.ljust(50) + "-- a table row or ROW(...) of features"
    wrapper = (f"CREATE FUNCTION pyml.{name}(\n{wrapper_args}\n) RETURNS {returns}\n"
               f"LANGUAGE sql\nSTABLE\nSTRICT\nPARALLEL {PREDICT_PARALLEL}\n"
               "SET search_path = pg_catalog, pg_temp\n"
               f"AS $$\n    SELECT pyml._{name}_row({keyname}, pg_catalog.to_json(\"row\"), pg_catalog.pg_typeof(\"row\")::oid)\n$$;\n"
               f"COMMENT ON FUNCTION pyml.{name}({keytype}, anyelement) IS\n    '{comment} (from a row: mixed column types)';\n")
    return internal + "\n" + wrapper

def batch_block():
    """predict_batch: SQL wrappers hand the array over as one bytea (array_send), so that
    PL/Python does not convert n x k values one by one, and unnest the real[] result."""
    out = []
    for keyarg, keyname, what in (("project_name text", "project_name", "live model of a project"),
                                  ("model_id bigint", "model_id", "given model")):
        keytype = keyarg.split()[1]
        out.append(fn("_predict_batch", [f"{keyarg} -- the project or model",
                                         "features bytea -- array_send of the float8[] features"],
                      "real[]", f"predict_batch(plpy, GD, {keyname}, features)", "STABLE",
                      strict=True, parallel=PREDICT_PARALLEL,
                      comment="Internal: predict_batch of features in binary array format",
                      argsig=f"{keytype}, bytea"))
        for t in ARRAYS:
            cast = "features::int4[]::float8[]" if t == "boolean[]" else "features::float8[]"
            args = f"    {keyarg},".ljust(50) + "-- " + ("the project: its live model is used" if keyname == "project_name" else "a model by id, deployed or not") + "\n" + \
                f"    features {t}".ljust(50) + "-- n rows x k features, flattened"
            out.append(
                f"CREATE FUNCTION pyml.predict_batch(\n{args}\n) RETURNS SETOF real\n"
                f"LANGUAGE sql\nSTABLE\nSTRICT\nPARALLEL {PREDICT_PARALLEL}\n"
                "SET search_path = pg_catalog, pg_temp\n"
                f"AS $$\n    SELECT pg_catalog.unnest(pyml._predict_batch({keyname}, pg_catalog.array_send({cast})))\n$$;\n"
                f"COMMENT ON FUNCTION pyml.predict_batch({keytype}, {t}) IS\n"
                f"    'Predicts n rows given as one flattened array of n x k features, {what}';\n")
    return "\n".join(out)


files["predict.sql"] = '''-- ============================================================================
-- Prediction: online (one row per call), set queries, batches and batch jobs.
-- Arrays of any number type are accepted; multi-dimensional arrays are flattened.
-- ============================================================================

''' + predict_block("predict", "predict", "real",
        "Predicts one row with the live model of a project: a value, or the class label as a number",
        "Predicts one row with a given model: a value, or the class label as a number") + "\n" + \
  predict_block("predict_label", "predict_label", "text",
        "Predicts the class label of one row with the live model of a project",
        "Predicts the class label of one row with a given model") + "\n" + \
  predict_block("predict_proba", "predict_proba", "real[]",
        "Class probabilities of one row (in pyml.models.classes order) with the live model of a project",
        "Class probabilities of one row (in pyml.models.classes order) with a given model") + "\n" + \
  predict_block("predict_joint", "predict_joint", "real[]",
        "Predicts every target of a joint (multi-target) model for one row, live model of a project",
        "Predicts every target of a joint (multi-target) model for one row, given model", row=False) + "\n" + \
  batch_block() + "\n" + \
  fn("predict_into", [
    "project_name text,                            -- the project: its live model is used",
    "source_relation text,                         -- table or view with the feature columns",
    "target_table text,                            -- where predictions go (created if missing)",
    "key_column text DEFAULT 'id'                  -- identifies rows of source_relation",
    CALLER],
    "bigint", "predict_into(plpy, GD, project_name, source_relation, target_table, key_column, caller_search_path)", "VOLATILE",
    comment="Scores every row of a relation with the live model into a table (key, prediction, model_id, scored_at), one row per key: created with a primary key if missing, else the rows of the keys scored are replaced; returns the row count",
    argsig="text, text, text, text, text")

import sys, os
out = sys.argv[1]
for name, text in files.items():
    open(os.path.join(out, name), "w").write(text.rstrip() + "\n")
