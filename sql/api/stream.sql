-- ============================================================================
-- Streaming: rows scored as they arrive, a durable outbox, NOTIFY wake-ups and
-- named consumers that read from their last acknowledged event.
-- ============================================================================

CREATE FUNCTION pyml.stream(
    project_name text,                            -- the project: its live model scores the rows
    source_relation text,                         -- the table whose new rows are scored
    key_column text DEFAULT 'id',                 -- identifies rows in the events
    mode text DEFAULT 'sync',                     -- sync: in the inserting transaction; async: queued for a worker
    channel text DEFAULT NULL,                    -- NOTIFY channel; NULL: 'pyml_' || project id
    caller_search_path text DEFAULT pg_catalog.current_setting('search_path') -- how relation names resolve (leave it)
) RETURNS bigint
LANGUAGE plpyml
VOLATILE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].stream(plpy, GD, project_name, source_relation, key_column, mode, channel, caller_search_path)
$$;
COMMENT ON FUNCTION pyml.stream(text, text, text, text, text, text) IS
    'Scores every new or changed row of a relation with the live model of a project, into an outbox announced by NOTIFY; returns the stream id';

CREATE FUNCTION pyml.unstream(
    project_name text,                            -- the project
    source_relation text,                         -- the streamed relation
    caller_search_path text DEFAULT pg_catalog.current_setting('search_path') -- how relation names resolve (leave it)
) RETURNS void
LANGUAGE plpyml
VOLATILE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].unstream(plpy, GD, project_name, source_relation, caller_search_path)
$$;
COMMENT ON FUNCTION pyml.unstream(text, text, text) IS
    'Stops a stream: drops its triggers, outbox events, queued rows and consumers';

CREATE FUNCTION pyml.stream_read(
    stream_id bigint,                             -- the stream
    consumer text,                                -- a name of your choosing; created on first read
    max_rows integer DEFAULT 1000,                -- at most this many events
    after_event bigint DEFAULT NULL               -- read past this event (not yet acked) rather than the last ack
) RETURNS TABLE(event_id bigint, key text, prediction real, model_id bigint, scored_at timestamptz)
LANGUAGE plpyml
VOLATILE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].stream_read(plpy, GD, stream_id, consumer, max_rows, after_event)
$$;
COMMENT ON FUNCTION pyml.stream_read(bigint, text, integer, bigint) IS
    'The events of a stream after the consumer''s last ack, in delivery order (does not ack them)';

CREATE FUNCTION pyml.stream_ack(
    stream_id bigint,                             -- the stream
    consumer text,                                -- the consumer
    event_id bigint                               -- the last event handled: it and every event before it are done
) RETURNS void
LANGUAGE plpyml
VOLATILE
STRICT
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].stream_ack(plpy, GD, stream_id, consumer, event_id)
$$;
COMMENT ON FUNCTION pyml.stream_ack(bigint, text, bigint) IS
    'Acknowledges the events of a stream up to and including one: the consumer will not read them again';

CREATE FUNCTION pyml.stream_prune(
    stream_id bigint DEFAULT NULL                 -- NULL: every stream
) RETURNS bigint
LANGUAGE plpyml
VOLATILE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].stream_prune(plpy, GD, stream_id)
$$;
COMMENT ON FUNCTION pyml.stream_prune(bigint) IS
    'Deletes the outbox events every consumer of a stream has acknowledged; returns how many';

-- A procedure that commits after each batch cannot carry a SET clause
-- (PostgreSQL forbids transaction control then): pyml sets search_path for
-- each of its transactions itself.
CREATE PROCEDURE pyml.stream_work(
    stream_id bigint DEFAULT NULL,                -- NULL: every async stream
    batch_size integer DEFAULT 1000               -- rows scored per transaction
)
LANGUAGE plpython3u
AS $$
plpy.execute("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)")
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
GD["pyml"].stream_work(plpy, GD, stream_id, batch_size)
$$;
COMMENT ON PROCEDURE pyml.stream_work(bigint, integer) IS
    'Scores the queued rows of async streams, committing after each batch (pyml worker calls it)';

