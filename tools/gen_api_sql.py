# Generator of sql/api/predict.sql, whose ~100 overloads differ only in argument types:
#     python3 tools/gen_api_sql.py sql/api
# The other files in sql/api/ are written by hand.
import os
import sys

BOOT = '''if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")'''


def fn(name: str, args: list[str], returns: str, body_call: str, vol: str, comment: str = "",
       strict: bool = False, parallel: str = "UNSAFE", argsig: str | None = None) -> str:
    norm = []
    for i, a in enumerate(args):
        code, sep, note = a.partition("--")
        code = code.rstrip().rstrip(",")
        comma = "," if i < len(args) - 1 else ""
        note = f"-- {note.strip()}" if sep else ""
        norm.append((f"    {code}{comma}".ljust(49) + " " + note).rstrip())
    argtxt = "\n".join(norm)
    attrs = ["LANGUAGE plpython3u", vol]
    if strict:
        attrs.append("STRICT")
    attrs.append(f"PARALLEL {parallel}")
    attrs.append("SET search_path = pg_catalog, pg_temp")
    out = (f"CREATE FUNCTION pyml.{name}(\n{argtxt}\n) RETURNS {returns}\n" + "\n".join(attrs)
           + f"\nAS $$\n{BOOT}\nreturn GD[\"pyml\"].{body_call}\n$$;\n")
    out += f"COMMENT ON FUNCTION pyml.{name}({argsig}) IS\n    '{comment}';\n"
    return out


files = {}
# Evaluated in the caller's context, before the function's own SET search_path applies:
# relation names resolve like any SQL name in the caller's session (see sql/api/train.sql).
CALLER = ("caller_search_path text DEFAULT pg_catalog.current_setting('search_path')"
          " -- how relation names resolve (leave it)")
# ---------------- boot / version
# ---------------- predict
ARRAYS = ["real[]", "double precision[]", "smallint[]", "integer[]", "bigint[]", "numeric[]",
          "boolean[]"]
LIVE_MODEL = "the project: its live model is used"
A_MODEL = "a model by id, deployed or not"


def predict_block(name: str, pyname: str, returns: str, comment_proj: str, comment_id: str,
                  arrays: list[str] = ARRAYS, row: bool = True) -> str:
    out = []
    keys = [("project_name text", "project_name", comment_proj),
            ("model_id bigint", "model_id", comment_id)]
    for keyarg, keyname, comment in keys:
        if row:
            out.append(row_block(name, pyname, returns, keyarg, keyname, comment))
        for t in arrays:
            argname = "row" if t == "anyelement" else "features"
            desc = ("a table row or ROW(...) of features" if t == "anyelement"
                    else "the features, in training column order")
            sqlname = '"row"' if argname == "row" else argname
            args = [f"{keyarg} -- {LIVE_MODEL if keyname == 'project_name' else A_MODEL}",
                    f"{sqlname} {t} -- {desc}"]
            out.append(fn(name, args, returns, f"{pyname}(plpy, GD, {keyname}, {argname})",
                          "STABLE", strict=True, parallel=PREDICT_PARALLEL, comment=comment,
                          argsig=f"{keyarg.split()[1]}, {t}"))
    return "\n".join(out)


# PL/Python runs every plpy.execute in a subtransaction, and parallel mode (leader included)
# forbids them: a predict that looks up the live model cannot run under a Gather.
PREDICT_PARALLEL = "UNSAFE"


