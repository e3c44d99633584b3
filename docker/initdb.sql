-- Run once by the postgres image's entrypoint, when it initialises an empty data directory
-- (as POSTGRES_USER, with psql, connected to POSTGRES_DB).
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

-- pyml in a database of its own, pyml (as `pyml up` does), whatever POSTGRES_DB is.
SELECT 'CREATE DATABASE pyml'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'pyml') \gexec
\connect pyml
CREATE EXTENSION pyml CASCADE;

-- pg_cron lives in database postgres (cron.database_name, its default), never in pyml, so that
-- a dump of pyml restores anywhere. Its one job for pyml runs the due monitoring rounds
-- (pyml.monitor) in database pyml every minute.
\connect postgres
CREATE EXTENSION IF NOT EXISTS pg_cron;
SELECT cron.schedule_in_database('pyml-monitors', '* * * * *',
                                 'SELECT * FROM pyml.run_monitors()', 'pyml');
