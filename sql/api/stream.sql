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
-- The triggers of streams (statement-level, with transition tables; installed by
-- pyml._stream_install). They run as the role whose statement fired them, like
-- any trigger: the statement's rows are read with that role's rights, and the
-- outbox or the queue is written through pyml's registry. A trigger's arguments
-- are checked against the stream definitions, so a trigger made by hand cannot
-- write into another stream.
-- ----------------------------------------------------------------------------

CREATE FUNCTION pyml._stream_score() RETURNS trigger
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].stream_score(plpy, GD, TD)
$$;
COMMENT ON FUNCTION pyml._stream_score() IS
    'Trigger of sync streams: scores the rows of the statement and writes them to the outbox';

CREATE FUNCTION pyml._stream_enqueue() RETURNS trigger
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $$
if "pyml" not in GD:
    plpy.execute("SELECT pyml._boot()")
return GD["pyml"].stream_enqueue(plpy, GD, TD)
$$;
COMMENT ON FUNCTION pyml._stream_enqueue() IS
    'Trigger of async streams: queues inserted and updated rows for pyml.stream_work';