def row_block(name: str, pyname: str, returns: str, keyarg: str, keyname: str,
              comment: str) -> str:
    keytype = keyarg.split()[1]
    internal = fn(
        f"_{name}_row",
        [f"{keyarg} -- {'the project' if keyname == 'project_name' else 'the model'}",
         "features json -- to_json of the row: names and values, in column order",
         "row_type oid -- the row's type, to read real columns exactly"],
        returns, f"{pyname}_row(plpy, GD, {keyname}, features, row_type)", "STABLE",
        strict=True, parallel=PREDICT_PARALLEL, comment=f"Internal: {name} of a row passed as JSON",
        argsig=f"{keytype}, json, oid")
    wrapper_args = (
        f"    {keyarg},".ljust(50) + "-- "
        + (LIVE_MODEL if keyname == "project_name" else A_MODEL) + "\n"
        + '    "row" anyelement'.ljust(50) + "-- a table row or ROW(...) of features")
    wrapper = (f"CREATE FUNCTION pyml.{name}(\n{wrapper_args}\n) RETURNS {returns}\n"
               f"LANGUAGE sql\nSTABLE\nSTRICT\nPARALLEL {PREDICT_PARALLEL}\n"
               "SET search_path = pg_catalog, pg_temp\n"
               f"AS $$\n    SELECT pyml._{name}_row({keyname}, pg_catalog.to_json(\"row\"),"
               " pg_catalog.pg_typeof(\"row\")::oid)\n$$;\n"
               f"COMMENT ON FUNCTION pyml.{name}({keytype}, anyelement) IS\n"
               f"    '{comment} (from a row: mixed column types)';\n")
    return internal + "\n" + wrapper


def batch_block() -> str:
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
            args = (f"    {keyarg},".ljust(50) + "-- "
                    + (LIVE_MODEL if keyname == "project_name" else A_MODEL) + "\n"
                    + f"    features {t}".ljust(50) + "-- n rows x k features, flattened")
            out.append(
                f"CREATE FUNCTION pyml.predict_batch(\n{args}\n) RETURNS SETOF real\n"
                f"LANGUAGE sql\nSTABLE\nSTRICT\nPARALLEL {PREDICT_PARALLEL}\n"
                "SET search_path = pg_catalog, pg_temp\n"
                f"AS $$\n    SELECT pg_catalog.unnest(pyml._predict_batch({keyname},"
                f" pg_catalog.array_send({cast})))\n$$;\n"
                f"COMMENT ON FUNCTION pyml.predict_batch({keytype}, {t}) IS\n"
                f"    'Predicts n rows given as one flattened array of n x k features, {what}';\n")
    return "\n".join(out)


PROBA = "Class probabilities of one row (in pyml.models.classes order)"
JOINT = "Predicts every target of a joint (multi-target) model for one row"
RULE = "-- " + "=" * 76
files["predict.sql"] = f'''{RULE}
-- Prediction: online (one row per call), set queries, batches and batch jobs.
-- Arrays of any number type are accepted; multi-dimensional arrays are flattened.
{RULE}

''' + "\n".join([
    predict_block(
        "predict", "predict", "real",
        "Predicts one row with the live model of a project: a value, or the class label as a"
        " number",
        "Predicts one row with a given model: a value, or the class label as a number"),
    predict_block(
        "predict_label", "predict_label", "text",
        "Predicts the class label of one row with the live model of a project",
        "Predicts the class label of one row with a given model"),
    predict_block(
        "predict_proba", "predict_proba", "real[]",
        f"{PROBA} with the live model of a project",
        f"{PROBA} with a given model"),
    predict_block(
        "predict_joint", "predict_joint", "real[]",
        f"{JOINT}, live model of a project",
        f"{JOINT}, given model", row=False),
    batch_block(),
    fn("predict_into", [
        f"project_name text -- {LIVE_MODEL}",
        "source_relation text -- table or view with the feature columns",
        "target_table text -- where predictions go (created if missing)",
        "key_column text DEFAULT 'id' -- identifies rows of source_relation",
        CALLER],
        "bigint",
        "predict_into(plpy, GD, project_name, source_relation, target_table, key_column,"
        " caller_search_path)",
        "VOLATILE",
        comment="Scores every row of a relation with the live model into a table (key,"
        " prediction, model_id, scored_at), one row per key: created with a primary key if"
        " missing, else the rows of the keys scored are replaced; returns the row count",
        argsig="text, text, text, text, text"),
])

out = sys.argv[1]
for name, text in files.items():
    with open(os.path.join(out, name), "w") as f:
        f.write(text.rstrip() + "\n")
