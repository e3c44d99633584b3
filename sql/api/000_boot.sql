-- ============================================================================
-- The language of pyml's functions: PL/Python, run by PL/Python's own handler and
-- validator, with errors that read like PostgreSQL's (src/pyml.c): an error pyml
-- raises, or a PostgreSQL error that passes through its Python code, loses the
-- "plpy.Error: " / "spiexceptions.<Class>: " prefix and the Python traceback; any
-- other Python exception (a bug) keeps both.
-- ============================================================================

CREATE FUNCTION pyml._plpyml_call_handler() RETURNS language_handler
LANGUAGE C
AS 'MODULE_PATHNAME', 'pyml_call_handler';
COMMENT ON FUNCTION pyml._plpyml_call_handler() IS
    'Call handler of language plpyml: PL/Python''s, with errors reported like PostgreSQL''s';

CREATE FUNCTION pyml._plpyml_validator(oid) RETURNS void
LANGUAGE C STRICT
AS 'MODULE_PATHNAME', 'pyml_validator';
COMMENT ON FUNCTION pyml._plpyml_validator(oid) IS
    'Validator of language plpyml: PL/Python''s';

CREATE LANGUAGE plpyml HANDLER pyml._plpyml_call_handler VALIDATOR pyml._plpyml_validator;
COMMENT ON LANGUAGE plpyml IS
    'PL/Python for pyml''s functions, with errors that read like PostgreSQL''s';

-- ============================================================================
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
        from pyml.server import _sqlapi
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

CREATE FUNCTION pyml.version(

) RETURNS text
LANGUAGE plpyml
STABLE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].version(plpy, GD)
$$;
COMMENT ON FUNCTION pyml.version() IS
    'The version of the pyml Python package';

-- ============================================================================
-- The registry gate. pyml's functions run with the caller's rights (SECURITY
-- INVOKER): they read the caller's relations as the caller. Registry tables are
-- written (and read, after an explicit privilege check) through these two
-- functions, which run the statement pyml's own code queued in this session
-- with the extension owner's rights. They take no argument: called directly by
-- anyone else they find nothing queued and refuse (42501).
-- _registry_read is STABLE (its queries see the calling statement's snapshot),
-- _registry_write VOLATILE (writes, row locks).
-- ============================================================================

CREATE FUNCTION pyml._registry_read() RETURNS void
LANGUAGE plpyml
STABLE
PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.error("pyml._registry_read() is internal to pyml", sqlstate="42501")
return GD["pyml"].registry(plpy, GD)
$$;
COMMENT ON FUNCTION pyml._registry_read() IS
    'Internal: runs a registry read queued by pyml in this session, as the extension owner';

CREATE FUNCTION pyml._registry_write() RETURNS void
LANGUAGE plpyml
VOLATILE
PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.error("pyml._registry_write() is internal to pyml", sqlstate="42501")
return GD["pyml"].registry(plpy, GD)
$$;
COMMENT ON FUNCTION pyml._registry_write() IS
    'Internal: runs a registry write queued by pyml in this session, as the extension owner';

-- ============================================================================
-- Arrays from raw bytes (src/arrays.c): batch writes pass a numpy array's bytes as
-- one bytea rather than a Python list, which PL/Python converts one element at a
-- time (a Python object and a call of the type's input function each).
-- ============================================================================

CREATE FUNCTION pyml._float4s(bytea) RETURNS real[]
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'pyml_float4s';
COMMENT ON FUNCTION pyml._float4s(bytea) IS
    'The real[] of the bytes of n native float4 values (internal: batch writes)';

CREATE FUNCTION pyml._int8s(bytea) RETURNS bigint[]
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'pyml_int8s';
COMMENT ON FUNCTION pyml._int8s(bytea) IS
    'The bigint[] of the bytes of n native int8 values (internal: batch writes)';

-- Predictions into a table pyml.predict_into has just created, in bulk as COPY does
-- (src/insert.c): as the caller, who needs INSERT on it; NULL, and nothing written, when the
-- table has anything an INSERT would run (a trigger, an index, a rule, row security).
CREATE FUNCTION pyml._insert_predictions(regclass, bytea, bytea, bigint) RETURNS bigint
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'pyml_insert_predictions';
COMMENT ON FUNCTION pyml._insert_predictions(regclass, bytea, bytea, bigint) IS
    'Writes n (int8 key, float4 prediction) rows into a new predict_into table (internal)';

-- A range of a table's blocks read straight into raw column bytes (src/scan.c), as the
-- caller: NULL, for pyml to read through SQL, where row security applies or a column is not
-- of a type it converts exactly.
CREATE FUNCTION pyml._read_columns(regclass, text[], text, bigint, bigint) RETURNS bytea
LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'pyml_read_columns';
COMMENT ON FUNCTION pyml._read_columns(regclass, text[], text, bigint, bigint) IS
    'Numeric columns (and an integer key) of a range of blocks as raw bytes (internal)';

-- ... held for pyml's Python, which copies them once into its arrays (src/scan.c): a token.
CREATE FUNCTION pyml._read_columns_held(regclass, text[], text, bigint, bigint) RETURNS bigint
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'pyml_read_columns_held';
COMMENT ON FUNCTION pyml._read_columns_held(regclass, text[], text, bigint, bigint) IS
    'pyml._read_columns, the bytes held for pyml''s Python to take (internal)';

-- ... and columns as raw bytes: the values of a float8 (NULL as NaN) or int8 column as the
-- bytes of n native values, which numpy reads without parsing (batch reads). The transition
-- functions, called once per row, carry no SET clause: it would wrap each call in a GUC save
-- and restore (4x the cost of the scan), and C code resolves no names.
CREATE FUNCTION pyml._float8s_add(internal, float8) RETURNS internal
LANGUAGE C CALLED ON NULL INPUT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'pyml_float8s_add';
COMMENT ON FUNCTION pyml._float8s_add(internal, float8) IS
    'Transition function of pyml._float8s_agg (internal)';

CREATE FUNCTION pyml._int8s_add(internal, int8) RETURNS internal
LANGUAGE C CALLED ON NULL INPUT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'pyml_int8s_add';
COMMENT ON FUNCTION pyml._int8s_add(internal, int8) IS
    'Transition function of pyml._int8s_agg (internal)';

CREATE FUNCTION pyml._bytes_final(internal) RETURNS bytea
LANGUAGE C CALLED ON NULL INPUT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'pyml_bytes_final';
COMMENT ON FUNCTION pyml._bytes_final(internal) IS
    'Final function of pyml._float8s_agg and pyml._int8s_agg (internal)';

CREATE AGGREGATE pyml._float8s_agg(float8) (
    SFUNC = pyml._float8s_add, STYPE = internal, FINALFUNC = pyml._bytes_final
);
COMMENT ON AGGREGATE pyml._float8s_agg(float8) IS
    'The values as the bytes of n native float8, NULL as NaN (internal: batch reads)';

CREATE AGGREGATE pyml._int8s_agg(int8) (
    SFUNC = pyml._int8s_add, STYPE = internal, FINALFUNC = pyml._bytes_final
);
COMMENT ON AGGREGATE pyml._int8s_agg(int8) IS
    'The values as the bytes of n native int8 (internal: batch reads)';
