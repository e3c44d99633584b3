\set SHOW_CONTEXT never
SET client_min_messages = warning;
--
-- Logical replication of the registry (docs/replication.md): the errors of a subscriber's
-- id range. Nothing here changes the database (a moved range would change the ids of every
-- later file): only refusals, and one transaction rolled back.
--

-- first_id must leave room for the publisher's ids: 22023
SELECT pyml.own_ids(1);
\echo :SQLSTATE

-- earlier files trained projects here: they would pass for the publisher's, 55000
\set VERBOSITY terse
SELECT pyml.own_ids();
\echo :SQLSTATE
\set VERBOSITY default
SELECT pyml._first_own_id('models'), pyml._first_own_id('files');

-- as the apply of a subscription does: a database without its own range takes no
-- replicated row, 55000
BEGIN;
SET LOCAL session_replication_role = replica;
INSERT INTO pyml.projects (id, name, task) VALUES (7, 'From Elsewhere', 'regression');
\echo :SQLSTATE
ROLLBACK;

-- outside the apply, the check does not run (the publisher writes as usual)
BEGIN;
INSERT INTO pyml.projects (id, name, task) VALUES (1000000000000007, 'Written Here', 'regression');
SELECT name FROM pyml.projects WHERE id = 1000000000000007;
ROLLBACK;
