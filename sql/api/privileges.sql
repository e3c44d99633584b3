-- ============================================================================
-- Privileges on projects: predict, train, deploy, admin (see sql/schema/006_privileges.sql)
-- ============================================================================

CREATE FUNCTION pyml.grant(
    project_name text,                            -- the project
    grantee regrole,                              -- the role that receives the privilege
    privilege text                                -- predict | train | deploy | admin
) RETURNS void
LANGUAGE plpyml
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
LANGUAGE plpyml
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

-- ----------------------------------------------------------------------------
-- Internal: the privilege check, in SQL, shared by pyml's code and by row-level
-- security (sql/wiring/006_privileges.sql); and the view of the grants.
-- ----------------------------------------------------------------------------

-- The projects on which the current role holds a privilege. Row-level security
-- policies use it as an uncorrelated subquery, evaluated once per query.
CREATE FUNCTION pyml._projects_with(privilege text) RETURNS SETOF bigint
LANGUAGE sql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.id FROM pyml.projects p
     WHERE EXISTS (SELECT FROM pg_catalog.pg_roles r
                    WHERE r.rolname = CURRENT_USER AND r.rolsuper)
        OR EXISTS (SELECT FROM pg_catalog.pg_roles r
                    WHERE r.rolname = p.owner
                      AND pg_catalog.pg_has_role(r.oid, 'USAGE'))
        OR EXISTS (SELECT FROM pyml._grants g
                     JOIN pg_catalog.pg_roles r ON r.rolname = g.grantee
                    WHERE g.project_id = p.id
                      AND (g.privilege = $1
                           OR g.privilege = 'admin'
                           OR $1 = 'predict')
                      AND pg_catalog.pg_has_role(r.oid, 'USAGE'))
$$;
COMMENT ON FUNCTION pyml._projects_with(text) IS
    'Internal: the ids of the projects on which the current role holds a privilege';

CREATE FUNCTION pyml._has_privilege(project_id bigint, privilege text) RETURNS boolean
LANGUAGE sql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT $1 IN (SELECT pyml._projects_with($2))
$$;
COMMENT ON FUNCTION pyml._has_privilege(bigint, text) IS
    'Internal: whether the current role holds a privilege on a project';

CREATE VIEW pyml.project_privileges WITH (security_invoker = true) AS
SELECT p.name AS project, g.grantee, g.privilege, g.granted_by, g.granted_at
FROM pyml._grants g
JOIN pyml.projects p ON p.id = g.project_id
WHERE g.project_id IN (SELECT pyml._projects_with('predict'));
COMMENT ON VIEW pyml.project_privileges IS
    'Privileges granted on the projects the current role can see (their owners hold all)';
COMMENT ON COLUMN pyml.project_privileges.project IS 'Project name';
COMMENT ON COLUMN pyml.project_privileges.grantee IS 'The role granted the privilege';
COMMENT ON COLUMN pyml.project_privileges.privilege IS
    '''predict'', ''train'', ''deploy'' or ''admin''; each includes predict, admin includes all';
COMMENT ON COLUMN pyml.project_privileges.granted_by IS 'The role that granted it';
COMMENT ON COLUMN pyml.project_privileges.granted_at IS 'When it was granted';
