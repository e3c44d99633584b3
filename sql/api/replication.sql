-- ============================================================================
-- Logical replication of the registry (docs/replication.md): a subscriber keeps
-- its own projects, models, snapshots and deployments in an id range of its own
-- (pyml.own_ids), and replicated rows never enter it (pyml._replicated_row_check).
-- PL/pgSQL: no Python is needed, and the checks run in the apply worker too.
-- ============================================================================

-- The subscriber's step before subscribing: its own new rows get ids from first_id on;
-- ids below are the publisher's.
CREATE FUNCTION pyml.own_ids(
    first_id bigint DEFAULT 1000000000000000      -- the first id of this database's own rows
) RETURNS bigint
LANGUAGE plpgsql
VOLATILE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t text;
    found bigint;
BEGIN
    IF first_id < 2 THEN
        RAISE EXCEPTION 'first_id must be greater than 1, got % instead', first_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT pg_catalog.has_table_privilege('pyml.projects', 'UPDATE') THEN
        RAISE EXCEPTION 'only a superuser can move the ids of pyml''s registry'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Every row at or above the current first own id (1: every row) is this database's own,
    -- and so is every row at or above first_id once moved: there may be none of either.
    FOREACH t IN ARRAY ARRAY['projects', 'snapshots', 'models', 'deployments'] LOOP
        EXECUTE pg_catalog.format('SELECT max(id) FROM pyml.%I WHERE id >= $1', t)
            INTO found USING LEAST(first_id, pyml._first_own_id(t));
        IF found IS NOT NULL THEN
            RAISE EXCEPTION 'pyml.% already holds rows of this database', t
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = pg_catalog.format('Its row %s was written here; ids below %s are taken for the publisher''s rows, and a replicated change could overwrite a row of this database among them.', found, first_id),
                      HINT = 'Call pyml.own_ids before this database creates its first project (see docs/replication.md).';
        END IF;
    END LOOP;
    FOREACH t IN ARRAY ARRAY['projects', 'snapshots', 'models', 'deployments'] LOOP
        EXECUTE pg_catalog.format('ALTER SEQUENCE pyml.%I MINVALUE %s START WITH %s RESTART WITH %s',
                                  t || '_id_seq', first_id, first_id, first_id);
    END LOOP;
    RETURN first_id;
END
$$;
COMMENT ON FUNCTION pyml.own_ids(bigint) IS
    'Moves this database''s own new projects, snapshots, models and deployments to ids from first_id on (a subscriber of the registry: ids below are the publisher''s); returns first_id';

-- The first id of this database's own rows of a registry table (its sequence's minimum:
-- 1 until pyml.own_ids moved it).
CREATE FUNCTION pyml._first_own_id(table_name text) RETURNS bigint
LANGUAGE sql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.seqmin FROM pg_catalog.pg_sequence s
     WHERE s.seqrelid = pg_catalog.format('pyml.%I',
               CASE $1 WHEN 'files' THEN 'models' ELSE $1 END || '_id_seq')::pg_catalog.regclass
$$;
COMMENT ON FUNCTION pyml._first_own_id(text) IS
    'Internal: the first id of this database''s own rows of a registry table (1 unless pyml.own_ids moved it)';

-- Trigger, ENABLE REPLICA: fires only when a subscription applies a change (initial copy
-- included). A replicated row may not enter this database's own id range, nor take the
-- name of one of its projects; a deleted project takes this database's own rows about it
-- along (the cascades of the foreign keys do not run during apply).
CREATE FUNCTION pyml._replicated_row_check() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    ids bigint[];
    first bigint := pyml._first_own_id(TG_TABLE_NAME);
    local_id bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF first = 1 THEN
        RAISE EXCEPTION 'cannot apply replicated rows of "pyml.%": this database has no id range of its own',
                TG_TABLE_NAME
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Its own rows and the publisher''s would share ids, and a replicated change could overwrite one of its own.',
                  HINT = 'Run SELECT pyml.own_ids() on the subscriber (see docs/replication.md).';
    END IF;
    -- (Fields of a record are resolved when an expression is planned: one per table.)
    IF TG_TABLE_NAME = 'files' THEN
        ids := ARRAY[r.model_id];
    ELSIF TG_TABLE_NAME = 'models' THEN
        ids := ARRAY[r.id, r.project_id, r.snapshot_id];
    ELSIF TG_TABLE_NAME = 'deployments' THEN
        ids := ARRAY[r.id, r.project_id, r.model_id];
    ELSE
        ids := ARRAY[r.id];
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.unnest(ids) i WHERE i >= first) THEN
        RAISE EXCEPTION 'a replicated row of "pyml.%" has an id of this database''s own range', TG_TABLE_NAME
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = pg_catalog.format('Ids from %s on belong to this database''s own rows; the row has %s.',
                                             first, pg_catalog.array_to_string(ids, ', ')),
                  HINT = 'The publisher''s ids reached this database''s own range: give new subscribers a higher first_id (pyml.own_ids).';
    END IF;
    IF TG_TABLE_NAME = 'projects' AND TG_OP = 'INSERT' THEN
        SELECT p.id INTO local_id FROM pyml.projects p WHERE p.name = r.name;
        IF FOUND THEN
            RAISE EXCEPTION 'project "%" of the publisher has the name of a project of this database', r.name
                USING ERRCODE = 'unique_violation',
                      DETAIL = pg_catalog.format('The publisher''s project has id %s, this database''s id %s.',
                                                 r.id, local_id),
                      HINT = 'Rename one of them: delete and train again under another name, on either side.';
        END IF;
    END IF;
    IF TG_TABLE_NAME = 'projects' AND TG_OP = 'DELETE' THEN
        IF EXISTS (SELECT FROM pyml.stream_definitions s WHERE s.project_id = r.id) THEN
            RAISE EXCEPTION 'cannot delete the replicated project "%": streams of this database use it', r.name
                USING ERRCODE = 'foreign_key_violation',
                      HINT = 'Stop them with pyml.unstream on the subscriber.';
        END IF;
        DELETE FROM pyml._grants g WHERE g.project_id = r.id;
        DELETE FROM pyml.prediction_logging l WHERE l.project_id = r.id;
        DELETE FROM pyml.logged_predictions l WHERE l.project_id = r.id;
        DELETE FROM pyml.monitors m WHERE m.project_id = r.id;
        DELETE FROM pyml.drift_reports d WHERE d.project_id = r.id;
    END IF;
    RETURN r;
END
$$;
COMMENT ON FUNCTION pyml._replicated_row_check() IS
    'Trigger, during logical replication only: keeps replicated rows out of this database''s own id range and names, and deletes its own rows about a deleted project';

-- Trigger (fires on local writes only): a replicated project is trained and deployed on its
-- publisher; a local model or deployment in it would diverge from the publisher's history.
CREATE FUNCTION pyml._own_row_check() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    first bigint := pyml._first_own_id('projects');
BEGIN
    IF first > 1 AND NEW.project_id < first THEN
        RAISE EXCEPTION 'project "%" is replicated from another database',
                (SELECT p.name FROM pyml.projects p WHERE p.id = NEW.project_id)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Its models and deployments come from its publisher.',
                  HINT = 'Train and deploy it on the publisher.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION pyml._own_row_check() IS
    'Trigger: refuses a local model or deployment in a project replicated from another database';
