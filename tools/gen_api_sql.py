# Generator of the repetitive overloads in sql/api/*.sql: python3 tools/gen_api_sql.py sql/api
# The committed SQL is the source of truth; re-run only to regenerate all stubs at once.
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
# relation names resolve like any SQL name in the caller's session.
CALLER = "caller_search_path text DEFAULT pg_catalog.current_setting('search_path') -- how relation names resolve (leave it)"
# ---------------- boot / version
files["000_boot.sql"] = """-- ============================================================================
-- Session bootstrap: find the package, check its version, cache it in GD.
-- It never raises: on failure it leaves in GD["pyml"] an object whose every
-- call raises the reason, so the error comes from the function the user called.
-- ============================================================================

CREATE FUNCTION pyml._boot() RETURNS void
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE
SECURITY DEFINER  -- to read pg_file_settings: only the server's configuration decides
SET search_path = pg_catalog, pg_temp
AS $$
import os
import site
import sys


class Unavailable:
    def __init__(self, message, detail=None, hint=None, sqlstate="55000"):
        self.error = dict(detail=detail, hint=hint, sqlstate=sqlstate)
        self.message = message

    def __getattr__(self, name):
        def fail(plpy, GD, *args):
            GD.pop("pyml", None)  # try again on the next call
            plpy.error(self.message, **self.error)
        return fail


# Only the server's configuration files may decide which code this backend runs:
# a session's SET pyml.venv is ignored.
rows = plpy.execute(
    "SELECT setting FROM pg_catalog.pg_file_settings"
    " WHERE name = 'pyml.venv' AND error IS NULL ORDER BY seqno DESC LIMIT 1"
)
venv = rows[0]["setting"] if rows.nrows() else None
lib = venv and os.path.join(venv, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")
if not venv:
    GD["pyml"] = Unavailable(
        'setting "pyml.venv" is not set in the server configuration',
        hint="Add pyml.venv = '/path/to/venv' (the virtual environment that has the pyml "
        "package) to postgresql.conf, then SELECT pg_reload_conf();",
    )
elif not os.path.isdir(lib):
    GD["pyml"] = Unavailable(
        'setting "pyml.venv" is not a Python %d.%d virtual environment' % sys.version_info[:2],
        detail="Directory %s does not exist." % lib,
        hint="Build the venv with the server's Python (%s)." % sys.executable,
    )
else:
    if lib not in sys.path:
        before = list(sys.path)
        site.addsitedir(lib)
        sys.path[:] = [p for p in sys.path if p not in before] + before
    try:
        from pyml import _sqlapi
    except ImportError as exc:
        GD["pyml"] = Unavailable(
            "the pyml package cannot be imported from %s" % lib,
            detail=str(exc),
            hint="pip install pyml in that virtual environment.",
        )
    else:
        problem = _sqlapi.version_problem(plpy)
        GD["pyml"] = _sqlapi if problem is None else Unavailable(**problem)
$$;
COMMENT ON FUNCTION pyml._boot() IS
    'Loads the pyml package from setting pyml.venv into this session (once)';

""" + fn("version", [], "text", "version(plpy, GD)", "STABLE", comment="The version of the pyml Python package", argsig="")

# ---------------- train
train_args = lambda ytype, ydesc: [
 "project_name text,                            -- the project: created on its first training",
 "task text DEFAULT NULL,                       -- regression | classification (first call only)",
 "relation_name text DEFAULT NULL,              -- table or view to train on; NULL: last snapshot",
 f"y_column_name {ytype} DEFAULT NULL,{' ' * (22 - len(ytype))}-- {ydesc}",
 "algorithm text DEFAULT 'linear',              -- see the README for the list",
 "hyperparams jsonb DEFAULT '{}',               -- estimator parameters, checked by name",
 "search text DEFAULT NULL,                     -- NULL | grid | random",
 "search_params jsonb DEFAULT '{}',             -- {\"param\": [values, ...]}",
 "search_args jsonb DEFAULT '{}',               -- {\"n_iter\": 10, \"cv\": 5}",
 "test_size real DEFAULT 0.25,                  -- fraction in (0, 1), or a row count when > 1",
 "test_sampling text DEFAULT 'stratified',      -- random | last | stratified (by label)",
 "runtime text DEFAULT NULL,                    -- NULL or python; rust is accepted, python used",
 "automatic_deploy boolean DEFAULT true,        -- deploy when better than the live model",
 "materialize_snapshot boolean DEFAULT false,   -- copy the training rows into pyml.snapshot_<id>",
 "preprocess jsonb DEFAULT '{}'                 -- per-column preprocessing (later versions)",
 CALLER,
]
call = "train(plpy, GD, project_name, task, relation_name, y_column_name, algorithm, hyperparams, search, search_params, search_args, test_size, test_sampling, runtime, automatic_deploy, materialize_snapshot, preprocess, caller_search_path)"
files["train.sql"] = '''-- ============================================================================
-- Training: snapshot a relation, fit, evaluate, store the model, maybe deploy
-- ============================================================================

CREATE TYPE pyml.train_result AS (project text, task text, algorithm text, deployed boolean);
COMMENT ON TYPE pyml.train_result IS 'One row returned by pyml.train';

CREATE TYPE pyml.snapshot_result AS (relation text, y_column_name text);
COMMENT ON TYPE pyml.snapshot_result IS 'One row returned by pyml.snapshot';

''' + fn("train", train_args("text", "the label column"), "SETOF pyml.train_result", call, "VOLATILE",
   comment="Trains a model on a relation, stores it as a versioned row and deploys it when it beats the live model", argsig=argsig(train_args("text","")).replace("project_name ","")) + "\n" + \
 fn("train_joint", train_args("text[]", "the label columns (regression)"), "SETOF pyml.train_result", call, "VOLATILE",
   comment="Trains a multi-target regression model (one prediction per label column)", argsig=argsig(train_args("text[]",""))) + "\n" + \
 fn("snapshot", [
   "relation_name text,                           -- table or view to snapshot",
   "y_column_name text,                           -- the label column",
   "test_size real DEFAULT 0.25,                  -- fraction in (0, 1), or a row count when > 1",
   "test_sampling text DEFAULT 'stratified',      -- random | last | stratified (by label)",
   "preprocess jsonb DEFAULT '{}'                 -- per-column preprocessing (later versions)",
   CALLER],
   "SETOF pyml.snapshot_result", "snapshot(plpy, GD, relation_name, y_column_name, test_size, test_sampling, preprocess, caller_search_path)", "VOLATILE",
   comment="Copies a relation into pyml.snapshot_<id> with its column statistics, for later training",
   argsig="text, text, real, text, jsonb, text")

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
  predict_block("predict_batch", "predict_batch", "SETOF real",
        "Predicts n rows given as one flattened array of n x k features, live model of a project",
        "Predicts n rows given as one flattened array of n x k features, given model", row=False) + "\n" + \
  fn("predict_into", [
    "project_name text,                            -- the project: its live model is used",
    "source_relation text,                         -- table or view with the feature columns",
    "target_table text,                            -- where predictions go (created if missing)",
    "key_column text DEFAULT 'id'                  -- identifies rows of source_relation",
    CALLER],
    "bigint", "predict_into(plpy, GD, project_name, source_relation, target_table, key_column, caller_search_path)", "VOLATILE",
    comment="Scores every row of a relation with the live model into a table (key, prediction, model_id, scored_at); returns the row count",
    argsig="text, text, text, text, text")

