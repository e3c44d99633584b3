-- ============================================================================
-- Streams follow the DDL of their relations (event triggers; their functions
-- are in sql/api/stream.sql).
-- ============================================================================

-- A dropped source relation takes its streams with it.
CREATE EVENT TRIGGER pyml_stream_source_dropped ON sql_drop
    WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
    EXECUTE FUNCTION pyml._stream_source_dropped();

-- A partition created or attached to a streamed table gets the stream's triggers,
-- so no partition is ever left unscored.
CREATE EVENT TRIGGER pyml_stream_partition_added ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION pyml._stream_partition_added();
