-- Run once by the postgres image's entrypoint, when it initialises an empty data directory
-- (as POSTGRES_USER, in database POSTGRES_DB).
--
-- pyml reads pyml.venv only from the server's configuration files (pg_file_settings), so that a
-- session cannot point the server at other code. So it is set with ALTER SYSTEM, which writes
-- postgresql.auto.conf in the data directory. `-c pyml.venv=...` on the command line would not
-- count.
--
-- Before PostgreSQL 17, ALTER SYSTEM refuses a custom setting that the session does not know yet
-- (ERROR: unrecognized configuration parameter "pyml.venv"). The SET creates it for this
-- session, and pyml itself ignores that SET.
SET pyml.venv = '/opt/pyml/venv';
ALTER SYSTEM SET pyml.venv = '/opt/pyml/venv';
SELECT pg_reload_conf();

CREATE EXTENSION pyml CASCADE;
-- Scheduled monitoring rounds (pyml.monitor); the image preloads pg_cron for this database.
CREATE EXTENSION IF NOT EXISTS pg_cron;