# ---------------- deploy
files["deploy.sql"] = '''-- ============================================================================
-- Deployment: append-only history; the live model is the latest deployment
-- ============================================================================

CREATE TYPE pyml.deploy_result AS (project text, strategy text, algorithm text, model_id bigint);
COMMENT ON TYPE pyml.deploy_result IS 'One row returned by pyml.deploy';

''' + fn("deploy", [
    "project_name text,                            -- the project",
    "strategy text DEFAULT 'best_score',           -- best_score | most_recent | rollback",
    "algorithm text DEFAULT NULL                   -- only consider models of this algorithm"],
    "SETOF pyml.deploy_result", "deploy(plpy, GD, project_name, strategy, algorithm)", "VOLATILE",
    comment="Deploys the model of a project chosen by a strategy", argsig="text, text, text") + "\n" + \
  fn("deploy", ["model_id bigint                                -- the model to deploy"],
    "SETOF pyml.deploy_result", "deploy_model(plpy, GD, model_id)", "VOLATILE", strict=True,
    comment="Deploys one model by id (strategy specific)", argsig="bigint") + "\n" + \
  fn("deployed_model", [
    "project_name text,                            -- the project",
    "at timestamptz DEFAULT now()                  -- the moment asked about"],
    "bigint", "deployed_model(plpy, GD, project_name, at)", "STABLE", strict=True,
    comment="The id of the model that was live in a project at a given time (NULL before the first deployment)", argsig="text, timestamp with time zone")

# ---------------- manage
files["manage.sql"] = '''-- ============================================================================
-- Data and management
-- ============================================================================

CREATE TYPE pyml.dataset_result AS (table_name text, "rows" bigint);
COMMENT ON TYPE pyml.dataset_result IS 'One row returned by pyml.load_dataset';

''' + fn("load_dataset", [
    "source text,                                  -- breast_cancer | diabetes | digits | iris | linnerud | wine",
    "subset text DEFAULT NULL,                     -- accepted for compatibility; must be NULL",
    '"limit" bigint DEFAULT NULL,                  -- load at most this many rows',
    "kwargs jsonb DEFAULT '{}'                     -- accepted for compatibility; must be empty"],
    "SETOF pyml.dataset_result", "load_dataset(plpy, GD, source, subset, limit, kwargs)", "VOLATILE",
    comment="Creates pyml.<source> from a dataset shipped with scikit-learn (offline), with pgml column names", argsig="text, text, bigint, jsonb") + "\n" + \
  fn("delete_model", [
    "model_id bigint,                              -- the model to delete",
    "force boolean DEFAULT false                   -- also when it is the live model"],
    "void", "delete_model(plpy, GD, model_id, force)", "VOLATILE", strict=True,
    comment="Deletes a model and its artifacts and deployments; refuses the live model unless forced", argsig="bigint, boolean") + "\n" + \
  fn("delete_project", [
    "project_name text,                            -- the project to delete",
    "force boolean DEFAULT false                   -- also when a model is live"],
    "void", "delete_project(plpy, GD, project_name, force)", "VOLATILE", strict=True,
    comment="Deletes a project with all its models; refuses when a model is live unless forced", argsig="text, boolean")

import sys, os
out = sys.argv[1]
for name, text in files.items():
    open(os.path.join(out, name), "w").write(text.rstrip() + "\n")