-- ----------------------------------------------------------------------------
-- The triggers of streams (statement-level, with transition tables; installed by
-- pyml._stream_install). They run as the role whose statement fired them, like
-- any trigger: the statement's rows are read with that role's rights, and the
-- outbox or the queue is written through pyml's registry. A trigger's arguments
-- are checked against the stream definitions, so a trigger made by hand cannot
-- write into another stream.
-- ----------------------------------------------------------------------------

CREATE FUNCTION pyml._stream_score() RETURNS trigger
LANGUAGE plpyml
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].stream_score(plpy, GD, TD)
$$;
COMMENT ON FUNCTION pyml._stream_score() IS
    'Trigger of sync streams: scores the rows of the statement and writes them to the outbox';

CREATE FUNCTION pyml._stream_enqueue() RETURNS trigger
LANGUAGE plpyml
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].stream_enqueue(plpy, GD, TD)
$$;
COMMENT ON FUNCTION pyml._stream_enqueue() IS
    'Trigger of async streams: queues inserted and updated rows for pyml.stream_work';

-- ----------------------------------------------------------------------------
-- Internals of streams: the delivery horizon, the installation of a stream's
-- triggers on its relation and partitions, and the functions of the event
-- triggers (sql/wiring/004_streams.sql) that follow the DDL of streamed tables.
-- ----------------------------------------------------------------------------

