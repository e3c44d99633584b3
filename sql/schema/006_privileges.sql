-- ============================================================================
-- Privileges: every project has an owner (pyml.projects.owner, the role that
-- created it) and per-project grants of 'predict', 'train', 'deploy', 'admin'
-- (pyml.grant / pyml.revoke). The owner, its members and superusers hold every
-- privilege; 'train', 'deploy' and 'admin' include 'predict'; 'admin' includes all.
--
-- Nobody but superusers writes these tables directly: pyml's functions check
-- the caller's privilege, then write through pyml._registry_write() (SECURITY
-- DEFINER). Reading is open to every role, row by row: row-level security shows
-- a role only the rows of the projects it holds a privilege on. Roles are kept
-- by name, like created_by: a dump restores on another cluster with the same
-- role names.
-- ============================================================================

CREATE TABLE pyml._grants (
    project_id bigint NOT NULL CONSTRAINT fk__grants_project_id_projects
        REFERENCES pyml.projects (id) ON DELETE CASCADE,
    grantee text NOT NULL,
    privilege text NOT NULL CONSTRAINT ck__grants_privilege
        CHECK (privilege IN ('predict', 'train', 'deploy', 'admin')),
    granted_by text NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    CONSTRAINT pk__grants PRIMARY KEY (project_id, grantee, privilege)
);
COMMENT ON TABLE pyml._grants IS
    'Privileges granted on projects (pyml.grant); read them through pyml.project_privileges';
COMMENT ON COLUMN pyml._grants.project_id IS 'The project (pyml.projects.id)';
COMMENT ON COLUMN pyml._grants.grantee IS 'The role granted the privilege (by name)';
COMMENT ON COLUMN pyml._grants.privilege IS
    '''predict'', ''train'', ''deploy'' or ''admin''; each includes predict, admin includes all';
COMMENT ON COLUMN pyml._grants.granted_by IS 'The role that granted it';
COMMENT ON COLUMN pyml._grants.granted_at IS 'When it was granted';
SELECT pg_catalog.pg_extension_config_dump('pyml._grants', '');
