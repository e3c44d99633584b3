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
LANGUAGE plpython3u
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
LANGUAGE plpython3u
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
LANGUAGE plpython3u
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
LANGUAGE plpython3u
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
LANGUAGE plpython3u
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
-- The trigger of sync streams. PL/pgSQL does the SQL (its statements are planned
-- once and run without the subtransaction PL/Python puts around each query);
-- PL/Python functions only predict. Small statements pass their rows as text
-- (the row type's output, which PL/Python parses exactly); large ones are read
-- in chunks of binary arrays by a query pyml builds for the live model.
-- ----------------------------------------------------------------------------

CREATE TYPE pyml._stream_scored AS (keys text[], predictions real[], model_id bigint, inline boolean);
COMMENT ON TYPE pyml._stream_scored IS 'Internal: predictions of a batch of streamed rows';

CREATE FUNCTION pyml._stream_predict_rows(
    trigger_args text[],                          -- the trigger's arguments (stream id, project, key column, channel)
    relid oid,                                    -- the trigger's relation
    new_rows text[],                              -- the statement's new rows, as row text
    old_rows text[]                               -- for an UPDATE, the old rows
) RETURNS pyml._stream_scored
LANGUAGE plpython3u
VOLATILE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].stream_predict_rows(plpy, GD, trigger_args, relid, new_rows, old_rows)
$$;
COMMENT ON FUNCTION pyml._stream_predict_rows(text[], oid, text[], text[]) IS
    'Internal: predictions for the new (or changed) rows of a small statement of a sync stream';

CREATE FUNCTION pyml._stream_read_query(
    trigger_args text[],                          -- the trigger's arguments (stream id, project, key column, channel)
    relid oid,                                    -- the trigger's relation
    is_update boolean,                            -- only rows whose features changed
    chunk bigint                                  -- rows per chunk
) RETURNS text
LANGUAGE plpython3u
VOLATILE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].stream_read_query(plpy, GD, trigger_args, relid, is_update, chunk)
$$;
COMMENT ON FUNCTION pyml._stream_read_query(text[], oid, boolean, bigint) IS
    'Internal: the query reading a chunk of a large statement of a sync stream for the live model';

CREATE FUNCTION pyml._stream_predict_chunk(
    trigger_args text[],                          -- the trigger's arguments (stream id, project, key column, channel)
    relid oid,                                    -- the trigger's relation
    keys text[],                                  -- the chunk's keys
    features bytea                                -- array_send of its float8 features, n x k
) RETURNS pyml._stream_scored
LANGUAGE plpython3u
VOLATILE
PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].stream_predict_chunk(plpy, GD, trigger_args, relid, keys, features)
$$;
COMMENT ON FUNCTION pyml._stream_predict_chunk(text[], oid, text[], bytea) IS
    'Internal: predictions for a chunk read by the query of pyml._stream_read_query';

CREATE FUNCTION pyml._stream_score() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER  -- writers of the source need no privilege on pyml's tables
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- TG_ARGV: stream id, project, key column, channel (see pyml._stream_install)
    small constant bigint := 64;       -- up to this many rows: passed as one array of rows
    chunk constant bigint := 50000;    -- beyond: read in chunks of this many rows
    total bigint;
    taken bigint;
    skip bigint := 0;
    n bigint;
    keys text[];
    features bytea;
    query text;
    scored pyml._stream_scored;
    sent text;
BEGIN
    SELECT pg_catalog.count(*) INTO total FROM pyml_new;
    IF total = 0 THEN
        RETURN NULL;
    END IF;
    LOOP
        IF total <= small THEN
            IF TG_OP = 'INSERT' THEN
                scored := pyml._stream_predict_rows(TG_ARGV, TG_RELID,
                    (SELECT pg_catalog.array_agg(r::text) FROM pyml_new r), NULL);
            ELSE
                scored := pyml._stream_predict_rows(TG_ARGV, TG_RELID,
                    (SELECT pg_catalog.array_agg(r::text) FROM pyml_new r),
                    (SELECT pg_catalog.array_agg(r::text) FROM pyml_old r));
            END IF;
            taken := total;
        ELSE
            IF query IS NULL THEN
                query := pyml._stream_read_query(TG_ARGV, TG_RELID, TG_OP = 'UPDATE', chunk);
            END IF;
            EXECUTE query INTO taken, n, keys, features USING skip;
            scored := pyml._stream_predict_chunk(TG_ARGV, TG_RELID, keys, features);
        END IF;
        IF pg_catalog.cardinality(scored.keys) > 0 THEN
            WITH e AS (
                INSERT INTO pyml.stream_events (stream_id, key, prediction, model_id)
                SELECT TG_ARGV[0]::bigint, u.k, u.p, scored.model_id
                  FROM unnest(scored.keys, scored.predictions) AS u(k, p)  -- multi-array form
                RETURNING event_id, key, prediction)
            SELECT pg_catalog.pg_notify(TG_ARGV[3], pg_catalog.json_build_object(
                       'stream', TG_ARGV[0]::bigint, 'model', scored.model_id,
                       'first', pg_catalog.min(e.event_id), 'last', pg_catalog.max(e.event_id),
                       'count', pg_catalog.count(*),
                       'events', CASE WHEN scored.inline THEN pg_catalog.json_agg(
                           pg_catalog.json_build_array(e.event_id, e.key, e.prediction)
                           ORDER BY e.event_id) END)::text)
              INTO sent FROM e;
        END IF;
        EXIT WHEN total <= small OR taken < chunk;
        skip := skip + chunk;
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION pyml._stream_score() IS
    'Trigger of sync streams: scores the rows of the statement and writes them to the outbox';
