-- ============================================================================
-- Privileges on projects: predict, train, deploy, admin (see 006_privileges.sql)
-- ============================================================================

CREATE FUNCTION pyml.grant(
    project_name text,                            -- the project
    grantee regrole,                              -- the role that receives the privilege
    privilege text                                -- predict | train | deploy | admin
) RETURNS void
LANGUAGE plpython3u
VOLATILE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].grant(plpy, GD, project_name, grantee, privilege)
$$;
COMMENT ON FUNCTION pyml.grant(text, regrole, text) IS
    'Grants a privilege on a project to a role (and its members); needs admin on the project';

CREATE FUNCTION pyml.revoke(
    project_name text,                            -- the project
    grantee regrole,                              -- the role that loses the privilege
    privilege text                                -- predict | train | deploy | admin
) RETURNS void
LANGUAGE plpython3u
VOLATILE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].revoke(plpy, GD, project_name, grantee, privilege)
$$;
COMMENT ON FUNCTION pyml.revoke(text, regrole, text) IS
    'Revokes a privilege on a project from a role; serving sessions follow at their next call';