-- The transaction id below which the outbox is final for the caller's snapshot:
-- the oldest transaction of this database still running when the snapshot was
-- taken (or the caller's own), else the snapshot's xmax. Running transactions of
-- other databases cannot write here and do not hold delivery back. SECURITY
-- DEFINER to see every session in pg_stat_activity; it returns no user data.
-- PL/pgSQL, which keeps the query's plan for the session: a SQL function that cannot be
-- inlined (SECURITY DEFINER) is planned again by every statement that calls it, which
-- was 0.11 ms of every pyml.stream_read.
CREATE FUNCTION pyml._stream_horizon(snapshot pg_snapshot) RETURNS xid8
LANGUAGE plpgsql
STABLE
PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN LEAST(
        pg_catalog.pg_snapshot_xmax(snapshot),
        pg_catalog.pg_current_xact_id_if_assigned(),
        (SELECT pg_catalog.min(x.x) FROM pg_catalog.pg_snapshot_xip(snapshot) AS x(x)
          WHERE NOT EXISTS (
              SELECT FROM pg_catalog.pg_stat_get_activity(NULL) AS a
               WHERE a.backend_xid OPERATOR(pg_catalog.=) pg_catalog.xid(x.x)
                 AND a.datid IS DISTINCT FROM (SELECT d.oid FROM pg_catalog.pg_database d
                                                WHERE d.datname = pg_catalog.current_database()))));
END
$$;
COMMENT ON FUNCTION pyml._stream_horizon(pg_snapshot) IS
    'Internal: events written by transactions older than this are final (see pyml.stream_read)';

-- A streamed relation and, when partitioned, all its partitions.
CREATE FUNCTION pyml._stream_relations(source regclass) RETURNS SETOF regclass
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT source UNION SELECT t.relid FROM pg_catalog.pg_partition_tree(source) AS t
$$;
COMMENT ON FUNCTION pyml._stream_relations(regclass) IS
    'Internal: a relation and all its partitions (the tables a stream has triggers on)';

-- A dropped source relation takes its streams with it.
CREATE FUNCTION pyml._stream_source_dropped() RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER  -- whoever drops a table need not have privileges on pyml's tables
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    gone bigint[];
BEGIN
    IF pg_catalog.to_regclass('pyml.stream_definitions') IS NULL THEN
        RETURN;  -- the extension itself is being dropped
    END IF;
    WITH d AS (
        DELETE FROM pyml.stream_definitions s
         USING pg_catalog.pg_event_trigger_dropped_objects() AS o
         WHERE o.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND o.objid = s.source_relation::pg_catalog.oid
        RETURNING s.id)
    SELECT pg_catalog.array_agg(d.id) INTO gone FROM d;
    IF gone IS NOT NULL THEN
        DELETE FROM pyml.stream_events WHERE stream_id = ANY (gone);
        DELETE FROM pyml.stream_queue WHERE stream_id = ANY (gone);
    END IF;
END
$$;
COMMENT ON FUNCTION pyml._stream_source_dropped() IS
    'Event trigger: removes the streams of a dropped relation';

-- The triggers of a stream, on its relation and (for a partitioned table) on
-- every partition: a statement naming a partition fires only that partition's
-- triggers. Run by pyml.stream, and again whenever a partition is created or
-- attached (event trigger pyml_stream_partition_added), so no partition is ever
-- left unscored.
CREATE FUNCTION pyml._stream_install(stream_id bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s record;
    target regclass;
    fn text;
    insert_trigger text := 'pyml_stream_' || stream_id || '_insert';
    update_trigger text := 'pyml_stream_' || stream_id || '_update';
BEGIN
    SELECT d.id, d.source_relation, d.key_column, d.mode, d.channel, p.name AS project
      INTO s FROM pyml.stream_definitions d JOIN pyml.projects p ON p.id = d.project_id
     WHERE d.id = stream_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF s.mode = 'sync' THEN
        fn := pg_catalog.format('pyml._stream_score(%L, %L, %L, %L)',
                                s.id, s.project, s.key_column, s.channel);
    ELSE
        fn := pg_catalog.format('pyml._stream_enqueue(%L, %L)', s.id, s.key_column);
    END IF;
    FOR target IN SELECT pyml._stream_relations(s.source_relation) LOOP
        IF EXISTS (SELECT FROM pg_catalog.pg_trigger g
                    WHERE g.tgrelid = target AND g.tgname = insert_trigger) THEN
            EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', insert_trigger, target);
        END IF;
        IF EXISTS (SELECT FROM pg_catalog.pg_trigger g
                    WHERE g.tgrelid = target AND g.tgname = update_trigger) THEN
            EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', update_trigger, target);
        END IF;
        EXECUTE pg_catalog.format(
            'CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS pyml_new'
            ' FOR EACH STATEMENT EXECUTE FUNCTION %s', insert_trigger, target, fn);
        EXECUTE pg_catalog.format(
            'CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS pyml_old'
            ' NEW TABLE AS pyml_new FOR EACH STATEMENT EXECUTE FUNCTION %s',
            update_trigger, target, fn);
    END LOOP;
END
$$;
COMMENT ON FUNCTION pyml._stream_install(bigint) IS
    'Internal: (re)creates the triggers of a stream on its relation and all its partitions';

CREATE FUNCTION pyml._stream_uninstall(stream_id bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT t.tgname, t.tgrelid::regclass AS rel FROM pg_catalog.pg_trigger t
              WHERE t.tgname IN ('pyml_stream_' || stream_id || '_insert',
                                 'pyml_stream_' || stream_id || '_update') LOOP
        EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', g.tgname, g.rel);
    END LOOP;
END
$$;
COMMENT ON FUNCTION pyml._stream_uninstall(bigint) IS
    'Internal: drops the triggers of a stream, wherever they are';

CREATE FUNCTION pyml._stream_partition_added() RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    missing bigint;
BEGIN
    IF pg_catalog.to_regclass('pyml.stream_definitions') IS NULL THEN
        RETURN;
    END IF;
    -- Streams whose relation has its triggers but a partition has not. (While pg_restore
    -- runs, the relation gets its triggers only after its constraints; then the dump's own
    -- CREATE TRIGGER statements give the partitions theirs: nothing to do here.)
    FOR missing IN
        SELECT DISTINCT d.id FROM pyml.stream_definitions d,
               pyml._stream_relations(d.source_relation) AS t(relid)
         WHERE EXISTS (SELECT FROM pg_catalog.pg_trigger g WHERE g.tgrelid = d.source_relation
                          AND g.tgname = 'pyml_stream_' || d.id || '_insert')
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger g WHERE g.tgrelid = t.relid
                              AND g.tgname = 'pyml_stream_' || d.id || '_insert')
    LOOP
        PERFORM pyml._stream_install(missing);
    END LOOP;
END
$$;
COMMENT ON FUNCTION pyml._stream_partition_added() IS
    'Event trigger: gives new partitions of streamed tables their stream triggers';
