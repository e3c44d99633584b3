\set SHOW_CONTEXT never
SET client_min_messages = warning;
--
-- Streaming: rows scored as they arrive by the live model of a project, into a durable
-- outbox (pyml.stream_events) read by named consumers. Sync streams score each statement
-- inside its transaction; async streams queue the rows for pyml.stream_work.
-- Event and model ids depend on what ran before in this database: events are shown by key
-- in delivery order, models by algorithm. (Stream ids are this file's: its streams are
-- the database's first.) NOTIFY payloads are not shown: psql prints the sending backend's
-- pid with them.
--

SELECT * FROM pyml.load_dataset('diabetes');
SELECT * FROM pyml.train('Diabetes Stream', 'regression', 'pyml.diabetes', 'target', 'linear');

-- the rows to stream: the diabetes patients, numbered, without their label
CREATE VIEW patients AS
SELECT row_number() OVER (ORDER BY age, sex, bmi, bp, s1, s2, s3, s4, s5, s6)::int AS id,
       age, sex, bmi, bp, s1, s2, s3, s4, s5, s6
FROM pyml.diabetes;
CREATE TABLE arrivals (id bigint PRIMARY KEY, age real, sex real, bmi real, bp real,
                       s1 real, s2 real, s3 real, s4 real, s5 real, s6 real, note text);

--
-- a sync stream: every committed INSERT is scored in the inserting transaction
--
SELECT pyml.stream('Diabetes Stream', 'arrivals') AS arrivals_stream \gset
SELECT project, source_relation, key_column, mode,
       channel = 'pyml_' || (SELECT id FROM pyml.projects WHERE name = 'Diabetes Stream') AS default_channel,
       lag, events, consumers
FROM pyml.streams
WHERE stream_id = :arrivals_stream;

-- a multi-row INSERT is one batch; a single row is scored alike
INSERT INTO arrivals SELECT * FROM patients WHERE id BETWEEN 1 AND 3;
INSERT INTO arrivals SELECT * FROM patients WHERE id = 4;

SELECT e.key, round(e.prediction::numeric, 2) AS prediction, m.algorithm,
       e.model_id = pyml.deployed_model('Diabetes Stream') AS by_live_model, e.error
FROM pyml.stream_events e
JOIN pyml.models m ON m.id = e.model_id
WHERE e.stream_id = :arrivals_stream
ORDER BY e.event_id;

-- each event is the prediction of the model it names for the row's features
SELECT count(*) AS events,
       count(*) FILTER (WHERE abs(e.prediction - pyml.predict(e.model_id,
           ARRAY[a.age, a.sex, a.bmi, a.bp, a.s1, a.s2, a.s3, a.s4, a.s5, a.s6])) < 1e-3) AS same_as_predict
FROM pyml.stream_events e
JOIN arrivals a ON a.id::text = e.key
WHERE e.stream_id = :arrivals_stream;

-- a rolled-back INSERT, or one rolled back to a savepoint, leaves no event
BEGIN;
INSERT INTO arrivals SELECT * FROM patients WHERE id = 5;
ROLLBACK;
BEGIN;
INSERT INTO arrivals SELECT * FROM patients WHERE id = 6;
SAVEPOINT before_seven;
INSERT INTO arrivals SELECT * FROM patients WHERE id = 7;
ROLLBACK TO SAVEPOINT before_seven;
COMMIT;
SELECT key FROM pyml.stream_events WHERE stream_id = :arrivals_stream ORDER BY event_id;

-- an UPDATE is scored again only for the rows whose features changed
UPDATE arrivals SET note = 'seen';
UPDATE arrivals SET bmi = bmi, note = 'seen again';
UPDATE arrivals SET bmi = bmi + 0.01 WHERE id = 2;
SELECT key, round(prediction::numeric, 2) AS prediction
FROM pyml.stream_events WHERE stream_id = :arrivals_stream ORDER BY event_id;

-- a NULL feature fails the INSERT (nothing is written); the stream goes on
INSERT INTO arrivals (id, age, sex, bmi, bp, s1, s2, s3, s4, s5, s6)
VALUES (100, 0, 0, NULL, 0, 0, 0, 0, 0, 0, 0);
\echo :SQLSTATE
SELECT count(*) AS rows FROM arrivals WHERE id = 100;

-- a partitioned table: rows inserted through any partition are scored, also through a
-- partition created after the stream
CREATE TABLE arrivals_by_id (LIKE arrivals) PARTITION BY RANGE (id);
CREATE TABLE arrivals_by_id_low PARTITION OF arrivals_by_id FOR VALUES FROM (0) TO (100);
SELECT pyml.stream('Diabetes Stream', 'arrivals_by_id') AS partitioned_stream \gset
INSERT INTO arrivals_by_id SELECT * FROM patients WHERE id IN (1, 2);
INSERT INTO arrivals_by_id_low SELECT * FROM patients WHERE id = 3;
CREATE TABLE arrivals_by_id_high PARTITION OF arrivals_by_id FOR VALUES FROM (100) TO (1000);
INSERT INTO arrivals_by_id_high SELECT * FROM patients WHERE id = 101;
SELECT key FROM pyml.stream_events WHERE stream_id = :partitioned_stream ORDER BY event_id;
SELECT tgrelid::regclass::text AS relation, count(*) AS triggers
FROM pg_trigger WHERE tgname LIKE 'pyml\_stream\_' || :partitioned_stream || '\_%'
GROUP BY tgrelid ORDER BY relation;
SELECT pyml.unstream('Diabetes Stream', 'arrivals_by_id');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgname LIKE 'pyml\_stream\_' || :partitioned_stream || '\_%';
DROP TABLE arrivals_by_id;

-- a trigger made by hand with the arguments of another stream cannot write into its outbox
-- (the message names the relation by its OID: only the SQLSTATE is shown)
SELECT channel AS arrivals_channel FROM pyml.streams WHERE stream_id = :arrivals_stream \gset
CREATE TABLE arrivals_forged (LIKE arrivals);
CREATE TRIGGER forged AFTER INSERT ON arrivals_forged REFERENCING NEW TABLE AS pyml_new
FOR EACH STATEMENT EXECUTE FUNCTION pyml._stream_score(:'arrivals_stream', 'Diabetes Stream', 'id', :'arrivals_channel');
\set VERBOSITY sqlstate
INSERT INTO arrivals_forged SELECT * FROM patients WHERE id = 1;
\set VERBOSITY default
SELECT count(*) AS rows FROM arrivals_forged;
DROP TABLE arrivals_forged;

--
-- consumers: stream_read gives the events after the consumer's last ack, in delivery order;
-- stream_ack moves its position; consumers are independent
--
SELECT key, round(prediction::numeric, 2) AS prediction
FROM pyml.stream_read(:arrivals_stream, 'dashboard') WITH ORDINALITY AS r(event_id, key, prediction, model_id, scored_at, n)
ORDER BY n;
SELECT key FROM pyml.stream_read(:arrivals_stream, 'dashboard', max_rows => 2)
     WITH ORDINALITY AS r(event_id, key, prediction, model_id, scored_at, n)
ORDER BY n;
-- ack the third event: the first three are done
SELECT pyml.stream_ack(:arrivals_stream, 'dashboard',
    (SELECT event_id FROM pyml.stream_read(:arrivals_stream, 'dashboard', max_rows => 3)
     ORDER BY event_id DESC LIMIT 1));
SELECT key FROM pyml.stream_read(:arrivals_stream, 'dashboard') WITH ORDINALITY AS r(event_id, key, prediction, model_id, scored_at, n) ORDER BY n;
SELECT key FROM pyml.stream_read(:arrivals_stream, 'audit') WITH ORDINALITY AS r(event_id, key, prediction, model_id, scored_at, n) ORDER BY n;
SELECT events, consumers FROM pyml.streams WHERE stream_id = :arrivals_stream;
-- prune deletes what every consumer acked: "audit" acked nothing yet
SELECT pyml.stream_prune(:arrivals_stream) AS pruned;
SELECT pyml.stream_ack(:arrivals_stream, 'audit',
    (SELECT max(event_id) FROM pyml.stream_read(:arrivals_stream, 'audit', max_rows => 2)));
SELECT pyml.stream_prune(:arrivals_stream) AS pruned;
SELECT key FROM pyml.stream_events WHERE stream_id = :arrivals_stream ORDER BY event_id;

-- consumer errors
SELECT * FROM pyml.stream_read(:arrivals_stream, '');
\echo :SQLSTATE
SELECT * FROM pyml.stream_read(:arrivals_stream, 'dashboard', max_rows => 0);
\echo :SQLSTATE
SELECT * FROM pyml.stream_read(:arrivals_stream, 'dashboard', after_event => 0);
\echo :SQLSTATE
SELECT * FROM pyml.stream_read(-1, 'dashboard');
\echo :SQLSTATE
SELECT * FROM pyml.stream_read(NULL, 'dashboard');
\echo :SQLSTATE
SELECT pyml.stream_ack(:arrivals_stream, 'dashboard', 0);
\echo :SQLSTATE
SELECT pyml.stream_ack(:arrivals_stream, '', 0);
\echo :SQLSTATE
SELECT pyml.stream_ack(-1, 'dashboard', 0);
\echo :SQLSTATE
SELECT pyml.stream_prune(-1);
\echo :SQLSTATE

--
-- an async stream: the trigger only queues the rows; pyml.stream_work scores them
--
CREATE TABLE arrivals_queued (LIKE arrivals INCLUDING ALL);
SELECT pyml.stream('Diabetes Stream', 'arrivals_queued', mode => 'async', channel => 'arrivals_queued') AS queued_stream \gset
INSERT INTO arrivals_queued SELECT * FROM patients WHERE id BETWEEN 1 AND 5;
SELECT mode, channel, lag, events FROM pyml.streams WHERE stream_id = :queued_stream;
SELECT count(*) AS readable FROM pyml.stream_read(:queued_stream, 'worker_watch');
CALL pyml.stream_work(:queued_stream, batch_size => 2);
SELECT mode, channel, lag, events FROM pyml.streams WHERE stream_id = :queued_stream;
SELECT e.key, round(e.prediction::numeric, 2) AS prediction, m.algorithm, e.error
FROM pyml.stream_events e JOIN pyml.models m ON m.id = e.model_id
WHERE e.stream_id = :queued_stream ORDER BY e.key::int;
-- a NULL feature is accepted by the INSERT; its event carries the error
INSERT INTO arrivals_queued (id, age, sex, bmi, bp, s1, s2, s3, s4, s5, s6)
VALUES (100, 0, 0, NULL, 0, 0, 0, 0, 0, 0, 0);
CALL pyml.stream_work();
SELECT key, prediction, error FROM pyml.stream_events
WHERE stream_id = :queued_stream AND key = '100';
-- stream_work errors
CALL pyml.stream_work(:queued_stream, batch_size => 0);
\echo :SQLSTATE
CALL pyml.stream_work(-1);
\echo :SQLSTATE
BEGIN;
CALL pyml.stream_work();
\echo :SQLSTATE
ROLLBACK;

--
-- a new deployment scores the next rows (async: the model live when the rows are worked)
--
SELECT project, task, algorithm, deployed
FROM pyml.train('Diabetes Stream', algorithm => 'ridge', hyperparams => '{"alpha": 0.5}', automatic_deploy => false);
SELECT project, strategy, algorithm FROM pyml.deploy('Diabetes Stream', 'most_recent', 'ridge');
INSERT INTO arrivals SELECT * FROM patients WHERE id = 8;
INSERT INTO arrivals_queued SELECT * FROM patients WHERE id = 8;
SELECT project, strategy, algorithm FROM pyml.deploy('Diabetes Stream', 'rollback');
CALL pyml.stream_work();
SELECT s.mode, e.key, m.algorithm
FROM pyml.stream_events e
JOIN pyml.streams s USING (stream_id)
JOIN pyml.models m ON m.id = e.model_id
WHERE e.key = '8'
ORDER BY s.mode;

--
-- streaming the same relation again updates its stream (same id, triggers replaced)
--
SELECT pyml.stream('Diabetes Stream', 'public.arrivals', mode => 'async', channel => 'arrivals_async') = :arrivals_stream AS same_stream;
SELECT mode, channel FROM pyml.streams WHERE stream_id = :arrivals_stream;
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'arrivals'::regclass AND NOT tgisinternal;
SELECT pyml.stream('Diabetes Stream', 'arrivals') = :arrivals_stream AS same_stream;
SELECT mode, channel = 'pyml_' || (SELECT id FROM pyml.projects WHERE name = 'Diabetes Stream') AS default_channel
FROM pyml.streams WHERE stream_id = :arrivals_stream;

--
-- errors when defining a stream (nothing is created)
--
CREATE TABLE arrivals_unstreamed (LIKE arrivals);
SELECT pyml.stream('No Such Project', 'arrivals_unstreamed');
\echo :SQLSTATE
SELECT pyml.stream('Diabetes Stream', 'no_such_table');
\echo :SQLSTATE
SELECT pyml.stream('Diabetes Stream', 'arrivals_unstreamed', key_column => 'serial');
\echo :SQLSTATE
SELECT pyml.stream('Diabetes Stream', 'arrivals_unstreamed', mode => 'batch');
\echo :SQLSTATE
SELECT pyml.stream('Diabetes Stream', 'arrivals_unstreamed', channel => '');
\echo :SQLSTATE
SELECT pyml.stream('Diabetes Stream', 'arrivals_unstreamed', channel => repeat('x', 64));
\echo :SQLSTATE
SELECT pyml.stream(NULL, 'arrivals_unstreamed');
\echo :SQLSTATE
SELECT pyml.stream('Diabetes Stream', NULL);
\echo :SQLSTATE
-- every feature column of the live model must be there, as a number
CREATE TABLE arrivals_no_bmi AS SELECT id, age, sex, bp, s1, s2, s3, s4, s5, s6 FROM arrivals WITH NO DATA;
SELECT pyml.stream('Diabetes Stream', 'arrivals_no_bmi');
\echo :SQLSTATE
CREATE TABLE arrivals_text_bmi AS SELECT id, age, sex, bmi::text AS bmi, bp, s1, s2, s3, s4, s5, s6 FROM arrivals WITH NO DATA;
SELECT pyml.stream('Diabetes Stream', 'arrivals_text_bmi');
\echo :SQLSTATE
-- a project with nothing deployed
SELECT project, task, algorithm, deployed
FROM pyml.train('Diabetes Stream Undeployed', 'regression', 'pyml.diabetes', 'target', automatic_deploy => false);
SELECT pyml.stream('Diabetes Stream Undeployed', 'arrivals_unstreamed');
\echo :SQLSTATE
SELECT count(*) AS streams FROM pyml.streams
WHERE source_relation IN ('arrivals_unstreamed', 'arrivals_no_bmi', 'arrivals_text_bmi');
SELECT count(*) AS triggers FROM pg_trigger
WHERE tgrelid IN ('arrivals_unstreamed'::regclass, 'arrivals_no_bmi'::regclass, 'arrivals_text_bmi'::regclass);

--
-- stopping streams: unstream, DROP TABLE
--
-- a project that streams cannot be deleted
SELECT pyml.delete_project('Diabetes Stream', force => true);
\echo :SQLSTATE
SELECT pyml.unstream('Diabetes Stream', 'arrivals_unstreamed');
\echo :SQLSTATE
SELECT pyml.unstream('No Such Project', 'arrivals');
\echo :SQLSTATE
SELECT pyml.unstream('Diabetes Stream', 'no_such_table');
\echo :SQLSTATE
-- unstream says what it dropped: the outbox, and the rows still queued
INSERT INTO arrivals_queued SELECT * FROM patients WHERE id = 9;
SELECT lag, events FROM pyml.streams WHERE stream_id = :queued_stream;
SET client_min_messages = notice;
SELECT pyml.unstream('Diabetes Stream', 'arrivals_queued');
SET client_min_messages = warning;
SELECT count(*) AS streams FROM pyml.streams WHERE stream_id = :queued_stream;
SELECT count(*) AS events FROM pyml.stream_events WHERE stream_id = :queued_stream;
SELECT count(*) AS queued FROM pyml.stream_queue WHERE stream_id = :queued_stream;
SELECT count(*) AS consumers FROM pyml.stream_consumers WHERE stream_id = :queued_stream;
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'arrivals_queued'::regclass AND NOT tgisinternal;
INSERT INTO arrivals_queued SELECT * FROM patients WHERE id = 10;
SELECT count(*) AS queued FROM pyml.stream_queue WHERE stream_id = :queued_stream;
-- dropping a streamed table drops its stream, with its outbox and consumers
SELECT events, consumers FROM pyml.streams WHERE stream_id = :arrivals_stream;
DROP TABLE arrivals;
SELECT count(*) AS streams FROM pyml.stream_definitions WHERE id = :arrivals_stream;
SELECT count(*) AS events FROM pyml.stream_events WHERE stream_id = :arrivals_stream;
SELECT count(*) AS consumers FROM pyml.stream_consumers WHERE stream_id = :arrivals_stream;
-- now the project can go
SELECT pyml.delete_project('Diabetes Stream', force => true);
SELECT pyml.delete_project('Diabetes Stream Undeployed');

DROP VIEW patients;
DROP TABLE arrivals_queued, arrivals_unstreamed, arrivals_no_bmi, arrivals_text_bmi;
